"""Groupings of the analysis frame and grouped quantiles: what every figure is built from.

Why one module: compliance, dose statistics, reference levels and alerts all group the same
records the same ways (by physician, room, procedure, month, ...) and take quantiles the same
way, so a per-snapshot cache of the group codes and sorted values serves them all. Percentiles
use linear interpolation (numpy's default), bit for bit (audit.analytics.quantiles); months are
calendar months in UTC.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from functools import cache
from importlib import resources
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from audit.analytics.bands import bmi_band_codes, operator_codes
from audit.analytics.quantiles import group_layout, grouped_in_layout, value_order
from audit.analytics.snapshot import Snapshot, month_label, to_datetime
from audit.vocab import DoseQuantity, WeightBand

QUANTITIES: tuple[str, ...] = tuple(DoseQuantity.values())
GROUPINGS: tuple[str, ...] = ("physician", "room", "procedure", "month", "site", "technologist",
                              "levels", "weight_band", "bmi_band", "operator")
#: The groupings by a name id, and the frame column holding the id.
ID_COLUMNS = {"physician": "physician_id", "room": "room_id", "procedure": "type_id",
              "site": "site_id", "technologist": "technologist_id"}
T = TypeVar("T")


# --- groupings --------------------------------------------------------------------------------

def group_codes(snap: Snapshot, by: str | None) -> tuple[np.ndarray, list[str]]:
    """Per-record group number 0..k-1 and the k labels, for a grouping name (or None: one
    group, "all")."""
    r = snap.records
    if by is None:
        return np.zeros(len(r), dtype=np.int64), ["all"]
    if by == "month":
        months = r["month"].to_numpy().astype(np.int64)
        if not len(months):
            return months, []
        base = int(months.min())
        return months - base, [month_label(base + i) for i in range(int(months.max()) - base + 1)]
    if by == "levels":
        levels = r["n_levels"].to_numpy().astype(np.int64)
        top = int(levels.max()) if len(levels) else 0
        return levels, [str(i) for i in range(top + 1)]
    if by == "weight_band":
        return weight_band_codes(r["weight_kg"].to_numpy())
    if by == "bmi_band":  # issue 15: fair comparisons (audit.analytics.bands)
        return bmi_band_codes(r["bmi"].to_numpy())
    if by == "operator":
        return operator_codes(r["operator"].to_numpy())
    if by not in ID_COLUMNS:
        raise ValueError(f"cannot group by {by!r}; allowed: {', '.join(GROUPINGS)}")
    ids = r[ID_COLUMNS[by]].to_numpy().astype(np.int64)
    labels = snap.labels(by)
    size = int(max(labels.index.max() if len(labels) else 0, ids.max() if len(ids) else 0)) + 1
    names = [""] * size
    for key, name in labels.items():
        names[int(key)] = str(name)
    return ids, names


@cache
def weight_bands() -> tuple[tuple[str, float, float], ...]:
    """(label, low, high) kg per band, low inclusive, high exclusive (audit/data/
    weight_bands.csv, read once). Weight stands in for body size where no height is recorded
    (no BMI; with one, `bmi_band`): Cushman 2016 found KAP about doubles from normal-weight to
    obese patients (docs/reference.md §4)."""
    text = resources.files("audit").joinpath("data/weight_bands.csv").read_text("utf-8")
    bands = tuple((r["band"], float(r["low_kg"]), float(r["high_kg"] or "inf"))
                  for r in csv.DictReader(text.splitlines()))
    labels = [b[0] for b in bands]
    if [*labels, WeightBand.UNKNOWN.value] != WeightBand.values():
        raise ValueError(f"weight_bands.csv bands {labels} differ from vocab.WeightBand")
    return bands


def weight_band_codes(weight_kg: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Band number per record (the last, "not recorded", where the weight is missing)."""
    bands = weight_bands()
    codes = np.full(len(weight_kg), len(bands), dtype=np.int64)
    for index, (_, low, high) in enumerate(bands):
        codes[(weight_kg >= low) & (weight_kg < high)] = index
    return codes, WeightBand.values()


def combined_codes(snap: Snapshot, by: Sequence[str]) -> tuple[np.ndarray, list[tuple[str, ...]]]:
    """Codes of a multi-key grouping (e.g. procedure x levels) and the label tuples (cached
    per snapshot: they do not depend on the filters)."""
    def build() -> tuple[np.ndarray, list[tuple[str, ...]]]:
        codes = np.zeros(len(snap.records), dtype=np.int64)
        labels: list[tuple[str, ...]] = [()]
        for name in by:
            c, names = group_codes(snap, name)
            codes = codes * max(len(names), 1) + c
            labels = [(*prefix, n) for prefix in labels for n in names]
        return codes, labels
    return cached(snap, f"groups:{tuple(by)!r}", build)


def _dense(series: pd.Series, fill: Any, dtype: Any) -> np.ndarray:
    size = int(series.index.max()) + 1 if len(series) else 1
    out = np.full(size, fill, dtype=dtype)
    out[series.index.to_numpy()] = series.to_numpy().astype(dtype)
    return out


def by_type(snap: Snapshot, column: str, fill: Any, dtype: Any) -> np.ndarray:
    """A catalog attribute spread over the records (one gather through a dense id array)."""
    dense = _dense(snap.types[column], fill, dtype)
    type_id = snap.records["type_id"].to_numpy()
    if len(type_id) and type_id.max() >= len(dense):
        dense = np.concatenate([dense, np.full(type_id.max() + 1 - len(dense), fill, dtype)])
    return dense[type_id]


def cached(snap: Snapshot, key: str, build: Callable[[], T]) -> T:
    """A value derived from the snapshot alone, built once per snapshot."""
    value = snap.cache.get(key)
    if value is None:
        value = snap.cache[key] = build()
    return value


def record_names(snap: Snapshot, rows: pd.DataFrame) -> pd.DataFrame:
    """Display columns for listed records (a few thousand at most)."""
    return pd.DataFrame({
        "record_id": rows["id"].to_numpy(),
        "performed_at": to_datetime(rows["t"]),
        "site": rows["site_id"].map(snap.sites).to_numpy(),
        "room": rows["room_id"].map(snap.rooms["label"]).to_numpy(),
        "physician": rows["physician_id"].map(snap.physicians).to_numpy(),
        "procedure": rows["type_id"].map(snap.types["code"]).to_numpy(),
    })


def per_level_values(snap: Snapshot, quantity: str) -> np.ndarray:
    """The quantity divided by the number of levels treated (at least 1): the fair basis for
    comparing operators, since dose rises with levels (docs/reference.md §4)."""
    def build() -> np.ndarray:
        levels = np.maximum(snap.records["n_levels"].to_numpy(), 1)
        return snap.values(quantity) / levels
    return cached(snap, f"per_level:{quantity}", build)


def _values_and_order(snap: Snapshot, quantity: str,
                      per_level: bool) -> tuple[np.ndarray, np.ndarray, int]:
    if not per_level:
        order, valid = snap.order(quantity)
        return snap.values(quantity), order, valid
    values = per_level_values(snap, quantity)

    def build() -> tuple[np.ndarray, int]:
        return value_order(values)
    order, valid = cached(snap, f"order_per_level:{quantity}", build)
    return values, order, valid


def quantiles_by(snap: Snapshot, mask: np.ndarray, by: Sequence[str], quantity: str,
                 qs: Sequence[float] = (0.5, 0.75),
                 per_level: bool = False) -> tuple[list[tuple[str, ...]], np.ndarray,
                                                   list[np.ndarray]]:
    """Group labels, counts (records with the quantity) and quantiles of one quantity.

    The values in ascending order, and in that order within each group, are kept per snapshot,
    and the filter's selection in value order per filter, so a call costs a gather and a
    compress (no sort)."""
    codes, labels = combined_codes(snap, by)
    values, order, valid = _values_and_order(snap, quantity, per_level)
    present = order[:valid]
    tag = f"{quantity}:{per_level}"
    values_sorted = cached(snap, f"sorted_values:{tag}", lambda: values[present])
    layout = cached(snap, f"group_layout:{tag}:{tuple(by)!r}",
                     lambda: group_layout(values_sorted, codes[present], len(labels)))
    memo = snap.cache.setdefault(f"sorted_masks:{tag}", {})
    found = memo.get(id(mask))
    if found is None or found[0] is not mask:  # the same filter's mask object: reuse
        if len(memo) > 16:
            memo.clear()
        found = memo[id(mask)] = (mask, mask[present])
    counts, result = grouped_in_layout(layout, found[1], qs)
    return labels, counts, result
