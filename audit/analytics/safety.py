"""Safety flags: records a radiation safety officer or quality lead should look at one by one.

Why flags and not rates: each flagged record is a possible harm to one patient (a particulate
steroid in a cervical transforaminal injection, vascular uptake without repositioning the
needle, more levels than the catalog allows, a pregnant patient, a substantial radiation dose
level reached), so the pages count them and list them, newest first (docs/design.md §3).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from audit.analytics.grouping import QUANTITIES, by_type, cached, group_codes, record_names
from audit.analytics.snapshot import KAP_CORRECTED, Snapshot
from audit.filters import Filters
from audit.vocab import Region

SAFETY_FLAGS: dict[str, str] = {
    "particulate_cervical_tfesi": "Particulate steroid in cervical TFESI",
    "uptake_not_repositioned": "Vascular uptake without needle repositioning",
    "levels_over_limit": "More levels than the catalog allows",
    "pregnant": "Pregnant patient",
    "srdl_reached": "Substantial radiation dose level reached",
}


def flag_arrays(snap: Snapshot) -> dict[str, np.ndarray]:
    """Per-record safety flags of docs/design.md §3 (cached per snapshot)."""
    def build() -> dict[str, np.ndarray]:
        r = snap.records
        code = by_type(snap, "code", "", object)
        cervical = snap.region_is(Region.CERVICAL)
        max_levels = by_type(snap, "max_levels", -1, np.int64)
        s = snap.settings
        srdl = ((r["air_kerma_mgy"].to_numpy() >= float(s.srdl_air_kerma_mgy))
                | (snap.values(KAP_CORRECTED) >= float(s.srdl_kap_gycm2))  # as the alerts
                | (r["fluoro_time_s"].to_numpy() >= float(s.srdl_fluoro_time_s)))
        return {
            "particulate_cervical_tfesi": (code == "TFESI") & cervical
            & snap.fact("particulate_steroid"),
            "uptake_not_repositioned": snap.fact("vascular_uptake")
            & ~snap.fact("needle_repositioned"),
            "levels_over_limit": (max_levels >= 0) & (r["n_levels"].to_numpy() > max_levels),
            "pregnant": snap.fact("pregnant"),
            "srdl_reached": srdl,
        }
    return cached(snap, "flags", build)


def safety_flags(snap: Snapshot, filters: Filters, by: str | None = None) -> pd.DataFrame:
    """Records and the count of each safety flag per group."""
    mask = filters.mask(snap)
    codes, labels = group_codes(snap, by)
    k = len(labels)
    data: dict[str, Any] = {by or "scope": labels,
                            "records": np.bincount(codes[mask], minlength=k)[:k]}
    for name, flag in flag_arrays(snap).items():
        data[name] = np.bincount(codes[mask & flag], minlength=k)[:k]
    frame = pd.DataFrame(data)
    if by is not None:
        frame = frame[frame["records"] > 0]
    return frame.reset_index(drop=True)


def flagged_records(snap: Snapshot, filters: Filters, flag: str,
                    limit: int = 1000) -> pd.DataFrame:
    if flag not in SAFETY_FLAGS:
        raise ValueError(f"unknown flag {flag!r}; allowed: {', '.join(SAFETY_FLAGS)}")
    mask = filters.mask(snap) & flag_arrays(snap)[flag]
    positions = np.flatnonzero(mask)
    r = snap.records
    positions = positions[np.argsort(-r["t"].to_numpy()[positions], kind="stable")][:limit]
    rows = r.iloc[positions]
    out = record_names(snap, rows)
    for q in QUANTITIES:
        out[q] = rows[q].to_numpy()
    out["levels"] = rows["n_levels"].to_numpy()
    return out
