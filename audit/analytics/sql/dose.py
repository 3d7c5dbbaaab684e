"""Dose statistics in SQL: counts, medians, 75th percentiles and distributions per group with
percentile_cont (linear interpolation between the two nearest values, the same definition as
numpy's default the frame uses: equal to rounding), and one procedure's histogram."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Float, cast, func, select, tuple_
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql import ColumnElement

from audit.analytics.grouping import QUANTITIES
from audit.analytics.sql import groups
from audit.analytics.sql.scope import Scope, as_float, as_int


def value(scope: Scope, quantity: str, per_level: bool = False) -> ColumnElement[Any]:
    """A quantity's column (a frame column name; KAP corrected is kap_corrected_gycm2), or
    per level treated (divided by the levels, at least 1), as the frame's per_level_values."""
    column = scope.col(quantity)
    if not per_level:
        return column
    return column / func.greatest(scope.col("n_levels"), 1)


def quantiles(scope: Scope, by: Sequence[str], values: dict[str, ColumnElement[Any]],
              qs: Sequence[float], count_all: bool = True,
              extra: dict[str, ColumnElement[Any]] | None = None) -> pd.DataFrame:
    """Per group (codes g0..): records, and for each value its count and quantiles
    (columns "{name}_n", "{name}_q{i}"); `extra`: more aggregates of the same scan (floats)."""
    keys = groups.keys(scope.rec, by)
    columns: list[ColumnElement[Any]] = [func.count().label("records")] if count_all else []
    names = ["records"] if count_all else []
    for name, expr in values.items():
        columns.append(func.count(expr).label(f"{name}_n"))
        names.append(f"{name}_n")
        for i, q in enumerate(qs):
            columns.append(func.percentile_cont(q).within_group(expr).label(f"{name}_q{i}"))
            names.append(f"{name}_q{i}")
    for name, expr in (extra or {}).items():
        columns.append(expr.label(name))
        names.append(name)
    query = select(*keys, *columns).select_from(scope.rec)
    if keys:
        query = query.group_by(*keys)
    frame = scope.frame(query, [*groups.key_names(by), *names])
    counts = [n for n in names if n == "records" or n.endswith("_n")]
    return as_float(as_int(frame, counts), [n for n in names if n not in counts])


def quantiles_together(scope: Scope, sets: Sequence[tuple[str, ...]],
                       values: dict[str, ColumnElement[Any]],
                       qs: Sequence[float],
                       count_all: bool = False) -> dict[tuple[str, ...], pd.DataFrame]:
    """`quantiles` (with the records count when count_all) for several groupings in one scan
    (GROUPING SETS): one sort per grouping instead of one scan each."""
    names: list[str] = []
    for found in sets:
        names += [n for n in found if n not in names]
    groups.check(names)
    raw = [scope.col(groups.COLUMNS[n]) for n in names]
    columns: list[ColumnElement[Any]] = [func.count().label("records")] if count_all else []
    out_names: list[str] = ["records"] if count_all else []
    for name, expr in values.items():
        columns.append(func.count(expr).label(f"{name}_n"))
        out_names.append(f"{name}_n")
        for i, q in enumerate(qs):
            columns.append(func.percentile_cont(q).within_group(expr).label(f"{name}_q{i}"))
            out_names.append(f"{name}_q{i}")
    query = (select(func.grouping(*raw).label("gset"),
                    *(c.label(f"k{i}") for i, c in enumerate(raw)), *columns)
             .select_from(scope.rec)
             .group_by(func.grouping_sets(*(tuple_(*(raw[names.index(n)] for n in found))
                                            for found in sets))))
    keys = [f"k{i}" for i in range(len(names))]
    frame = scope.frame(query, ["gset", *keys, *out_names])
    counts = [n for n in out_names if n == "records" or n.endswith("_n")]
    frame = as_float(as_int(frame, counts), [n for n in out_names if n not in counts])
    result: dict[tuple[str, ...], pd.DataFrame] = {}
    for found in sets:
        bits = sum(1 << (len(names) - 1 - j) for j, n in enumerate(names) if n not in found)
        part = frame[frame["gset"] == bits]
        picked = {keys[names.index(n)]: f"g{i}" for i, n in enumerate(found)}
        result[tuple(found)] = part[[*picked, *out_names]].rename(columns=picked) \
            .reset_index(drop=True)
    return result


def dose_stats(scope: Scope, by: Sequence[str] = ("procedure",),
               quantities: Sequence[str] = QUANTITIES, per_level: bool = False) -> pd.DataFrame:
    """audit.analytics.dose_stats.dose_stats in SQL."""
    suffix = "_per_level" if per_level else ""
    values = {f"{q}{suffix}": value(scope, q, per_level) for q in quantities}
    frame = quantiles(scope, by, values, (0.5, 0.75))
    if not by:
        frame = frame[frame["records"] > 0]
    frame = groups.decorate(frame, scope.lookups, by)
    frame = frame.rename(columns={f"{n}_q0": f"{n}_median" for n in values}
                         | {f"{n}_q1": f"{n}_p75" for n in values})
    return frame.reset_index(drop=True)


#: The groupings the Dose page's Case mix tab shows for one quantity (dose_statistics):
#: computed together, one scan of the records instead of one each.
CASE_MIX_PAGE = (("procedure", "levels"), ("procedure", "weight_band"),
                 ("procedure", "bmi_band"), ("procedure", "operator"))
#: The Over time tab's (monthly_medians): a figure of its own, so that each tab computes
#: its own groupings only.
OVER_TIME_PAGE = (("month", "procedure"),)
DOSE_PAGE = (*CASE_MIX_PAGE, *OVER_TIME_PAGE)


def dose_page_together(scope: Scope, quantity: str,
                       sets: tuple[tuple[str, ...], ...] = DOSE_PAGE
                       ) -> dict[tuple[tuple[str, ...], bool], pd.DataFrame]:
    """dose_stats for every grouping of `sets` (of DOSE_PAGE) and one quantity, in one scan
    (GROUPING SETS), keyed by (grouping, per_level). Per level exists for the grouping by
    levels only, where every record of a group has the same levels L: the quantiles of value
    / max(L, 1) are those of the value divided by max(L, 1) (a positive constant keeps the
    order, and percentile_cont's interpolation is linear), so no second sort is needed."""
    found = quantiles_together(scope, sets, {quantity: value(scope, quantity)},
                               (0.5, 0.75), count_all=True)
    return page_frames(found, scope, quantity)


def page_frames(found: dict[tuple[str, ...], pd.DataFrame], scope: Scope,
                quantity: str) -> dict[tuple[tuple[str, ...], bool], pd.DataFrame]:
    """dose_page_together's tables from each grouping's codes (g0, g1), records and the
    quantity's count and quantiles ({quantity}_n, _q0, _q1), however they were computed (the
    scan, or the dose buckets: audit.analytics.sql.bucket_groups)."""
    out: dict[tuple[tuple[str, ...], bool], pd.DataFrame] = {}
    names = {f"{quantity}_q0": f"{quantity}_median", f"{quantity}_q1": f"{quantity}_p75"}
    for by in found:
        frame = groups.decorate(found[by], scope.lookups, by)
        out[(by, False)] = frame.rename(columns=names).reset_index(drop=True)
    if ("procedure", "levels") not in found:
        return out
    levels = found[("procedure", "levels")]
    divisor = np.maximum(levels["g1"].to_numpy(dtype=np.float64), 1.0)
    per_level = levels.rename(columns={c: f"{quantity}_per_level{c[len(quantity):]}"
                                       for c in levels.columns if c.startswith(quantity)})
    for q in ("q0", "q1"):
        column = f"{quantity}_per_level_{q}"
        per_level[column] = per_level[column].to_numpy() / divisor
    frame = groups.decorate(per_level, scope.lookups, ("procedure", "levels"))
    out[(("procedure", "levels"), True)] = frame.rename(
        columns={f"{quantity}_per_level_q0": f"{quantity}_per_level_median",
                 f"{quantity}_per_level_q1": f"{quantity}_per_level_p75"}
    ).reset_index(drop=True)
    return out


#: The quantiles of dose_distribution (p5, p25, median, p75, p95).
DISTRIBUTION_QS = (0.05, 0.25, 0.5, 0.75, 0.95)
#: Columns dose_distribution adds for the histogram (dose_histogram's `span`), not shown.
SPAN = ("positive_low", "positive_high")


def dose_distribution(scope: Scope, quantity: str = "dap_gycm2",
                      by: str = "procedure") -> pd.DataFrame:
    """audit.analytics.dose_stats.dose_distribution in SQL, with each group's least and
    greatest positive value (SPAN, which SqlSource leaves out of what it shows): the Dose
    page's histogram of a procedure takes its edges from them instead of another pass over the
    procedure's records (0.35-0.5 s at 5M records)."""
    v = value(scope, quantity)
    span = {SPAN[0]: func.min(v).filter(v > 0), SPAN[1]: func.max(v).filter(v > 0)}
    frame = quantiles(scope, (by,), {"v": v}, DISTRIBUTION_QS, count_all=False, extra=span)
    return distribution_frame(frame, scope, by)


def distribution_frame(frame: pd.DataFrame, scope: Scope, by: str) -> pd.DataFrame:
    """dose_distribution's table from its counts and quantiles per group (g0, v_n, v_q{i} of
    DISTRIBUTION_QS, SPAN), however they were computed (the scan, or the dose buckets:
    audit.analytics.sql.dose_buckets)."""
    qs = DISTRIBUTION_QS
    frame = as_float(as_int(frame, ["v_n"]), [c for c in frame.columns if c.startswith("v_q")]
                     + list(SPAN))
    frame = frame[frame["v_n"] > 0]
    frame = groups.decorate(frame, scope.lookups, (by,))
    frame = frame.rename(columns={"v_n": "n"} | {f"v_q{i}": f"p{int(q * 100)}"
                                                 for i, q in enumerate(qs)})
    return frame.reset_index(drop=True)


def dose_histogram(scope: Scope, quantity: str = "dap_gycm2", bins: int = 40,
                   span: tuple[Any, Any] | None = None) -> pd.DataFrame:
    """audit.analytics.dose_stats.dose_histogram in SQL, for the records in scope (the caller
    narrows the filters to the procedure): the same log-spaced edges (from the positive
    values' least and greatest, computed by numpy as there), counted by width_bucket, which
    puts a value in the bin [low, high) like numpy's histogram. `span`: that least and
    greatest as the distribution of the same records found them (SPAN), else read here."""
    v = value(scope, quantity)
    positive = v > 0
    if span is None:
        span = scope.conn.execute(select(func.min(v).filter(positive),
                                         func.max(v).filter(positive))
                                  .select_from(scope.rec)).one()
    low, high = (None if x is None or pd.isna(x) else x for x in span)
    if low is None:
        return pd.DataFrame({"low": [], "high": [], "count": []})
    edges = np.geomspace(float(low), float(high) * (1 + 1e-9), bins + 1)
    bucket = func.width_bucket(v, cast([float(e) for e in edges], ARRAY(Float)))
    rows = scope.conn.execute(select(bucket, func.count()).select_from(scope.rec)
                              .where(positive).group_by(bucket)).all()
    counts = np.zeros(bins, dtype=np.int64)
    for index, count in rows:
        if 1 <= int(index) <= bins:
            counts[int(index) - 1] = int(count)
    return pd.DataFrame({"low": edges[:-1], "high": edges[1:], "count": counts})


def monthly_medians(scope: Scope, quantity: str = "dap_gycm2") -> pd.DataFrame:
    """audit.analytics.dose_stats.monthly_medians in SQL."""
    return monthly_from(dose_stats(scope, ("month", "procedure"), (quantity,)), quantity)


def monthly_from(frame: pd.DataFrame, quantity: str) -> pd.DataFrame:
    """monthly_medians from dose_stats by (month, procedure)."""
    frame = frame[frame[f"{quantity}_n"] > 0]
    return frame[["month", "procedure", f"{quantity}_n", f"{quantity}_median"]] \
        .rename(columns={f"{quantity}_n": "n", f"{quantity}_median": "median"}) \
        .reset_index(drop=True)
