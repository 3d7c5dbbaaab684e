"""Migration 0007 re-keys the audit chain with HMAC-SHA-256, after checking the legacy SHA-256
chain, and keeps what it found in the history; its downgrade writes plain SHA-256 back."""

from __future__ import annotations

import itertools

from sqlalchemy import Engine, insert, select, text
from sqlalchemy.orm import Session

from audit.auth import cli_actor
from audit.log.service import ProcedureLog
from audit.storage.engine import downgrade, make_engine, migrate
from audit.storage.models import AuditEvent, utcnow
from audit.trail import GENESIS, legacy_event_hash, verify_chain
from tests.conftest import Databases, valid_record

#: The migration's chunk: the legacy chain below crosses one chunk boundary.
CHUNK = 5000


def write_legacy_events(engine: Engine, count: int) -> None:
    """Events as the code before 0007 wrote them: plain SHA-256 links."""
    prev, rows = GENESIS, []
    for number in range(1, count + 1):
        at, after = utcnow(), {"name": f"Room {number}"}
        digest = legacy_event_hash(prev, at, "tech1", "create", "room", str(number), None,
                                   None, after)
        rows.append({"occurred_at": at, "actor": "tech1", "action": "create", "entity": "room",
                     "entity_id": str(number), "reason": None, "before": None, "after": after,
                     "prev_hash": prev, "hash": digest})
        prev = digest
    with engine.begin() as conn:
        conn.execute(insert(AuditEvent), rows)


def events(engine: Engine) -> list[AuditEvent]:
    with Session(engine) as s:
        return list(s.scalars(select(AuditEvent).order_by(AuditEvent.id)))


def legacy_chain_intact(rows: list[AuditEvent]) -> bool:
    links = all(b.prev_hash == a.hash for a, b in itertools.pairwise(rows))
    return links and rows[0].prev_hash == GENESIS and all(
        e.hash == legacy_event_hash(e.prev_hash, e.occurred_at, e.actor, e.action, e.entity,
                                    e.entity_id, e.reason, e.before, e.after) for e in rows)


def test_0007_rekeys_an_intact_legacy_chain_and_says_so(databases: Databases,
                                                         backend: str) -> None:
    url = databases.empty(backend)
    migrate(url, "0006")
    engine = make_engine(url)
    try:
        write_legacy_events(engine, CHUNK + 3)
        migrate(url)
        with Session(engine) as s:
            report = verify_chain(s)
        assert report.ok, report.message()
        assert report.events == CHUNK + 4 and not report.warnings  # its head was recorded
        last = events(engine)[-1]
        assert (last.action, last.entity, last.actor) == ("setting", "audit_trail", "system")
        assert last.reason == ("chain re-keyed with HMAC-SHA-256; legacy SHA-256 chain "
                               f"verified intact: {CHUNK + 3} events")
        assert last.after == {"mac": "HMAC-SHA-256", "legacy_chain": "intact",
                              "events": CHUNK + 3}
    finally:
        engine.dispose()


def test_0007_keeps_in_the_history_where_the_legacy_chain_was_broken(
    databases: Databases, backend: str
) -> None:
    url = databases.empty(backend)
    migrate(url, "0006")
    engine = make_engine(url)
    try:
        write_legacy_events(engine, 5)
        with engine.begin() as conn:  # someone with SQL access edited event 3
            if backend == "sqlite":
                conn.execute(text("DROP TRIGGER audit_event_no_update"))
            else:
                conn.execute(text("ALTER TABLE audit_event DISABLE TRIGGER "
                                  "audit_event_no_change"))
            conn.execute(text("UPDATE audit_event SET actor = 'mallory' WHERE id = 3"))
            if backend == "sqlite":
                conn.execute(text("CREATE TRIGGER audit_event_no_update BEFORE UPDATE ON "
                                  "audit_event BEGIN SELECT RAISE(ABORT, 'no'); END"))
            else:
                conn.execute(text("ALTER TABLE audit_event ENABLE TRIGGER "
                                  "audit_event_no_change"))
        migrate(url)
        last = events(engine)[-1]
        assert last.reason == ("chain re-keyed with HMAC-SHA-256; legacy chain broken at "
                               "event 3: its content does not match its hash (the event was "
                               "altered)")
        assert last.after is not None and last.after["broken_at"] == 3
        with Session(engine) as s:
            assert verify_chain(s).ok  # the new chain is whole; the history keeps the break
    finally:
        engine.dispose()


def test_down_and_up_again_keeps_every_recorded_head(databases: Databases,
                                                     backend: str) -> None:
    url = databases.empty(backend)
    migrate(url)
    engine = make_engine(url)
    try:
        service = ProcedureLog(engine)
        record = service.log(valid_record(), cli_actor(), create_missing=True).record_id
        service.amend(record, {"saved_images": 4}, cli_actor(), version=1, reason="PACS")
        downgrade(url, "0006")
        rows = events(engine)
        assert legacy_chain_intact(rows)
        assert rows[-1].reason == ("chain written back as plain SHA-256 (schema downgrade); "
                                   "keyed chain intact")
        migrate(url)
        with Session(engine) as s:
            report = verify_chain(s)
        # HMAC under the same key is deterministic: the heads recorded before still match.
        assert report.ok and report.recorded_heads >= 3 and not report.warnings, \
            report.message()
        with engine.connect() as conn:  # the guard is back
            assert conn.execute(text("SELECT COUNT(*) FROM audit_event")).scalar_one() == \
                len(rows) + 1
    finally:
        engine.dispose()


def test_the_guard_is_back_after_the_rewrite(databases: Databases, backend: str) -> None:
    import pytest
    from sqlalchemy.exc import DBAPIError

    url = databases.empty(backend)
    migrate(url, "0006")
    engine = make_engine(url)
    try:
        write_legacy_events(engine, 2)
        migrate(url)
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(text("UPDATE audit_event SET reason = 'x'"))
    finally:
        engine.dispose()
