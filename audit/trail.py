"""The audit trail: append-only events chained by SHA-256.

Every change is written by `record_event` inside the same transaction as the change itself, so a
change without its event (or the reverse) cannot be committed. The chain is serialised: SQLite write
transactions begin IMMEDIATE (audit.storage.engine.writer) and PostgreSQL takes a transaction-scoped
advisory lock, so two writers can never both extend the same last event.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from audit.storage.engine import insert_numbered
from audit.storage.models import AuditEvent, utcnow
from audit.vocab import AuditAction

GENESIS = "0" * 64
#: Arbitrary constant key for pg_advisory_xact_lock: "one writer extends the chain at a time".
_PG_CHAIN_LOCK = 0x466C756F  # "Fluo"


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, set | frozenset | tuple):
        return sorted(value) if isinstance(value, set | frozenset) else list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def jsonable(payload: dict[str, Any] | None) -> dict[str, Any] | None:
    """Round-trip through JSON so what is hashed is exactly what is stored."""
    if payload is None:
        return None
    return json.loads(json.dumps(payload, default=_json_default))


def event_hash(
    prev_hash: str,
    occurred_at: datetime,
    actor: str,
    action: str,
    entity: str,
    entity_id: str | None,
    reason: str | None,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> str:
    body = json.dumps(
        {
            "prev": prev_hash,
            "at": occurred_at.astimezone(UTC).isoformat(timespec="microseconds"),
            "actor": actor,
            "action": action,
            "entity": entity,
            "entity_id": entity_id,
            "reason": reason,
            "before": before,
            "after": after,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def lock_chain(session: Session) -> None:
    """Serialise writers of the chain for the rest of this transaction (PostgreSQL; on SQLite
    the IMMEDIATE write transaction already does). Callers that read-then-write other shared
    state under the same guarantee (dose report import) take it too."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_CHAIN_LOCK})


def record_event(
    session: Session,
    *,
    actor: str,
    action: AuditAction,
    entity: str,
    entity_id: object = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    reason: str | None = None,
) -> AuditEvent:
    """Append one event in the caller's transaction (flushes, does not commit)."""
    lock_chain(session)
    session.flush()
    prev = session.execute(
        select(AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1)
    ).scalar_one_or_none()
    prev_hash = prev or GENESIS
    # Microsecond precision survives both databases, so the hash can be recomputed exactly.
    occurred_at = utcnow()
    before_j, after_j = jsonable(before), jsonable(after)
    ident = None if entity_id is None else str(entity_id)
    event = AuditEvent(
        occurred_at=occurred_at,
        actor=actor,
        action=action.value,
        entity=entity,
        entity_id=ident,
        reason=reason,
        before=before_j,
        after=after_j,
        prev_hash=prev_hash,
        hash=event_hash(
            prev_hash, occurred_at, actor, action.value, entity, ident, reason, before_j, after_j
        ),
    )
    session.add(event)
    session.flush()
    return event


@dataclass(frozen=True)
class NewEvent:
    """One event for record_events: the keyword arguments of record_event, as a value."""

    actor: str
    action: AuditAction
    entity: str
    entity_id: object = None
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    reason: str | None = None
    #: True when before and after are already jsonable() output (a bulk writer prepares them
    #: before its write transaction, to keep that work out of the lock); used as they are.
    json_ready: bool = False


def record_events(session: Session, events: Sequence[NewEvent]) -> list[int]:
    """Append `events` in order, exactly as calling record_event for each would, and return
    their ids.

    Why (issue 10): a 30,000-row CSV import called record_event per record, each a flush, a
    read of the last hash and an INSERT, all while holding the write lock. Here the last hash
    is read once under the chain lock, the chain is computed in Python with event_hash, and
    the rows go in one bulk INSERT whose ids follow the list's order (the order verify_chain
    walks); an id out of order raises, so the transaction cannot commit a broken chain.
    """
    if not events:
        return []
    lock_chain(session)
    session.flush()
    prev_hash = session.execute(
        select(AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1)
    ).scalar_one_or_none() or GENESIS
    rows: list[dict[str, Any]] = []
    for new in events:
        occurred_at = utcnow()
        before_j, after_j = ((new.before, new.after) if new.json_ready
                             else (jsonable(new.before), jsonable(new.after)))
        ident = None if new.entity_id is None else str(new.entity_id)
        digest = event_hash(prev_hash, occurred_at, new.actor, new.action.value, new.entity,
                            ident, new.reason, before_j, after_j)
        rows.append({"occurred_at": occurred_at, "actor": new.actor,
                     "action": new.action.value, "entity": new.entity, "entity_id": ident,
                     "reason": new.reason, "before": before_j, "after": after_j,
                     "prev_hash": prev_hash, "hash": digest})
        prev_hash = digest
    ids = insert_numbered(session, AuditEvent.__table__, rows)
    if any(later <= earlier for earlier, later in itertools.pairwise(ids)):
        raise RuntimeError("audit events were given ids out of chain order; nothing written")
    return ids


@dataclass(frozen=True)
class ChainReport:
    events: int
    ok: bool
    broken_at: int | None = None
    problem: str | None = None

    def message(self) -> str:
        if self.ok:
            return f"audit trail intact: {self.events} events, hash chain verified"
        return f"audit trail BROKEN at event {self.broken_at}: {self.problem}"


def _iter_events(session: Session, chunk: int = 5000) -> Iterator[AuditEvent]:
    last_id = 0
    while True:
        rows = session.scalars(
            select(AuditEvent).where(AuditEvent.id > last_id).order_by(AuditEvent.id).limit(chunk)
        ).all()
        if not rows:
            return
        yield from rows
        last_id = rows[-1].id
        session.expunge_all()


def verify_chain(session: Session) -> ChainReport:
    """Walk the chain in id order; report the first event whose link or content does not match."""
    prev_hash = GENESIS
    count = 0
    for event in _iter_events(session):
        count += 1
        if event.prev_hash != prev_hash:
            return ChainReport(count, False, event.id, "its previous-hash does not match the "
                               "event before it (an event was removed or inserted)")
        expected = event_hash(
            event.prev_hash, event.occurred_at, event.actor, event.action, event.entity,
            event.entity_id, event.reason, event.before, event.after,
        )
        if expected != event.hash:
            return ChainReport(count, False, event.id, "its content does not match its hash "
                               "(the event was altered)")
        prev_hash = event.hash
    return ChainReport(count, True)


def history(session: Session, entity: str, entity_id: object) -> list[AuditEvent]:
    """All events about one entity, oldest first (the record's history view)."""
    return list(
        session.scalars(
            select(AuditEvent)
            .where(AuditEvent.entity == entity, AuditEvent.entity_id == str(entity_id))
            .order_by(AuditEvent.id)
        )
    )
