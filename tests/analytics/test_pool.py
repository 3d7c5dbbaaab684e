"""A PostgreSQL app process keeps its server connections between requests
(audit.storage.engine.PG_POOL_SIZE): a filter change on the Dose page's Physicians tab, whose
figures ask up to twelve connections at once, opens none. With SQLAlchemy's default of five kept,
each filter change started five new server backends (a password exchange each)."""

from __future__ import annotations

from datetime import date

from sqlalchemy import Engine, event

from audit.analytics.sql.source import SqlSource
from audit.filters import Filters
from audit.storage.engine import PG_POOL_SIZE


def physicians_tab(source: SqlSource, f: Filters) -> None:
    """The tab as the page asks it (dashboard/views/dose_physicians.py): both scorecards
    asked ahead, then each."""
    source.ahead(lambda x: x.physician_scorecard(f),
                 lambda x: x.adjusted_scorecard(f, "dap_gycm2"))
    source.physician_scorecard(f)
    source.adjusted_scorecard(f, "dap_gycm2")


def test_a_filter_change_opens_no_server_connection(pg_engine: Engine) -> None:
    opened: list[object] = []
    most = [0]

    def connected(*_: object) -> None:
        opened.append(1)

    def checked_out(*_: object) -> None:
        most[0] = max(most[0], pg_engine.pool.checkedout())  # type: ignore[attr-defined]
    event.listen(pg_engine, "connect", connected)
    event.listen(pg_engine, "checkout", checked_out)
    try:
        source = SqlSource(pg_engine, shared=False)
        physicians_tab(source, Filters())
        first = len(opened)
        for year in (2024, 2025):
            physicians_tab(source, Filters.days(date(year, 1, 1), date(year, 12, 31)))
    finally:
        event.remove(pg_engine, "connect", connected)
        event.remove(pg_engine, "checkout", checked_out)
    assert most[0] > 5, "the tab no longer asks more connections than SQLAlchemy's default"
    assert most[0] <= PG_POOL_SIZE
    assert len(opened) == first, f"{len(opened) - first} server connections opened"
