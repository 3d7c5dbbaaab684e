"""The audit trail: append-only in the database itself, and tamper-evident by its hash chain."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from audit.auth import Actor, cli_actor
from audit.log.service import ProcedureLog
from audit.storage.engine import make_engine
from audit.storage.models import AuditEvent
from audit.trail import GENESIS, history, verify_chain
from tests.conftest import Databases, valid_record


@pytest.mark.parametrize("statement", [
    "UPDATE audit_event SET actor = 'mallory'",
    "DELETE FROM audit_event",
    "UPDATE audit_event SET after = NULL WHERE id = 1",
])
def test_the_database_refuses_changes_to_the_audit_table(
    engine: Engine, logged: int, statement: str
) -> None:
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
        conn.execute(text(statement))
    with Session(engine) as s:
        assert verify_chain(s).ok


def test_truncate_is_refused_on_postgresql(databases: Databases) -> None:
    engine = make_engine(databases.postgresql())  # SQLite has no TRUNCATE
    try:
        ProcedureLog(engine).log(valid_record(), cli_actor(), create_missing=True)
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(text("TRUNCATE audit_event"))
    finally:
        engine.dispose()


def test_the_chain_links_every_event(service: ProcedureLog, admin: Actor, engine: Engine,
                                     logged: int) -> None:
    service.amend(logged, {"saved_images": 4}, admin, version=1, reason="PACS count")
    with Session(engine) as s:
        events = list(s.scalars(select(AuditEvent).order_by(AuditEvent.id)))
        report = verify_chain(s)
    assert events[0].prev_hash == GENESIS
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(events))
    assert report.ok and report.events == len(events)
    assert "hash chain verified" in report.message()


def _disable_guard(engine: Engine, backend: str) -> None:
    """What an attacker with DDL rights would do first."""
    with engine.begin() as conn:
        if backend == "sqlite":
            conn.execute(text("DROP TRIGGER audit_event_no_update"))
            conn.execute(text("DROP TRIGGER audit_event_no_delete"))
        else:
            conn.execute(text("ALTER TABLE audit_event DISABLE TRIGGER audit_event_no_change"))


def test_an_edited_event_breaks_the_chain_at_that_event(
    service: ProcedureLog, admin: Actor, engine: Engine, backend: str, logged: int
) -> None:
    service.amend(logged, {"saved_images": 4}, admin, version=1, reason="PACS count")
    with Session(engine) as s:
        target = s.scalar(select(AuditEvent.id).where(AuditEvent.action == "amend"))
    _disable_guard(engine, backend)
    with engine.begin() as conn:
        conn.execute(text("UPDATE audit_event SET reason = 'nothing to see' WHERE id = :i"),
                     {"i": target})
    with Session(engine) as s:
        report = verify_chain(s)
    assert not report.ok and report.broken_at == target
    assert "altered" in report.message()


def test_a_removed_event_breaks_the_chain_after_the_gap(
    service: ProcedureLog, admin: Actor, engine: Engine, backend: str, logged: int
) -> None:
    service.log(valid_record(), admin)
    with Session(engine) as s:
        ids = list(s.scalars(select(AuditEvent.id).order_by(AuditEvent.id)))
    _disable_guard(engine, backend)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_event WHERE id = :i"), {"i": ids[1]})
    with Session(engine) as s:
        report = verify_chain(s)
    assert not report.ok and report.broken_at == ids[2]
    assert "removed" in (report.problem or "")


def test_history_of_a_record(service: ProcedureLog, admin: Actor, engine: Engine,
                             logged: int) -> None:
    service.amend(logged, {"saved_images": 4}, admin, version=1, reason="PACS count")
    service.void(logged, admin, version=2, reason="duplicate")
    with Session(engine) as s:
        actions = [e.action for e in history(s, "procedure", logged)]
    assert actions == ["create", "amend", "void"]


def test_record_events_appends_what_record_event_would(engine: Engine) -> None:
    """The bulk append (CSV import, issue 10) stores each event as record_event does, chained
    in list order, between events written one at a time."""
    from datetime import UTC, datetime

    from audit.storage.engine import write_session
    from audit.trail import NewEvent, record_event, record_events
    from audit.vocab import AuditAction

    spec: dict[str, Any] = {
        "actor": "cli:ana", "action": AuditAction.AMEND, "entity": "procedure", "entity_id": 7,
        "before": {"at": datetime(2026, 3, 14, 9, 30, tzinfo=UTC), "views": ("AP", "LAT")},
        "after": {"levels": {"L5", "L4"}, "dose": 0.71}, "reason": "PACS count"}
    with write_session(engine) as s:
        record_event(s, actor="first", action=AuditAction.CREATE, entity="site", entity_id=1)
        single = record_event(s, **spec)
        ids = record_events(s, [NewEvent(**spec), NewEvent("x", AuditAction.CREATE, "room"),
                                NewEvent(**spec)])
        assert record_events(s, []) == []
        record_event(s, actor="last", action=AuditAction.CREATE, entity="site", entity_id=2)
    assert ids == [single.id + 1, single.id + 2, single.id + 3]
    fields = ("actor", "action", "entity", "entity_id", "reason", "before", "after")
    with Session(engine) as s:
        events = list(s.scalars(select(AuditEvent).order_by(AuditEvent.id)))
        assert verify_chain(s).ok
    by_id = {e.id: e for e in events}
    expected = [getattr(by_id[single.id], f) for f in fields]
    assert [getattr(by_id[ids[0]], f) for f in fields] == expected
    assert [getattr(by_id[ids[2]], f) for f in fields] == expected
    assert by_id[ids[1]].before is None and by_id[ids[1]].entity_id is None
    assert [e.actor for e in events] == ["first", "cli:ana", "cli:ana", "x", "cli:ana", "last"]
