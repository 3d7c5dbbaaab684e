"""The arithmetic of the dose buckets' mixtures (audit.analytics.sql.bucket_mixtures), on
numpy arrays alone: distinct key rows, sums per index, the bracket of two ranks among bucket
rows, a pick at ranks of a multiset, and percentile_cont's interpolation."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def unique_rows(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """np.unique(keys, axis=0, return_inverse=True) for rows of non-negative integers, as one
    integer per row (mixed radix: ten times faster than sorting rows)."""
    if len(keys) == 0:
        return keys, np.empty(0, dtype=np.int64)
    radix = keys.max(axis=0) + 1
    code = np.zeros(len(keys), dtype=np.int64)
    for j in range(keys.shape[1]):
        code = code * radix[j] + keys[:, j]
    found, inverse = np.unique(code, return_inverse=True)
    rows = np.empty((len(found), keys.shape[1]), dtype=np.int64)
    for j in reversed(range(keys.shape[1])):
        found, rows[:, j] = np.divmod(found, radix[j])
    return rows, inverse.reshape(-1)


def summed(index: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The weights summed per index (0 where none), as a dense array up to the largest."""
    return np.bincount(index, weights=weights).astype(np.int64) if len(index) else \
        np.zeros(0, dtype=np.int64)



def bracket(lo: np.ndarray, hi: np.ndarray, n: np.ndarray, first: int,
            last: int) -> tuple[np.ndarray, int]:
    """The rows (buckets, scaled: every value of row i lies in [lo[i], hi[i]]) whose values can
    be those of ranks first..last (0-based) of the union, and the records of the rows wholly
    below them (module doc, phase 2)."""
    by_low = np.argsort(lo)  # ties: the same value whatever their order
    a = lo[by_low][int(np.searchsorted(np.cumsum(n[by_low]), first + 1))]
    by_high = np.argsort(hi)
    b = hi[by_high][int(np.searchsorted(np.cumsum(n[by_high]), last + 1))]
    return np.flatnonzero((hi >= a) & (lo <= b)), int(n[hi < a].sum())


def pick(values: np.ndarray, weights: np.ndarray, ranks: Sequence[int]) -> list[float]:
    """The values at these ranks (0-based) of a multiset given as values and multiplicities."""
    order = np.argsort(values)
    cum = np.cumsum(weights[order])
    at = np.searchsorted(cum, np.asarray(ranks) + 1)
    return [float(x) for x in values[order][at]]


def interpolate(a: float, c: float, fraction: float) -> float:
    """percentile_cont between the two ranks, as PostgreSQL computes it."""
    return a if fraction == 0 else a + (c - a) * fraction


def weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    """percentile_cont(0.5) of a multiset (values, multiplicities)."""
    total = int(weights.sum())
    if total == 0:
        return math.nan
    position = 0.5 * (total - 1)
    first = math.floor(position)
    a, c = pick(values, weights, [first, min(first + 1, total - 1)])
    return interpolate(a, c, position - first)
