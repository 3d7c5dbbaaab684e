"""A record's life as the Records page shows it: who did what, when, why, field by field.

Why: the audit trail stores events (audit.trail); a reader wants each change as field, before,
after. Bulk loads write one event for a range of ids, so the history includes that event
too, and patient identifiers in the payloads are hidden from roles without PHI access.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from audit import access
from audit.auth import Actor
from audit.storage.engine import read_session
from audit.storage.models import AuditEvent
from audit.trail import history
from audit.vocab import AuditAction

if TYPE_CHECKING:
    from audit.log.service import ProcedureLog

HIDDEN = "(hidden)"


@dataclass(frozen=True)
class HistoryEntry:
    """One event in a record's life: who did what, when, why, and each field before/after."""

    event_id: int
    occurred_at: datetime
    actor: str
    action: str
    reason: str | None
    changes: list[tuple[str, Any, Any]]  # (field, before, after)


def record_history(service: ProcedureLog, record_id: int, actor: Actor) -> list[HistoryEntry]:
    """The audit events of one record, oldest first, readable by whoever may read the record.

    Records loaded in bulk (demo data, batch imports) have one event for a range of ids
    ("120001-140000"); that event is included so the history never starts from nothing.
    Patient identifiers inside before/after are hidden from roles without PHI access.
    """
    service.get(record_id, actor)  # raises unless the actor may read this record
    hide_phi = not access.may_see_patient_id(actor)
    with read_session(service.engine) as session:
        events = history(session, "procedure", record_id)
        bulk = session.scalars(
            select(AuditEvent).where(AuditEvent.entity == "procedure",
                                     AuditEvent.action == AuditAction.BULK_CREATE.value)
            .order_by(AuditEvent.id)).all()
    covering = [e for e in bulk if _covers(e.entity_id, record_id)]
    entries = []
    for event in sorted([*covering, *events], key=lambda e: e.id):
        before, after = event.before or {}, event.after or {}
        if event.action == AuditAction.BULK_CREATE.value:
            before, after = {}, {}
        keys = [k for k in dict.fromkeys([*before, *after]) if k != "record_id"]
        if event.action == AuditAction.CREATE.value:
            keys = [k for k in keys if after.get(k) not in (None, [], "")]
        changes = []
        for key in keys:
            old, new = before.get(key), after.get(key)
            if hide_phi and key == "patient_id":
                old, new = (HIDDEN if old else old), (HIDDEN if new else new)
            changes.append((key, old, new))
        entries.append(HistoryEntry(event.id, event.occurred_at, event.actor, event.action,
                                    event.reason, changes))
    return entries


def _covers(entity_id: str | None, record_id: int) -> bool:
    """Whether a bulk event's id range ("120001-140000") includes the record."""
    first, _, last = (entity_id or "").partition("-")
    return first.isdigit() and last.isdigit() and int(first) <= record_id <= int(last)
