"""What every SQL figure is computed in: a connection, the small lookup tables (names, catalog,
settings, reference levels: a Snapshot without records) and the filtered records' subquery."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, func
from sqlalchemy.sql import ColumnElement, Subquery

from audit.analytics.snapshot import Snapshot
from audit.analytics.sql.records import records
from audit.filters import Filters
from audit.storage.engine import without_jit
from audit.storage.models import RecordFact


@dataclass(frozen=True)
class Scope:
    """`rec`, the filtered records' subquery, is built when a figure first asks for it: the
    figures the summaries and buckets answer never do (building and compiling it cost 10-25
    ms of the interpreter per figure, on the lock a tab's figures share). `unit` and `facts`
    as audit.analytics.sql.records.records takes them."""

    conn: Connection
    lookups: Snapshot
    filters: Filters
    unit: bool = True
    facts: Any = RecordFact

    @classmethod
    def open(cls, conn: Connection, lookups: Snapshot, filters: Filters,
             unit: bool = True) -> Scope:
        return cls(conn, lookups, filters, unit)

    @cached_property
    def rec(self) -> Subquery:
        return records(self.conn, self.filters, self.unit, self.facts)

    def flat(self) -> Scope:
        """The same records as a plain subquery (for drill-downs: audit.analytics.sql.records)."""
        return Scope.open(self.conn, self.lookups, self.filters, unit=False)

    def narrowed(self, filters: Filters) -> Scope:
        """The same connection and lookups, other filters (e.g. the period only)."""
        return Scope.open(self.conn, self.lookups, filters)

    def col(self, name: str) -> ColumnElement[Any]:
        return self.rec.c[name]

    def total(self, name: str) -> ColumnElement[Any]:
        """The count of records where a 1/0 column is 1."""
        return func.coalesce(func.sum(self.rec.c[name]), 0)

    def frame(self, query: Any, columns: Sequence[str]) -> pd.DataFrame:
        rows = self.conn.execute(query).all()
        return pd.DataFrame([tuple(r) for r in rows], columns=list(columns))

    def rows(self, query: Any, columns: Sequence[str]) -> pd.DataFrame:
        """`frame` for a drill-down's rows (a LIMIT, an index read backwards): without
        PostgreSQL's JIT compilation, which its cost estimate of a walk that stops early
        switches on and which then took 20-50 ms of a 100-400 ms list at 10M records. The
        scans that aggregate every record keep it (the Dose page was 20-35% slower without)."""
        if self.conn.dialect.name != "postgresql":
            return self.frame(query, columns)
        without_jit(self.conn)
        found = self.frame(query, columns)
        self.conn.exec_driver_sql("SET LOCAL jit TO DEFAULT")  # not after an error: rolled back
        return found


def as_float(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Medians and shares as float64 (NULL -> nan)."""
    for column in columns:
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(np.float64)
    return frame


def as_int(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    for column in columns:
        frame[column] = frame[column].fillna(0).astype(np.int64)
    return frame
