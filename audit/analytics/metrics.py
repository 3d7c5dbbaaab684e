"""Compliance and dose statistics (DESIGN.md §3) as DataFrames, for the pages and the CLI alike.

Everything is computed on the compact frame (audit.analytics.snapshot) with whole-array numpy
operations:
per-record rules become boolean arrays once per snapshot, and a filter or a grouping is a mask
and a bincount (counts) or a grouped quantile (audit.analytics.quantiles). No loop runs over
records.

Rules, exactly:
- compliance is measured over final records whose catalog policy is "required" (eligible);
  compliant = confirmed AND saved_images >= 1 AND views >= the catalog minimum AND real-time
  contrast where the catalog requires it; excepted = contraindicated with a documented reason;
  rate = compliant / (eligible - excepted), with a Wilson 95% interval. Voided records are not
  in the frame, so they never count.
- percentiles use linear interpolation (numpy's default), bit for bit.
- months are calendar months in UTC.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from audit.analytics.quantiles import group_layout, grouped_in_layout, wilson
from audit.analytics.snapshot import (
    CONFIRMATIONS,
    CONFIRMED,
    CONTRAINDICATED,
    REGIONS,
    Filters,
    Flag,
    Snapshot,
    filter_mask,
    month_label,
    to_datetime,
)
from audit.vocab import DoseQuantity, Region

QUANTITIES: tuple[str, ...] = tuple(DoseQuantity.values())
GROUPINGS: tuple[str, ...] = ("physician", "room", "procedure", "month", "site", "technologist",
                              "levels")
_ID_COLUMN = {"physician": "physician_id", "room": "room_id", "procedure": "type_id",
              "site": "site_id", "technologist": "technologist_id"}
SAFETY_FLAGS: dict[str, str] = {
    "particulate_cervical_tfesi": "Particulate steroid in cervical TFESI",
    "uptake_not_repositioned": "Vascular uptake without needle repositioning",
    "levels_over_limit": "More levels than the catalog allows",
    "pregnant": "Pregnant patient",
    "srdl_reached": "Substantial radiation dose level reached",
}


# --- groupings --------------------------------------------------------------------------------

def group_codes(snap: Snapshot, by: str | None) -> tuple[np.ndarray, list[str]]:
    """Per-record group number 0..k-1 and the k labels, for a grouping name (or None: one
    group, "all")."""
    r = snap.records
    if by is None:
        return np.zeros(len(r), dtype=np.int64), ["all"]
    if by == "month":
        months = r["month"].to_numpy().astype(np.int64)
        if not len(months):
            return months, []
        base = int(months.min())
        return months - base, [month_label(base + i) for i in range(int(months.max()) - base + 1)]
    if by == "levels":
        levels = r["n_levels"].to_numpy().astype(np.int64)
        top = int(levels.max()) if len(levels) else 0
        return levels, [str(i) for i in range(top + 1)]
    if by not in _ID_COLUMN:
        raise ValueError(f"cannot group by {by!r}; allowed: {', '.join(GROUPINGS)}")
    ids = r[_ID_COLUMN[by]].to_numpy().astype(np.int64)
    labels = snap.labels(by)
    size = int(max(labels.index.max() if len(labels) else 0, ids.max() if len(ids) else 0)) + 1
    names = [""] * size
    for key, name in labels.items():
        names[int(key)] = str(name)
    return ids, names


def _combined(snap: Snapshot, by: Sequence[str]) -> tuple[np.ndarray, list[tuple[str, ...]]]:
    """Codes of a multi-key grouping (e.g. procedure x levels) and the label tuples (cached
    per snapshot: they do not depend on the filters)."""
    def build() -> tuple[np.ndarray, list[tuple[str, ...]]]:
        codes = np.zeros(len(snap.records), dtype=np.int64)
        labels: list[tuple[str, ...]] = [()]
        for name in by:
            c, names = group_codes(snap, name)
            codes = codes * max(len(names), 1) + c
            labels = [(*prefix, n) for prefix in labels for n in names]
        return codes, labels
    return _cached(snap, f"groups:{tuple(by)!r}", build)


def _dense(series: pd.Series, fill: Any, dtype: Any) -> np.ndarray:
    size = int(series.index.max()) + 1 if len(series) else 1
    out = np.full(size, fill, dtype=dtype)
    out[series.index.to_numpy()] = series.to_numpy().astype(dtype)
    return out


def _by_type(snap: Snapshot, column: str, fill: Any, dtype: Any) -> np.ndarray:
    """A catalog attribute spread over the records (one gather through a dense id array)."""
    dense = _dense(snap.types[column], fill, dtype)
    type_id = snap.records["type_id"].to_numpy()
    if len(type_id) and type_id.max() >= len(dense):
        dense = np.concatenate([dense, np.full(type_id.max() + 1 - len(dense), fill, dtype)])
    return dense[type_id]


def _cached(snap: Snapshot, key: str, build: Any) -> Any:
    value = snap.cache.get(key)
    if value is None:
        value = snap.cache[key] = build()
    return value


# --- compliance -------------------------------------------------------------------------------

def compliance_arrays(snap: Snapshot) -> dict[str, np.ndarray]:
    """Per-record booleans of the compliance rule (cached per snapshot)."""
    def build() -> dict[str, np.ndarray]:
        r = snap.records
        flags = r["flags"].to_numpy()
        confirmation = r["confirmation"].to_numpy()
        eligible = _by_type(snap, "policy", "", object) == "required"
        min_views = _by_type(snap, "min_views", 0, np.int64)
        realtime_required = _by_type(snap, "realtime_required", False, bool)
        confirmed = confirmation == CONFIRMED
        images = r["saved_images"].to_numpy() >= 1
        views = r["n_views"].to_numpy() >= min_views
        realtime = ~realtime_required | ((flags & Flag.REALTIME) != 0)
        compliant = eligible & confirmed & images & views & realtime
        excepted = (eligible & (confirmation == CONTRAINDICATED)
                    & ((flags & Flag.EXCEPTION_REASON) != 0))
        return {"eligible": eligible, "compliant": compliant, "excepted": excepted,
                "non_compliant": eligible & ~compliant & ~excepted, "confirmed": confirmed,
                "images": images, "views": views, "realtime": realtime,
                "min_views": min_views}
    return _cached(snap, "compliance", build)


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
    mask = filter_mask(snap, filters) & a["eligible"]
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
    monthly = compliance(snap, filters, by="month")
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


def _names_of(snap: Snapshot, rows: pd.DataFrame) -> pd.DataFrame:
    """Display columns for listed records (a few thousand at most)."""
    return pd.DataFrame({
        "record_id": rows["id"].to_numpy(),
        "performed_at": to_datetime(rows["t"]),
        "site": rows["site_id"].map(snap.sites).to_numpy(),
        "room": rows["room_id"].map(snap.rooms["label"]).to_numpy(),
        "physician": rows["physician_id"].map(snap.physicians).to_numpy(),
        "procedure": rows["type_id"].map(snap.types["code"]).to_numpy(),
    })


def compliance_records(snap: Snapshot, filters: Filters, which: str = "non_compliant",
                       group: tuple[str, str] | None = None, limit: int = 1000) -> pd.DataFrame:
    """The records behind a compliance number: "non_compliant" (with why) or "excepted",
    optionally within one group (e.g. ("physician", "Dr. Hannah Weiss")), newest first."""
    if which not in ("non_compliant", "excepted"):
        raise ValueError("which: non_compliant or excepted")
    a = compliance_arrays(snap)
    mask = filter_mask(snap, filters) & a[which]
    if group is not None:
        codes, labels = group_codes(snap, group[0])
        wanted = [i for i, name in enumerate(labels) if name == group[1]]
        mask &= np.isin(codes, wanted)
    positions = np.flatnonzero(mask)
    r = snap.records
    t = r["t"].to_numpy()[positions]
    positions = positions[np.lexsort((-r["id"].to_numpy()[positions], -t))][:limit]
    rows = r.iloc[positions]
    out = _names_of(snap, rows)
    out["contrast_confirmation"] = np.array(CONFIRMATIONS + ("?",) * 4,
                                            dtype=object)[rows["confirmation"].to_numpy()]
    out["saved_images"] = rows["saved_images"].to_numpy()
    out["views"] = rows["n_views"].to_numpy()
    if which == "excepted":
        out["why"] = "contraindicated, reason documented"
        return out
    reasons = pd.Series([""] * len(rows), dtype=object)
    confirmation = rows["confirmation"].to_numpy()
    parts = [
        (confirmation == CONTRAINDICATED, "contraindicated without a reason"),
        ((confirmation != CONFIRMED) & (confirmation != CONTRAINDICATED),
         "contrast not confirmed"),
        (~a["images"][positions], "no saved image"),
        (a["confirmed"][positions] & ~a["views"][positions], "too few views"),
        (a["confirmed"][positions] & ~a["realtime"][positions], "no real-time contrast"),
    ]
    for condition, text in parts:
        reasons = reasons.where(~condition, reasons + np.where(reasons == "", "", "; ") + text)
    out["why"] = reasons.to_numpy()
    return out


# --- safety flags -----------------------------------------------------------------------------

def flag_arrays(snap: Snapshot) -> dict[str, np.ndarray]:
    """Per-record safety flags of DESIGN.md §3 (cached per snapshot)."""
    def build() -> dict[str, np.ndarray]:
        r = snap.records
        flags = r["flags"].to_numpy()
        code = _by_type(snap, "code", "", object)
        cervical = r["region"].to_numpy() == REGIONS.index(Region.CERVICAL.value)
        max_levels = _by_type(snap, "max_levels", -1, np.int64)
        s = snap.settings
        srdl = ((r["air_kerma_mgy"].to_numpy() >= float(s.srdl_air_kerma_mgy))
                | (r["dap_gycm2"].to_numpy() >= float(s.srdl_kap_gycm2))
                | (r["fluoro_time_s"].to_numpy() >= float(s.srdl_fluoro_time_s)))
        return {
            "particulate_cervical_tfesi": (code == "TFESI") & cervical
            & ((flags & Flag.PARTICULATE) != 0),
            "uptake_not_repositioned": ((flags & Flag.UPTAKE) != 0)
            & ((flags & Flag.REPOSITIONED) == 0),
            "levels_over_limit": (max_levels >= 0) & (r["n_levels"].to_numpy() > max_levels),
            "pregnant": (flags & Flag.PREGNANT) != 0,
            "srdl_reached": srdl,
        }
    return _cached(snap, "flags", build)


def safety_flags(snap: Snapshot, filters: Filters, by: str | None = None) -> pd.DataFrame:
    """Records and the count of each safety flag per group."""
    mask = filter_mask(snap, filters)
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
    mask = filter_mask(snap, filters) & flag_arrays(snap)[flag]
    positions = np.flatnonzero(mask)
    r = snap.records
    positions = positions[np.argsort(-r["t"].to_numpy()[positions], kind="stable")][:limit]
    rows = r.iloc[positions]
    out = _names_of(snap, rows)
    for q in QUANTITIES:
        out[q] = rows[q].to_numpy()
    out["levels"] = rows["n_levels"].to_numpy()
    return out


# --- dose -------------------------------------------------------------------------------------

def per_level_values(snap: Snapshot, quantity: str) -> np.ndarray:
    """The quantity divided by the number of levels treated (at least 1): the fair basis for
    comparing operators, since dose rises with levels (REFERENCE.md §4)."""
    def build() -> np.ndarray:
        levels = np.maximum(snap.records["n_levels"].to_numpy(), 1)
        return snap.records[quantity].to_numpy() / levels
    return _cached(snap, f"per_level:{quantity}", build)


def _values_and_order(snap: Snapshot, quantity: str,
                      per_level: bool) -> tuple[np.ndarray, np.ndarray, int]:
    if not per_level:
        order, valid = snap.order(quantity)
        return snap.records[quantity].to_numpy(), order, valid
    values = per_level_values(snap, quantity)

    def build() -> tuple[np.ndarray, int]:
        return np.argsort(values, kind="stable"), int(np.count_nonzero(~np.isnan(values)))
    order, valid = _cached(snap, f"order_per_level:{quantity}", build)
    return values, order, valid


def quantiles_by(snap: Snapshot, mask: np.ndarray, by: Sequence[str], quantity: str,
                 qs: Sequence[float] = (0.5, 0.75),
                 per_level: bool = False) -> tuple[list[tuple[str, ...]], np.ndarray,
                                                   list[np.ndarray]]:
    """Group labels, counts (records with the quantity) and quantiles of one quantity.

    The values in ascending order, and in that order within each group, are kept per snapshot,
    and the filter's selection in value order per filter, so a call costs a gather and a
    compress (no sort)."""
    codes, labels = _combined(snap, by)
    values, order, valid = _values_and_order(snap, quantity, per_level)
    present = order[:valid]
    tag = f"{quantity}:{per_level}"
    values_sorted = _cached(snap, f"sorted_values:{tag}", lambda: values[present])
    layout = _cached(snap, f"group_layout:{tag}:{tuple(by)!r}",
                     lambda: group_layout(values_sorted, codes[present], len(labels)))
    memo = snap.cache.setdefault(f"sorted_masks:{tag}", {})
    found = memo.get(id(mask))
    if found is None or found[0] is not mask:  # the same filter's mask object: reuse
        if len(memo) > 16:
            memo.clear()
        found = memo[id(mask)] = (mask, mask[present])
    counts, result = grouped_in_layout(layout, found[1], qs)
    return labels, counts, result


def dose_stats(snap: Snapshot, filters: Filters, by: Sequence[str] = ("procedure",),
               quantities: Sequence[str] = QUANTITIES, per_level: bool = False) -> pd.DataFrame:
    """n, median and 75th percentile of each quantity per group (records lacking a quantity
    are left out of that quantity only). per_level: values divided by levels treated."""
    mask = filter_mask(snap, filters)
    codes, labels = _combined(snap, by)
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
    mask = filter_mask(snap, filters)
    qs = (0.05, 0.25, 0.5, 0.75, 0.95)
    labels, counts, values = quantiles_by(snap, mask, (by,), quantity, qs)
    frame = pd.DataFrame({by: [lab[0] for lab in labels], "n": counts,
                          **{f"p{int(q * 100)}": v for q, v in zip(qs, values, strict=True)}})
    return frame[frame["n"] > 0].reset_index(drop=True)


def dose_histogram(snap: Snapshot, filters: Filters, procedure: str,
                   quantity: str = "dap_gycm2", bins: int = 40) -> pd.DataFrame:
    """Counts in log-spaced bins for one procedure (a distribution chart's data)."""
    mask = filter_mask(snap, filters)
    type_ids = snap.types.index[snap.types["code"] == procedure].to_numpy()
    mask = mask & np.isin(snap.records["type_id"].to_numpy(), type_ids)
    values = snap.records[quantity].to_numpy()[mask]
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


def physician_scorecard(snap: Snapshot, filters: Filters,
                        levels: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per physician, normalised for procedure mix and levels treated: the median KAP and time
    per level of each procedure they performed divided by everyone's median for that
    procedure (same filters), averaged over their procedures weighted by records. 1.0 is
    typical; 2.0 is twice the peers' dose for the same work. Also the share above the
    reference level, pulsed and low-dose use and compliance."""
    mask = filter_mask(snap, filters)
    physicians = group_codes(snap, "physician")[1]
    out = pd.DataFrame({"physician": physicians})
    out["records"] = np.bincount(snap.records["physician_id"].to_numpy()[mask],
                                 minlength=len(physicians))[:len(physicians)]
    for q, name in (("dap_gycm2", "kap_per_level_ratio"),
                    ("fluoro_time_s", "time_per_level_ratio")):
        _, cell_n, (cell_median,) = quantiles_by(snap, mask, ("physician", "procedure"), q,
                                                     (0.5,), per_level=True)
        types, _, (type_median,) = quantiles_by(snap, mask, ("procedure",), q, (0.5,),
                                                per_level=True)
        n_types = len(types)
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = cell_median / np.tile(type_median, len(cell_median) // max(n_types, 1))
        ratio = ratio.reshape(-1, max(n_types, 1))
        weights = cell_n.reshape(-1, max(n_types, 1)).astype(np.float64)
        usable = ~np.isnan(ratio) & (weights > 0)
        total = np.where(usable, weights, 0).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[name] = np.where(total > 0, np.where(usable, ratio * weights, 0).sum(axis=1)
                                 / total, np.nan)
    above = share_above_reference(snap, filters, "physician", levels=levels)
    technique = technique_use(snap, filters, "physician")
    rates = compliance(snap, filters, "physician")
    out = out[out["records"] > 0]
    out = out.merge(above[["physician", "share_above"]], on="physician", how="left")
    out = out.merge(technique[["physician", "pulsed_rate", "low_dose_rate"]], on="physician",
                    how="left")
    out = out.merge(rates[["physician", "rate"]].rename(columns={"rate": "compliance_rate"}),
                    on="physician", how="left")
    return out.sort_values("physician", key=lambda s: s.str.lower()).reset_index(drop=True)


def technique_use(snap: Snapshot, filters: Filters, by: str | None = None) -> pd.DataFrame:
    """Pulsed fluoroscopy and low-dose mode: use among records where it was recorded."""
    mask = filter_mask(snap, filters)
    flags = snap.records["flags"].to_numpy()
    codes, labels = group_codes(snap, by)
    k = len(labels)

    def count(condition: np.ndarray) -> np.ndarray:
        return np.bincount(codes[mask & condition], minlength=k)[:k]

    data: dict[str, Any] = {by or "scope": labels, "records": count(np.ones_like(mask))}
    for name, known, used in (("pulsed", Flag.PULSED_KNOWN, Flag.PULSED),
                              ("low_dose", Flag.LOW_DOSE_KNOWN, Flag.LOW_DOSE)):
        recorded = count((flags & known) != 0)
        data[f"{name}_recorded"] = recorded
        data[name] = count((flags & used) != 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            data[f"{name}_rate"] = np.where(recorded > 0, data[name] / recorded, np.nan)
    frame = pd.DataFrame(data)
    if by is not None:
        frame = frame[frame["records"] > 0]
    return frame.reset_index(drop=True)


def share_above_reference(snap: Snapshot, filters: Filters, by: str | None = None,
                          quantity: str = "dap_gycm2",
                          levels: pd.DataFrame | None = None) -> pd.DataFrame:
    """Share of records above their procedure's reference level (the DRL in force, else the
    local DRL or typical value over the period:
    audit.analytics.reference_levels.levels_in_force)."""
    from audit.analytics.reference_levels import levels_in_force

    if levels is None:
        levels = levels_in_force(snap, filters, quantity)
    threshold = np.full(int(snap.types.index.max()) + 1 if len(snap.types) else 1, np.nan)
    known = levels.dropna(subset=["value"])
    threshold[known["type_id"].to_numpy().astype(int)] = known["value"].to_numpy()
    type_id = snap.records["type_id"].to_numpy()
    values = snap.records[quantity].to_numpy()
    level = threshold[np.minimum(type_id, len(threshold) - 1)]
    measurable = filter_mask(snap, filters) & ~np.isnan(values) & ~np.isnan(level)
    above = measurable & (values > level)
    codes, labels = group_codes(snap, by)
    k = len(labels)
    n = np.bincount(codes[measurable], minlength=k)[:k]
    count = np.bincount(codes[above], minlength=k)[:k]
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(n > 0, count / np.maximum(n, 1), np.nan)
    frame = pd.DataFrame({by or "scope": labels, "records": n, "above": count,
                          "share_above": share})
    if by is not None:
        frame = frame[frame["records"] > 0]
    return frame.reset_index(drop=True)


# --- data quality -----------------------------------------------------------------------------

def completeness(snap: Snapshot, filters: Filters, by: str | None = None) -> pd.DataFrame:
    """Missing dose (with or without a documented reason), missing Ka,r, records saved with
    confirmed plausibility warnings, and dose taken from a DICOM dose report."""
    mask = filter_mask(snap, filters)
    r = snap.records
    flags = r["flags"].to_numpy()
    codes, labels = group_codes(snap, by)
    k = len(labels)

    def count(condition: np.ndarray) -> np.ndarray:
        return np.bincount(codes[mask & condition], minlength=k)[:k]

    missing_dap = np.isnan(r["dap_gycm2"].to_numpy())
    data = {
        by or "scope": labels,
        "records": count(np.ones(len(r), dtype=bool)),
        "missing_dap": count(missing_dap),
        "missing_dap_documented": count(missing_dap & ((flags & Flag.DAP_REASON) != 0)),
        "missing_air_kerma": count(np.isnan(r["air_kerma_mgy"].to_numpy())),
        "with_warnings": count((flags & Flag.WARNINGS) != 0),
        "from_dose_report": count((flags & Flag.FROM_RDSR) != 0),
    }
    frame = pd.DataFrame(data)
    total = frame["records"].replace(0, np.nan)
    for column in ("missing_dap", "missing_air_kerma", "with_warnings", "from_dose_report"):
        frame[f"{column}_share"] = frame[column] / total
    if by is not None:
        frame = frame[frame["records"] > 0]
    return frame.reset_index(drop=True)
