"""Phase 2's plans of the dose buckets' mixtures (audit.analytics.sql.bucket_mixtures): per
group its median's ranks, the bracket around them, the rows it reads. `Classes`: the rows of
one call merged per physician's procedure and divisor, for the groups that hold them whole;
`single_type`: the groups of one procedure type and one divisor (a stratum's physicians)
bracketed together, a bucket's order being its values' order."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from audit.analytics.sql.bucket_picks import bracket, unique_rows


def ranks(total: int) -> tuple[int, int, float]:
    """The median's two ranks (0-based) among `total` values and percentile_cont's fraction
    between them."""
    position = 0.5 * (total - 1)
    first = math.floor(position)
    return first, min(first + 1, total - 1), position - first


@dataclass
class Plan:
    """A group's phase 2: its records, the median's ranks, the records wholly below the
    bracket, the rows in it (scaled bounds and records: where each holds one value, picked
    here) and `rows()`: those rows as strata rows and their divisors, by component then
    bucket (the windows read)."""

    total: int
    first: int
    last: int
    fraction: float
    below: int
    lo: np.ndarray
    hi: np.ndarray
    n: np.ndarray
    rows: Callable[[], tuple[np.ndarray, np.ndarray]]

    @classmethod
    def empty(cls) -> Plan:
        none = np.empty(0)
        return cls(0, 0, 0, 0.0, 0, none, none, none.astype(np.int64), lambda: (none, none))


class Classes:
    """The rows of one medians() call merged per class: the components of one physician's
    procedure (a pair) with the same divisor hold the same bounds in a bucket (the pair's), so
    their rows count as one. Built once a call (every group shares it), where the groups give
    each component one divisor. A group that holds its classes whole is planned on them (a
    physician across procedures, the overall median, a procedure's per-level median: a few
    hundred rows where it had tens of thousands); the others on their own rows."""

    def __init__(self, mixtures: Any, groups: Sequence[tuple[np.ndarray, np.ndarray]],
                 merge_from: int) -> None:
        s = mixtures.strata
        self.mixtures, self.merge_from = mixtures, merge_from
        divisor = np.full(len(s.keys), np.nan)
        for components, divisors in groups:
            divisor[components] = divisors
        self.divisor = np.where(np.isnan(divisor), 1.0, divisor)  # 1: in no group
        _, level = np.unique(self.divisor, return_inverse=True)
        found, self.class_of = unique_rows(np.column_stack([mixtures.pair, level.reshape(-1)]))
        count = len(found)
        order = np.argsort(self.class_of, kind="stable")  # each class's components
        self.members = order
        self.member_starts = np.searchsorted(self.class_of[order], np.arange(count + 1))
        self._merged = False

    def _merge(self) -> None:
        """The merged rows, on the first group planned on them."""
        s, width = self.mixtures.strata, self.mixtures.width
        count = len(self.member_starts) - 1
        scale = self.divisor[s.c]
        slot = self.class_of[s.c] * width + s.b
        counts = np.bincount(slot, weights=s.n, minlength=count * width)
        held = np.flatnonzero(counts)
        low, high = np.empty(count * width), np.empty(count * width)
        low[slot], high[slot] = s.lo / scale, s.hi / scale  # the same for every row of a slot
        self.lo, self.hi = low[held], high[held]
        self.n, self.b = counts[held].astype(np.int64), held % width
        self.starts = np.searchsorted(held // width, np.arange(count + 1))
        self._merged = True

    def plan(self, components: np.ndarray, divisors: np.ndarray) -> Plan | None:
        """The group's plan on its classes' rows; None where it does not hold them whole, is
        smaller than `merge_from` rows, or merges too little (`Mixtures._plan` then)."""
        m = self.mixtures
        if m.rows_of(components) < self.merge_from or \
                not np.array_equal(self.divisor[components], divisors):
            return None
        classes = np.unique(self.class_of[components])
        sizes = self.member_starts[classes + 1] - self.member_starts[classes]
        if int(sizes.sum()) != len(components) or len(classes) * 2 > len(components):
            return None
        if not self._merged:
            self._merge()
        at = gathered(self.starts, classes)
        n = self.n[at]
        total = int(n.sum())
        if total == 0:
            return Plan.empty()
        first, last, fraction = ranks(total)
        read, below = bracket(self.lo[at], self.hi[at], n, first, last)
        chosen = at[read]
        return Plan(total, first, last, fraction, below, self.lo[chosen], self.hi[chosen],
                     self.n[chosen], lambda: self._rows(chosen))

    def _rows(self, merged: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The strata rows of these merged rows (each class's components holding the
        bucket), by component then bucket, and their divisors."""
        m = self.mixtures
        classes = np.searchsorted(self.starts, merged, side="right") - 1
        sizes = self.member_starts[classes + 1] - self.member_starts[classes]
        components = self.members[gathered(self.member_starts, classes)]
        code = components * m.width + np.repeat(self.b[merged], sizes)
        rows = np.searchsorted(m.code, code)
        rows = np.sort(rows[m.code[np.minimum(rows, len(m.code) - 1)] == code])
        return rows, self.divisor[m.strata.c[rows]]


def gathered(starts: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """The positions starts[k]..starts[k + 1] - 1 of each key, in the keys' order."""
    sizes = starts[keys + 1] - starts[keys]
    begin = np.cumsum(sizes) - sizes
    return np.repeat(starts[keys] - begin, sizes) + np.arange(int(sizes.sum()))


def single_type(mixtures: Any, groups: Sequence[tuple[np.ndarray, np.ndarray]],
                which: list[int]) -> dict[int, Plan]:
    """The plans of the groups `which` whose components are all of one procedure type and
    share one divisor (the adjusted scorecard's strata: a stratum's physicians), bracketed
    together with no sort of their rows. A type's buckets cut its values in order, and one
    divisor keeps that order, so a group's k-th least lower bound lies in the bucket where its
    records counted bucket by bucket reach k; only that bucket's few rows (one a physician)
    are sorted. The same brackets as `bracket` (the value at a rank is the same whatever the
    order of ties), in a few numpy calls for every group instead of a dozen a group."""
    if not which:
        return {}
    s, width = mixtures.strata, mixtures.width
    components = [groups[g][0] for g in which]
    divisor = np.array([float(groups[g][1][0]) if len(groups[g][1]) else 1.0 for g in which])
    every = np.concatenate(components)
    held = mixtures.starts[every + 1] - mixtures.starts[every]
    rows = mixtures.rows[gathered(mixtures.starts, every)]
    group = np.repeat(np.repeat(np.arange(len(which)), [len(c) for c in components]), held)
    scale = divisor[group]
    lo, hi, n = s.lo[rows] / scale, s.hi[rows] / scale, s.n[rows]
    key = group * width + s.b[rows]
    counted = np.cumsum(np.bincount(key, weights=n, minlength=len(which) * width))
    ends = counted[width - 1::width]
    base = np.concatenate([[0.0], ends[:-1]])
    total = (ends - base).astype(np.int64)
    position = 0.5 * np.maximum(total - 1, 0)
    first = np.floor(position).astype(np.int64)
    last = np.minimum(first + 1, np.maximum(total - 1, 0))

    cells = np.bincount(key, weights=n, minlength=len(counted))  # records a group's bucket

    def at_rank(bound: np.ndarray, rank: np.ndarray) -> np.ndarray:
        """Per group, the bound (lo or hi) at which its records, counted in the bound's
        order, reach rank + 1: in the bucket where they reach it by buckets, its rows sorted."""
        cell = np.minimum(np.searchsorted(counted, base + rank + 1), len(counted) - 1)
        need = base + rank + 1 - (counted[cell] - cells[cell])  # records within that bucket
        inside = np.flatnonzero(np.isin(key, cell))
        order = inside[np.lexsort((bound[inside], key[inside]))]
        cum = np.cumsum(n[order])
        start = np.searchsorted(key[order], cell)  # each group's bucket's first row
        before = np.where(start > 0, cum[np.maximum(start - 1, 0)], 0)
        found = np.minimum(np.searchsorted(cum, before + need), len(order) - 1)
        return bound[order[found]] if len(order) else np.full(len(rank), np.nan)

    a, b = at_rank(lo, first), at_rank(hi, last)
    read = (hi >= a[group]) & (lo <= b[group])
    below = np.bincount(group, weights=np.where(hi < a[group], n, 0),
                        minlength=len(which)).astype(np.int64)
    plans: dict[int, Plan] = {}
    cuts = np.searchsorted(group, np.arange(len(which) + 1))
    for i, g in enumerate(which):
        if total[i] == 0:
            plans[g] = Plan.empty()
            continue
        mine = cuts[i] + np.flatnonzero(read[cuts[i]:cuts[i + 1]])
        chosen, scaled = rows[mine], scale[mine]
        plans[g] = Plan(int(total[i]), int(first[i]), int(last[i]),
                        float(position[i] - first[i]), int(below[i]), lo[mine], hi[mine],
                        n[mine], lambda chosen=chosen, scaled=scaled: (chosen, scaled))
    return plans
