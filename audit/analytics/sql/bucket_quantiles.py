"""Exact dose quantiles from the dose buckets (audit.analytics.sql.dose_buckets) instead of a
sort of every selected record: the Dose page's per-procedure distribution, its histogram and
the local DRLs' room medians.

Why: a percentile_cont sorts the records it covers. At 10M records the Dose page's first tab
took 4.5 s after a filter change (8.6 s cold), against 0.3 s; the scan alone, before any sort,
is 0.7-1.1 s, so no plan over the records meets it. Counts add up, and a quantile is a count
question until its last step: which value has k records below it.

How (two phases, both exact):

1. **Which bucket.** Each procedure type's values are cut into about BUCKETS buckets at the
   quantiles of its values when the table was built (`dose_bucket_edge`; width_bucket's lower
   bounds). `dose_bucket` counts the final records per bucket, month and type, again per room
   (and its site) and per physician (`grain`), with the bucket's least and greatest value.
   Summing the rows of the filters' months (kept in the process: month_cells; and counting
   the records of the days of a month the period cuts, from the record facts) gives each
   group's exact count per bucket: the bucket holding the k-th value and its rank in it.
2. **Which value.** Where the bucket's least and greatest value are equal (the value is known:
   ties are common, C-arms print a few digits) nothing more is read. Otherwise the bucket's
   records under the filters are read by value range through an index of the record facts on
   (type, value) that carries what the filters test (BUCKET_INCLUDE), sorted, and the rank
   picked. percentile_cont's interpolation between the k-th and k+1-th value is then done as
   PostgreSQL does it: lo + (hi - lo) * fraction.

Both phases run in one REPEATABLE READ snapshot in which the buckets and the facts reflect the
same data version; otherwise (a write between the refresh and the read) the caller scans, as
before. KAP corrected is KAP times the room's factor: its buckets are of that product, the
rooms' factors are part of the table's rules (a change rebuilds it), and its records are read
through the KAP index with the room's factor applied and tested exactly.

When it answers (`answerable`): final records, no patient, record ids or technologist filter,
not both a room (or site) and a physician filter, a period of whole UTC days, no record in the
half second before a month's start or the period's bounds (the frame rounds instants to whole
seconds: summary_counts.edges_clear), and a quantity in QUANTITIES. Otherwise the scan
(audit.analytics.sql.dose).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, func, or_, select

from audit.analytics.snapshot import Snapshot
from audit.analytics.sql import month_cells
from audit.analytics.sql.bucket_ranges import Ranges, edges_of
from audit.analytics.sql.bucket_snapshot import snapshot
from audit.analytics.sql.dose_buckets import (
    FACTS,
    GRAIN_PHYSICIAN,
    GRAIN_ROOM,
    GRAIN_TYPE,
    QUANTITIES,
    TARGET,
    bucket_of,
    dense_cell,
    facts_of,
    value_of,
)
from audit.analytics.sql.month_cells import months_of
from audit.analytics.sql.scope import Scope
from audit.filters import Filters
from audit.storage.models import (
    DoseBucket,
    RecordFact,
)


def grain_of(filters: Filters, by_room: bool) -> int:
    if by_room or filters.rooms or filters.sites:
        return GRAIN_ROOM
    return GRAIN_PHYSICIAN if filters.physicians else GRAIN_TYPE


def cell_conditions(conn: Connection, filters: Filters, quantity: str, by_room: bool,
                    grain: int | None = None) -> tuple[list[Any], list[Any], list[Any]] | None:
    """Phase 1's conditions: on dose_bucket (the quantity, the filters' grain or `grain`, their
    ids and whole months), on the record facts (their ids), and the facts' days of the months
    the period cuts (`months_of`); None when a name matches nothing."""
    found, on_facts = filters.id_conditions(conn, TARGET), filters.id_conditions(conn, FACTS)
    if found is None or on_facts is None:
        return None
    first, last, edges = months_of(filters)
    s = DoseBucket
    where = [s.quantity == QUANTITIES[quantity],
             s.grain == (grain_of(filters, by_room) if grain is None else grain), *found]
    if first is not None:
        where.append(s.month >= first)
    if last is not None:
        where.append(s.month < last)
    return where, on_facts, edges


def _counts(conn: Connection, filters: Filters, quantity: str,
            by_room: bool) -> pd.DataFrame | None:
    """Phase 1: per group (t, and room when by_room) and bucket, the records, least and
    greatest value under the filters; None when a name matches nothing."""
    conditions = cell_conditions(conn, filters, quantity, by_room)
    if conditions is None:
        return None
    where, on_facts, edges = conditions
    s = DoseBucket
    keys = [s.procedure_type_id, *([s.room_id] if by_room else [])]
    n: dict[tuple[int, ...], np.ndarray] = {}
    low, high = dict(n), dict(n)

    def add(key: tuple[int, ...], counts: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> None:
        if key not in n:
            n[key], low[key], high[key] = counts.astype(np.int64), lo.copy(), hi.copy()
            return
        size = max(len(n[key]), len(counts))
        for held, fill in ((n, 0), (low, np.inf), (high, -np.inf)):
            if len(held[key]) < size:
                held[key] = np.concatenate([held[key], np.full(size - len(held[key]), fill,
                                                               dtype=held[key].dtype)])
        n[key][:len(counts)] += counts
        low[key][:len(lo)] = np.minimum(low[key][:len(lo)], lo)
        high[key][:len(hi)] = np.maximum(high[key][:len(hi)], hi)

    read = month_cells.reader(conn, filters, quantity, grain_of(filters, by_room))
    for key, found in month_cells.per_key(read(0, True), by_room).items() if read else (
            (tuple(int(k) for k in row[:-4]), dense_cell(*row[-4:])) for row in conn.execute(
                select(*keys, s.buckets, s.records, s.low, s.high)
                .where(*where, s.dimension == 0))):
        add(key, *found)
    if edges:  # the days of the months the period cuts, from the facts
        v = value_of(quantity)
        bucket = bucket_of(conn, v, quantity)
        f_keys = [RecordFact.procedure_type_id, *([RecordFact.room_id] if by_room else [])]
        for *key, b, count, lo, hi in conn.execute(
                select(*f_keys, bucket, func.count(), func.min(v), func.max(v))
                .select_from(facts_of(quantity))
                .where(v.is_not(None), or_(*edges), *on_facts).group_by(*f_keys, bucket)):
            size = int(b) + 1
            counts = np.zeros(size, dtype=np.int64)
            counts[int(b)] = int(count)
            los, his = np.full(size, np.inf), np.full(size, -np.inf)
            los[int(b)], his[int(b)] = float(lo), float(hi)
            add(tuple(int(k) for k in key), counts, los, his)
    names = ["t", *(["room"] if by_room else []), "b", "n", "lo", "hi"]
    order = sorted(n)  # one frame, not one a key
    held = [np.flatnonzero(n[key]) for key in order]
    if not sum(len(h) for h in held):
        return pd.DataFrame(columns=names)
    keyed = [np.repeat([k[i] for k in order], [len(h) for h in held]) for i in range(1 + by_room)]
    picked = [np.concatenate([x[key][h] for key, h in zip(order, held, strict=True)])
              for x in (n, low, high)]
    return pd.DataFrame(dict(zip(names, [*keyed, np.concatenate(held), *picked], strict=True)))


#: (group key, bucket): a bucket whose records phase 2 reads.
_Range = tuple[tuple[int, ...], int]
#: The rank phase 2 is asked for where it should find the bucket's least value above 0.
LEAST_POSITIVE = -1


def _values(conn: Connection, filters: Filters, quantity: str, by_room: bool,
            wanted: dict[_Range, set[int]], sizes: dict[_Range, int],
            lookups: Snapshot) -> dict[tuple[_Range, int], float]:
    """Phase 2 for one kind of group (`read_ranks`)."""
    if not wanted:
        return {}
    return read_ranks(conn, [(Ranges(conn, filters, quantity, by_room, lookups), wanted,
                              sizes)])[0]


def read_ranks(conn: Connection, parts: Sequence[tuple[Ranges, dict[_Range, set[int]],
                                                       dict[_Range, int]]]
               ) -> list[dict[tuple[_Range, int], float]]:
    """Phase 2: the values at the wanted ranks (0-based, inside the bucket; LEAST_POSITIVE:
    the bucket's least value above 0) of each wanted bucket's records under the filters, one
    index range each, ordered and cut there (OFFSET / LIMIT: a few values come back, not the
    bucket's thousands); for each part (its ranges' template, the wanted ranks, the buckets'
    sizes), in one query: per part and order, the windows as arrays joined LATERAL to the
    template (Ranges.lateral). A window in the upper half of its bucket (`sizes`: the
    bucket's records under the filters) is read from the top down: the index walks half as
    far."""
    keys: list[tuple[int, _Range, int]] = []  # (part, range, first rank) of each window
    queries = []
    for p, (ranges, wanted, sizes) in enumerate(parts):
        rows: dict[str, list[tuple[int, tuple[int, ...], int, int, int]]] = {
            "asc": [], "desc": [], "least": []}
        for (key, b), ranks in wanted.items():
            ranked = sorted(r for r in ranks if r >= 0)
            if ranked:
                keys.append((p, (key, b), ranked[0]))
                first, last, size = ranked[0], ranked[-1], sizes[(key, b)]
                down = first > size - 1 - last
                rows["desc" if down else "asc"].append(
                    (len(keys) - 1, key, b, size - 1 - last if down else first,
                     last - first + 1))
            if LEAST_POSITIVE in ranks:
                keys.append((p, (key, b), LEAST_POSITIVE))
                rows["least"].append((len(keys) - 1, key, b, 0, 0))
        queries += [ranges.lateral(f"{p}{order}", found, order)
                    for order, found in rows.items() if found]
    values: list[dict[tuple[_Range, int], float]] = [{} for _ in parts]
    if not queries:
        return values
    got: dict[int, list[float]] = {}
    params = {k: v for ranges, _, _ in parts for k, v in ranges.params.items()}
    for i, value in conn.exec_driver_sql(" UNION ALL ".join(f"({q})" for q in queries),
                                         params).all():
        if value is not None:
            got.setdefault(int(i), []).append(float(value))
    for i, (p, where_, first) in enumerate(keys):
        if first == LEAST_POSITIVE:
            values[p][(where_, first)] = got[i][0]
            continue
        for offset, value in enumerate(sorted(got.get(i, []))):
            values[p][(where_, first + offset)] = value
    return values


def quantiles(engine: Engine, lookups: Snapshot, filters: Filters, quantity: str,
              by_room: bool, qs: Sequence[float]) -> pd.DataFrame | None:
    """Per procedure type (g0), and room (g1) when by_room: v_n, v_q{i} (percentile_cont of
    each q), positive_low and positive_high (the least and greatest value above 0); None
    when the buckets do not answer (the caller scans)."""
    with snapshot(engine, lookups, filters, quantity) as found:
        if found is None:
            return None
        conn, filters = found
        counted = _counts(conn, filters, quantity, by_room)
        return _pick(conn, filters, quantity, by_room, qs, counted, lookups)


def medians(engine: Engine, period: Scope,
            column: str) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """The local DRLs' medians per procedure x room and per procedure (reference.Medians),
    or None where the buckets do not answer. One snapshot and one read of the cells: a
    procedure's counts are its rooms' summed."""
    lookups, filters = period.lookups, period.filters
    with snapshot(engine, lookups, filters, column) as opened:
        if opened is None:
            return None
        conn, filters = opened
        rooms = _counts(conn, filters, column, True)
        types = None if rooms is None else _summed_rooms(rooms)
        found = _picks(conn, filters, column, [(True, rooms), (False, types)], (0.5,),
                       lookups, extremes=False)  # dropped below
    return tuple(f.drop(columns=["positive_low", "positive_high"])  # type: ignore[return-value]
                 for f in found)


def _summed_rooms(rooms: pd.DataFrame) -> pd.DataFrame:
    """Per procedure type (t) and bucket (b): its rooms' records summed, the least and
    greatest value of them (numpy: a pandas groupby of three aggregates cost more than the
    rest of the procedures' medians)."""
    t, b = rooms["t"].to_numpy(dtype=np.int64), rooms["b"].to_numpy(dtype=np.int64)
    width = int(b.max(initial=0)) + 1
    keys, at = np.unique(t * width + b, return_inverse=True)
    at = at.reshape(-1)
    lo, hi = np.full(len(keys), np.inf), np.full(len(keys), -np.inf)
    np.minimum.at(lo, at, rooms["lo"].to_numpy(dtype=np.float64))
    np.maximum.at(hi, at, rooms["hi"].to_numpy(dtype=np.float64))
    n = np.bincount(at, weights=rooms["n"].to_numpy(dtype=np.float64), minlength=len(keys))
    return pd.DataFrame({"t": keys // width, "b": keys % width, "n": n.astype(np.int64),
                         "lo": lo, "hi": hi})


def histogram(engine: Engine, lookups: Snapshot, filters: Filters, quantity: str, bins: int,
              span: tuple[Any, Any] | None) -> pd.DataFrame | None:
    """audit.analytics.sql.dose.dose_histogram from the buckets, for the one procedure the
    filters name: the same log-spaced edges (from `span`, the least and greatest positive
    value, or found here), each bin's count the records below its upper edge less those
    below its lower edge. Below an edge: the buckets under it, and in the bucket it cuts
    (where that bucket's values differ) a count of its records below it (phase 2)."""
    with snapshot(engine, lookups, filters, quantity) as opened:
        if opened is None:
            return None
        conn, filters = opened
        counted = _counts(conn, filters, quantity, False)
        empty = pd.DataFrame({"low": [], "high": [], "count": []})
        if counted is None or counted.empty:
            return empty
        if span is None:
            found = _pick(conn, filters, quantity, False, (), counted, lookups)
            span = (found["positive_low"].iloc[0], found["positive_high"].iloc[0])
        low, high = (None if x is None or pd.isna(x) else float(x) for x in span)
        if low is None or high is None:
            return empty
        edges = np.geomspace(low, high * (1 + 1e-9), bins + 1)
        key = (int(counted["t"].iloc[0]),)
        b = counted["b"].to_numpy(dtype=np.int64)
        cum = np.concatenate([[0], np.cumsum(counted["n"].to_numpy(dtype=np.int64))])
        lo, hi = counted["lo"].to_numpy(dtype=np.float64), counted["hi"].to_numpy(dtype=np.float64)
        below = np.zeros(len(edges), dtype=np.int64)
        cut: list[tuple[int, int]] = []  # (edge index, bucket row) phase 2 counts
        for j, edge in enumerate(edges):
            full = int(np.searchsorted(hi, edge, side="left"))  # rows whose values are all < edge
            below[j] = cum[full]
            if full < len(b) and lo[full] < edge:
                cut.append((j, full))
        if cut:
            ranges = Ranges(conn, filters, quantity, False, lookups)
            sql = " UNION ALL ".join(  # integers and the compiled template: values are bound
                f"(SELECT {i} AS i, count(*) FROM "  # noqa: S608
                f"({ranges.records(i, key, int(b[row]), below=float(edges[j]))}) AS u{i})"
                for i, (j, row) in enumerate(cut))
            for i, n in conn.exec_driver_sql(sql, ranges.params).all():
                below[cut[int(i)][0]] += int(n)
        return pd.DataFrame({"low": edges[:-1], "high": edges[1:],
                             "count": np.diff(below).astype(np.int64)})


def _locate(key: tuple[int, ...], b: np.ndarray, cum: np.ndarray, lo: np.ndarray,
            hi: np.ndarray, rank: int, wanted: dict[_Range, set[int]],
            sizes: dict[_Range, int]) -> tuple[Any, ...]:
    """Where the value of this rank (0-based) is: known (its bucket's values are all one), or
    at a rank inside a bucket phase 2 reads (added to `wanted`)."""
    i = int(np.searchsorted(cum, rank, side="right"))
    if lo[i] == hi[i]:
        return ("value", float(lo[i]))
    before = int(cum[i - 1]) if i else 0
    inside = rank - before
    wanted.setdefault((key, int(b[i])), set()).add(inside)
    sizes[(key, int(b[i]))] = int(cum[i]) - before
    return ("rank", ((key, int(b[i])), inside))


#: A group's plan: (key, records, the quantiles' picks, least positive pick, greatest pick).
Plan = tuple[tuple[int, ...], int, list[Any], Any, Any]


def _pick(conn: Connection, filters: Filters, quantity: str, by_room: bool,
          qs: Sequence[float], counted: pd.DataFrame | None,
          lookups: Snapshot, extremes: bool = True) -> pd.DataFrame:
    """From the counts per bucket, each group's quantiles (phase 2 where a bucket's values
    differ) and its least and greatest positive value (`extremes`; else None: the least
    positive value may be one more rank to read)."""
    return _picks(conn, filters, quantity, [(by_room, counted)], qs, lookups, extremes)[0]


def _picks(conn: Connection, filters: Filters, quantity: str,
           kinds: Sequence[tuple[bool, pd.DataFrame | None]], qs: Sequence[float],
           lookups: Snapshot, extremes: bool = True) -> list[pd.DataFrame]:
    """_pick for several kinds of group (by room or not, and their counts) at once: their
    phase 2 in one query."""
    planned: list[tuple[list[Plan], list[str]]] = []
    parts: list[tuple[Ranges, dict[_Range, set[int]], dict[_Range, int]]] = []
    at: list[int | None] = []
    edges = None
    for k, (by_room, counted) in enumerate(kinds):
        columns = ["g0", *(["g1"] if by_room else []), "v_n",
                   *(f"v_q{i}" for i in range(len(qs))), "positive_low", "positive_high"]
        if counted is None or counted.empty:
            planned.append(([], columns))
            at.append(None)
            continue
        plans, wanted, sizes = plan(counted, ["t", *(["room"] if by_room else [])], qs,
                                    extremes)
        planned.append((plans, columns))
        at.append(len(parts) if wanted else None)
        if wanted:
            edges = edges_of(conn, quantity) if edges is None else edges
            parts.append((Ranges(conn, filters, quantity, by_room, lookups, prefix=f"k{k}",
                                 edges=edges), wanted, sizes))
    values = read_ranks(conn, parts) if parts else []
    return [pd.DataFrame(finish(plans, {} if i is None else values[i]), columns=columns)
            for (plans, columns), i in zip(planned, at, strict=True)]


def plan(counted: pd.DataFrame, keys: list[str], qs: Sequence[float], extremes: bool = True
         ) -> tuple[list[Plan], dict[_Range, set[int]], dict[_Range, int]]:
    """Each group's picks (a value known, or a rank phase 2 reads: added to the wanted ranks,
    with the buckets' sizes) from its counts per bucket (`counted`: keys, b, n, lo, hi);
    `extremes`: its least and greatest positive value too (else None)."""
    plans: list[Plan] = []
    wanted: dict[_Range, set[int]] = {}
    sizes: dict[_Range, int] = {}
    codes = counted[keys].to_numpy(dtype=np.int64)
    order = np.lexsort((counted["b"].to_numpy(dtype=np.int64),
                        *(codes[:, j] for j in reversed(range(len(keys))))))
    codes = codes[order]
    every_b = counted["b"].to_numpy(dtype=np.int64)[order]
    every_n = counted["n"].to_numpy(dtype=np.int64)[order]
    every_lo = counted["lo"].to_numpy(dtype=np.float64)[order]
    every_hi = counted["hi"].to_numpy(dtype=np.float64)[order]
    starts = np.flatnonzero(np.r_[True, (codes[1:] != codes[:-1]).any(axis=1)])
    for start, end in zip(starts, [*starts[1:], len(codes)], strict=True):
        key = tuple(int(k) for k in codes[start])
        b, n = every_b[start:end], every_n[start:end]
        lo, hi = every_lo[start:end], every_hi[start:end]
        cum = np.cumsum(n)
        total = int(cum[-1])

        picks = []
        for q in qs:
            position = q * (total - 1)
            below = math.floor(position)
            picks.append((_locate(key, b, cum, lo, hi, below, wanted, sizes),
                          _locate(key, b, cum, lo, hi, min(below + 1, total - 1), wanted,
                                  sizes),
                          position - below))
        positive = hi > 0
        low_pick: Any = None
        high_pick: Any = None
        if extremes and positive.any():
            i = int(np.argmax(positive))  # the first bucket holding a positive value
            low_pick = ("value", float(lo[i])) if lo[i] > 0 else \
                ("rank", ((key, int(b[i])), LEAST_POSITIVE))
            if lo[i] <= 0:
                wanted.setdefault((key, int(b[i])), set()).add(LEAST_POSITIVE)
            high_pick = ("value", float(hi[len(hi) - 1]))
        plans.append((key, total, picks, low_pick, high_pick))
    return plans, wanted, sizes


def finish(plans: list[Plan], values: dict[tuple[_Range, int], float]) -> list[list[Any]]:
    """Each group's row: its key, records, quantiles (percentile_cont's interpolation),
    least and greatest positive value."""
    def value(pick: tuple[Any, ...]) -> float:
        return float(pick[1]) if pick[0] == "value" else values[pick[1]]

    rows = []
    for key, total, picks, low_pick, high_pick in plans:
        row: list[Any] = [*key, total]
        for below, above, fraction in picks:
            a, c = value(below), value(above)
            row.append(a + (c - a) * fraction)
        row += [None if low_pick is None else value(low_pick),
                None if high_pick is None else value(high_pick)]
        rows.append(row)
    return rows
