"""The physician grain's month cells (audit.analytics.sql.month_cells) as dense sums over the
months: a period of whole months is then one subtraction per key and bucket, not a sum over
every month's cells.

Why: at 10M records a year's strata are about two million buckets held (twelve months of a
thousand strata, each with most of its type's 256 buckets). Summing them per stratum and
bucket took 14 ms of Python for each of the Physicians tab's quantities at every period
change (bucket_mixtures.read_strata). Kept as running totals over the months
(`cum[i]`: the records of the months before month i), a period [i0, i1) is cum[i1] -
cum[i0]: a thousand strata x 257 buckets. The bounds (each bucket's least and greatest value)
do not subtract: they are kept per month and reduced over the period's months (the physician x
procedure pairs: a few hundred rows a month).

The same entries as month_cells (its Stamp: the state the cells were read in), built from them
on first use; the same answers (tests/analytics/test_month_sums.py compares them); bounded in
bytes, and a cube larger than a quarter of the bound is not built (the caller sums the cells,
as before: many physicians and procedures with few records a month make the dense form larger
than the cells).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sqlalchemy import Connection

from audit.analytics.sql import month_cells
from audit.analytics.sql.bucket_picks import unique_rows
from audit.analytics.sql.dose_buckets import GRAIN_PHYSICIAN, QUANTITIES
from audit.analytics.sql.kept import Kept
from audit.filters import Filters

#: The cubes' bytes at most (least recently used dropped first); one larger than a quarter of
#: this is not built. At 10M records over three years: about 110 MB for the Physicians tab's
#: three quantities.
MAX_BYTES = 192 * 2**20


@dataclass
class Sums:
    """A period's records per key (physician, type, part; ascending) and bucket, and where
    asked each bucket's least and greatest value (+inf and -inf where none)."""

    keys: np.ndarray
    n: np.ndarray
    lo: np.ndarray | None
    hi: np.ndarray | None


@dataclass
class _Cube:
    months: np.ndarray
    keys: np.ndarray
    cum: np.ndarray
    lo: np.ndarray | None
    hi: np.ndarray | None

    @property
    def nbytes(self) -> int:
        return sum(x.nbytes for x in vars(self).values() if x is not None)


_CUBES: Kept[_Cube | None] = Kept(8)


def clear() -> None:
    """Forget every cube (tests)."""
    _CUBES.clear()


def summed(conn: Connection, stamp: month_cells.Stamp, quantity: str, dimension: int,
           bounds: bool, filters: Filters) -> Sums | None:
    """The quantity's cells of `dimension` at the physician grain in the filters' whole
    months, summed per key and bucket, of the physicians and procedures they name; None
    where the sums do not answer (a room or site, days of a month the period cuts, a name
    matching nothing, a cube too large): the caller sums the cells."""
    first, last, edges = month_cells.months_of(filters)
    ids = filters.name_ids(conn)
    if edges or filters.rooms or filters.sites or ids is None or \
            set(ids) - {"physician_id", "procedure_type_id"}:
        return None
    key = (stamp, quantity, dimension, bounds)
    cube = _CUBES.get(key, lambda: _built(conn, stamp, quantity, dimension, bounds),
                      stale=lambda old: stamp.outdates(old[0]))
    _CUBES.fit(lambda c: 0 if c is None else c.nbytes, MAX_BYTES, key)
    if cube is None:
        return None
    at = month_cells.month_slice(cube.months, first, last)
    i0, i1 = int(at[0]), int(max(at[0], at[1]))
    keep = np.ones(len(cube.keys), dtype=bool)
    for j, column in enumerate(("physician_id", "procedure_type_id")):
        if column in ids:
            keep &= np.isin(cube.keys[:, j], ids[column])
    n = (cube.cum[i1, keep] - cube.cum[i0, keep]).astype(np.int64)
    if cube.lo is None or cube.hi is None:
        return Sums(cube.keys[keep], n, None, None)
    if i1 == i0:
        return Sums(cube.keys[keep], n, np.full(n.shape, np.inf), np.full(n.shape, -np.inf))
    return Sums(cube.keys[keep], n, cube.lo[i0:i1, keep].min(axis=0),
                cube.hi[i0:i1, keep].max(axis=0))


def _built(conn: Connection, stamp: month_cells.Stamp, quantity: str, dimension: int,
           bounds: bool) -> _Cube | None:
    """Every month's cells (month_cells' entry) as running totals, and per month the bounds;
    None where it would exceed a quarter of MAX_BYTES."""
    every = month_cells.cells(conn, stamp, QUANTITIES[quantity], GRAIN_PHYSICIAN, dimension,
                              bounds, None, None, {})
    months, month_at = np.unique(every.month, return_inverse=True)
    keys, key_at = unique_rows(np.column_stack([every.physician, every.type, every.part])
                               .astype(np.int64))
    width = int(every.b.max(initial=0)) + 1
    m, k = len(months), len(keys)
    size = (m + 1) * k * width * 4 + (2 * m * k * width * 8 if bounds else 0)
    if size > MAX_BYTES // 4 or m * k * width >= 2**31:
        return None
    slots = (month_at.reshape(-1) * k + key_at) * width  # each cell's first slot
    at = np.repeat(slots.astype(np.int32), every.lengths) + every.b  # each bucket's
    cum = np.zeros((m + 1, k, width), dtype=np.int32)
    cum[1:].reshape(-1)[at] = every.n  # a cell per month, key: each slot once
    np.cumsum(cum, axis=0, out=cum)
    lo = hi = None
    if bounds:
        lo, hi = np.full(m * k * width, np.inf), np.full(m * k * width, -np.inf)
        lo[at], hi[at] = every.lo, every.hi
        lo, hi = lo.reshape(m, k, width), hi.reshape(m, k, width)
    return _Cube(months, keys, cum, lo, hi)
