"""Parsing and conversion of the dose quantities people type or C-arms display.

The stored units are canonical (Gy·cm², s, mGy); what was entered is kept beside them, because a
unit mix-up (REFERENCE.md §2: 10×, 100× or 1000× errors) can only be found later if the original
is still there. Every parser raises ValueError with a sentence that says what is allowed; the
service prefixes the field name.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from audit.vocab import DapUnit

#: Longest plausible beam-on time for any fluoroscopic procedure; beyond this it is a typo.
MAX_FLUORO_TIME_S = 6 * 3600
#: A KAP above this is a unit error (far beyond any clinical value, 50x the SRDL).
MAX_DAP_GYCM2 = 25_000.0
MAX_AIR_KERMA_MGY = 100_000.0


def as_number(raw: object, what: str = "a number") -> float:
    """A finite float from a number or numeric text ("1,25" with a decimal comma is accepted)."""
    if isinstance(raw, bool):
        raise ValueError(f"expected {what}, got {raw!r}")
    if isinstance(raw, int | float):
        value = float(raw)
    else:
        text = str(raw).strip().replace(",", ".") if raw is not None else ""
        if not text:
            raise ValueError(f"expected {what}, got nothing")
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"expected {what}, got {raw!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"expected a finite {what}, got {raw!r}")
    return value


@dataclass(frozen=True)
class Dap:
    gycm2: float
    value: float
    unit: DapUnit


def parse_dap(value: object, unit: object | None) -> Dap:
    """Convert a displayed DAP value in `unit` (default Gy·cm²) to Gy·cm²."""
    dap_unit = DapUnit.GY_CM2 if unit in (None, "") else DapUnit.parse(unit)
    number = as_number(value, "a dose-area product value")
    if number < 0:
        raise ValueError(f"must be zero or more, got {number:g}")
    gycm2 = number * dap_unit.to_gycm2
    if gycm2 > MAX_DAP_GYCM2:
        raise ValueError(
            f"{number:g} {dap_unit.value} is {gycm2:g} Gy·cm², beyond any fluoroscopic procedure "
            f"(limit {MAX_DAP_GYCM2:g} Gy·cm²): check the unit"
        )
    return Dap(gycm2=gycm2, value=number, unit=dap_unit)


_MSS = re.compile(r"^(\d+):([0-5]?\d(?:\.\d+)?)$")
_WITH_UNIT = re.compile(
    r"^(\d+(?:[.,]\d+)?)\s*(s|sec|secs|second|seconds|m|min|mins|minute|minutes)$", re.IGNORECASE
)

FLUORO_TIME_FORMS = "seconds (78), 'm:ss' (1:18), or minutes with a unit ('1.3 min')"


def parse_fluoro_time(raw: object) -> float:
    """Fluoroscopy time in seconds from seconds, "m:ss" or minutes with a unit.

    C-arms display minutes and tenths, so "1.3 min" is 78 s, not 1 min 30 s; "1:30" is 90 s.
    A bare number is seconds (the dictionary's unit).
    """
    if isinstance(raw, bool) or raw is None:
        raise ValueError(f"expected fluoroscopy time as {FLUORO_TIME_FORMS}")
    if isinstance(raw, int | float):
        seconds = as_number(raw, "a time")
    else:
        text = str(raw).strip()
        if text.startswith("-"):
            raise ValueError(f"must be zero or more, got {text!r}")
        mss = _MSS.match(text)
        unit = _WITH_UNIT.match(text)
        if mss:
            seconds = int(mss[1]) * 60 + float(mss[2])
        elif ":" in text:
            raise ValueError(
                f"{text!r} is not m:ss (seconds must be 00-59); use {FLUORO_TIME_FORMS}"
            )
        elif unit:
            number = float(unit[1].replace(",", "."))
            seconds = number * 60 if unit[2].lower().startswith("m") else number
        else:
            try:
                seconds = as_number(text, "a time")
            except ValueError:
                raise ValueError(f"{text!r} is not a time; use {FLUORO_TIME_FORMS}") from None
    if seconds < 0:
        raise ValueError(f"must be zero or more, got {seconds:g}")
    if seconds > MAX_FLUORO_TIME_S:
        raise ValueError(
            f"{seconds:g} s is more than {MAX_FLUORO_TIME_S // 3600} hours of beam-on time; "
            "is it in seconds? use " + FLUORO_TIME_FORMS
        )
    return round(seconds, 1)


_KERMA = re.compile(r"^(\d+(?:[.,]\d+)?(?:e[-+]?\d+)?)\s*(mgy|gy|ugy|µgy|μgy)?$", re.IGNORECASE)


def parse_air_kerma(raw: object) -> float:
    """Reference air kerma (Ka,r) in mGy from a number (mGy) or text with a unit ("1.2 Gy")."""
    if isinstance(raw, bool):
        raise ValueError("expected air kerma in mGy")
    if isinstance(raw, int | float):
        mgy = as_number(raw, "air kerma in mGy")
    else:
        match = _KERMA.match(str(raw).strip())
        if not match:
            raise ValueError(f"{raw!r} is not an air kerma; give mGy (12.5) or a unit ('1.2 Gy')")
        number = float(match[1].replace(",", "."))
        unit = (match[2] or "mgy").lower().replace("µ", "u").replace("μ", "u")
        mgy = number * {"mgy": 1.0, "gy": 1000.0, "ugy": 0.001}[unit]
    if mgy < 0:
        raise ValueError(f"must be zero or more, got {mgy:g}")
    if mgy > MAX_AIR_KERMA_MGY:
        raise ValueError(f"{mgy:g} mGy is beyond any fluoroscopic procedure: check the unit")
    return mgy


def format_duration(seconds: float) -> str:
    """78 -> "1:18" (how people read beam-on time)."""
    whole = round(seconds)
    return f"{whole // 60}:{whole % 60:02d}"
