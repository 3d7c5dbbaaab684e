"""The dose buckets' month cells kept in the app process between filter changes, per state of
the buckets: the Physicians tab's next period, physician or procedure selects its cells here
instead of reading them from dose_bucket again, and so do the Dose page's quantiles (per type,
per room: bucket_quantiles). Also which whole months a period covers (`months_of`: the cells
answer those, the record facts the days of the months it cuts).

Why: at 10M records a filter change on the Physicians tab read a year's cells five times (the
strata and the bounds of KAP and time, KAP corrected's bounds): about 1.5 million buckets a
read, 0.24 s of PostgreSQL and 0.05 s of decoding on the two cores the tab's other work needs.
Every month's cells of one quantity at the physician grain are a few tens of MB in compact
dtypes, and a filter change then costs a slice and a mask over them.

Exactness: an entry holds what dose_bucket held in one snapshot and is used only in a snapshot
that shows the same state: the same database (its oid: a database dropped and made again, or
restored, is another), the same version of the buckets' state row (its xmin: a refresh
rewrites that row in the transaction that writes the cells) and the same data version and
rules. A write that reaches the buckets makes a new key, and the older entries of that
database are dropped. Cells an insider edits behind the app's back without touching the state
row are answered as they stood when read, as any snapshot would answer them; phase 2 checks
the records it reads against the counts either way (bucket_mixtures).

Not the room x physician grain (five times the physician grain's cells, and a room filter
reads little of it): the Physicians tab under a room or site filter reads it from the table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import Connection, and_, text

from audit.analytics.daily_summary import month_start, next_month
from audit.analytics.sql.cell_columns import CellColumns, read_cells
from audit.analytics.sql.dose_buckets import GRAIN_PHYSICIAN, QUANTITIES
from audit.analytics.sql.kept import Kept
from audit.analytics.sql.records import HALF_SECOND, period_conditions
from audit.filters import Filters
from audit.storage.models import DoseBucket, RecordFact

#: The name filters a cached read applies itself, as dose_bucket's columns of the same names
#: (a grain that does not hold a key has 0 there: a filter on it selects no cell, as in SQL).
APPLIED = ("physician_id", "procedure_type_id", "room_id", "site_id")
#: Entries kept at most (one per quantity, grain and dimension: the Physicians tab's KAP and
#: time strata and bounds, KAP corrected's bounds; the Dose page's per type and per room).
KEPT = 16
#: The kept cells' bytes at most: about 70 MB at 10M records over two years with eight
#: physicians, but cells grow with months x physicians x procedures, not with records. A site
#: whose entries do not fit keeps the newest that do; one larger than this alone is read from
#: the table each time, as before (RSS < 1 GB, issue 16).
MAX_BYTES = 256 * 2**20


@dataclass(frozen=True)
class Stamp:
    """What an entry is valid for (module doc)."""

    url: str
    database: int
    state: str
    version: int
    rules: int

    def outdates(self, old: Stamp) -> bool:
        """`old` is an earlier state of this one's database (its entries may go)."""
        return old != self and (old.url, old.database) == (self.url, self.database)


def stamp_of(conn: Connection) -> Stamp | None:
    """The buckets' state as this connection's snapshot sees it; None before the first
    refresh. Where bucket_snapshot.snapshot read it already (its execution option
    `bucket_stamp`), that."""
    kept = conn.get_execution_options().get("bucket_stamp")
    if kept is not None:
        return kept  # type: ignore[no-any-return]
    found = conn.execute(text(
        "SELECT d.oid::bigint, s.xmin::text, s.data_version, s.rules "
        "FROM dose_bucket_state s, pg_database d "
        "WHERE s.id = 1 AND d.datname = current_database()")).first()
    if found is None:
        return None
    return Stamp(conn.engine.url.render_as_string(), int(found[0]), str(found[1]),
                 int(found[2]), int(found[3]))


def months_of(filters: Filters) -> tuple[str | None, str | None, list[Any]]:
    """(first whole month, month after the last whole one, as 'YYYY-MM'; None: open) and the
    conditions on the facts that select the period's records outside those whole months."""
    start = None if filters.start is None else filters.start.astimezone(UTC).date()
    before = None if filters.before is None else filters.before.astimezone(UTC).date()
    first = None if start is None else (start if start.day == 1 else next_month(start))
    last = None if before is None else month_start(before)
    period = period_conditions(filters)
    if first is not None and last is not None and first >= last:  # no whole month
        return "9999-12", "0000-01", [and_(*period)] if period else []
    at = RecordFact.performed_at
    edges = []
    if first is not None and start is not None and first != start:
        edges.append(and_(*period, at < _instant(first) - HALF_SECOND))
    if last is not None and before is not None and last != before:
        edges.append(and_(*period, at >= _instant(last) - HALF_SECOND))
    return (None if first is None else first.strftime("%Y-%m"),
            None if last is None else last.strftime("%Y-%m"), edges)


def _instant(day: Any) -> datetime:
    return datetime.combine(day, datetime.min.time(), UTC)


def reader(conn: Connection, filters: Filters, quantity: str, grain: int = GRAIN_PHYSICIAN,
           stamp: Stamp | None = None) -> Callable[[int, bool], CellColumns] | None:
    """read(dimension, bounds): the grain's cells under `filters` from the entries (`cells`);
    None where they do not answer (the physician grain under a room or site filter: the room
    x physician grain answers it; a name matching nothing; before the first refresh).
    `stamp`: stamp_of(conn) where the caller read it already."""
    if grain == GRAIN_PHYSICIAN and (filters.rooms or filters.sites):
        return None
    ids = filters.name_ids(conn)
    stamp = stamp or stamp_of(conn)
    if ids is None or stamp is None or set(ids) - set(APPLIED):
        return None
    first, last, _ = months_of(filters)
    return lambda dimension, bounds: cells(conn, stamp, QUANTITIES[quantity], grain,
                                           dimension, bounds, first, last, ids)


def per_key(found: CellColumns, by_room: bool) -> dict[tuple[int, ...], tuple[np.ndarray, ...]]:
    """Per type (and room, `by_room`): the records, least and greatest value of each bucket
    summed over the cells (dense up to the last bucket held; +inf and -inf where none), as
    bucket_quantiles counts its groups."""
    keys = np.column_stack([found.type, *([found.room] if by_room else [])]).astype(np.int64)
    if len(keys) == 0:
        return {}
    groups, at = np.unique(keys, axis=0, return_inverse=True)
    group = np.repeat(at.reshape(-1), found.lengths)  # each bucket's group
    width = int(found.b.max(initial=0)) + 1
    slot = group * width + found.b
    n = np.bincount(slot, weights=found.n, minlength=len(groups) * width).astype(np.int64)
    lo, hi = np.full(len(n), np.inf), np.full(len(n), -np.inf)
    np.minimum.at(lo, slot, found.lo)
    np.maximum.at(hi, slot, found.hi)
    last = np.full(len(groups), -1)
    np.maximum.at(last, group, found.b)
    return {tuple(key): tuple(x[g * width:g * width + int(last[g]) + 1] for x in (n, lo, hi))
            for g, key in enumerate(groups.tolist())}


_CACHE: Kept[CellColumns] = Kept(KEPT)


def clear() -> None:
    """Forget every entry (tests; a process that wants its memory back)."""
    _CACHE.clear()


def cells(conn: Connection, stamp: Stamp, quantity: int, grain: int, dimension: int,
          bounds: bool, first: str | None, last: str | None,
          ids: dict[str, list[int]]) -> CellColumns:
    """The cells of one quantity, grain and dimension in the months [first, last) ('YYYY-MM',
    None: open) of the physicians and procedures in `ids` (a key absent: all), as read_cells
    returns them: from the entry for `stamp`, read in this snapshot (every month) when there
    is none (a second caller for the same entry waits for that read). The entries bounded by
    MAX_BYTES."""
    key = (stamp, quantity, grain, dimension, bounds)
    s = DoseBucket
    every = _CACHE.get(key, lambda: _by_month(read_cells(
        conn, s.quantity == quantity, s.grain == grain, s.dimension == dimension,
        bounds=bounds, months=True)), stale=lambda old: stamp.outdates(old[0]))
    _CACHE.fit(_bytes, MAX_BYTES, key)
    # the cells lie by month (`_by_month`): a period is one slice of cells and of buckets
    at = month_slice(every.month, first, last)
    begin, end = (int(x) for x in np.concatenate([[0], np.cumsum(every.lengths)])[at])
    cell = slice(int(at[0]), int(at[1]))
    found = CellColumns(every.part[cell], every.physician[cell], every.type[cell],
                        every.lengths[cell], every.b[begin:end], every.n[begin:end],
                        *((every.lo[begin:end], every.hi[begin:end]) if bounds else
                          (every.lo, every.hi)), every.month[cell], every.room[cell],
                        every.site[cell])
    keep = np.ones(len(found.month), dtype=bool)
    for column, wanted in (("physician_id", found.physician), ("procedure_type_id", found.type),
                           ("room_id", found.room), ("site_id", found.site)):
        if column in ids:
            keep &= np.isin(wanted, ids[column])
    return found if keep.all() else found.kept(keep)


def _bytes(cells: CellColumns) -> int:
    return sum(x.nbytes for x in vars(cells).values())


def month_slice(months: np.ndarray, first: str | None, last: str | None) -> np.ndarray:
    """Where the months [first, last) ('YYYY-MM', None: open) begin and end in ascending month
    numbers (202611 for 2026-11)."""
    return np.searchsorted(months, [_number(first) if first else 0,
                                    _number(last) if last else 1_000_000])


def _number(month: str) -> int:
    """'2026-11' as 202611 (how read_cells numbers the months)."""
    return int(month[:4]) * 100 + int(month[5:7])


def _by_month(found: CellColumns) -> CellColumns:
    """The cells ordered by month, each with its buckets, in the smallest dtypes that hold
    them (keys int32, buckets int16, records int32: about 6 bytes a bucket)."""
    order = np.argsort(found.month, kind="stable")
    starts = np.cumsum(found.lengths) - found.lengths
    lengths = found.lengths[order]
    held = np.repeat(starts[order] - (np.cumsum(lengths) - lengths), lengths) + \
        np.arange(int(lengths.sum()))
    bounded = len(found.lo) == len(found.b)
    small = np.int32
    return CellColumns(found.part[order].astype(np.int16), found.physician[order].astype(small),
                       found.type[order].astype(small), lengths.astype(small),
                       found.b[held].astype(np.int16), found.n[held].astype(small),
                       found.lo[held] if bounded else found.lo,
                       found.hi[held] if bounded else found.hi,
                       *(x[order].astype(small) for x in (found.month, found.room, found.site)))
