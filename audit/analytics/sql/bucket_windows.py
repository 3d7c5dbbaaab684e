"""Phase 2's SQL of the dose buckets' mixtures (audit.analytics.sql.bucket_mixtures): the
windows a figure reads (a physician's records of one stratum in a value range, each divided
by its window's divisor), every group of a figure in one statement, and the values picked at
their ranks in numpy."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import Connection, Float, Integer, bindparam, select

from audit.analytics.sql.dose_buckets import FACTS, value_of
from audit.analytics.sql.records import period_conditions
from audit.filters import Filters
from audit.storage.models import RecordFact


class Reader:
    """Phase 2's SQL: a physician's records of one stratum in a value range, from the stratum
    index, compiled once; windows as rows of arrays joined LATERAL."""

    _PLACEHOLDERS = ("t", "p", "lv", "band", "lo", "hi")

    def __init__(self, conn: Connection, filters: Filters, quantity: str) -> None:
        f, v = RecordFact, value_of(quantity)
        number = {"type_": Float}
        compiled = (select(v.label("v")).where(
            f.procedure_type_id == bindparam("t", 0, type_=Integer),
            f.physician_id == bindparam("p", 0, type_=Integer),
            f.n_levels == bindparam("lv", 0, type_=Integer),
            f.bmi_band == bindparam("band", 0, type_=Integer),
            v >= bindparam("lo", 0.0, **number), v <= bindparam("hi", 0.0, **number),
            *(filters.id_conditions(conn, FACTS) or []), *period_conditions(filters))
            .compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True}))
        self.template = str(compiled)
        for name in self._PLACEHOLDERS:
            self.template = self.template.replace(f"%({name})s", f"r.{name}")
        self.params = {k: value for k, value in compiled.params.items()
                       if k not in self._PLACEHOLDERS}

    def picked(self, conn: Connection, groups: list[tuple[int, int, int]],
               windows: Windows) -> dict[int, tuple[list[float], int]]:
        """Per group (number, offset, limit; its windows are the next ones of `windows`, in
        the groups' order), PostgreSQL reads the windows' records and divides each by its
        window's divisor; numpy keeps the `limit` from `offset` on in their order: the values
        there (in order) and how many records were read. The values come back as a byte
        string a group (float8send: exact): numpy's partition costs less than a sort there."""
        if not groups:
            return {}
        params = dict(self.params)
        arrays = {"i": "int", "a": "int", "b": "int"}
        numbers = np.array([g for g, _, _ in groups], dtype=np.int64)
        per_group = np.bincount(np.searchsorted(numbers, windows.group), minlength=len(numbers))
        cuts = np.concatenate([[0], np.cumsum(per_group)])
        for name, column in zip(arrays, [numbers, cuts[:-1] + 1, cuts[1:]], strict=True):
            params[f"g_{name}"] = array_literal(column)
        names = ("t", "p", "lv", "band", "lo", "hi", "s")
        for name, column in zip(names, windows.columns(), strict=True):
            params[f"w_{name}"] = array_literal(column)
        kind = {"lo": "float8", "hi": "float8", "s": "float8"}
        outer = ", ".join(f"%(g_{n})s::{k}[]" for n, k in arrays.items())
        inner = ", ".join(f"(%(w_{n})s::{kind.get(n, 'int')}[])[g.a:g.b]" for n in names)
        sql = (f"SELECT g.i, (SELECT string_agg(float8send(v.v / r.s), ''::bytea) "  # noqa: S608
               f"FROM unnest({inner}) AS r({', '.join(names)}) CROSS JOIN LATERAL "
               f"({self.template}) AS v) FROM unnest({outer}) AS g({', '.join(arrays)})")
        with conn.connection.driver_connection.cursor(binary=True) as cursor:  # type: ignore[union-attr]
            cursor.execute(sql, params)
            read = {int(i): np.frombuffer(blob or b"", dtype=">f8") for i, blob in cursor}
        found: dict[int, tuple[list[float], int]] = {}
        for g, offset, limit in groups:
            values = read.get(g, np.empty(0))
            at = list(range(offset, min(offset + limit, len(values))))
            found[g] = ([float(x) for x in np.partition(values, at)[at]] if at else [],
                        len(values))
        return found


@dataclass
class Windows:
    """Phase 2's windows, column-wise (one entry per run of consecutive buckets of one
    component in one group): its group, the component's type, physician, levels and BMI
    band, the value range [lo, hi] to read and the divisor."""

    group: np.ndarray
    t: np.ndarray
    p: np.ndarray
    levels: np.ndarray
    band: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    divisor: np.ndarray

    def columns(self) -> list[np.ndarray]:
        """The columns the reader's arrays take, in its order (the group apart)."""
        return [self.t, self.p, self.levels, self.band, self.lo, self.hi, self.divisor]

    @classmethod
    def joined(cls, parts: Sequence[Windows]) -> Windows:
        if not parts:
            empty = np.empty(0, dtype=np.int64)
            return cls(empty, empty, empty, empty, empty, np.empty(0), np.empty(0), np.empty(0))
        return cls(*(np.concatenate([getattr(w, name) for w in parts])
                     for name in cls.__dataclass_fields__))



def array_literal(values: Sequence[Any] | np.ndarray) -> str:
    """A PostgreSQL array literal of numbers (cast in the query): thousands of window bounds
    went through psycopg's list adaptation one by one (30 ms a figure); a float's repr is
    exact (it reads back as the same double), as are "inf" and "-inf"."""
    column = np.asarray(values)
    if column.dtype.kind == "f":
        return "{" + ",".join(map(repr, column.tolist())) + "}"
    return "{" + ",".join(map(str, column.astype(np.int64).tolist())) + "}"
