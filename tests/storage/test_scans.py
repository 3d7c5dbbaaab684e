"""Queries that read every final record scan the table on SQLite (audit.storage.scans): with
the status index SQLite looked up each final record by rowid, about twice the CPU of a scan."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from audit.analytics import _packing
from audit.analytics.daily_summary import summary_select
from audit.storage.engine import make_engine, migrate
from audit.storage.models import Procedure


def _plan(engine: Engine, query: Any) -> str:
    sql = str(query.compile(engine, compile_kwargs={"literal_binds": True}))
    with engine.connect() as conn:
        return " | ".join(str(row[-1]) for row in conn.exec_driver_sql(
            "EXPLAIN QUERY PLAN " + sql))


def test_full_reads_scan_and_narrow_reads_keep_their_index(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'plan.sqlite3'}"
    migrate(url)
    engine = make_engine(url)
    try:
        frame = _packing.record_query("sqlite")
        assert _plan(engine, frame) == "SCAN procedure"
        assert "INTEGER PRIMARY KEY" in _plan(engine, frame.where(Procedure.id.between(1, 9)))
        summary = _plan(engine, summary_select("sqlite"))
        assert summary.startswith("SCAN procedure"), summary
        some_days = _plan(engine, summary_select(
            "sqlite", Procedure.performed_at.between(datetime(2026, 1, 1, tzinfo=UTC),
                                           datetime(2026, 1, 2, tzinfo=UTC))))
        assert "ix_procedure_status_performed_at" in some_days, some_days
    finally:
        engine.dispose()
