"""Exact medians of mixtures from the dose buckets: the physician scorecards' figures
(audit.analytics.sql.scorecard) without sorting every selected record.

Why: the Dose page's Physicians tab took 18 s cold and 9 s after a filter change at 10M
records. Its medians are not of one bucketed distribution but of a mixture of several, each
scaled: KAP per level treated (a record's value divided by its levels: a 2-level record's
KAP counts half), a physician's median over every procedure (each type has its own buckets),
and the case-mix-adjusted ratio (each record's value over its stratum's median). A median is
still a count question: which value has k values below it.

How (the two phases of audit.analytics.sql.bucket_quantiles, for mixtures):

1. **Components.** `dose_bucket`'s cells of dimension STRATUM count each physician's records
   per procedure type, levels treated and BMI band (a *component*) and bucket, per month, at
   the physician grain and (under a room or site filter) the room x physician grain; the
   physician's unsplit cells bound each bucket's values (least, greatest). A component's
   bucket divided by its factor s (the levels; a stratum's median) holds values in
   [lo / s, hi / s].
2. **Bracket, then pick.** For the k-th value of a group of components, the least lower bound
   with k + 1 records at or below it (a) and the least upper bound with k + 1 wholly at or
   below it (b) bracket it: every bucket wholly below a is counted, every bucket wholly above
   b is skipped, and only the few buckets overlapping [a, b] can hold it. Where each of those
   holds one value (ties: C-arms print a few digits) it is picked here; otherwise PostgreSQL
   reads their records (one physician's records of one stratum in a bucket's value range,
   through an index on (type, physician, levels, BMI band, value)), divides each by its
   factor and returns a group's values as one byte string; numpy keeps the two at the rank:
   every group of a figure in one statement (windows as array literals, sliced per group,
   joined LATERAL: planned once). percentile_cont's interpolation as PostgreSQL does
   it. Where the records read are not as many as the cells count (a fact changed behind the
   app's back), None: the caller scans.

Both phases run in the snapshot of the dose buckets (bucket_snapshot.snapshot). Where the
buckets do not answer (its cases: a technologist, a patient, voided records, a period not of
whole days), the caller scans.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from sqlalchemy import Connection, Integer, cast, func, literal, or_, select

from audit.analytics.sql import month_cells, month_sums
from audit.analytics.sql.bucket_picks import (
    bracket,
    interpolate,
    pick,
    summed,
    unique_rows,
)
from audit.analytics.sql.bucket_plans import Classes, Plan, gathered, ranks, single_type
from audit.analytics.sql.bucket_quantiles import cell_conditions
from audit.analytics.sql.bucket_ranges import edges_of
from audit.analytics.sql.bucket_snapshot import scanned_because
from audit.analytics.sql.bucket_windows import Reader, Windows
from audit.analytics.sql.cell_columns import CellColumns, read_cells
from audit.analytics.sql.dose_buckets import (
    GRAIN_PHYSICIAN,
    GRAIN_ROOM_PHYSICIAN,
    PART_WIDTH,
    SPLIT,
    STRATUM,
    bucket_of,
    facts_of,
    value_of,
)
from audit.analytics.sql.kept import Kept
from audit.filters import Filters
from audit.storage.models import DoseBucket, RecordFact


def answerable(filters: Filters, quantity: str) -> bool:
    """A quantity with strata, filters the physicians' cells answer."""
    return quantity in SPLIT and scanned_because(filters, by_physician=True) is None


@dataclass
class Strata:
    """Phase 1: `keys` (physician, type, levels, BMI band) of each component, and per bucket
    holding records, in the long form: its component `c`, bucket `b`, records `n`, and the
    least and greatest value `lo`, `hi` of the physician's bucket of that type (a stratum's
    values lie within)."""

    keys: np.ndarray
    c: np.ndarray
    b: np.ndarray
    n: np.ndarray
    lo: np.ndarray
    hi: np.ndarray


#: The last few phase 1 results, by the buckets' state (month_cells.stamp_of), filters and
#: quantity: the physician scorecard's KAP per level and the adjusted scorecard's KAP (both
#: asked at once on the Physicians tab, in two threads) read the same cells once.
_READ: Kept[Strata | None] = Kept(4)


def read_strata(conn: Connection, filters: Filters, quantity: str,
                whole: bool = False) -> Strata | None:
    """_read_strata, once per buckets' state for the same question (`_READ`): a second
    caller waits for the first one's read."""
    stamp = month_cells.stamp_of(conn)
    return _READ.get((stamp, conn.engine.url.render_as_string(), filters, quantity, whole),
                     lambda: _read_strata(conn, filters, quantity, whole, stamp))


def _read_strata(conn: Connection, filters: Filters, quantity: str, whole: bool = False,
                 stamp: month_cells.Stamp | None = None) -> Strata | None:
    """The components' records per bucket under the filters: the cells of the whole months
    (kept in the process between filter changes where month_cells answers), the record facts
    of the days of the months the period cuts; None when a name matches nothing. `whole`: a
    component per physician and type (levels and band 0), from the unsplit cells (KAP
    corrected's). Under a room or site filter the cells are the room x physician grain's; a
    stratum's bounds are then its physician's over every room (wider, as true: what bounds
    the physician's values bounds those in some rooms)."""
    by_room = bool(filters.rooms or filters.sites)
    grain = GRAIN_ROOM_PHYSICIAN if by_room else GRAIN_PHYSICIAN
    conditions = cell_conditions(conn, filters, quantity, False, grain=grain)
    if conditions is None:
        return None
    where, on_facts, edges = conditions
    if not by_room and not edges:  # whole months: their sums where kept
        found = _summed_strata(conn, filters, quantity, whole, stamp)
        if found is not None:
            return found
    s = DoseBucket
    read = month_cells.reader(conn, filters, quantity, stamp=stamp) or (
        lambda dimension, bounds: read_cells(conn, *where, s.dimension == dimension,
                                             bounds=bounds))
    if whole:  # KAP corrected: the unsplit cells are the components and their bounds
        split = unsplit = read(0, True)
    elif not by_room:
        split, unsplit = read(STRATUM, False), read(0, True)
    else:
        split = read_cells(conn, *where, s.dimension == STRATUM)
        every_room = cell_conditions(conn, replace(filters, rooms=(), sites=()), quantity,
                                     False, grain=GRAIN_PHYSICIAN)
        unsplit = CellColumns.empty() if every_room is None else read_cells(
            conn, *every_room[0], s.dimension == 0, bounds=True)
    # per cell its key and buckets held: (physician, type, levels, band); (physician, type)
    keys = np.column_stack([split.physician, split.type, split.part // PART_WIDTH,
                            split.part % PART_WIDTH])
    lengths, b, n = split.lengths, split.b, split.n
    if whole:
        keys[:, 2:] = 0
    bound_keys = np.column_stack([unsplit.physician, unsplit.type])
    bound_lengths, bound_b, lo, hi = unsplit.lengths, unsplit.b, unsplit.lo, unsplit.hi
    if edges:  # the days of the months the period cuts, from the facts: a cell per bucket
        v = value_of(quantity)
        f = RecordFact
        columns = [f.physician_id, f.procedure_type_id, f.n_levels, f.bmi_band]
        bucket = bucket_of(conn, v, quantity)
        days = _packed_days(conn, select(*columns, bucket.label("b"), func.count().label("n"),
                                         func.min(v).label("lo"), func.max(v).label("hi"))
                            .select_from(facts_of(quantity))
                            .where(v.is_not(None), or_(*edges), *on_facts)
                            .group_by(*columns, bucket).subquery())
        ones = np.ones(len(days), dtype=np.int64)
        if whole:
            days[:, 2:4] = 0
        keys = np.concatenate([keys, days[:, :4].astype(np.int64)])
        lengths = np.concatenate([lengths, ones])
        b = np.concatenate([b, days[:, 4].astype(np.int64)])
        n = np.concatenate([n, days[:, 5].astype(np.int64)])
        bound_keys = np.concatenate([bound_keys, days[:, :2].astype(np.int64)])
        bound_lengths = np.concatenate([bound_lengths, ones])
        bound_b = np.concatenate([bound_b, days[:, 4].astype(np.int64)])
        lo, hi = np.concatenate([lo, days[:, 6]]), np.concatenate([hi, days[:, 7]])
    components, cell_component = unique_rows(keys)
    width = int(max(b.max(initial=0), bound_b.max(initial=0))) + 1
    total = summed(np.repeat(cell_component, lengths) * width + b, n)
    held = np.flatnonzero(total)
    n = total[held].astype(np.int64)
    c, b = held // width, held % width
    kept, c = np.unique(c, return_inverse=True)  # components with a value (not all missing)
    components, c = components[kept], c.reshape(-1)
    # each (physician, type)'s least and greatest value per bucket, looked up per row
    pairs, pair_of = unique_rows(np.concatenate([bound_keys, components[:, :2]]))
    slot = np.repeat(pair_of[:len(bound_keys)], bound_lengths) * width + bound_b
    low, high = np.full(len(pairs) * width, np.inf), np.full(len(pairs) * width, -np.inf)
    np.minimum.at(low, slot, lo)
    np.maximum.at(high, slot, hi)
    wanted = pair_of[len(bound_keys):][c] * width + b
    lo_rows, hi_rows = low[wanted], high[wanted]
    return _bounded(conn, quantity, Strata(components, c, b, n, lo_rows, hi_rows))


def _bounded(conn: Connection, quantity: str, strata: Strata) -> Strata:
    """A row's bounds from its type's edges where its pair held none (the cells disagree)."""
    lo, hi = strata.lo, strata.hi
    missing = np.flatnonzero(~np.isfinite(lo))
    if len(missing):
        type_edges = edges_of(conn, quantity)
        for i in missing.tolist():
            t, b = int(strata.keys[strata.c[i], 1]), int(strata.b[i])
            e = type_edges.get(t, np.array([-math.inf, math.inf]))
            lo[i], hi[i] = e[b], e[b + 1] if b + 1 < len(e) else math.inf
    return strata


def _summed_strata(conn: Connection, filters: Filters, quantity: str, whole: bool,
                   stamp: month_cells.Stamp | None) -> Strata | None:
    """_read_strata from the kept months' sums (month_sums) of the period's whole months at
    the physician grain: the same Strata, without summing every month's cells; None where
    they do not answer."""
    stamp = stamp or month_cells.stamp_of(conn)
    if stamp is None:
        return None
    unsplit = month_sums.summed(conn, stamp, quantity, 0, True, filters)
    split = unsplit if whole else month_sums.summed(conn, stamp, quantity, STRATUM, False,
                                                    filters)
    if split is None or unsplit is None or unsplit.lo is None or unsplit.hi is None:
        return None
    held = np.flatnonzero(split.n)
    c, b = np.divmod(held, split.n.shape[1])
    n = split.n.reshape(-1)[held]
    new = np.concatenate([[len(c) > 0], c[1:] != c[:-1]])[:len(c)]  # c ascends: distinct
    found, c = split.keys[c[new]], np.cumsum(new) - 1  # the components with a value
    part = np.zeros(len(found), dtype=np.int64) if whole else found[:, 2]
    components = np.column_stack([found[:, 0], found[:, 1], part // PART_WIDTH,
                                  part % PART_WIDTH])
    # each component's (physician, type) row of the unsplit sums (keys ascending: a search)
    types = int(max(components[:, 1].max(initial=0), unsplit.keys[:, 1].max(initial=0))) + 1
    pairs = unsplit.keys[:, 0] * types + unsplit.keys[:, 1]
    wanted = components[:, 0] * types + components[:, 1]
    row = np.minimum(np.searchsorted(pairs, wanted), max(len(pairs) - 1, 0))
    there = (pairs[row] == wanted) if len(pairs) else np.zeros(len(wanted), dtype=bool)
    if there.all() and b.max(initial=0) < unsplit.lo.shape[1]:  # as the cells agree
        at = row[c], b
        return _bounded(conn, quantity, Strata(components, c, b, n, unsplit.lo[at],
                                               unsplit.hi[at]))
    lo, hi = np.full(len(c), np.inf), np.full(len(c), -np.inf)
    rows = np.flatnonzero(there[c] & (b < unsplit.lo.shape[1]))
    lo[rows], hi[rows] = unsplit.lo[row[c[rows]], b[rows]], unsplit.hi[row[c[rows]], b[rows]]
    return _bounded(conn, quantity, Strata(components, c, b, n, lo, hi))


def _packed_days(conn: Connection, grouped: Any) -> np.ndarray:
    """The cut days' (physician, type, levels, band, bucket, records, least, greatest) rows,
    packed per component in PostgreSQL as bytes (a row per bucket is about a row per record:
    100,000 rows for six weeks at 10M records, 0.3 s to bring into Python one by one)."""
    g = grouped.c
    sep = literal(b"")
    keys = [g.physician_id, g.procedure_type_id, g.n_levels, g.bmi_band]
    parts = []
    for *key, b, n, lo, hi in conn.execute(
            select(*keys, func.string_agg(func.int4send(cast(g.b, Integer)), sep),
                   func.string_agg(func.int8send(g.n), sep),
                   func.string_agg(func.float8send(g.lo), sep),
                   func.string_agg(func.float8send(g.hi), sep)).group_by(*keys)):
        count = len(b) >> 2
        parts.append(np.column_stack([
            np.tile(np.array(key, dtype=np.float64), (count, 1)),
            np.frombuffer(b, dtype=">i4"), np.frombuffer(n, dtype=">i8"),
            np.frombuffer(lo, dtype=">f8"), np.frombuffer(hi, dtype=">f8")]))
    return np.concatenate(parts) if parts else np.empty((0, 8))


#: A group: its components (indexes into Strata.keys) and each one's divisor.
Group = tuple[np.ndarray, np.ndarray]


#: Groups of fewer rows are planned row by row (merging costs more than it saves there).
MERGE_FROM = 2_000


class Mixtures:
    """The medians of groups of components (each scaled by its divisor) from one Strata:
    `medians` plans every group, reads the windows they need in one query, and picks."""

    def __init__(self, conn: Connection, filters: Filters, quantity: str,
                 strata: Strata) -> None:
        self.conn, self.strata = conn, strata
        self.reader = Reader(conn, filters, quantity)
        order = np.argsort(strata.c, kind="stable")
        self.rows = order  # rows by component
        self.starts = np.searchsorted(strata.c[order], np.arange(len(strata.keys) + 1))
        # each component's (physician, type): its buckets' bounds are the pair's
        self.pair = unique_rows(strata.keys[:, :2])[1] if len(strata.keys) else \
            np.empty(0, dtype=np.int64)
        self.width = int(strata.b.max(initial=0)) + 1
        # each row's (component, bucket) as one number, ascending (rows come by component,
        # then bucket): where _Classes finds a component's row of a bucket
        self.code = strata.c * self.width + strata.b
        if len(self.code) > 1 and not (np.diff(self.code) > 0).all():
            raise ValueError("the strata's rows are not by component, then bucket")

    def rows_of(self, components: np.ndarray) -> int:
        """How many rows these components hold."""
        return int((self.starts[components + 1] - self.starts[components]).sum())

    def _rows(self, components: np.ndarray, divisors: np.ndarray) -> tuple[np.ndarray, ...]:
        """The group's rows (by component, then bucket), each one's divisor and the position
        of its component in `components`."""
        sizes = self.starts[components + 1] - self.starts[components]
        of = np.repeat(np.arange(len(components)), sizes)
        return self.rows[gathered(self.starts, components)], divisors.astype(np.float64)[of], of

    def _bracket(self, rows: np.ndarray, scale: np.ndarray, of: np.ndarray,
                 components: np.ndarray, divisors: np.ndarray, first: int,
                 last: int) -> tuple[np.ndarray, int]:
        """bracket() of the group's rows, planned on merged rows where that is smaller: the
        rows of one physician's procedure with the same divisor and bucket have the same
        bounds (the pair's) and may be counted as one (a physician across procedures or the
        overall median: 20 strata a pair; a procedure's per-level median: the BMI bands).
        The same rows are read: a row is read when its merged row is."""
        s = self.strata
        n = s.n[rows]
        lo, hi = s.lo[rows] / scale, s.hi[rows] / scale
        if len(rows) < MERGE_FROM:
            return bracket(lo, hi, n, first, last)
        _, level = np.unique(divisors, return_inverse=True)
        merged, key = unique_rows(np.column_stack([self.pair[components],
                                                   level.reshape(-1)]))
        if len(merged) * 2 > len(components):  # not worth it
            return bracket(lo, hi, n, first, last)
        slot = key[of] * self.width + s.b[rows]
        size = len(merged) * self.width
        counts = np.bincount(slot, weights=n, minlength=size)
        held = np.flatnonzero(counts)
        low, high = np.empty(size), np.empty(size)
        low[slot], high[slot] = lo, hi  # the same bounds for every row of a slot
        read, below = bracket(low[held], high[held], counts[held].astype(np.int64), first,
                              last)
        chosen = np.zeros(size, dtype=bool)
        chosen[held[read]] = True
        return np.flatnonzero(chosen[slot]), below

    def medians(self, groups: Sequence[Group]) -> tuple[np.ndarray, np.ndarray] | None:
        """Each group's median (NaN without records) and records; None where the records read
        disagree with the counts (a row changed behind the app's back: the caller scans)."""
        classes = Classes(self, groups, MERGE_FROM)
        merged = [classes.plan(components, divisors) for components, divisors in groups]
        types = self.strata.keys[:, 1]
        together = single_type(self, groups, [  # one type and one divisor: no sort a group
            g for g, ((c, d), plan) in enumerate(zip(groups, merged, strict=True))
            if plan is None and len(c) > 1 and (types[c] == types[c[0]]).all()
            and (d == d[0]).all()])
        plans = [plan or together.get(g) or self._plan(*groups[g])
                 for g, plan in enumerate(merged)]
        out = np.full(len(groups), np.nan)
        totals = np.array([plan.total for plan in plans], dtype=np.int64)
        asked: list[tuple[int, int, int]] = []
        windows: list[Windows] = []
        expected: dict[int, int] = {}
        for g, plan in enumerate(plans):
            if plan.total == 0:
                continue
            ranks = [plan.first - plan.below, plan.last - plan.below]
            if (plan.lo == plan.hi).all():  # every value known: nothing to read
                out[g] = interpolate(*pick(plan.lo, plan.n, ranks), plan.fraction)
                continue
            asked.append((g, ranks[0], plan.last - plan.first + 1))
            expected[g] = int(plan.n.sum())
            windows.append(self._windows(g, *plan.rows()))
        got = self.reader.picked(self.conn, asked, Windows.joined(windows))
        for g, _, limit in asked:
            values, total = got.get(g, ([], 0))
            if total != expected[g] or len(values) != limit:
                return None  # the facts disagree with the cells' counts
            out[g] = interpolate(values[0], values[-1], plans[g].fraction)
        return out, totals

    def _plan(self, components: np.ndarray, divisors: np.ndarray) -> Plan:
        """A group's plan from its own rows (`_bracket`)."""
        s = self.strata
        rows, scale, of = self._rows(components, divisors)
        total = int(s.n[rows].sum())
        if total == 0:
            return Plan.empty()
        first, last, fraction = ranks(total)
        read, below = self._bracket(rows, scale, of, components, divisors, first, last)
        rows, scale = rows[read], scale[read]
        return Plan(total, first, last, fraction, below, s.lo[rows] / scale,
                     s.hi[rows] / scale, s.n[rows], lambda: (rows, scale))

    def _windows(self, g: int, rows: np.ndarray, scale: np.ndarray) -> Windows:
        """Group g's windows: one per run of consecutive buckets of a component (its rows
        come by component, then bucket)."""
        s = self.strata
        c, b = s.c[rows], s.b[rows]
        starts = np.flatnonzero(np.concatenate(
            [[True], (c[1:] != c[:-1]) | (b[1:] != b[:-1] + 1)]))
        ends = np.append(starts[1:], len(rows)) - 1
        keys = s.keys[c[starts]]
        return Windows(np.full(len(starts), g, dtype=np.int64), keys[:, 1], keys[:, 0],
                       keys[:, 2], keys[:, 3], s.lo[rows[starts]], s.hi[rows[ends]],
                       scale[starts].astype(np.float64))
