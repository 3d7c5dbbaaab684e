"""Groupings in SQL and their labels: the same groups, in the same order, with the same names as
audit.analytics.grouping.group_codes gives the frame.

A query groups by integer (or month text) codes; `decorate` turns them into the frame's label
columns and order: by id for names (physician, room, procedure, site, technologist), by month,
by levels, by band order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
from sqlalchemy.sql import ColumnElement, Subquery

from audit.analytics.snapshot import Snapshot
from audit.vocab import BmiBand, CarmOperator, WeightBand

#: Grouping name -> the column of audit.analytics.sql.records holding its code.
COLUMNS = {"physician": "physician_id", "room": "room_id", "procedure": "type_id",
           "site": "site_id", "technologist": "technologist_id", "month": "month",
           "levels": "n_levels", "weight_band": "weight_band", "bmi_band": "bmi_band",
           "operator": "operator"}
_BANDS = {"weight_band": WeightBand.values(), "bmi_band": BmiBand.values(),
          "operator": [*CarmOperator.values(), "not recorded"]}


def check(by: Sequence[str]) -> None:
    for name in by:
        if name not in COLUMNS:
            raise ValueError(f"cannot group by {name!r}; allowed: {', '.join(COLUMNS)}")


def keys(rec: Subquery, by: Sequence[str]) -> list[ColumnElement[Any]]:
    """The grouping columns, labelled g0, g1, ..."""
    check(by)
    return [rec.c[COLUMNS[name]].label(f"g{i}") for i, name in enumerate(by)]


def key_names(by: Sequence[str]) -> list[str]:
    return [f"g{i}" for i in range(len(by))]


def label_of(lookups: Snapshot, name: str, code: Any) -> str:
    if name == "month":
        return str(code)
    if name == "levels":
        return str(int(code))
    if name in _BANDS:
        return _BANDS[name][int(code)]
    return str(lookups.labels(name).get(int(code), ""))


def decorate(frame: pd.DataFrame, lookups: Snapshot, by: Sequence[str]) -> pd.DataFrame:
    """Rows in the frame's group order, the codes g0.. replaced by label columns named after
    the groupings (first)."""
    names = key_names(by)
    if names and len(frame):
        frame = frame.sort_values(names, kind="mergesort").reset_index(drop=True)
    labels = {name: [label_of(lookups, name, code) for code in frame[g]]
              for name, g in zip(by, names, strict=True)}
    rest = frame.drop(columns=names)
    return pd.concat([pd.DataFrame(labels, index=rest.index, dtype=object), rest], axis=1)


def codes_for(lookups: Snapshot, name: str, label: str) -> list[Any]:
    """The codes whose label is `label` (a drill-down within one group)."""
    if name == "month":
        return [label]
    if name == "levels":
        return [int(label)]
    if name in _BANDS:
        return [i for i, text in enumerate(_BANDS[name]) if text == label]
    found = lookups.labels(name)
    return [int(k) for k, v in found.items() if str(v) == label]
