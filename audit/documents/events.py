"""The audit events of documents and of patient-history views (issue 14).

Every view of a patient's history, every letter, committee report and surveyor packet appends
one event naming who, which patient (by pseudonym, never the MRN: the trail is exported without
PHI) or which period, and the SHA-256 of the file it produced.

Why the action is `export` with the document as the entity: a view or a printed document
discloses data the way an export does, and the trail's `action` column is checked against a
fixed list on an append-only, hash-chained table; a new action would mean rebuilding that table
on SQLite. The entity says which document ("patient_history", "patient_letter",
"committee_report"); `after.access` says how ("view", "csv", "json", "pdf").
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from audit.auth import Actor
from audit.trail import record_event
from audit.vocab import AuditAction

PATIENT_HISTORY = "patient_history"
PATIENT_LETTER = "patient_letter"
COMMITTEE_REPORT = "committee_report"


def record_document(session: Session, actor: Actor, document: str, subject: str, *,
                    access: str, sha256: str | None = None, **details: Any) -> int:
    """Append the event in the caller's transaction; returns its id. `subject` is the
    patient's pseudonym or the period ("2026-01-01 to 2026-03-31")."""
    after: dict[str, Any] = {"access": access, "subject": subject, **details}
    if sha256 is not None:
        after["sha256"] = sha256
    event = record_event(session, actor=actor.username, action=AuditAction.EXPORT,
                         entity=document, entity_id=subject, after=after)
    return int(event.id)
