"""The dose buckets' cells brought into Python column-wise: PostgreSQL joins every selected
cell's fields into a few byte strings, numpy reads them at once.

Why: the Physicians tab reads about 12,000 cells (1.7 million buckets) for a year's period at
10M records, per quantity. Fetched as rows, each cell became a Python tuple, its key a
Python tuple, its bytes one item of a join: 0.03-0.05 s of the interpreter per read, on the
lock every figure of the tab competes for. Joined in PostgreSQL (string_agg of the cells'
binary fields, int4send of their keys), the fetch is a handful of values whatever the number
of cells, and decoding is a few numpy calls.

Every aggregate of one query reads the group's rows in the same order, so the i-th key, the
i-th length and the i-th cell's bytes belong together.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import Connection, Integer, cast, func, literal, select

from audit.storage.models import DoseBucket


@dataclass
class CellColumns:
    """Cells column-wise: per cell its part, physician, type and number of buckets held
    (`lengths`); per bucket held, cell by cell, its bucket number `b`, records `n` and,
    where asked (`bounds`), its least and greatest value `lo`, `hi`; where asked (`months`),
    each cell's month as a number (`month`: 202611 for 2026-11), room and site."""

    part: np.ndarray
    physician: np.ndarray
    type: np.ndarray
    lengths: np.ndarray
    b: np.ndarray
    n: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    month: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    room: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    site: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))

    @classmethod
    def empty(cls) -> CellColumns:
        i, f = np.empty(0, dtype=np.int64), np.empty(0)
        return cls(i, i, i, i, i, i, f, f, i, i, i)

    def kept(self, keep: np.ndarray) -> CellColumns:
        """The cells where `keep` (a boolean per cell) holds, with their buckets."""
        held = np.repeat(keep, self.lengths)
        bounded = len(self.lo) == len(held)
        placed = len(self.month) == len(keep)
        return CellColumns(self.part[keep], self.physician[keep], self.type[keep],
                           self.lengths[keep], self.b[held], self.n[held],
                           self.lo[held] if bounded else self.lo,
                           self.hi[held] if bounded else self.hi,
                           *((x[keep] if placed else x) for x in (self.month, self.room,
                                                                   self.site)))


def read_cells(conn: Connection, *where: Any, bounds: bool = False,
               months: bool = False) -> CellColumns:
    """The cells of dose_bucket matching `where`, column-wise (module doc). `bounds`: also
    each bucket's least and greatest value (the unsplit cells hold them); `months`: each
    cell's month, room and site."""
    s = DoseBucket
    nothing = literal(b"")
    width = func.coalesce(func.length(s.buckets), 0)
    columns = [func.string_agg(func.int4send(cast(s.part, Integer)), nothing),
               func.string_agg(func.int4send(s.physician_id), nothing),
               func.string_agg(func.int4send(s.procedure_type_id), nothing),
               func.string_agg(func.int4send(func.length(s.records).op("/")(4)), nothing),
               func.string_agg(func.int4send(width), nothing),
               func.string_agg(s.buckets, nothing), func.string_agg(s.records, nothing)]
    if bounds:
        columns += [func.string_agg(s.low, nothing), func.string_agg(s.high, nothing)]
    if months:
        columns += [func.string_agg(func.int4send(cast(func.replace(s.month, "-", ""),
                                                       Integer)), nothing),
                    func.string_agg(func.int4send(s.room_id), nothing),
                    func.string_agg(func.int4send(s.site_id), nothing)]
    compiled = select(*columns).where(*where).compile(
        dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    # PostgreSQL's binary format: bytea as its bytes, not as hex text to parse
    with conn.connection.driver_connection.cursor(binary=True) as cursor:  # type: ignore[union-attr]
        cursor.execute(str(compiled), compiled.params)
        row = cursor.fetchone()
    if row is None or row[0] is None:
        return CellColumns.empty()
    part, physician, type_, lengths, held_bytes, held, records = (
        np.frombuffer(x, dtype=">i4").astype(np.int64) if i < 5 else x
        for i, x in enumerate(row[:7]))
    n = np.frombuffer(records or b"", dtype="<i4").astype(np.int64)
    # a dense cell holds every bucket from 0 (its list is empty); a sparse one lists them
    starts = np.cumsum(lengths) - lengths
    b = np.arange(len(n), dtype=np.int64) - np.repeat(starts, lengths)
    sparse = np.repeat(held_bytes > 0, lengths)
    b[sparse] = np.frombuffer(held or b"", dtype="<i2")
    lo = hi = np.empty(0)
    if bounds:
        lo = np.frombuffer(row[7] or b"", dtype="<f8")
        hi = np.frombuffer(row[8] or b"", dtype="<f8")
    month, room, site = ((np.frombuffer(x, dtype=">i4").astype(np.int64) for x in row[-3:])
                         if months else (np.empty(0, dtype=np.int64),) * 3)
    return CellColumns(part, physician, type_, lengths, b, n, lo, hi, month, room, site)
