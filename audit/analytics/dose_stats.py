"""Dose statistics: medians, 75th percentiles, distributions and trends of KAP, Ka,r and time.

Why medians and 75th percentiles: dose distributions are skewed (a few long cases dominate a
mean), and ICRP 135 reference levels are defined on medians and their 75th percentile
(docs/design.md §3). Records lacking a quantity are left out of that quantity only; the
quantiles are numpy's linear interpolation, bit for bit (audit.analytics.grouping).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from audit.analytics.grouping import QUANTITIES, combined_codes, group_codes, quantiles_by
from audit.analytics.snapshot import Snapshot
from audit.filters import Filters


def dose_stats(snap: Snapshot, filters: Filters, by: Sequence[str] = ("procedure",),
               quantities: Sequence[str] = QUANTITIES, per_level: bool = False) -> pd.DataFrame:
    """n, median and 75th percentile of each quantity per group (records lacking a quantity
    are left out of that quantity only). per_level: values divided by levels treated."""
    mask = filters.mask(snap)
    codes, labels = combined_codes(snap, by)
    records = np.bincount(codes[mask], minlength=len(labels))[:len(labels)]
    data: dict[str, Any] = {name: [lab[i] for lab in labels] for i, name in enumerate(by)}
    data["records"] = records
    suffix = "_per_level" if per_level else ""
    for q in quantities:
        _, counts, (median, p75) = quantiles_by(snap, mask, by, q, (0.5, 0.75), per_level)
        data[f"{q}{suffix}_n"] = counts
        data[f"{q}{suffix}_median"] = median
        data[f"{q}{suffix}_p75"] = p75
    frame = pd.DataFrame(data)
    return frame[frame["records"] > 0].reset_index(drop=True)


def dose_distribution(snap: Snapshot, filters: Filters, quantity: str = "dap_gycm2",
                      by: str = "procedure") -> pd.DataFrame:
    """Box summary per group: n, 5th, 25th, 50th, 75th, 95th percentiles."""
    mask = filters.mask(snap)
    qs = (0.05, 0.25, 0.5, 0.75, 0.95)
    labels, counts, values = quantiles_by(snap, mask, (by,), quantity, qs)
    frame = pd.DataFrame({by: [lab[0] for lab in labels], "n": counts,
                          **{f"p{int(q * 100)}": v for q, v in zip(qs, values, strict=True)}})
    return frame[frame["n"] > 0].reset_index(drop=True)


def dose_histogram(snap: Snapshot, filters: Filters, procedure: str,
                   quantity: str = "dap_gycm2", bins: int = 40) -> pd.DataFrame:
    """Counts in log-spaced bins for one procedure (a distribution chart's data)."""
    mask = filters.mask(snap)
    type_ids = snap.types.index[snap.types["code"] == procedure].to_numpy()
    mask = mask & np.isin(snap.records["type_id"].to_numpy(), type_ids)
    values = snap.values(quantity)[mask]
    values = values[~np.isnan(values) & (values > 0)]
    if not len(values):
        return pd.DataFrame({"low": [], "high": [], "count": []})
    edges = np.geomspace(values.min(), values.max() * (1 + 1e-9), bins + 1)
    counts, _ = np.histogram(values, bins=edges)
    return pd.DataFrame({"low": edges[:-1], "high": edges[1:], "count": counts})


def monthly_medians(snap: Snapshot, filters: Filters,
                    quantity: str = "dap_gycm2") -> pd.DataFrame:
    """Median of the quantity per month and procedure (long format, for a line chart)."""
    frame = dose_stats(snap, filters, by=("month", "procedure"), quantities=(quantity,))
    frame = frame[frame[f"{quantity}_n"] > 0]
    return frame[["month", "procedure", f"{quantity}_n", f"{quantity}_median"]] \
        .rename(columns={f"{quantity}_n": "n", f"{quantity}_median": "median"}) \
        .reset_index(drop=True)


def technique_use(snap: Snapshot, filters: Filters, by: str | None = None) -> pd.DataFrame:
    """Pulsed fluoroscopy and low-dose mode: use among records where it was recorded."""
    mask = filters.mask(snap)
    codes, labels = group_codes(snap, by)
    k = len(labels)

    def count(condition: np.ndarray) -> np.ndarray:
        return np.bincount(codes[mask & condition], minlength=k)[:k]

    data: dict[str, Any] = {by or "scope": labels, "records": count(np.ones_like(mask))}
    for name, fact in (("pulsed", "pulsed_fluoro"), ("low_dose", "low_dose_mode")):
        recorded = count(snap.fact(f"{fact}_recorded"))
        data[f"{name}_recorded"] = recorded
        data[name] = count(snap.fact(fact))
        with np.errstate(invalid="ignore", divide="ignore"):
            data[f"{name}_rate"] = np.where(recorded > 0, data[name] / recorded, np.nan)
    frame = pd.DataFrame(data)
    if by is not None:
        frame = frame[frame["records"] > 0]
    return frame.reset_index(drop=True)
