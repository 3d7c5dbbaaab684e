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


#: The template's parameters each range sets (the others are the filters', shared).
_PLACEHOLDERS = ("t", "room", "k", "f", "slo", "shi", "lo", "hi")


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
                 lookups: Snapshot, split: str | None = None, prefix: str = "",
                 edges: dict[int, np.ndarray] | None = None) -> None:
        """`split`: a column of the record facts the group key's second part is a value of
        (month, n_levels, ...: the bucket groups); `prefix`: of every parameter, so that the
        ranges of several templates make one query; `edges`: the quantity's (edges_of), when
        the caller read them."""
        self.edges = edges_of(conn, quantity) if edges is None else edges
        self.kap = quantity == "kap_corrected_gycm2"
        self.by_room = by_room
        self.second = "room" if by_room else "k" if split else None
        self.prefix = prefix
        self.month = split == "month"
        v, stored = value_of(quantity), stored_of(quantity)
        where = [RecordFact.procedure_type_id == bindparam("t", 0, type_=Integer), v.is_not(None),
                 *(filters.id_conditions(conn, FACTS) or []), *period_conditions(filters)]
        if by_room:
            where.append(RecordFact.room_id == bindparam("room", 0, type_=Integer))
        if split:
            column = getattr(RecordFact, split)
            where.append(column == bindparam("k", "" if split == "month" else 0,
                                             type_=column.type))
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
        self.params: dict[str, Any] = {}
        for key, value in compiled.params.items():
            if key not in _PLACEHOLDERS:
                self.template = self.template.replace(f"%({key})s", f"%({prefix}{key})s")
                self.params[f"{prefix}{key}"] = value

    def _one(self, name: str, values: dict[str, Any]) -> str:
        sql = self.template
        for key, value in values.items():
            sql = sql.replace(f"%({key})s", f"%({key}_{self.prefix}{name})s")
            self.params[f"{key}_{self.prefix}{name}"] = value
        return sql

    def _second(self, key: tuple[int, ...]) -> Any:
        """The value of the key's second part in the facts (a month: the number YYYYMM)."""
        return f"{key[1] // 100:04d}-{key[1] % 100:02d}" if self.month else key[1]

    def _bounds(self, key: tuple[int, ...], b: int) -> tuple[float, float]:
        """Bucket b's value range [lo, hi) of the key's type."""
        bounds = self.edges.get(key[0], np.array([-math.inf, math.inf]))
        return float(bounds[b]), float(bounds[b + 1])

    def _factors(self, key: tuple[int, ...]) -> list[float]:
        """KAP corrected's factors a range is read under: the room's, else every distinct
        one (none for another quantity)."""
        if not self.kap:
            return []
        return [self.room_factor[key[1]]] if self.by_room else self.factors

    def records(self, i: int, key: tuple[int, ...], b: int, below: float = math.inf) -> str:
        lo, hi = self._bounds(key, b)
        hi = min(hi, below)
        common = {"t": key[0], **({self.second: self._second(key)} if self.second else {})}
        if not self.kap:
            return self._one(str(i), {**common, "lo": lo, "hi": hi})
        return " UNION ALL ".join(
            self._one(f"{i}_{j}", {**common, "f": factor, "lo": lo, "hi": hi,
                                   "slo": widened(lo / factor, -1),
                                   "shi": widened(hi / factor, 1)})
            for j, factor in enumerate(self._factors(key)))

    def lateral(self, name: str, rows: list[tuple[int, tuple[int, ...], int, int, int]],
                order: str) -> str:
        """One query of many windows: each row (window number, group key, bucket, offset,
        limit) is a row of arrays unnested, and the template runs for it as a LATERAL
        subquery (a parameterised index range cut by OFFSET / LIMIT: planned once, where a
        UNION ALL of hundreds of windows was planned hundreds of times, 0.2 s).
        `order`: "asc" or "desc" (the window read from the bucket's top), or "least" (the
        bucket's least value above 0: offset and limit unused). Its arrays are added to
        `params` under `name`."""
        kap_factors = (1 if self.by_room else len(self.factors)) if self.kap else 0
        cols: dict[str, list[Any]] = {c: [] for c in ("i", "t", *([self.second] if self.second
                                                                 else []), "lo", "hi")}
        for j in range(kap_factors):
            cols[f"f{j}"], cols[f"slo{j}"], cols[f"shi{j}"] = [], [], []
        cols["off"], cols["lim"] = [], []
        for i, key, b, off, lim in rows:
            lo, hi = self._bounds(key, b)
            cols["i"].append(i)
            cols["t"].append(key[0])
            if self.second:
                cols[self.second].append(self._second(key))
            cols["lo"].append(lo)
            cols["hi"].append(hi)
            for j, factor in enumerate(self._factors(key)):
                cols[f"f{j}"].append(factor)
                cols[f"slo{j}"].append(widened(lo / factor, -1))
                cols[f"shi{j}"].append(widened(hi / factor, 1))
            cols["off"].append(off)
            cols["lim"].append(lim)
        arrays = []
        for column, values in cols.items():
            kind = "bigint" if column in ("off", "lim") else \
                "text" if column == "k" and self.month else \
                "int" if column in ("i", "t", "room", "k") else "float8"
            self.params[f"{column}_{self.prefix}{name}"] = values
            arrays.append(f"%({column}_{self.prefix}{name})s::{kind}[]")
        bodies = []
        for j in range(max(kap_factors, 1)):
            body = self.template
            for placeholder in ("t", "room", "k", "lo", "hi"):
                body = body.replace(f"%({placeholder})s", f"r.{placeholder}")
            for placeholder in ("f", "slo", "shi"):
                body = body.replace(f"%({placeholder})s", f"r.{placeholder}{j}")
            bodies.append(body)
        # only the compiled template, column names and fixed words: every value is bound
        body = " UNION ALL ".join(bodies)
        direction = " DESC" if order == "desc" else ""
        inner = (f"SELECT min(w.v) AS v FROM ({body}) AS w WHERE w.v > 0"  # noqa: S608
                 if order == "least" else
                 f"SELECT w.v FROM ({body}) AS w ORDER BY w.v{direction} "  # noqa: S608
                 "OFFSET r.off LIMIT r.lim")
        return (f"SELECT r.i, u.v FROM unnest({', '.join(arrays)}) "  # noqa: S608
                f"AS r({', '.join(cols)}) CROSS JOIN LATERAL ({inner}) AS u")


def widened(bound: float, side: int) -> float:
    """A bound moved outwards (side -1: down, 1: up) by far more than a product's rounding."""
    return bound + side * (abs(bound) * 1e-9 + 1e-300)
