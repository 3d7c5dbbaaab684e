"""The physician scorecards in SQL: the per-level scorecard (audit.analytics.scorecard) from
grouped medians, and the case-mix-adjusted one (audit.analytics.case_mix) as one query: each
stratum's median (procedure x levels x BMI band), joined back to its records, then per
physician the medians of observed, expected and observed / expected."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Float, and_, case, cast, func, literal, select, tuple_

from audit.analytics.case_mix import MIN_RECORDS
from audit.analytics.sql import counts, groups
from audit.analytics.sql.dose import quantiles_together, value
from audit.analytics.sql.reference import above_sums, shares_above
from audit.analytics.sql.scope import Scope, as_float, as_int

#: Where the buckets or the summaries answer part of a scorecard (scorecard_buckets'
#: medians, scorecard_counts' counts, with the engine bound): called with the lookups and
#: the filters (and the quantity, or the levels); None: the scan.
FromSummaries = Callable[..., Any]


def _per_level_ratios(scope: Scope, physicians: np.ndarray,
                      medians: FromSummaries | None = None) -> dict[str, np.ndarray]:
    """Per physician (ids in `physicians`) and quantity (KAP, time), the record-weighted mean
    over procedures of their per-level median over everyone's (the frame's arithmetic, on
    the SQL medians); the medians from the buckets (`medians`) or both quantities' in one
    scan."""
    quantities = ("dap_gycm2", "fluoro_time_s")
    found = None if medians is None else medians(scope.lookups, scope.filters)
    if found is None:
        values = {f"v{i}": value(scope, q, per_level=True) for i, q in enumerate(quantities)}
        sets = [("physician", "procedure"), ("procedure",)]
        scanned = quantiles_together(scope, sets, values, (0.5,))
        found = scanned[sets[0]], scanned[sets[1]]
    cells, types = found
    n_types = int(max(scope.lookups.types.index.max() if len(scope.lookups.types) else 0,
                      cells["g1"].max() if len(cells) else 0)) + 1
    row = {int(p): i for i, p in enumerate(physicians)}
    out = {}
    for i, q in enumerate(quantities):
        type_median = np.full(n_types, np.nan)
        type_median[types["g0"].to_numpy(dtype=np.int64)] = types[f"v{i}_q0"].to_numpy()
        median = np.full((len(physicians), n_types), np.nan)
        weights = np.zeros((len(physicians), n_types))
        for p, t, n, m in cells[["g0", "g1", f"v{i}_n", f"v{i}_q0"]].itertuples(index=False):
            if int(p) in row:
                median[row[int(p)], int(t)] = m
                weights[row[int(p)], int(t)] = n
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = median / type_median[np.newaxis, :]
        usable = ~np.isnan(ratio) & (weights > 0)
        total = np.where(usable, weights, 0).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[q] = np.where(total > 0,
                              np.where(usable, ratio * weights, 0).sum(axis=1) / total, np.nan)
    return out


def physician_scorecard(scope: Scope, levels: pd.DataFrame, medians: FromSummaries | None = None,
                        counted: FromSummaries | None = None) -> pd.DataFrame:
    """audit.analytics.scorecard.physician_scorecard in SQL; `levels`: the levels in force;
    where the summaries may answer, `medians` (scorecard_buckets.per_level_medians) and
    `counted` (scorecard_counts.physician_counts, called with the levels too)."""
    found_counts = None if counted is None else counted(scope.lookups, scope.filters, levels)
    ids, found = found_counts if found_counts is not None else counts.counted_parts(
        scope, "physician", {
            "all": ({"records": func.count()}, None),
            "above": (above_sums(scope, levels, "dap_gycm2"), "records"),
            "technique": (counts.technique_sums(scope), "records"),
            "compliance": (counts.compliance_sums(scope), "eligible")})  # one scan
    ids = ids.astype(np.int64)
    out = pd.DataFrame({"physician": pd.Series([groups.label_of(scope.lookups, "physician", i)
                                                for i in ids], dtype=object),
                        "records": found["all"]["records"].to_numpy()})
    ratios = _per_level_ratios(scope, ids, medians)
    out["kap_per_level_ratio"] = ratios["dap_gycm2"]
    out["time_per_level_ratio"] = ratios["fluoro_time_s"]
    above = shares_above(found["above"])
    technique = counts.technique_rates(found["technique"])
    rates = counts._compliance_rates(found["compliance"], "physician")
    out = out.merge(above[["physician", "share_above"]], on="physician", how="left")
    out = out.merge(technique[["physician", "pulsed_rate", "low_dose_rate"]], on="physician",
                    how="left")
    out = out.merge(rates[["physician", "rate"]].rename(columns={"rate": "compliance_rate"}),
                    on="physician", how="left")
    return out.sort_values("physician", key=lambda s: s.str.lower()).reset_index(drop=True)


def adjusted_scorecard(scope: Scope, quantity: str = "dap_gycm2",
                       medians: FromSummaries | None = None) -> pd.DataFrame:
    """audit.analytics.case_mix.adjusted_scorecard in SQL; its medians from the buckets
    (`medians`: scorecard_buckets.adjusted_medians) where they answer, else one scan."""
    columns = ["gset", "id", "records", "observed_median", "expected_median",
               "bmi_known_share", "adjusted_ratio"]
    found = None if medians is None else medians(scope.lookups, scope.filters, quantity)
    if found is None:
        found = _adjusted_scan(scope, quantity, columns)
    found = as_float(as_int(found, ["records"]), columns[3:])
    every = found[found["gset"] == 1]["observed_median"]
    overall = float(every.iloc[0]) if len(every) else np.nan
    out = found[found["gset"] == 0].drop(columns=["gset"]).reset_index(drop=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["crude_ratio"] = out["observed_median"] / overall
    out.loc[out["records"] < MIN_RECORDS, ["adjusted_ratio", "crude_ratio"]] = np.nan
    out.insert(0, "physician", pd.Series([groups.label_of(scope.lookups, "physician", i)
                                          for i in out["id"]], index=out.index, dtype=object))
    out["quantity"] = quantity
    out = out.sort_values("id").drop(columns=["id"])
    return out.sort_values("physician", key=lambda s: s.str.lower()).reset_index(drop=True)


def _adjusted_scan(scope: Scope, quantity: str, columns: list[str]) -> pd.DataFrame:
    """The adjusted scorecard's medians in one scan: each stratum's median (procedure x levels
    x BMI band), joined back to its records, then per physician and overall the medians of
    observed, expected and observed / expected."""
    rec = scope.rec
    v = rec.c[quantity]
    levels = func.least(rec.c.n_levels, 63)
    used = (select(rec.c.physician_id, rec.c.type_id, levels.label("lv"),
                   rec.c.bmi_band, v.label("v"),
                   case((rec.c.bmi.is_(None), 0), else_=1).label("known"))
            .where(v.is_not(None)).cte("used"))
    strata = (select(used.c.type_id, used.c.lv, used.c.bmi_band,
                     func.percentile_cont(0.5).within_group(used.c.v).label("expected"))
              .group_by(used.c.type_id, used.c.lv, used.c.bmi_band).cte("strata"))
    expected = strata.c.expected
    # observed / expected as numpy divides: x / 0 is inf (0 / 0 no number, left out)
    ratio = case((expected != 0, used.c.v / expected),
                 (used.c.v > 0, literal(float("inf"), Float)),
                 (used.c.v < 0, literal(float("-inf"), Float)))
    joined = used.join(strata, and_(strata.c.type_id == used.c.type_id,
                                    strata.c.lv == used.c.lv,
                                    strata.c.bmi_band == used.c.bmi_band))
    median = func.percentile_cont(0.5).within_group
    # per physician, and overall (every record of `used` has its stratum): one scan
    query = (select(func.grouping(used.c.physician_id), used.c.physician_id, func.count(),
                    median(used.c.v), median(expected), cast(func.avg(used.c.known), Float),
                    median(ratio))
             .select_from(joined)
             .group_by(func.grouping_sets(tuple_(used.c.physician_id), tuple_())))
    return scope.frame(query, columns)
