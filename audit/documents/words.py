"""Numbers, dates and procedures in the words a printed document uses.

Why a module of its own: a document is read on paper, with nobody to ask what "dap_gycm2",
"None" or "4.2e-05" means. Every figure a document prints goes through these functions, which
never produce scientific notation, field names or an empty value's Python spelling
(tests/documents/test_letter.py scans the letter's text for them).
"""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Any

#: What each catalog procedure is, for a patient (the catalog's codes never reach the letter).
PROCEDURE_WORDS = {
    "ILESI": "an injection of anti-inflammatory medicine into the space around the spinal "
             "nerves, between two vertebrae (interlaminar epidural injection)",
    "TFESI": "an injection of anti-inflammatory medicine around a spinal nerve where it leaves "
             "the spine (transforaminal epidural injection)",
    "CAUDAL": "an injection of anti-inflammatory medicine into the space around the spinal "
              "nerves, through the base of the spine (caudal epidural injection)",
    "MBB": "a numbing injection near the small nerves of the joints at the back of the spine "
           "(medial branch block)",
    "RFA": "a treatment that uses heat to quiet the small nerves of the joints at the back of "
           "the spine (radiofrequency ablation)",
    "FACET": "an injection into a small joint at the back of the spine (facet joint injection)",
    "SIJ": "an injection into the joint between the base of the spine and the pelvis "
           "(sacroiliac joint injection)",
    "DISCOGRAPHY": "a test in which dye is injected into a spinal disc to find the source of "
                   "pain (discography)",
    "SYMPATHETIC": "a numbing injection near nerves that carry pain signals (sympathetic nerve "
                   "block)",
}
REGION_WORDS = {"cervical": "neck", "thoracic": "upper or middle back", "lumbar": "lower back",
                "sacral": "base of the spine"}
SIDE_WORDS = {"left": "on the left side", "right": "on the right side",
              "bilateral": "on both sides", "midline": "in the middle"}
#: A documented reason contrast dye was not used, in a patient's words.
EXCEPTION_WORDS = {"allergy": "an allergy to contrast dye",
                   "renal_impairment": "reduced kidney function",
                   "patient_refused": "your choice not to have it",
                   "other": "a medical reason recorded by your doctor"}


def missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(value != value)  # NaN, NaT, pd.NA compare unequal to themselves
    except (TypeError, ValueError):
        return False


def number(value: Any, decimals: int = 1, empty: str = "not recorded") -> str:
    """A fixed-point number with thousands separators ("1,234.5"); `empty` for a missing one.
    Never scientific notation: a value that rounds to zero is "less than 0.1"."""
    if missing(value) or not math.isfinite(float(value)):
        return empty
    value = float(value)
    shown = f"{value:,.{decimals}f}"
    if value > 0 and float(shown.replace(",", "")) == 0:
        return f"less than {10 ** -decimals:.{decimals}f}"
    return shown


def count(value: Any) -> str:
    return "0" if missing(value) else f"{int(value):,}"


def percent(rate: Any, decimals: int = 1) -> str:
    return "not available" if missing(rate) else f"{float(rate) * 100:.{decimals}f}%"


def day(value: date | datetime | Any) -> str:
    """"3 March 2026": unambiguous in every country (no 03/04 question)."""
    if missing(value):
        return "date not recorded"
    return f"{value.day} {value:%B %Y}"


def procedure_words(code: str, name: str, region: str | None, levels: str,
                    laterality: str | None) -> str:
    """One procedure as a patient would say it, e.g. "an injection ... in your lower back, at
    the L4-L5 level, on the left side"."""
    what = PROCEDURE_WORDS.get(code) or f"a procedure guided by X-ray imaging ({name.lower()})"
    where = REGION_WORDS.get(region or "")
    parts = [what]
    if where:
        parts.append(f"in your {where}")
    if levels:
        parts.append(f"at the {levels} level" + ("s" if "," in levels else ""))
    side = SIDE_WORDS.get(laterality or "")
    if side:
        parts.append(side)
    return ", ".join(parts)


def background_words(days: Any) -> str:
    """Days of natural background radiation as a phrase."""
    if missing(days):
        return "not available, because the X-ray machine's dose reading was not recorded"
    days = float(days)
    if days < 1:
        return "less than one day"
    if days < 1.5:
        return "about one day"
    return f"about {round(days):,} days"
