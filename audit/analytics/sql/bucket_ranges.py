"""The SQL of value ranges of the dose buckets under the filters, for phase 2 of the bucket
quantiles (audit.analytics.sql.bucket_quantiles): one template compiled per figure and
repeated by renaming its placeholders."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from sqlalchemy import Connection, Float, Integer, bindparam, select

from audit.analytics.snapshot import Snapshot
from audit.analytics.sql.dose_buckets import FACTS, edge_lists, facts_of, stored_of, value_of
from audit.analytics.sql.records import period_conditions
from audit.filters import Filters
from audit.storage.models import RecordFact, Room


def edges_of(conn: Connection, quantity: str) -> dict[int, np.ndarray]:
    """Each type's bucket bounds: bucket b is [E[b], E[b + 1])."""
    return {t: np.array([-math.inf, *e, math.inf]) for t, e in edge_lists(conn, quantity).items()}


def _number(name: str) -> Any:
    """A float parameter of the compiled template (typed: an untyped one would be cast to
    INTEGER, which truncates a value)."""
    return bindparam(name, 0.0, type_=Float)


class Ranges:
    """SQL of bucket ranges under the filters, compiled once per figure and repeated by
    placeholder: a few hundred ranges built as SQLAlchemy statements and compiled took
    0.2-0.5 s of Python, more than PostgreSQL took to run them. `records(i, key, b, below)`
    is the text of a subquery of a bucket's values `v` (group key, bucket; `below`: only those
    under it), each an index range on (type, value), its parameters added to `params`."""

    def __init__(self, conn: Connection, filters: Filters, quantity: str, by_room: bool,
                 lookups: Snapshot) -> None:
        self.edges = edges_of(conn, quantity)
        self.kap = quantity == "kap_corrected_gycm2"
        self.by_room = by_room
        v, stored = value_of(quantity), stored_of(quantity)
        where = [RecordFact.procedure_type_id == bindparam("t", 0, type_=Integer), v.is_not(None),
                 *(filters.id_conditions(conn, FACTS) or []), *period_conditions(filters)]
        if by_room:
            where.append(RecordFact.room_id == bindparam("room", 0, type_=Integer))
        if self.kap:
            # KAP corrected is KAP x the room's factor: a bucket's range of the product is a
            # range of the stored KAP per factor (a little margin for the rounding of the
            # division, then the product tested exactly)
            where += [Room.kap_correction_factor == _number("f"),
                      stored >= _number("slo"), stored <= _number("shi"),
                      v >= _number("lo"), v < _number("hi")]
            self.factors = sorted({float(f) for f in lookups.rooms["kap_factor"]})
            self.room_factor = {int(r): float(f) for r, f in lookups.rooms["kap_factor"].items()}
        else:
            where += [stored >= _number("lo"), stored < _number("hi")]
        compiled = select(v.label("v")).select_from(facts_of(quantity)).where(*where).compile(
            dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
        self.template = str(compiled)
        self.params: dict[str, Any] = {k: val for k, val in compiled.params.items()
                                       if k not in ("t", "room", "f", "slo", "shi", "lo", "hi")}

    def _one(self, name: str, values: dict[str, Any]) -> str:
        sql = self.template
        for key, value in values.items():
            sql = sql.replace(f"%({key})s", f"%({key}_{name})s")
            self.params[f"{key}_{name}"] = value
        return sql

    def records(self, i: int, key: tuple[int, ...], b: int, below: float = math.inf) -> str:
        bounds = self.edges.get(key[0], np.array([-math.inf, math.inf]))
        lo, hi = float(bounds[b]), min(float(bounds[b + 1]), below)
        common = {"t": key[0], **({"room": key[1]} if self.by_room else {})}
        if not self.kap:
            return self._one(str(i), {**common, "lo": lo, "hi": hi})
        factors = [self.room_factor[key[1]]] if self.by_room else self.factors
        return " UNION ALL ".join(
            self._one(f"{i}_{j}", {**common, "f": factor, "lo": lo, "hi": hi,
                                   "slo": _widened(lo / factor, -1),
                                   "shi": _widened(hi / factor, 1)})
            for j, factor in enumerate(factors))


def _widened(bound: float, side: int) -> float:
    """A bound moved outwards (side -1: down, 1: up) by far more than a product's rounding."""
    return bound + side * (abs(bound) * 1e-9 + 1e-300)
