"""A drill-down's rows (audit.analytics.sql.scope.Scope.rows) are read without PostgreSQL's JIT
compilation, and the statements after them in the same transaction get it back: the scans that
aggregate every record are faster with it. The reads of the small summary tables are without
it too. PostgreSQL, asked for directly."""

from __future__ import annotations

from datetime import date

from sqlalchemy import event, select, text

from audit.analytics.snapshot import Snapshot
from audit.analytics.sql.count_summary import refresh_counts
from audit.analytics.sql.scope import Scope
from audit.analytics.sql.source import SqlSource
from audit.filters import Filters
from audit.storage.engine import make_engine, without_jit
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


def test_the_summary_reads_are_without_jit(databases: Databases) -> None:
    # The summaries' period conditions make PostgreSQL expect many times the rows it reads,
    # and it compiled those small reads (64 ms of 206 ms at 10M records): each summary read
    # sets jit off for its own transaction, and the next transaction has it back. SQLite
    # has no such setting and the call does nothing there.
    engine = make_engine(databases.postgresql())
    seen: list[str] = []
    event.listen(engine, "before_cursor_execute",
                 lambda conn, cursor, statement, *rest: seen.append(statement))
    try:
        with engine.connect() as conn:
            without_jit(conn)
            inside = conn.scalar(text("SELECT current_setting('jit')"))
        with engine.connect() as conn:
            after = conn.scalar(text("SELECT current_setting('jit')"))
        assert (inside, after) == ("off", "on")
        sql = SqlSource(engine, shared=False)
        refresh_counts(engine)  # its first build reads the table too: not the figure's read
        seen.clear()
        sql.completeness(Filters.days(date(2026, 1, 1), date(2026, 3, 31)))
    finally:
        engine.dispose()
    reads = [i for i, s in enumerate(seen) if "FROM count_summary" in s and "sum(" in s]
    assert reads and all("SET LOCAL jit = off" in " ".join(seen[:i]) for i in reads)
    lite = make_engine(databases.sqlite())
    with lite.connect() as conn:
        without_jit(conn)  # nothing to set
        assert conn.scalar(text("SELECT 1")) == 1
    lite.dispose()
