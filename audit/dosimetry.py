"""Patient dose figures derived from the measured KAP: the room-corrected KAP, effective dose and
days of background, and the caution that goes with the last.

Why one module: the room's KAP correction factor is applied here and nowhere else
(`corrected_kap`): effective dose uses it, and so do the reference levels and their comparisons
(the analysis frame's corrected KAP, audit.analytics.snapshot; docs/reference.md §12). The
effective dose is computed when a record is logged or amended (audit.log.service) and again
when a C-arm dose report fills in the KAP (audit.dose_reports.matching); the days of natural
background radiation are computed in Python for a record on screen and in SQL for every row of
an export (audit.export.sections). If a rule lived in each of those places, a change to one
would make the export disagree with the screen. The formulas and their sources are in
docs/reference.md (§8).

The coefficients and the annual background are site settings; this module takes them as
arguments and never reads settings itself.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from sqlalchemy import literal
from sqlalchemy.sql.expression import ColumnElement

#: Annual natural background in mSv when the site sets none (NCRP Report 160, US).
DEFAULT_ANNUAL_BACKGROUND_MSV = 3.1
#: Decimals the stored effective dose keeps (mSv).
EFFECTIVE_DOSE_DECIMALS = 6
#: Decimals of the days of background, on screen and in the export.
BACKGROUND_DAYS_DECIMALS = 1
DAYS_PER_YEAR = 365
#: Said wherever a patient (or anyone) sees "days of background": NCRP Report 184 (2019) advises
#: that effective dose is not an estimate of one person's risk (docs/reference.md §8).
BACKGROUND_CAUTION = ("A population estimate for comparison, not a measure of your personal "
                      "risk (NCRP Report 184).")


def corrected_kap(kap_gycm2: Any, room_factor: Any) -> Any:
    """The displayed KAP times the room's KAP correction factor (set by the physicist, e.g.
    about 0.75 where the displayed DAP overstates the skin-entrance DAP by ~34%, Mann 2019):
    the KAP effective dose and the reference levels are computed from. Scalars or numpy
    arrays; None (no KAP) stays None."""
    if kap_gycm2 is None:
        return None
    return kap_gycm2 * room_factor


@dataclass(frozen=True)
class Coefficient:
    """One region's effective-dose coefficient as seeded, with what it rests on."""

    region: str
    k: float
    basis: str  # a FigureBasis value: published or estimate
    tissue_weights: str  # "ICRP 60", "ICRP 103" or "none"
    source: str
    figure: str


@cache
def seeded_coefficients() -> dict[str, Coefficient]:
    """The seeded coefficients and their basis (audit/data/effective_dose_k.csv, read once).
    The values in use are the `effective_dose_k` setting; a value an administrator changed no
    longer has this basis (`coefficient_basis`)."""
    text = resources.files("audit").joinpath("data/effective_dose_k.csv").read_text("utf-8")
    rows = csv.DictReader(text.splitlines())
    return {r["region"]: Coefficient(r["region"], float(r["k"]), r["basis"],
                                     r["tissue_weights"], r["source"], r["figure"])
            for r in rows}


def coefficient_basis(region: str, k: float | None) -> str:
    """What the coefficient in use for a region rests on, in words: the seeded basis while the
    value is the seeded one (paper and tissue weights, or "estimate"), else "set locally"."""
    seeded = seeded_coefficients().get(region)
    if k is None:
        return "no coefficient: no effective dose is estimated"
    if seeded is None or abs(float(k) - seeded.k) > 1e-12:
        return f"{float(k):g} mSv per Gy·cm², set locally (no seeded source)"
    if seeded.basis == "estimate":
        return f"{seeded.k:g} mSv per Gy·cm², an estimate: {seeded.figure}"
    return (f"{seeded.k:g} mSv per Gy·cm², {seeded.source} ({seeded.tissue_weights} tissue "
            f"weights): {seeded.figure}")


def effective_dose(kap_gycm2: float | None, room_factor: float, region: str | None,
                   coefficients: Mapping[str, Any]) -> float | None:
    """E = KAP x room KAP correction x k(region), in mSv (docs/reference.md §8).

    `coefficients` maps a region to its k (mSv per Gy·cm², the `effective_dose_k` setting).
    None when there is no KAP or the region has no coefficient: no estimate is better than a
    wrong one.
    """
    if kap_gycm2 is None or region is None:
        return None
    k = coefficients.get(region)
    if k is None:
        return None
    return round(corrected_kap(kap_gycm2, room_factor) * float(k), EFFECTIVE_DOSE_DECIMALS)


def effective_doses(kap_gycm2: Any, room_factor: Any, k: Any) -> Any:
    """effective_dose over arrays (numpy): KAP x room factor x k, rounded the same way.

    For bulk loads (the demo data), where one Python call per record would be the slow part;
    the caller looks up each record's k from the same coefficients.
    """
    import numpy as np

    return np.round(corrected_kap(kap_gycm2, room_factor) * k, EFFECTIVE_DOSE_DECIMALS)


def background_days(effective_msv: float | None, annual_background_msv: float) -> float | None:
    """The effective dose as days of natural background radiation (what a patient can picture)."""
    if effective_msv is None:
        return None
    return round(effective_msv * DAYS_PER_YEAR / float(annual_background_msv),
                 BACKGROUND_DAYS_DECIMALS)


def background_days_sql(effective_msv: ColumnElement[Any],
                        annual_background_msv: float) -> ColumnElement[Any]:
    """background_days as a SQL expression, not yet rounded: the export rounds it with its own
    cross-database round (audit.export.cells.sql_round) to BACKGROUND_DAYS_DECIMALS."""
    return effective_msv * float(DAYS_PER_YEAR) / literal(float(annual_background_msv))
