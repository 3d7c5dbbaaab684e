"""A drill-down's rows (audit.analytics.sql.scope.Scope.rows) are read without PostgreSQL's JIT
compilation, and the statements after them in the same transaction get it back: the scans that
aggregate every record are faster with it. PostgreSQL only, asked for directly."""

from __future__ import annotations

from sqlalchemy import select, text

from audit.analytics.snapshot import Snapshot
from audit.analytics.sql.scope import Scope
from audit.filters import Filters
from audit.storage.engine import make_engine
from tests.conftest import Databases


def test_drill_rows_are_read_without_jit_and_the_next_statement_has_it(
        databases: Databases) -> None:
    engine = make_engine(databases.postgresql())
    try:
        with engine.connect() as conn:
            default = conn.scalar(text("SELECT current_setting('jit')"))
            scope = Scope(conn, Snapshot.__new__(Snapshot), Filters(), None)  # type: ignore[arg-type]
            inside = scope.rows(select(text("current_setting('jit')")), ["jit"])
            after = conn.scalar(text("SELECT current_setting('jit')"))
        assert inside["jit"].tolist() == ["off"]
        assert after == default == "on"
    finally:
        engine.dispose()
