"""What counts as compliant: contrast confirmation of needle placement, per record and as rates.

The rule itself is audit.contrast_rule.contrast_compliance, the one function the log's
entry-time warning also calls (docs/design.md §6); here it is applied to every record of the
analysis frame and counted:

- eligible: a final record whose catalog policy is "required" (voided records are not in the
  frame, so they never count);
- compliant: eligible AND contrast confirmed AND at least one saved image AND at least the
  catalog's minimum number of views AND real-time contrast where the catalog requires it;
- excepted: eligible AND contraindicated AND a documented reason;
- rate = compliant / (eligible - excepted), with a Wilson 95% interval; monthly rates form a
  p-chart with 3-sigma limits.

`contrast_compliance` states the rule on plain values or arrays (one value per record), so it
reads and tests without a database; `compliance_arrays` only gathers its inputs from the
analysis frame.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from audit import contrast_rule
from audit.analytics.grouping import by_type, cached, group_codes, record_names
from audit.analytics.quantiles import wilson
from audit.analytics.snapshot import Snapshot
from audit.filters import Filters
from audit.vocab import ContrastConfirmation, ContrastPolicy


def why_non_compliant(parts: dict[str, np.ndarray]) -> np.ndarray:
    """For non-compliant records (`contrast_compliance` results), every reason, "; "-joined
    (the reasons and their order: audit.contrast_rule)."""
    reasons = pd.Series([""] * len(parts["confirmed"]), dtype=object)
    for name, condition in contrast_rule.reasons(parts).items():
        text = contrast_rule.REASONS[name]
        reasons = reasons.where(~condition, reasons + np.where(reasons == "", "", "; ") + text)
    return reasons.to_numpy()


def compliance_arrays(snap: Snapshot) -> dict[str, np.ndarray]:
    """`contrast_compliance` for every record of the frame (cached per snapshot)."""
    def build() -> dict[str, np.ndarray]:
        r = snap.records
        return contrast_rule.contrast_compliance(
            policy_required=by_type(snap, "policy", "", object) == ContrastPolicy.REQUIRED.value,
            confirmed=snap.confirmation_is(ContrastConfirmation.CONFIRMED),
            contraindicated=snap.confirmation_is(ContrastConfirmation.CONTRAINDICATED),
            exception_reason=snap.fact("contrast_exception_reason"),
            saved_images=r["saved_images"].to_numpy(),
            views=r["n_views"].to_numpy(),
            min_views=by_type(snap, "min_views", 0, np.int64),
            realtime_required=by_type(snap, "realtime_required", False, bool),
            realtime_contrast=snap.fact("realtime_contrast"),
            radiation_free=snap.fact("ultrasound_guidance"),
        )
    return cached(snap, "compliance", build)


def _rates(frame: pd.DataFrame) -> pd.DataFrame:
    denominator = frame["eligible"] - frame["excepted"]
    frame["non_compliant"] = denominator - frame["compliant"]
    with np.errstate(invalid="ignore", divide="ignore"):
        frame["rate"] = np.where(denominator > 0, frame["compliant"] / denominator, np.nan)
    low, high = wilson(frame["compliant"].to_numpy(), denominator.to_numpy())
    frame["ci_low"], frame["ci_high"] = low, high
    return frame


def compliance(snap: Snapshot, filters: Filters, by: str | None = None) -> pd.DataFrame:
    """eligible, compliant, excepted, non_compliant, rate, ci_low, ci_high: one row per group
    with eligible records (by None: one row, "all")."""
    a = compliance_arrays(snap)
    mask = filters.mask(snap) & a["eligible"]
    codes, labels = group_codes(snap, by)
    k = len(labels)
    frame = pd.DataFrame({
        by or "scope": labels,
        "eligible": np.bincount(codes[mask], minlength=k)[:k],
        "compliant": np.bincount(codes[mask & a["compliant"]], minlength=k)[:k],
        "excepted": np.bincount(codes[mask & a["excepted"]], minlength=k)[:k],
    })
    frame = _rates(frame)
    if by is not None:
        frame = frame[frame["eligible"] > 0]
        if by not in ("month", "levels"):
            frame = frame.sort_values(by, key=lambda s: s.str.lower())
    return frame.reset_index(drop=True)[[by or "scope", "eligible", "compliant", "excepted",
                                        "non_compliant", "rate", "ci_low", "ci_high"]]


def p_chart(snap: Snapshot, filters: Filters) -> pd.DataFrame:
    """Monthly compliance as a p-chart: each month's proportion against the centre line (the
    pooled rate) and 3-sigma limits for that month's size, p ± 3 sqrt(p(1-p)/n), clipped to
    [0, 1]. `signal` marks months outside the limits (special-cause variation)."""
    return p_chart_rows(compliance(snap, filters, by="month"))


def p_chart_rows(monthly: pd.DataFrame) -> pd.DataFrame:
    """The p-chart from monthly compliance counts (month, eligible, compliant, excepted, rate),
    however counted: the frame, or on PostgreSQL the daily summary (audit.analytics.sql)."""
    n = monthly["eligible"] - monthly["excepted"]
    monthly = monthly[n > 0].copy()
    n = n[n > 0]
    total = n.sum()
    centre = monthly["compliant"].sum() / total if total else np.nan
    sigma = np.sqrt(centre * (1 - centre) / n)
    monthly["n"] = n
    monthly["centre"] = centre
    monthly["lcl"] = np.clip(centre - 3 * sigma, 0, 1)
    monthly["ucl"] = np.clip(centre + 3 * sigma, 0, 1)
    monthly["signal"] = (monthly["rate"] < monthly["lcl"]) | (monthly["rate"] > monthly["ucl"])
    return monthly[["month", "n", "compliant", "rate", "centre", "lcl", "ucl",
                    "signal"]].reset_index(drop=True)


def compliance_records(snap: Snapshot, filters: Filters, which: str = "non_compliant",
                       group: tuple[str, str] | None = None, limit: int = 1000) -> pd.DataFrame:
    """The records behind a compliance number: "non_compliant" (with why) or "excepted",
    optionally within one group (e.g. ("physician", "Dr. Hannah Weiss")), newest first."""
    if which not in ("non_compliant", "excepted"):
        raise ValueError("which: non_compliant or excepted")
    a = compliance_arrays(snap)
    mask = filters.mask(snap) & a[which]
    if group is not None:
        codes, labels = group_codes(snap, group[0])
        wanted = [i for i, name in enumerate(labels) if name == group[1]]
        mask &= np.isin(codes, wanted)
    positions = np.flatnonzero(mask)
    r = snap.records
    t = r["t"].to_numpy()[positions]
    positions = positions[np.lexsort((-r["id"].to_numpy()[positions], -t))][:limit]
    rows = r.iloc[positions]
    out = record_names(snap, rows)
    out["contrast_confirmation"] = snap.confirmation_names(rows)
    out["saved_images"] = rows["saved_images"].to_numpy()
    out["views"] = rows["n_views"].to_numpy()
    if which == "excepted":
        out["why"] = "contraindicated, reason documented"
        return out
    out["why"] = why_non_compliant({k: v[positions] for k, v in a.items()})
    return out
