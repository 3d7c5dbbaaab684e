"""Headline counts of the log (one aggregate query each)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, func, select

from audit.storage.engine import read_session
from audit.storage.models import AuditEvent, Procedure
from audit.vocab import RecordStatus


def log_summary(engine: Engine) -> dict[str, Any]:
    with read_session(engine) as s:
        total, voided, latest = s.execute(
            select(
                func.count(Procedure.id),
                func.count(Procedure.id).filter(Procedure.status == RecordStatus.VOID.value),
                func.max(Procedure.performed_at),
            )
        ).one()
        events = s.scalar(select(func.count(AuditEvent.id))) or 0
    if latest is not None and latest.tzinfo is None:  # func.max bypasses the column type
        from datetime import UTC, datetime

        latest = datetime.fromisoformat(str(latest)).replace(tzinfo=UTC)
    return {"procedures": total, "voided": voided, "latest": latest, "audit_events": events}
