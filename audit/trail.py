"""The audit trail: append-only events chained by HMAC-SHA-256 under the site's trail key.

Every change is written by `record_event` inside the same transaction as the change itself, so a
change without its event (or the reverse) cannot be committed. The chain is serialised: SQLite write
transactions begin IMMEDIATE (audit.storage.engine.writer) and PostgreSQL takes a transaction-scoped
advisory lock, so two writers can never both extend the same last event.

Why a keyed MAC and not a plain hash: with SHA-256 anyone who can write the table can edit an
event and recompute every later hash, or append a forged event with a correct hash. The MAC key
lives outside the database (audit.keys), so a holder of the database alone cannot. What the key
cannot prevent, removing the newest events, is caught by the heads recorded after every commit
(audit.checkpoints; `verify_chain` compares them). `event_hash` is the one place an event's MAC
is computed.
"""


from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Row, event, select, text
from sqlalchemy.orm import Session, SessionTransaction

from audit import checkpoints
from audit.keys import load_keys
from audit.storage.engine import insert_numbered
from audit.storage.models import AuditEvent, utcnow
from audit.vocab import AuditAction

GENESIS = "0" * 64
#: Arbitrary constant key for pg_advisory_xact_lock: "one writer extends the chain at a time".
_PG_CHAIN_LOCK = 0x466C756F  # "Fluo"
#: session.info keys: this transaction appended events / the head to record once committed.
_APPENDED = "audit.trail.appended"
_PENDING = "audit.trail.pending_head"
#: How long verify_chain waits for a writer that committed but has not yet recorded its head.
_SETTLE_SECONDS = 0.5


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


def _canonical(
    prev_hash: str,
    occurred_at: datetime,
    actor: str,
    action: str,
    entity: str,
    entity_id: str | None,
    reason: str | None,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> bytes:
    """The bytes an event's MAC covers: its content and the previous event's MAC."""
    return json.dumps(
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
    ).encode("utf-8")


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
    *,
    key: bytes,
) -> str:
    """An event's MAC: HMAC-SHA-256 under the trail key (`trail_key`) of the canonical JSON
    of its content and the previous event's MAC. The only function that computes it."""
    body = _canonical(prev_hash, occurred_at, actor, action, entity, entity_id, reason,
                      before, after)
    return hmac.new(key, body, hashlib.sha256).hexdigest()


def legacy_event_hash(
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
    """The plain SHA-256 of the same body: the chain before migration 0007, which checks it
    and re-keys it (and its downgrade, which writes it back). Nothing else may use it."""
    body = _canonical(prev_hash, occurred_at, actor, action, entity, entity_id, reason,
                      before, after)
    return hashlib.sha256(body).hexdigest()


def trail_key(session: Session) -> bytes:
    """The trail MAC key of the session's database (audit.keys caches it per process, so
    this reads no file per event)."""
    return load_keys(checkpoints.engine_of(session.get_bind())).trail_key


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
    """Append one event in the caller's transaction (flushes, does not commit). When the
    transaction commits, its new head is recorded in the checkpoint file."""
    key = trail_key(session)
    lock_chain(session)
    session.flush()
    prev = session.execute(
        select(AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1)
    ).scalar_one_or_none()
    prev_hash = prev or GENESIS
    # Microsecond precision survives both databases, so the MAC can be recomputed exactly.
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
        hash=event_hash(prev_hash, occurred_at, actor, action.value, entity, ident, reason,
                        before_j, after_j, key=key),
    )
    session.add(event)
    session.flush()
    session.info[_APPENDED] = True
    return event


# --- Recording the head after each commit (audit.checkpoints) ----------------------------------
# Why Session events: every writer commits through a Session, and only after the commit is the
# head a fact; recording it earlier could name an event a failed commit never wrote. The head
# is read in before_commit, while the chain lock is still held (so it is this transaction's
# last event), and written in after_commit, when SQL can no longer be issued.

@event.listens_for(Session, "before_commit")
def _read_head_to_record(session: Session) -> None:
    session.info.pop(_PENDING, None)
    if session.in_nested_transaction() or not session.info.pop(_APPENDED, False):
        return
    path = checkpoints.path_for(session.get_bind())
    current = head(session) if path is not None else None
    if current is not None:
        session.info[_PENDING] = (path, current)


@event.listens_for(Session, "after_commit")
def _record_head(session: Session) -> None:
    if session.in_nested_transaction():
        return
    pending = session.info.pop(_PENDING, None)
    if pending is not None:
        path, current = pending
        checkpoints.append_quietly(path, current.event_id, current.mac)


@event.listens_for(Session, "after_transaction_end")
def _forget_head(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # the outermost transaction ended: committed or not
        session.info.pop(_PENDING, None)
        session.info.pop(_APPENDED, None)


# --- Verification ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Head:
    """The chain's last event: what an export's manifest and a checkpoint record, so a later
    check can tell the chain was cut back or rewritten after this point."""

    event_id: int
    mac: str

    def as_dict(self) -> dict[str, Any]:
        return {"event_id": self.event_id, "mac": self.mac}


def head(session: Session) -> Head | None:
    """The last event's id and MAC, or None for an empty trail."""
    row = session.execute(
        select(AuditEvent.id, AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1)
    ).first()
    return None if row is None else Head(int(row[0]), str(row[1]))


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
    key = trail_key(session)
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
                            ident, new.reason, before_j, after_j, key=key)
        rows.append({"occurred_at": occurred_at, "actor": new.actor,
                     "action": new.action.value, "entity": new.entity, "entity_id": ident,
                     "reason": new.reason, "before": before_j, "after": after_j,
                     "prev_hash": prev_hash, "hash": digest})
        prev_hash = digest
    ids = insert_numbered(session, AuditEvent.__table__, rows)
    if any(later <= earlier for earlier, later in itertools.pairwise(ids)):
        raise RuntimeError("audit events were given ids out of chain order; nothing written")
    session.info[_APPENDED] = True  # the head is recorded after commit, as for record_event
    return ids


@dataclass(frozen=True)
class ChainReport:
    """What verify_chain found: the count, the first problem (with the event it concerns) and
    warnings that are not failures (no checkpoint file yet)."""

    events: int
    ok: bool
    broken_at: int | None = None
    problem: str | None = None
    head: Head | None = None
    checkpoint: Path | None = None
    recorded_heads: int = 0
    warnings: tuple[str, ...] = field(default=())

    def message(self) -> str:
        if self.ok:
            seen = (f"; it ends on a recorded checkpoint ({self.recorded_heads} recorded heads "
                    "all in place)" if self.recorded_heads else "")
            return (f"audit trail intact: {self.events} events, hash chain verified "
                    f"(HMAC-SHA-256 under the site's trail key){seen}")
        return f"audit trail BROKEN at event {self.broken_at}: {self.problem}"


_EVENT_COLUMNS = (AuditEvent.id, AuditEvent.occurred_at, AuditEvent.actor, AuditEvent.action,
                  AuditEvent.entity, AuditEvent.entity_id, AuditEvent.reason, AuditEvent.before,
                  AuditEvent.after, AuditEvent.prev_hash, AuditEvent.hash)


def _iter_events(session: Session, chunk: int = 5000) -> Iterator[Row[Any]]:
    """Every event in id order, as plain rows (no ORM objects: a million events stream in
    constant memory)."""
    last_id = 0
    while True:
        rows = session.execute(
            select(*_EVENT_COLUMNS).where(AuditEvent.id > last_id).order_by(AuditEvent.id)
            .limit(chunk)
        ).all()
        if not rows:
            return
        yield from rows
        last_id = rows[-1].id


class _HeadCheck:
    """Compares the chain, event by event in id order, with the heads recorded for it."""

    def __init__(self, recorded: checkpoints.Recorded | None) -> None:
        self._heads = recorded.in_order() if recorded is not None else iter(())
        self._next = next(self._heads, None)
        self.problem: tuple[int, str] | None = None
        self.last_seen = False
        self.last_recorded: int | None = None

    def _fail(self, event_id: int, message: str) -> None:
        if self.problem is None:
            self.problem = (event_id, message)

    def event(self, event_id: int, mac: str) -> None:
        self.last_seen = False
        while self._next is not None and self._next.event_id <= event_id:
            recorded = self._next
            if recorded.event_id < event_id:
                self._fail(recorded.event_id, f"{recorded.describe()} is missing from "
                           "the chain: events were removed and the chain re-linked with the "
                           "trail key")
            elif recorded.mac != mac:
                self._fail(event_id, f"event {event_id} differs from the head recorded at "
                           f"{recorded.at} (the chain was rewritten)")
            else:
                self.last_seen = True
                self.last_recorded = event_id
            self._next = next(self._heads, None)

    def end(self, last_id: int | None) -> None:
        """Heads recorded beyond the chain's last event: the chain was cut."""
        if self._next is None:
            return
        first, beyond = self._next, 1 + sum(1 for _ in self._heads)
        end = f"the chain now ends at event {last_id}" if last_id else "the trail is empty"
        more = f"; {beyond} recorded heads are beyond its end" if beyond > 1 else ""
        self._fail(first.event_id, f"the chain is shorter than a recorded head: "
                   f"{first.describe()} is missing ({end}{more})")


def verify_chain(session: Session, *, use_checkpoints: bool = True) -> ChainReport:
    """Walk the chain in id order; report the first event whose link or MAC does not match,
    then compare the chain with the heads recorded in the checkpoint file: each must still be
    in the chain with its MAC, and the chain must end on one."""
    key = trail_key(session)
    path = checkpoints.path_for(session.get_bind()) if use_checkpoints else None
    recorded = checkpoints.read(path) if path is not None else None
    heads = _HeadCheck(recorded)
    prev_hash, count, last = GENESIS, 0, None
    for ev in _iter_events(session):
        count += 1
        chain_problem = None
        if ev.prev_hash != prev_hash:
            chain_problem = ("its previous-hash does not match the event before it (an event "
                             "was removed or inserted)")
        elif ev.hash != event_hash(ev.prev_hash, ev.occurred_at, ev.actor, ev.action, ev.entity,
                                   ev.entity_id, ev.reason, ev.before, ev.after, key=key):
            chain_problem = ("its content does not match its MAC (the event was altered, or "
                             "written without the site's trail key)")
        if chain_problem is not None:
            if heads.problem is not None:  # an earlier recorded head is gone or differs
                return ChainReport(count, False, *heads.problem, checkpoint=path)
            return ChainReport(count, False, ev.id, chain_problem, checkpoint=path)
        heads.event(ev.id, ev.hash)
        prev_hash, last = ev.hash, Head(ev.id, ev.hash)
    heads.end(last.event_id if last else None)
    if heads.problem is not None:
        return ChainReport(count, False, *heads.problem, head=last, checkpoint=path)
    report = _check_end(count, last, path, recorded, heads)
    if recorded is not None and recorded.unreadable:
        report = replace(report, warnings=(*report.warnings, (
            f"{recorded.unreadable} lines of {path} could not be read (a write cut short by a "
            "crash, or an edit) and were left out of the comparison")))
    return report


def _check_end(count: int, last: Head | None, path: Path | None,
               recorded: checkpoints.Recorded | None, heads: _HeadCheck) -> ChainReport:
    """The chain must end on a recorded head; no checkpoint file at all is only a warning."""
    if last is None or path is None:
        return ChainReport(count, True, head=last, checkpoint=path)
    if recorded is None or not len(recorded):
        return ChainReport(count, True, head=last, checkpoint=path, warnings=(
            f"no checkpoint has been recorded for this database yet ({path}): this is the "
            "first verification since upgrading, or the database was moved, restored or "
            "renamed (checkpoints are named by the database's location). The chain's MACs "
            "were verified; whether events were cut from its end cannot be told until heads "
            "are recorded, starting now",))
    if not heads.last_seen:
        # A writer may have committed and not yet recorded its head: give it a moment.
        time.sleep(_SETTLE_SECONDS)
        again = checkpoints.read(path)
        if again is None or not again.has(last.event_id, last.mac):
            after = heads.last_recorded
            which = (f"the events after event {after}, the last recorded head, were"
                     if after else "its events were")
            return ChainReport(count, False, last.event_id, (
                f"the chain ends at event {last.event_id}, which no checkpoint has seen: "
                f"{which} written outside the application, or the application stopped "
                "between committing them and recording their checkpoint (a crash; then the "
                "next change it records settles this)"), head=last, checkpoint=path)
    return ChainReport(count, True, head=last, checkpoint=path, recorded_heads=len(recorded))


def record_verified_head(report: ChainReport) -> None:
    """After an intact verification, record the head it verified (verify-audit does), which
    also starts the checkpoint file of a database that had none."""
    if report.ok and report.head is not None and report.checkpoint is not None:
        checkpoints.append(report.checkpoint, report.head.event_id, report.head.mac)


def history(session: Session, entity: str, entity_id: object) -> list[AuditEvent]:
    """All events about one entity, oldest first (the record's history view)."""
    return list(
        session.scalars(
            select(AuditEvent)
            .where(AuditEvent.entity == entity, AuditEvent.entity_id == str(entity_id))
            .order_by(AuditEvent.id)
        )
    )
