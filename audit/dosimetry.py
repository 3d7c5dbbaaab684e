"""Patient dose figures derived from the measured KAP: effective dose and days of background.

Why one module: the effective dose is computed when a record is logged or amended
(audit.log.service) and again when a C-arm dose report fills in the KAP
(audit.dose_reports.matching); the days of natural background radiation are computed in Python
for a record on screen and in SQL for every row of an export (audit.export.sections). If the
rule lived in each of those places, a change to one would make the export disagree with the
screen. The formulas and their sources are in docs/reference.md (§6).

The coefficients and the annual background are site settings; this module takes them as
arguments and never reads settings itself.
"""

from __future__ import annotations

from collections.abc import Mapping
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


def effective_dose(kap_gycm2: float | None, room_factor: float, region: str | None,
                   coefficients: Mapping[str, Any]) -> float | None:
    """E = KAP x room KAP correction x k(region), in mSv (docs/reference.md §6).

    `coefficients` maps a region to its k (mSv per Gy·cm², the `effective_dose_k` setting).
    None when there is no KAP or the region has no coefficient: no estimate is better than a
    wrong one.
    """
    if kap_gycm2 is None or region is None:
        return None
    k = coefficients.get(region)
    if k is None:
        return None
    return round(kap_gycm2 * room_factor * float(k), EFFECTIVE_DOSE_DECIMALS)


def effective_doses(kap_gycm2: Any, room_factor: Any, k: Any) -> Any:
    """effective_dose over arrays (numpy): KAP x room factor x k, rounded the same way.

    For bulk loads (the demo data), where one Python call per record would be the slow part;
    the caller looks up each record's k from the same coefficients.
    """
    import numpy as np

    return np.round(kap_gycm2 * room_factor * k, EFFECTIVE_DOSE_DECIMALS)


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
