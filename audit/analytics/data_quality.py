"""Data quality: is the log complete enough to trust the other figures?

Why it matters: a missing KAP silently drops a record from every dose statistic, and records
saved over plausibility warnings or typed in by hand rather than taken from a DICOM dose report
are the ones most likely to be wrong. These shares, per room or technologist, show where the
log needs attention before its medians and rates are quoted.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from audit.analytics.grouping import group_codes
from audit.analytics.snapshot import Snapshot
from audit.filters import Filters


def completeness(snap: Snapshot, filters: Filters, by: str | None = None) -> pd.DataFrame:
    """Missing dose (with or without a documented reason), missing Ka,r, records saved with
    confirmed plausibility warnings, and dose taken from a DICOM dose report."""
    mask = filters.mask(snap)
    r = snap.records
    codes, labels = group_codes(snap, by)
    k = len(labels)

    def count(condition: np.ndarray) -> np.ndarray:
        return np.bincount(codes[mask & condition], minlength=k)[:k]

    # an ultrasound-guided record has no dose to miss (issue 15)
    with_beam = ~snap.fact("ultrasound_guidance")
    missing_dap = np.isnan(r["dap_gycm2"].to_numpy()) & with_beam
    data = {
        by or "scope": labels,
        "records": count(np.ones(len(r), dtype=bool)),
        "missing_dap": count(missing_dap),
        "missing_dap_documented": count(missing_dap & snap.fact("dap_missing_reason")),
        "missing_air_kerma": count(np.isnan(r["air_kerma_mgy"].to_numpy()) & with_beam),
        "with_warnings": count(snap.fact("saved_with_warnings")),
        "from_dose_report": count(snap.fact("dose_from_report")),
    }
    frame = pd.DataFrame(data)
    total = frame["records"].replace(0, np.nan)
    for column in ("missing_dap", "missing_air_kerma", "with_warnings", "from_dose_report"):
        frame[f"{column}_share"] = frame[column] / total
    if by is not None:
        frame = frame[frame["records"] > 0]
    return frame.reset_index(drop=True)
