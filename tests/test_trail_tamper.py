"""Tampering that `verify-audit` must catch, on both databases, each named by the id it
damaged (issue 10): a cut tail (1, 3, every event), an edited event with the chain recomputed
(plain SHA-256, a wrong key, even the right key), a forged event, and procedure rows changed or
deleted with SQL. The attacker here holds the database (SQLite file, PostgreSQL owner role)
but not the key directory."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import Engine, insert, select, text, update
from sqlalchemy.orm import Session

from audit.auth import Actor
from audit.cli import main
from audit.keys import load_keys
from audit.log.service import ProcedureLog
from audit.storage.models import AuditEvent, utcnow
from audit.trail import event_hash, legacy_event_hash

SQLITE_GUARD = {
    "audit_event_no_update": "CREATE TRIGGER audit_event_no_update BEFORE UPDATE ON audit_event "
                             "BEGIN SELECT RAISE(ABORT, 'append-only'); END",
    "audit_event_no_delete": "CREATE TRIGGER audit_event_no_delete BEFORE DELETE ON audit_event "
                             "BEGIN SELECT RAISE(ABORT, 'append-only'); END",
}


def verify(db_url: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """The real command, in process: its exit code and everything it printed."""
    capsys.readouterr()
    code = main(["--db", db_url, "verify-audit"])
    out = capsys.readouterr()
    return code, out.out + out.err


@contextmanager
def guard_off(engine: Engine, backend: str) -> Iterator[Any]:
    """What someone holding the database does first: drop (SQLite) or disable (PostgreSQL,
    as the tables' owner) the append-only triggers, and put them back afterwards."""
    with engine.begin() as conn:
        if backend == "sqlite":
            for name in SQLITE_GUARD:
                conn.execute(text(f"DROP TRIGGER {name}"))
        else:
            conn.execute(text("ALTER TABLE audit_event DISABLE TRIGGER audit_event_no_change"))
        yield conn
        if backend == "sqlite":
            for sql in SQLITE_GUARD.values():
                conn.execute(text(sql))
        else:
            conn.execute(text("ALTER TABLE audit_event ENABLE TRIGGER audit_event_no_change"))


def event_ids(engine: Engine) -> list[int]:
    with Session(engine) as s:
        return list(s.scalars(select(AuditEvent.id).order_by(AuditEvent.id)))


@pytest.fixture
def worked(service: ProcedureLog, admin: Actor, logged: int) -> int:
    """A record amended three times: each amend is its own transaction, so each of the last
    three events is a recorded head."""
    for version, images in enumerate((3, 4, 5), start=1):
        service.amend(logged, {"saved_images": images}, admin, version=version,
                      reason="PACS count")
    return logged


def test_the_trail_after_normal_work_verifies(
    db_url: str, worked: int, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = verify(db_url, capsys)
    assert code == 0, out
    assert "audit trail intact" in out and "procedures intact: 1 records" in out
    assert "warning" not in out


@pytest.mark.parametrize("cut", [1, 3, "all"])
def test_a_cut_tail_is_caught(db_url: str, engine: Engine, backend: str, worked: int,
                              cut: int | str, capsys: pytest.CaptureFixture[str]) -> None:
    ids = event_ids(engine)
    gone = ids if cut == "all" else ids[-int(cut):]
    with Session(engine) as s:  # the first recorded head: the event that closed the first log
        created = s.scalar(select(AuditEvent.id).where(AuditEvent.action == "create",
                                                       AuditEvent.entity == "procedure"))
    with guard_off(engine, backend) as conn:
        conn.execute(text("DELETE FROM audit_event WHERE id >= :first"), {"first": gone[0]})
    code, out = verify(db_url, capsys)
    assert code == 1
    assert "the chain is shorter than a recorded head" in out
    if cut == "all":
        assert f"BROKEN at event {created}: " in out and "(the trail is empty; 4 recorded " \
            "heads are beyond its end)" in out
    else:
        assert f"BROKEN at event {gone[0]}: " in out and f"event {gone[0]} (recorded at " in out
        assert f"the chain now ends at event {gone[0] - 1}" in out


def _rewrite_from(engine: Engine, backend: str, first: int, mac: Any,
                  change: dict[str, Any]) -> None:
    """Edit event `first` and recompute every MAC from it on with `mac` (what an attacker
    who knows the algorithm does; only the key is missing)."""
    with Session(engine) as s:
        rows = list(s.scalars(select(AuditEvent).where(AuditEvent.id >= first)
                              .order_by(AuditEvent.id)))
        prev = s.scalar(select(AuditEvent.hash).where(AuditEvent.id < first)
                        .order_by(AuditEvent.id.desc()).limit(1))
        s.expunge_all()
    with guard_off(engine, backend) as conn:
        for row in rows:
            if row.id == first:
                for name, value in change.items():
                    setattr(row, name, value)
            digest = mac(prev, row.occurred_at, row.actor, row.action, row.entity,
                         row.entity_id, row.reason, row.before, row.after)
            conn.execute(update(AuditEvent.__table__).where(AuditEvent.id == row.id)
                         .values(reason=row.reason, after=row.after, prev_hash=prev, hash=digest))
            prev = digest


def _wrong_key(*args: Any) -> str:
    return event_hash(*args, key=b"not the site's key")


@pytest.mark.parametrize("mac", [legacy_event_hash, _wrong_key], ids=["sha256", "wrong-key"])
def test_an_edited_event_with_the_chain_recomputed_is_caught(
    db_url: str, engine: Engine, backend: str, worked: int, mac: Any,
    capsys: pytest.CaptureFixture[str]
) -> None:
    with Session(engine) as s:
        target = s.scalar(select(AuditEvent).where(AuditEvent.action == "amend")
                          .order_by(AuditEvent.id).limit(1))
        assert target is not None
        target_id, after = target.id, dict(target.after or {})
    _rewrite_from(engine, backend, target_id, mac, {"after": {**after, "saved_images": 1},
                                                    "reason": "nothing to see"})
    code, out = verify(db_url, capsys)
    assert code == 1
    assert f"audit trail BROKEN at event {target_id}: its content does not match its MAC" in out


def test_a_rewrite_with_the_real_key_is_caught_by_the_recorded_heads(
    db_url: str, engine: Engine, backend: str, worked: int, capsys: pytest.CaptureFixture[str]
) -> None:
    """Someone who also stole the key: every MAC checks, but the heads recorded since differ."""
    ids = event_ids(engine)
    key = load_keys(engine).trail_key

    def real(*args: Any) -> str:
        return event_hash(*args, key=key)

    _rewrite_from(engine, backend, ids[-2], real, {"reason": "nothing to see"})
    code, out = verify(db_url, capsys)
    assert code == 1
    assert f"BROKEN at event {ids[-2]}: event {ids[-2]} differs from the head recorded at" in out


@pytest.mark.parametrize("mac", [legacy_event_hash, _wrong_key], ids=["sha256", "wrong-key"])
def test_a_forged_event_is_caught(db_url: str, engine: Engine, worked: int, mac: Any,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    with Session(engine) as s:
        prev = s.scalar(select(AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1))
    at, after = utcnow(), {"saved_images": 2, "version": 4}
    content = (at, "tech1", "amend", "procedure", str(worked), "undo", None, after)
    with engine.begin() as conn:  # INSERT is allowed: the trail is append-only, not closed
        forged = conn.execute(insert(AuditEvent).values(
            occurred_at=at, actor="tech1", action="amend", entity="procedure",
            entity_id=str(worked), reason="undo", before=None, after=after, prev_hash=prev,
            hash=mac(prev, *content))).inserted_primary_key[0]
    code, out = verify(db_url, capsys)
    assert code == 1
    assert f"audit trail BROKEN at event {forged}: its content does not match its MAC" in out


def test_an_event_written_with_the_key_but_outside_the_application_is_caught(
    db_url: str, engine: Engine, worked: int, capsys: pytest.CaptureFixture[str]
) -> None:
    with Session(engine) as s:
        prev = s.scalar(select(AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1))
    at = utcnow()
    digest = event_hash(prev, at, "x", "login", "user_account", "1", None, None, None,
                        key=load_keys(engine).trail_key)
    with engine.begin() as conn:
        added = conn.execute(insert(AuditEvent).values(
            occurred_at=at, actor="x", action="login", entity="user_account", entity_id="1",
            reason=None, before=None, after=None, prev_hash=prev, hash=digest)
        ).inserted_primary_key[0]
    code, out = verify(db_url, capsys)
    assert code == 1
    assert f"BROKEN at event {added}: the chain ends at event {added}, which no checkpoint " \
           "has seen" in out
    assert "written outside the application" in out and "crash" in out


def test_a_procedure_changed_with_sql_is_caught(
    db_url: str, engine: Engine, worked: int, capsys: pytest.CaptureFixture[str]
) -> None:
    with engine.begin() as conn:
        conn.execute(text("UPDATE procedure SET dap_gycm2 = 99.0 WHERE id = :i"), {"i": worked})
    code, out = verify(db_url, capsys)
    assert code == 1
    assert "audit trail intact" in out  # the trail is whole: the table was changed around it
    assert (f"record {worked}: dap_gycm2 is 99.0 in the table but 0.71 by its audit history "
            "(changed outside the application)") in out


def test_a_procedure_deleted_with_sql_is_caught(
    db_url: str, engine: Engine, worked: int, capsys: pytest.CaptureFixture[str]
) -> None:
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM procedure_level WHERE procedure_id = :i"), {"i": worked})
        conn.execute(text("DELETE FROM procedure WHERE id = :i"), {"i": worked})
    code, out = verify(db_url, capsys)
    assert code == 1
    assert (f"record {worked}: deleted outside the application (its history ends with "
            "version 4)") in out


def test_a_procedure_inserted_with_sql_is_caught(
    db_url: str, engine: Engine, worked: int, capsys: pytest.CaptureFixture[str]
) -> None:
    columns = [c.name for c in AuditEvent.metadata.tables["procedure"].columns
               if c.name != "id"]
    listed = ", ".join(columns)
    with engine.begin() as conn:
        conn.execute(text(f"INSERT INTO procedure (id, {listed}) SELECT :n, {listed} "
                          "FROM procedure WHERE id = :i"), {"n": worked + 100, "i": worked})
    code, out = verify(db_url, capsys)
    assert code == 1
    assert f"record {worked + 100}: in the table with no creation event" in out
