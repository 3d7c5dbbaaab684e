"""Reference levels in SQL: room medians per procedure (percentile_cont), the local DRL or
typical value from them (the frame's own rules: reference_levels.drl_rows, given the counts and
medians), and the share of records above the level in force."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import and_, case, func
from sqlalchemy.sql import ColumnElement

from audit.analytics.grouping import QUANTITIES
from audit.analytics.reference_levels import (
    DRL_COLUMNS,
    drl_rows,
    drl_thresholds,
    reference_column,
)
from audit.analytics.sql.counts import counted
from audit.analytics.sql.dose import quantiles_together
from audit.analytics.sql.scope import Scope


def _size(index: pd.Index, found: pd.Series) -> int:
    top = max(int(index.max()) if len(index) else 0, int(found.max()) if len(found) else 0)
    return top + 1


def local_drl(scope: Scope, quantity: str, cells: pd.DataFrame, types: pd.DataFrame,
              min_room_records: int | None = None,
              min_rooms: int | None = None) -> pd.DataFrame:
    """One quantity's local figures from its medians per procedure x room (`cells`: g0 type
    id, g1 room id, v_n, v_q0) and per procedure (`types`)."""
    limits = drl_thresholds(scope.lookups, min_rooms, min_room_records)
    n_types = _size(scope.lookups.types.index, cells["g0"])
    n_rooms = _size(scope.lookups.rooms.index, cells["g1"])
    type_n = np.zeros(n_types, dtype=np.int64)
    type_median = np.full(n_types, np.nan)
    type_n[types["g0"].to_numpy(dtype=np.int64)] = types["v_n"].to_numpy()
    type_median[types["g0"].to_numpy(dtype=np.int64)] = types["v_q0"].to_numpy()
    room_n = np.zeros((n_types, n_rooms), dtype=np.int64)
    room_median = np.full((n_types, n_rooms), np.nan)
    at = (cells["g0"].to_numpy(dtype=np.int64), cells["g1"].to_numpy(dtype=np.int64))
    room_n[at] = cells["v_n"].to_numpy()
    room_median[at] = cells["v_q0"].to_numpy()
    return drl_rows(scope.lookups, quantity, limits, type_n, type_median, room_n, room_median)


#: Another way to the medians local_drl takes: given the period's scope and a reference
#: column, (per procedure x room, per procedure) or None where it cannot answer.
Medians = Callable[[Scope, str], tuple[pd.DataFrame, pd.DataFrame] | None]


def local_drls(scope: Scope, quantities: Sequence[str] = QUANTITIES,
               min_room_records: int | None = None,
               min_rooms: int | None = None, medians: Medians | None = None) -> pd.DataFrame:
    """audit.analytics.reference_levels.local_drls in SQL (over the period only): every
    quantity's room medians and pooled medians in one scan, or from `medians` where it
    answers (the dose buckets: audit.analytics.sql.dose_buckets)."""
    if not quantities:
        return pd.DataFrame(columns=DRL_COLUMNS)
    period = scope.narrowed(scope.filters.period)
    known: dict[str, tuple[pd.DataFrame, pd.DataFrame]] = {}
    for q in quantities if medians is not None else ():
        got = medians(period, reference_column(q))  # type: ignore[misc]
        if got is not None:
            known[q] = got
    rest = [q for q in quantities if q not in known]
    if rest:
        values = {f"v{i}": period.col(reference_column(q)) for i, q in enumerate(rest)}
        sets = [("procedure", "room"), ("procedure",)]
        found = quantiles_together(period, sets, values, (0.5,))

        def one(frame: pd.DataFrame, i: int) -> pd.DataFrame:
            return frame.rename(columns={f"v{i}_n": "v_n", f"v{i}_q0": "v_q0"})

        known |= {q: (one(found[sets[0]], i), one(found[sets[1]], i))
                  for i, q in enumerate(rest)}
    frames = [local_drl(period, q, *known[q], min_room_records, min_rooms)
              for q in quantities]
    return pd.concat(frames, ignore_index=True)


def level_of_type(scope: Scope, levels: pd.DataFrame) -> ColumnElement[float]:
    """Each record's reference level (NULL where its procedure has none)."""
    known = levels.dropna(subset=["value"])
    whens = {int(t): float(v) for t, v in zip(known["type_id"], known["value"], strict=True)}
    if not whens:
        return case((scope.col("type_id") < 0, 0.0))  # always NULL
    return case(whens, value=scope.col("type_id"))


def share_above_reference(scope: Scope, levels: pd.DataFrame, by: str | None = None,
                          quantity: str = "dap_gycm2") -> pd.DataFrame:
    """audit.analytics.reference_levels.share_above_reference in SQL, given the levels in
    force (reference_levels.levels_in_force)."""
    return shares_above(counted(scope, by, above_sums(scope, levels, quantity),
                                keep="records"))


def above_sums(scope: Scope, levels: pd.DataFrame,
               quantity: str) -> dict[str, ColumnElement[Any]]:
    """The counts share_above_reference divides (keep="records")."""
    v = scope.col(reference_column(quantity))
    level = level_of_type(scope, levels)
    measurable = and_(v.is_not(None), level.is_not(None))
    return {"records": func.count().filter(measurable),
            "above": func.count().filter(and_(measurable, v > level))}


def shares_above(frame: pd.DataFrame) -> pd.DataFrame:
    n = frame["records"].to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        frame["share_above"] = np.where(n > 0, frame["above"].to_numpy() / np.maximum(n, 1),
                                        np.nan)
    return frame.reset_index(drop=True)


