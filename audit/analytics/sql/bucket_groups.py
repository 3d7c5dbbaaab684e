"""The Dose page's Case mix and Over time tables from the dose buckets: each procedure's
records, median and 75th percentile by levels, weight band, BMI band, operator and month
(audit.analytics.sql.dose.dose_page_together's figures), exact, without sorting the records.

Why: the scan sorts every selected record once per grouping; at 10M records the tabs took 10-11
s after a filter change (26 s cold), against 0.3 s. The two phases are those of the Dose page's
first tab (audit.analytics.sql.bucket_quantiles says how): here the counts per bucket come
from the cells split by the grouping's column (`dimension` and `part` of dose_bucket;
month is a key of every cell), and phase 2 reads one part's records of a bucket through the
same indexes, which carry those columns. A split cell keeps no bounds: its values lie within
the unsplit cells' of the same filters and type, and a bucket whose values are all one there
is so in each part.

All five groupings are answered from one snapshot: one read of the cells, one query of the
ranks (a few hundred index windows). Where the buckets do not answer (the same cases as the
first tab's), None: the caller scans.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, func, or_, select

from audit.analytics.snapshot import Snapshot
from audit.analytics.sql.bucket_quantiles import (
    cell_conditions,
    finish,
    plan,
    read_ranks,
)
from audit.analytics.sql.bucket_ranges import Ranges, edges_of
from audit.analytics.sql.bucket_snapshot import snapshot
from audit.analytics.sql.dose import DOSE_PAGE, dose_page_together, page_frames
from audit.analytics.sql.dose_buckets import (
    DIMENSIONS,
    SPLIT,
    bucket_of,
    cell_buckets,
    facts_of,
    value_of,
)
from audit.analytics.sql.scope import Scope
from audit.filters import Filters
from audit.storage.models import DoseBucket, RecordFact

Sets = tuple[tuple[str, ...], ...]
#: The quantiles of the tables: median and 75th percentile.
QS = (0.5, 0.75)
#: Each grouping of DOSE_PAGE by the column it splits by ("month": the cells' month).
SPLITS = {by: ("month" if by[0] == "month" else by[1]) for by in DOSE_PAGE}


def _month_code(month: str) -> int:
    """'YYYY-MM' as the number YYYYMM (a group key is integers)."""
    return int(month[:4]) * 100 + int(month[5:7])


class _Sums:
    """Records per bucket summed by group (a key of integers), and for each group the records
    without a value; vectorised: the cells' buckets are gathered flat and counted at once."""

    def __init__(self) -> None:
        self.keys: dict[tuple[int, ...], int] = {}
        self.ids: list[np.ndarray] = []
        self.buckets: list[np.ndarray] = []
        self.counts: list[np.ndarray] = []
        self.missing: dict[tuple[int, ...], int] = {}

    def add(self, key: tuple[int, ...], b: np.ndarray, n: np.ndarray, missing: int) -> None:
        group = self.keys.setdefault(key, len(self.keys))
        self.ids.append(np.full(len(b), group, dtype=np.int64))
        self.buckets.append(b)
        self.counts.append(n.astype(np.int64))
        self.missing[key] = self.missing.get(key, 0) + int(missing)

    def frame(self, key_names: list[str]) -> pd.DataFrame:
        """Long form: the keys, b, n of every bucket holding records."""
        if not self.ids:
            return pd.DataFrame(columns=[*key_names, "b", "n"])
        ids, b = np.concatenate(self.ids), np.concatenate(self.buckets)
        width = int(b.max()) + 1 if len(b) else 1
        n = np.bincount(ids * width + b, weights=np.concatenate(self.counts),
                        minlength=len(self.keys) * width).astype(np.int64)
        held = np.flatnonzero(n)
        keys = np.array(list(self.keys), dtype=np.int64).reshape(len(self.keys), -1)
        rows = keys[held // width]
        return pd.DataFrame({**{name: rows[:, i] for i, name in enumerate(key_names)},
                             "b": held % width, "n": n[held]})


def _cells(conn: Connection, filters: Filters, quantity: str,
           sets: Sets) -> tuple[dict[str, _Sums], pd.DataFrame] | None:
    """Phase 1: per grouping's split column (of `sets`), the records per (type, part) and
    bucket under the filters, and per type the buckets' least and greatest value; None when a
    name matches nothing. Only the unsplit cells and the splits `sets` need are read (the Over
    time tab none)."""
    conditions = cell_conditions(conn, filters, quantity, False)
    if conditions is None:
        return None
    where, on_facts, edges = conditions
    s = DoseBucket
    splits = [DIMENSIONS[SPLITS[by]][0] for by in sets if SPLITS[by] in DIMENSIONS]
    where.append(s.dimension.in_([0, *splits]))
    dimension_of = {code: name for name, (code, _) in DIMENSIONS.items()}
    sums = {name: _Sums() for name in ("month", *DIMENSIONS)}
    bounds: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for dimension, part, month, t, held, counts, missing, low, high in conn.execute(
            select(s.dimension, s.part, s.month, s.procedure_type_id, s.buckets, s.records,
                   s.missing, s.low, s.high).where(*where)):
        b, n = cell_buckets(held, counts)
        if dimension:
            sums[dimension_of[dimension]].add((t, part), b, n, missing)
            continue
        sums["month"].add((_month_code(month), t), b, n, missing)
        _widen(bounds, t, b, np.frombuffer(low, dtype="<f8"), np.frombuffer(high, dtype="<f8"))
    if edges:  # the days of the months the period cuts, from the facts
        v = value_of(quantity)
        columns = [RecordFact.procedure_type_id, RecordFact.month,
                   *(getattr(RecordFact, c) for _, c in DIMENSIONS.values())]
        bucket = bucket_of(conn, v, quantity)
        for t, month, *parts, b, count, without, lo, hi in conn.execute(
                select(*columns, bucket, func.count(v), func.count() - func.count(v),
                       func.min(v), func.max(v))
                .select_from(facts_of(quantity)).where(or_(*edges), *on_facts)
                .group_by(*columns, bucket)):
            one, n = np.array([int(b)]), np.array([int(count)])
            sums["month"].add((_month_code(month), t), one, n, without)
            for name, part in zip(DIMENSIONS, parts, strict=True):
                sums[name].add((t, int(part)), one, n, without)
            if lo is not None:
                _widen(bounds, t, one, np.array([float(lo)]), np.array([float(hi)]))
    rows = [(t, b, lo[b], hi[b]) for t, (lo, hi) in bounds.items()
            for b in np.flatnonzero(np.isfinite(lo))]
    return sums, pd.DataFrame(rows, columns=["t", "b", "lo", "hi"])


def _widen(bounds: dict[int, tuple[np.ndarray, np.ndarray]], t: int, b: np.ndarray,
           low: np.ndarray, high: np.ndarray) -> None:
    """The type's least and greatest value per bucket, widened by a cell's."""
    size = int(b.max()) + 1 if len(b) else 0
    lo, hi = bounds.get(t, (np.empty(0), np.empty(0)))
    if len(lo) < size:
        lo = np.concatenate([lo, np.full(size - len(lo), np.inf)])
        hi = np.concatenate([hi, np.full(size - len(hi), -np.inf)])
    np.minimum.at(lo, b, low)
    np.maximum.at(hi, b, high)
    bounds[t] = (lo, hi)


def page(engine: Engine, scope: Scope, quantity: str,
         sets: Sets = DOSE_PAGE) -> dict[tuple[tuple[str, ...], bool], pd.DataFrame]:
    """dose.dose_page_together's tables, from the buckets where they answer, else the scan."""
    found = dose_page(engine, scope.lookups, scope.filters, quantity, sets)
    if found is None:
        return dose_page_together(scope, quantity, sets)
    return page_frames(found, scope, quantity)


def dose_page(engine: Engine, lookups: Snapshot, filters: Filters, quantity: str,
              sets: Sets = DOSE_PAGE) -> dict[tuple[str, ...], pd.DataFrame] | None:
    """quantiles_together's tables of the groupings `sets` (of DOSE_PAGE: g0, g1, records,
    {quantity}_n, _q0, _q1: dose.page_frames makes the page's of them), or None where the
    buckets do not answer (the caller scans)."""
    if quantity not in SPLIT:
        return None
    with snapshot(engine, lookups, filters, quantity) as opened:
        if opened is None:
            return None
        conn, filters = opened
        counted = _cells(conn, filters, quantity, sets)
        columns = ["g0", "g1", "records", f"{quantity}_n", f"{quantity}_q0", f"{quantity}_q1"]
        if counted is None:
            return {by: pd.DataFrame(columns=columns) for by in sets}
        sums, bounds = counted
        parts: list[tuple[Ranges, Any, Any]] = []
        plans = {}
        edges = edges_of(conn, quantity)
        for i, by in enumerate(sets):
            split = SPLITS[by]
            month = split == "month"
            keys = ["k", "t"] if month else ["t", "k"]
            # the bounds of the type's buckets under the filters (those of a part lie within)
            frame = sums[split].frame(keys).merge(bounds, on=["t", "b"], how="left")
            planned, wanted, sizes = plan(frame, ["t", "k"], QS, extremes=False) \
                if len(frame) else ([], {}, {})
            plans[by] = planned
            column = "month" if month else DIMENSIONS[split][1]
            parts.append((Ranges(conn, filters, quantity, False, lookups, split=column,
                                 prefix=f"p{i}", edges=edges), wanted, sizes))
        values = read_ranks(conn, parts)
        out = {}
        for i, by in enumerate(sets):
            out[by] = _table(by, finish(plans[by], values[i]), sums[SPLITS[by]], quantity,
                             columns)
        return out


def _table(by: tuple[str, ...], rows: list[list[Any]], sums: _Sums, quantity: str,
           columns: list[str]) -> pd.DataFrame:
    """One grouping's table in quantiles_together's form: its groups in the grouping's key
    order (month first for the monthly one), with the groups whose records all lack the
    value (records counted, no quantile)."""
    figures = {(int(r[0]), int(r[1])): r[2:5] for r in rows}  # (t, k) -> n, q0, q1
    table = []
    for key, missing in sums.missing.items():
        t, k = (key[1], key[0]) if SPLITS[by] == "month" else key
        n, q0, q1 = figures.get((t, k), (0, np.nan, np.nan))
        code: Any = f"{k // 100:04d}-{k % 100:02d}" if SPLITS[by] == "month" else k
        g0, g1 = (code, t) if SPLITS[by] == "month" else (t, code)
        table.append((g0, g1, int(n) + int(missing), int(n), q0, q1))
    frame = pd.DataFrame(table, columns=columns)
    for name in ("records", f"{quantity}_n"):
        frame[name] = frame[name].astype(np.int64)
    for name in (f"{quantity}_q0", f"{quantity}_q1"):
        frame[name] = frame[name].astype(np.float64)
    return frame
