"""The first alert refresh into an empty, vacuumed `alert` table does not read that table once
per new alert (audit.alerts.per_record._upsert).

The new per-record alerts were inserted with INSERT ... SELECT ... WHERE NOT EXISTS (SELECT
FROM alert WHERE key = ...). After a VACUUM of the empty table PostgreSQL's statistics say 0
pages, so it planned a nested loop with a sequential scan of `alert`: the table the same
statement was filling. Each candidate then read every row inserted before it, and the 10M
bench's first refresh (299,330 candidates) had not finished after 5 minutes, where the rest of
the refresh takes 48 s. How long that takes is a bench figure; what a test can see is the plan
PostgreSQL chose for the statement the refresh ran, inside the refresh's own transaction (the
candidates are a temporary table), and that the alerts stored are the ones the records call
for.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from sqlalchemy import Engine, event, text

from audit.alerts.store import refresh_alerts
from audit.analytics.snapshot import load_snapshot
from audit.analytics.sql.source import SqlSource
from audit.demo import generate
from audit.storage.engine import make_engine
from tests.alerts.test_incremental import computed, frame_refused, stored
from tests.conftest import Databases

#: A plan node that reads the `alert` table itself (not alert_candidate, alert_hot, ...).
READS_ALERT = re.compile(r"Scan(?: using \S+)? on alert\b(?!_)")


@pytest.fixture
def vacuumed(databases: Databases) -> Iterator[Engine]:
    """A PostgreSQL log with 800 demo records, no alerts, and `alert` vacuumed while empty."""
    engine = make_engine(databases.postgresql())
    generate(engine, procedures=800, seed=31, until=date(2026, 6, 30))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE alert"))
        pages = conn.execute(text(
            "SELECT relpages, reltuples FROM pg_class WHERE relname = 'alert'")).one()
    assert tuple(pages) == (0, 0), "the table the statement fills looks empty to the planner"
    yield engine
    engine.dispose()


def plans_of_alert_inserts(engine: Engine) -> tuple[list[list[str]], Any]:
    """EXPLAIN, on the refresh's own cursor just before it runs, each INSERT into `alert`
    that reads the temporary candidates."""
    plans: list[list[str]] = []

    def explain(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
                executemany: bool) -> None:
        if statement.startswith("INSERT INTO alert ") and "alert_candidate" in statement:
            cursor.execute("EXPLAIN " + statement, parameters)
            plans.append([row[0] for row in cursor.fetchall()])

    event.listen(engine, "before_cursor_execute", explain)
    return plans, lambda: event.remove(engine, "before_cursor_execute", explain)


@pytest.mark.parametrize("path", ["frame", "sql"])
def test_the_first_refresh_inserts_new_alerts_without_reading_the_table_it_fills(
        vacuumed: Engine, path: str) -> None:
    plans, stop = plans_of_alert_inserts(vacuumed)
    try:
        if path == "frame":
            result = refresh_alerts(vacuumed, load_snapshot(vacuumed))
        else:
            with frame_refused():
                result = refresh_alerts(vacuumed, SqlSource(vacuumed))
    finally:
        stop()
    assert len(plans) == 1, plans
    plan = "\n".join(plans[0])
    assert not READS_ALERT.search(plan), plan  # the old anti-join: Seq Scan on alert alert_1
    assert "Conflict Arbiter Indexes: uq_alert_key" in plan, plan
    assert result.opened > 0
    assert stored(vacuumed) == computed(vacuumed)
