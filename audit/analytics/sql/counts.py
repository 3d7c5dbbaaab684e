"""Grouped counts and rates in SQL: compliance, technique use, data quality, safety flags, the
radiation-free share and complication rates. One GROUP BY each; the rates and Wilson intervals
are computed from the counts by the frame's own code (audit.analytics.quantiles.wilson,
compliance._rates), so they are the same numbers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import and_, func, or_, select, tuple_
from sqlalchemy.sql import ColumnElement

from audit.analytics.compliance import _rates
from audit.analytics.quantiles import wilson
from audit.analytics.safety import SAFETY_FLAGS
from audit.analytics.sql import groups
from audit.analytics.sql.scope import Scope, as_int
from audit.storage.models import Complication
from audit.vocab import ComplicationKind, ComplicationSeverity, RecordStatus


def counted(scope: Scope, by: str | None, sums: dict[str, ColumnElement[Any]],
            keep: str | None = None, overall: str = "scope") -> pd.DataFrame:
    """One row per group (by None: one row labelled "all" in column `overall`) with the sums;
    with `by`, only groups where `keep` is positive."""
    bys = [by] if by else []
    keys = groups.keys(scope.rec, bys)
    query = select(*keys, *(e.label(n) for n, e in sums.items())).select_from(scope.rec)
    if keys:
        query = query.group_by(*keys)
        if keep:
            query = query.having(sums[keep] > 0)
    frame = as_int(scope.frame(query, [*groups.key_names(bys), *sums]), list(sums))
    if by is None:
        frame.insert(0, overall, "all")
        return frame
    return groups.decorate(frame, scope.lookups, bys)


def counted_together(scope: Scope, bys: Sequence[str], sums: dict[str, ColumnElement[Any]],
                     keep: str | None = None, overall: str = "scope",
                     source: Any = None) -> dict[str | None, pd.DataFrame]:
    """`counted` for several groupings in one scan (GROUPING SETS), and overall (None): the
    sums over the first grouping's groups (every record is in one; the sums are counts)."""
    raw = [scope.col(groups.COLUMNS[b]) for b in bys]
    groups.check(bys)
    query = (select(func.grouping(*raw).label("gset"),
                    *(c.label(f"k{i}") for i, c in enumerate(raw)),
                    *(e.label(n) for n, e in sums.items()))
             .select_from(scope.rec if source is None else source)
             .group_by(func.grouping_sets(*(tuple_(c) for c in raw))))
    names = [f"k{i}" for i in range(len(bys))]
    frame = as_int(scope.frame(query, ["gset", *names, *sums]), list(sums))
    found: dict[str | None, pd.DataFrame] = {}
    every = (1 << len(bys)) - 1
    for i, by in enumerate(bys):
        part = frame[frame["gset"] == every - (1 << (len(bys) - 1 - i))]
        part = part[[names[i], *sums]].rename(columns={names[i]: "g0"})
        if keep:
            part = part[part[keep] > 0]
        found[by] = groups.decorate(part.reset_index(drop=True), scope.lookups, [by])
    first = found[bys[0]] if bys else frame
    total = pd.DataFrame({overall: ["all"],
                          **{n: [int(first[n].sum()) if len(first) else 0] for n in sums}})
    found[None] = total
    return found


def counted_parts(scope: Scope, by: str,
                  parts: dict[str, tuple[dict[str, ColumnElement[Any]], str | None]]
                  ) -> tuple[np.ndarray, dict[str, pd.DataFrame]]:
    """Several `counted` figures by the same grouping in one scan: each part's sums and its
    `keep` column (the groups where it is positive, as counted's HAVING). Returns the codes of
    every group (ascending) and each part's frame as `counted` gives it."""
    every = {f"{part}__{n}": e for part, (sums, _) in parts.items() for n, e in sums.items()}
    keys = groups.keys(scope.rec, [by])
    query = (select(*keys, *(e.label(n) for n, e in every.items())).select_from(scope.rec)
             .group_by(*keys))
    frame = as_int(scope.frame(query, ["g0", *every]), list(every))
    return split_parts(frame, {part: keep for part, (_, keep) in parts.items()},
                       scope.lookups, by)


def split_parts(frame: pd.DataFrame, keeps: dict[str, str | None], lookups: Any,
                by: str) -> tuple[np.ndarray, dict[str, pd.DataFrame]]:
    """counted_parts from its grouped counts (g0, then "{part}__{count}" columns, int64),
    however they were counted (the scan, or the summaries: scorecard_counts)."""
    frame = frame.sort_values("g0", kind="mergesort").reset_index(drop=True)
    found = {}
    for part, keep in keeps.items():
        names = {c: c.split("__", 1)[1] for c in frame.columns if c.startswith(f"{part}__")}
        one = frame[["g0", *names]].rename(columns=names)
        if keep:
            one = one[one[keep] > 0]
        found[part] = groups.decorate(one.reset_index(drop=True), lookups, [by])
    return frame["g0"].to_numpy(), found


COMPLIANCE_COUNTS = ("eligible", "compliant", "excepted")


def compliance_sums(scope: Scope) -> dict[str, ColumnElement[Any]]:
    return {n: scope.total(n) for n in COMPLIANCE_COUNTS}


def _compliance_rates(frame: pd.DataFrame, by: str | None) -> pd.DataFrame:
    frame = _rates(frame)
    if by is not None and by not in ("month", "levels"):
        frame = frame.sort_values(by, key=lambda s: s.str.lower())
    return frame.reset_index(drop=True)[[by or "scope", "eligible", "compliant", "excepted",
                                        "non_compliant", "rate", "ci_low", "ci_high"]]


def compliance(scope: Scope, by: str | None = None) -> pd.DataFrame:
    """audit.analytics.compliance.compliance in SQL."""
    return _compliance_rates(counted(scope, by, compliance_sums(scope), keep="eligible"), by)


def compliance_together(scope: Scope,
                        bys: Sequence[str]) -> dict[str | None, pd.DataFrame]:
    """`compliance` overall and for each grouping, in one scan (the Compliance page's)."""
    sums = {n: scope.total(n) for n in COMPLIANCE_COUNTS}
    found = counted_together(scope, bys, sums, keep="eligible")
    return {by: _compliance_rates(frame, by) for by, frame in found.items()}


def technique_use(scope: Scope, by: str | None = None) -> pd.DataFrame:
    """audit.analytics.dose_stats.technique_use in SQL."""
    return technique_rates(counted(scope, by, technique_sums(scope), keep="records"))


def technique_sums(scope: Scope) -> dict[str, ColumnElement[Any]]:
    sums: dict[str, ColumnElement[Any]] = {"records": func.count()}
    for name in ("pulsed", "low_dose"):
        sums[f"{name}_recorded"] = scope.total(f"{name}_recorded")
        sums[name] = scope.total(name)
    return sums


def technique_rates(frame: pd.DataFrame) -> pd.DataFrame:
    """technique_use from its counts (keep="records")."""
    for name in ("pulsed", "low_dose"):
        recorded = frame[f"{name}_recorded"].to_numpy()
        with np.errstate(invalid="ignore", divide="ignore"):
            rate = np.where(recorded > 0, frame[name].to_numpy() / recorded, np.nan)
        frame.insert(frame.columns.get_loc(name) + 1, f"{name}_rate", rate)
    return frame.reset_index(drop=True)


QUALITY = ("missing_dap", "missing_dap_documented", "missing_air_kerma", "with_warnings",
           "from_dose_report")


def _quality_sums(scope: Scope) -> dict[str, ColumnElement[Any]]:
    sums: dict[str, ColumnElement[Any]] = {"records": func.count()}
    sums.update({name: scope.total(name) for name in QUALITY})
    return sums


def completeness(scope: Scope, by: str | None = None) -> pd.DataFrame:
    """audit.analytics.data_quality.completeness in SQL."""
    return _shares(counted(scope, by, _quality_sums(scope), keep="records"))


#: The key of the overall safety flags in completeness_together's result.
SAFETY = "safety_flags"


def completeness_together(scope: Scope,
                          bys: Sequence[str]) -> dict[str | None, pd.DataFrame]:
    """`completeness` overall and for each grouping, and the overall safety flags (key
    SAFETY), in one scan (the Data quality page's): the flags are counts too, so their
    overall is the sum over the first grouping's groups as the other counts'."""
    flags = {f"flag:{k}": v for k, v in _flag_sums(scope).items() if k != "records"}
    found = counted_together(scope, bys, _quality_sums(scope) | flags, keep="records")
    return quality_tables(found)


def quality_tables(found: dict[str | None, pd.DataFrame]) -> dict[str | None, pd.DataFrame]:
    """The Data quality page's tables from its grouped counts (columns "flag:<name>" are the
    safety flags, kept for the overall): from a scan or from the count summary."""
    flags = [c for c in found[None].columns if c.startswith("flag:")]
    out: dict[str | None, pd.DataFrame] = {
        by: _shares(frame.drop(columns=flags)) for by, frame in found.items()}
    out[SAFETY] = found[None][["scope", "records", *flags]].rename(
        columns={k: k.removeprefix("flag:") for k in flags}).reset_index(drop=True)
    return out


def _shares(frame: pd.DataFrame) -> pd.DataFrame:
    total = frame["records"].replace(0, np.nan)
    for column in ("missing_dap", "missing_air_kerma", "with_warnings", "from_dose_report"):
        frame[f"{column}_share"] = frame[column] / total
    return frame.reset_index(drop=True)


def srdl_reached(scope: Scope) -> ColumnElement[bool]:
    """Any SRDL setting reached (as audit.analytics.safety and the alerts)."""
    s = scope.lookups.settings
    return or_(scope.col("air_kerma_mgy") >= float(s.srdl_air_kerma_mgy),
               scope.col("kap_corrected_gycm2") >= float(s.srdl_kap_gycm2),
               scope.col("fluoro_time_s") >= float(s.srdl_fluoro_time_s))


def flag_condition(scope: Scope, flag: str) -> ColumnElement[bool]:
    if flag not in SAFETY_FLAGS:
        raise ValueError(f"unknown flag {flag!r}; allowed: {', '.join(SAFETY_FLAGS)}")
    return srdl_reached(scope) if flag == "srdl_reached" else scope.col(flag) == 1


def safety_flags(scope: Scope, by: str | None = None) -> pd.DataFrame:
    """audit.analytics.safety.safety_flags in SQL."""
    return counted(scope, by, _flag_sums(scope), keep="records").reset_index(drop=True)


def _flag_sums(scope: Scope) -> dict[str, ColumnElement[Any]]:
    sums: dict[str, ColumnElement[Any]] = {"records": func.count()}
    for flag in SAFETY_FLAGS:
        sums[flag] = func.count().filter(flag_condition(scope, flag))
    return sums


def radiation_free_share(scope: Scope) -> pd.DataFrame:
    """audit.analytics.case_mix.radiation_free_share in SQL."""
    return radiation_free_table(counted(scope, "procedure", {
        "records": func.count(), "radiation_free": scope.total("ultrasound")},
        keep="records").reset_index(drop=True))


def radiation_free_table(frame: pd.DataFrame) -> pd.DataFrame:
    """radiation_free_share's table from its counts per procedure (the scan's or the count
    summary's)."""
    frame["radiation_free_share"] = frame["radiation_free"] / frame["records"]
    return frame


def _complication_sums(scope: Scope) -> tuple[Any, dict[str, ColumnElement[Any]]]:
    """The filtered records joined to their complications (counted per record; voided ones do
    not count), and the sums of complication_rates."""
    c = Complication
    per_record = (select(c.procedure_id.label("procedure_id"), func.count().label("n"),
                         func.count().filter(c.severity == ComplicationSeverity.SEVERE.value)
                         .label("severe"),
                         *(func.count().filter(c.kind == k).label(f"k{i}")
                           for i, k in enumerate(KINDS)))
                  .where(c.status == RecordStatus.FINAL.value)
                  .group_by(c.procedure_id).subquery("per_record"))
    sums: dict[str, ColumnElement[Any]] = {
        "procedures": func.count(),
        "with_complication": func.count(per_record.c.procedure_id),
        "complications": func.coalesce(func.sum(per_record.c.n), 0),
        "severe": func.coalesce(func.sum(per_record.c.severe), 0)}
    sums.update({k: func.coalesce(func.sum(per_record.c[f"k{i}"]), 0)
                 for i, k in enumerate(KINDS)})
    joined = scope.rec.outerjoin(per_record, and_(per_record.c.procedure_id == scope.col("id")))
    return joined, sums


KINDS = [k.value for k in ComplicationKind]


def _complication_rates(frame: pd.DataFrame, by: str | None) -> pd.DataFrame:
    procedures = frame["procedures"].to_numpy()
    with_one = frame["with_complication"].to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(procedures > 0, with_one / np.maximum(procedures, 1), np.nan)
    low, high = wilson(with_one.astype(np.float64), procedures.astype(np.float64))
    head = frame[[by or "group", "procedures", "with_complication", "complications",
                  "severe"]].copy()
    head["complication_rate"], head["ci_low"], head["ci_high"] = rate, low, high
    out = pd.concat([head, frame[KINDS]], axis=1)
    return out[out["procedures"] > 0].reset_index(drop=True)


def complication_rates(scope: Scope, by: str | None = None) -> pd.DataFrame:
    """audit.analytics.complications.complication_rates in SQL: complications joined to the
    filtered records by id."""
    joined, sums = _complication_sums(scope)
    bys = [by] if by else []
    keys = groups.keys(scope.rec, bys)
    query = select(*keys, *(e.label(n) for n, e in sums.items())).select_from(joined)
    if keys:
        query = query.group_by(*keys)
    frame = as_int(scope.frame(query, [*groups.key_names(bys), *sums]), list(sums))
    if by is None:
        frame.insert(0, "group", "all")
    else:
        frame = groups.decorate(frame, scope.lookups, bys)
    return _complication_rates(frame, by)


def complication_rates_together(scope: Scope,
                                bys: Sequence[str]) -> dict[str | None, pd.DataFrame]:
    """`complication_rates` overall and for each grouping, in one scan (the Complications
    page's)."""
    joined, sums = _complication_sums(scope)
    found = counted_together(scope, bys, sums, overall="group", source=joined)
    return {by: _complication_rates(frame, by) for by, frame in found.items()}
