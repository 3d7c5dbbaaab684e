"""The dose buckets' arithmetic, fuzzed in-process (no database): from counts per bucket, the
plan of each group's quantiles (audit.analytics.sql.bucket_quantiles.plan: a value known where
a bucket holds one value, else a rank inside the bucket for phase 2) and the finish
(percentile_cont's interpolation) give exactly the quantiles of a sort of every value, for
any values (ties, zeros, one record, groups of one value), any bucket edges (none, more than
the values, edges between ties), any groups; and the split cells' sums (bucket_groups._Sums)
count every record once; and a mixture's bracket (bucket_mixtures: the physician scorecards'
medians of scaled components) holds the ranks of a sort of every scaled value. Phase 2 is
simulated here by the sorted values of each bucket."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from audit.analytics.quantiles import group_layout, grouped_in_layout, value_order
from audit.analytics.sql.bucket_groups import _Sums
from audit.analytics.sql.bucket_picks import bracket, pick, weighted_median
from audit.analytics.sql.bucket_quantiles import LEAST_POSITIVE, finish, plan

VALUES = st.one_of(st.sampled_from([0.0, 0.5, 1.0, 1.0, 2.25, 7.0]),
                   st.floats(min_value=0.0, max_value=5000.0, allow_nan=False))
RECORDS = st.lists(st.tuples(st.integers(0, 3), VALUES), min_size=1, max_size=250)
EDGES = st.lists(st.floats(min_value=0.0, max_value=5000.0, allow_nan=False), max_size=40)
QS = st.lists(st.sampled_from([0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0]), min_size=1, max_size=5)


def percentile_cont(ordered: np.ndarray, q: float) -> float:
    """PostgreSQL's percentile_cont: lo + (hi - lo) * fraction between the two nearest."""
    position = q * (len(ordered) - 1)
    below = math.floor(position)
    lo, hi = float(ordered[below]), float(ordered[min(below + 1, len(ordered) - 1)])
    return lo + (hi - lo) * (position - below)


@settings(max_examples=300, deadline=None)
@given(records=RECORDS, edges=EDGES, qs=QS)
def test_the_plan_and_finish_equal_a_sort_of_every_value(
        records: list[tuple[int, float]], edges: list[float], qs: list[float]) -> None:
    bounds = np.array(sorted(set(edges)))
    frame = pd.DataFrame(records, columns=["t", "v"])
    # width_bucket's buckets: 0 below the first edge, i in [edge i-1, edge i)
    frame["b"] = np.searchsorted(bounds, frame["v"].to_numpy(), side="right")
    counted = frame.groupby(["t", "b"]).agg(n=("v", "size"), lo=("v", "min"),
                                            hi=("v", "max")).reset_index()
    plans, wanted, sizes = plan(counted, ["t"], qs)
    read: dict[tuple[tuple[tuple[int, ...], int], int], float] = {}
    for (key, b), ranks in wanted.items():
        inside = np.sort(frame[(frame["t"] == key[0]) & (frame["b"] == b)]["v"].to_numpy())
        if any(rank >= 0 for rank in ranks):  # the size a window's direction needs
            assert sizes[(key, b)] == len(inside)
        for rank in ranks:
            read[((key, b), rank)] = float(inside[inside > 0].min()) \
                if rank == LEAST_POSITIVE else float(inside[rank])
    rows = {int(row[0]): row for row in finish(plans, read)}
    for t, group in frame.groupby("t"):
        ordered = np.sort(group["v"].to_numpy())
        row = rows[int(t)]
        assert row[1] == len(ordered)
        assert row[2:2 + len(qs)] == [percentile_cont(ordered, q) for q in qs]
        positive = ordered[ordered > 0]
        assert row[2 + len(qs):] == ([float(positive.min()), float(positive.max())]
                                     if len(positive) else [None, None])


@settings(max_examples=200, deadline=None)
@given(cells=st.lists(st.tuples(st.integers(0, 2), st.integers(0, 3),
                                st.lists(st.integers(0, 9), max_size=12),
                                st.integers(0, 4)), max_size=30))
def test_split_cells_sum_every_record_once(
        cells: list[tuple[int, int, list[int], int]]) -> None:
    """Cells (type, part, their records' buckets, records without a value), summed by group:
    each group's count per bucket and its missing are the records'."""
    sums = _Sums()
    expected: dict[tuple[int, int, int], int] = {}
    missing: dict[tuple[int, int], int] = {}
    for t, part, held, without in cells:
        b, n = np.unique(np.array(held, dtype=np.int64), return_counts=True)
        sums.add((t, part), b, n, without)
        for bucket in held:
            expected[(t, part, bucket)] = expected.get((t, part, bucket), 0) + 1
        missing[(t, part)] = missing.get((t, part), 0) + without
    found = sums.frame(["t", "k"])
    assert {(int(t), int(k), int(b)): int(n) for t, k, b, n in
            found[["t", "k", "b", "n"]].itertuples(index=False)} == expected
    assert sums.missing == missing


#: A component of a mixture: its type's edges (0-3), a divisor (levels, or a stratum's median),
#: its values.
COMPONENTS = st.lists(st.tuples(st.integers(0, 3),
                                st.sampled_from([1.0, 2.0, 3.0, 0.37, 1.9, 41.5]),
                                st.lists(VALUES, min_size=1, max_size=60)),
                      min_size=1, max_size=8)


@settings(max_examples=300, deadline=None)
@given(components=COMPONENTS, edges=st.lists(EDGES, min_size=4, max_size=4),
       share=st.floats(min_value=0.0, max_value=1.0))
def test_a_mixtures_bracket_holds_the_ranks_of_a_sort_of_every_scaled_value(
        components: list[tuple[int, float, list[float]]], edges: list[list[float]],
        share: float) -> None:
    """bucket_picks.bracket: from each component's buckets (records, least and greatest
    value, divided by the component's divisor), the rows it says to read, with the records of
    the rows wholly below, hold the k-th and k+1-th value of the union of every value divided
    by its divisor; the pick of those ranks and the median (weighted_median of the values
    with their multiplicities) equal a sort's."""
    lo, hi, n, inside = [], [], [], []
    every = []
    for t, divisor, values in components:
        bounds = np.array(sorted(set(edges[t])))
        v = np.array(values)
        b = np.searchsorted(bounds, v, side="right")
        for bucket in np.unique(b):
            held = v[b == bucket]
            lo.append(float(held.min()) / divisor)
            hi.append(float(held.max()) / divisor)
            n.append(len(held))
            inside.append(np.sort(held / divisor))
        every.append(v / divisor)
    ordered = np.sort(np.concatenate(every))
    first = min(int(share * len(ordered)), len(ordered) - 1)
    last = min(first + 1, len(ordered) - 1)
    read, below = bracket(np.array(lo), np.array(hi), np.array(n), first, last)
    assert 0 <= below <= first
    held = np.sort(np.concatenate([inside[r] for r in read.tolist()]))
    assert [held[first - below], held[last - below]] == [ordered[first], ordered[last]]
    assert pick(held, np.ones(len(held), dtype=np.int64),
                [first - below, last - below]) == [ordered[first], ordered[last]]
    values, counts = np.unique(ordered, return_counts=True)
    assert weighted_median(values, counts) == percentile_cont(ordered, 0.5)


@settings(max_examples=300, deadline=None)
@given(rows=st.lists(st.tuples(st.one_of(VALUES, st.just(math.nan)), st.integers(0, 4),
                               st.booleans()), min_size=1, max_size=80),
       qs=QS)
def test_the_frames_value_order_gives_each_groups_quantiles_of_a_sort(
        rows: list[tuple[float, int, bool]], qs: list[float]) -> None:
    """quantiles.value_order (an unstable sort of the present values, nan last) and the
    group layout built from it give each group's quantiles over the selected records to the
    last bit as a stable sort of every value did (what the frame used before), ties and
    missing values included, and each equals percentile_cont of a sort of the group's
    values (to rounding: the two interpolations may differ in the last place)."""
    values = np.array([v for v, _, _ in rows])
    codes = np.array([g for _, g, _ in rows])
    mask = np.array([m for _, _, m in rows])
    order, valid = value_order(values)
    assert sorted(order.tolist()) == list(range(len(values)))
    assert valid == int(np.count_nonzero(~np.isnan(values)))
    assert not np.isnan(values[order[:valid]]).any() and np.isnan(values[order[valid:]]).all()

    def quantiles(order: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        present = order[:valid]
        layout = group_layout(values[present], codes[present], 5)
        return grouped_in_layout(layout, mask[present], qs)
    counts, found = quantiles(order)
    stable_counts, stable = quantiles(np.argsort(values, kind="stable"))
    assert counts.tolist() == stable_counts.tolist()
    for column, before in zip(found, stable, strict=True):
        assert np.array_equal(column, before, equal_nan=True)
    for g in range(5):
        mine = np.sort(values[(codes == g) & mask & ~np.isnan(values)])
        assert counts[g] == len(mine)
        for q, column in zip(qs, found, strict=True):
            if len(mine):
                assert math.isclose(column[g], percentile_cont(mine, q), rel_tol=1e-15,
                                    abs_tol=1e-300)
