"""A first alert refresh on PostgreSQL builds the alert table's secondary indexes after its
insert (audit.alerts.per_record._indexes_built_after): the same alerts, the same indexes
afterwards; a failure rolls the drop back; a reader that holds the table off makes it insert
with the indexes instead of waiting; a refresh into a table that holds alerts never drops them.

How much faster that is, is a bench figure (bench/bench_alert_rate.py --sql); what a test can
see is the statements, the indexes and the alerts."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from sqlalchemy import Engine, event, text

from audit.alerts import per_record
from audit.alerts.store import refresh_alerts
from audit.analytics.sql.source import SqlSource
from audit.demo import generate
from audit.storage.engine import make_engine
from tests.alerts.test_incremental import computed, frame_refused, stored
from tests.conftest import Databases


@pytest.fixture
def engine(databases: Databases, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    """A PostgreSQL log of 800 demo records and no alerts; a bulk is any number of alerts."""
    monkeypatch.setattr(per_record, "BULK_ALERTS", 1)
    engine = make_engine(databases.postgresql())
    generate(engine, procedures=800, seed=32, until=date(2026, 6, 30))
    yield engine
    engine.dispose()


def indexes(engine: Engine) -> dict[str, str]:
    with engine.connect() as conn:
        return dict(conn.execute(text(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'alert'")).all())


def statements(engine: Engine) -> tuple[list[str], Any]:
    seen: list[str] = []

    def note(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        seen.append(" ".join(statement.split()))

    event.listen(engine, "before_cursor_execute", note)
    return seen, lambda: event.remove(engine, "before_cursor_execute", note)


def refresh(engine: Engine) -> Any:
    with frame_refused():
        return refresh_alerts(engine, SqlSource(engine))


def test_a_first_refresh_builds_the_indexes_after_its_insert(engine: Engine) -> None:
    before = indexes(engine)
    assert len(before) == 7  # the primary key, the unique key and five secondary indexes
    seen, stop = statements(engine)
    try:
        result = refresh(engine)
    finally:
        stop()
    dropped = [s for s in seen if s.startswith("DROP INDEX ix_alert_")]
    created = [s for s in seen if s.startswith("CREATE INDEX ix_alert_") and " ON alert (" in s]
    insert = next(i for i, s in enumerate(seen) if s.startswith("INSERT INTO alert "))
    assert len(dropped) == len(created) == 5
    assert seen.index(dropped[-1]) < insert < seen.index(created[0])
    assert indexes(engine) == before  # the same names and definitions
    assert result.opened > 0 and stored(engine) == computed(engine)

    seen, stop = statements(engine)  # the table holds alerts now: never dropped again
    try:
        generate(engine, procedures=200, seed=33, until=date(2026, 7, 31), months=1)
        refresh(engine)
    finally:
        stop()
    assert not [s for s in seen if s.startswith(("DROP INDEX", "CREATE INDEX ix_alert_"))]
    assert stored(engine) == computed(engine)


def test_a_failed_first_refresh_leaves_the_indexes(engine: Engine,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    before = indexes(engine)

    def fail(conn: Any, now: Any) -> list[int]:
        raise RuntimeError("the C-arm's cable was pulled")

    monkeypatch.setattr(per_record, "_insert_new", fail)
    with pytest.raises(RuntimeError, match="cable"):
        refresh(engine)
    assert indexes(engine) == before
    with engine.connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM alert")) == 0


def test_a_reader_holding_the_table_makes_it_insert_with_the_indexes(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(per_record, "INDEX_LOCK_WAIT", "300ms")
    before = indexes(engine)
    reader = engine.connect()
    reader.begin()
    reader.execute(text("SELECT count(*) FROM alert"))  # holds ACCESS SHARE until it ends
    seen, stop = statements(engine)
    done = threading.Event()
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(refresh(engine))
        except Exception as exc:
            outcome.append(exc)
        done.set()

    worker = threading.Thread(target=run)
    try:
        worker.start()
        assert done.wait(60), "the refresh waited for the reader"
    finally:
        reader.rollback()
        reader.close()
        worker.join(60)
        stop()
    [result] = outcome
    assert not isinstance(result, Exception), result
    assert [s for s in seen if s.startswith("DROP INDEX")]  # it tried
    assert not [s for s in seen if s.startswith("CREATE INDEX ix_alert_")]  # kept them
    assert indexes(engine) == before
    assert result.opened > 0 and stored(engine) == computed(engine)
