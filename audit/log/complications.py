"""Complications (adverse events) of a procedure: recorded while logging or later, listed on the
record, voided (never deleted) when entered by mistake (issue 15).

Why a service apart from the procedure log: a complication found at a follow-up call must be
added without amending the procedure row (its version, its dose and compliance figures stay as
they were), yet it must be audited like an amendment naming the procedure, so the record's
history shows it. Each write checks the actor's permission (RECORD_COMPLICATION: technologist,
physician, rso, admin) and that the actor may read the record, and records its audit event
(entity "complication", entity_id the procedure's id, action amend) in the same transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from audit.auth import Actor, Permission, require
from audit.bounds import check_moment
from audit.errors import FieldError, NotFound, ValidationFailed
from audit.log.case_mix import COMPLICATIONS, check_complication
from audit.log.queries import readable_procedure
from audit.storage.engine import read_session, retrying, write_session
from audit.storage.models import Complication, Procedure, utcnow
from audit.trail import lock_chain, record_event
from audit.vocab import AuditAction, ComplicationTiming, RecordStatus

#: The audit trail's entity for complications; entity_id is the procedure's id.
ENTITY = "complication"
#: The log input key (audit.log.case_mix) and what an amend naming it is told.
INPUT_KEY = COMPLICATIONS
ADD = ("not changed by an amend: record a complication with `fluoro-audit complication add` "
       "or on the record's detail, and void a mistaken one")


def _payload(row: Complication) -> dict[str, Any]:
    return {"complication_id": row.id, "record_id": row.procedure_id, "kind": row.kind,
            "severity": row.severity, "detail": row.detail, "timing": row.timing,
            "noticed_at": row.noticed_at.isoformat() if row.noticed_at else None,
            "status": row.status}


def _check_readable(session: Session, actor: Actor, procedure_id: int) -> Procedure:
    """The procedure, if it exists, is final and the actor may read it."""
    return readable_procedure(session, actor, procedure_id, final_for="a complication")


def write(session: Session, actor: Actor, procedure_id: int, item: dict[str, str | None], *,
          timing: ComplicationTiming, noticed_at: datetime | None = None) -> int:
    """Insert one checked complication (audit.log.case_mix.check_complication) and its audit
    event in the caller's transaction; the id."""
    row = Complication(procedure_id=procedure_id, kind=item["kind"], severity=item["severity"],
                       detail=item.get("detail"), timing=timing.value, noticed_at=noticed_at,
                       status=RecordStatus.FINAL.value, created_by=actor.username,
                       created_at=utcnow())
    session.add(row)
    session.flush()
    record_event(session, actor=actor.username, action=AuditAction.AMEND, entity=ENTITY,
                 entity_id=procedure_id, after=_payload(row),
                 reason=f"complication recorded on record {procedure_id}: {row.kind} "
                        f"({row.severity})")
    return row.id


def write_noted(session: Session, actor: Actor, procedure_id: int,
                items: Sequence[dict[str, str | None]]) -> list[int]:
    """The complications noted on the entry form or in `log` input, with the new record."""
    if items:
        require(actor, Permission.RECORD_COMPLICATION)
    return [write(session, actor, procedure_id, item, timing=ComplicationTiming.AT_PROCEDURE)
            for item in items]


def record_complication(engine: Engine, actor: Actor, procedure_id: int, kind: Any,
                        severity: Any, detail: Any = None, *, noticed_at: Any = None,
                        timing: ComplicationTiming | str = ComplicationTiming.FOLLOW_UP) -> int:
    """Record a complication of a logged procedure, later (at follow-up) or for the time of the
    procedure; the new complication's id. Errors name the field and what is allowed."""
    require(actor, Permission.RECORD_COMPLICATION)
    errors: list[FieldError] = []
    try:
        item = check_complication(kind, severity, detail)
    except ValueError as exc:
        named = next((f for f in ("kind", "severity", "detail") if str(exc).startswith(f)),
                     "complication")
        errors.append(FieldError(named, str(exc)))
    try:
        when = ComplicationTiming.parse(timing)
    except ValueError as exc:
        errors.append(FieldError("timing", str(exc)))
    moment = None
    if noticed_at not in (None, ""):
        try:
            moment = (noticed_at if isinstance(noticed_at, datetime)
                      else datetime.fromisoformat(str(noticed_at).strip()))
            if moment.tzinfo is None:
                raise ValueError("needs a UTC offset, e.g. 2026-03-20T10:00:00-05:00")
            moment = check_moment(moment, utcnow())
        except ValueError as exc:
            errors.append(FieldError("noticed_at", f"{exc}; give an ISO 8601 date-time with "
                                     "its UTC offset"))
    if errors:
        raise ValidationFailed(errors)

    def work() -> int:
        with write_session(engine) as session:
            lock_chain(session)
            procedure = _check_readable(session, actor, procedure_id)
            if moment is not None and moment < procedure.performed_at:
                raise ValidationFailed([FieldError(
                    "noticed_at", "before the procedure; allowed: the procedure's time or "
                    "later")])
            return write(session, actor, procedure_id, item, timing=when, noticed_at=moment)

    return retrying(work)


def void_complication(engine: Engine, actor: Actor, complication_id: int, reason: str) -> None:
    """Mark a complication entered by mistake void, with a reason; it stays listed as void."""
    require(actor, Permission.RECORD_COMPLICATION)
    text = reason.strip() if isinstance(reason, str) else ""
    if not text:
        raise ValidationFailed([FieldError("reason", "required: say why the complication is "
                                           "voided")])

    def work() -> None:
        with write_session(engine) as session:
            lock_chain(session)
            row = session.get(Complication, complication_id, with_for_update=True)
            if row is None:
                raise NotFound(f"no complication {complication_id}")
            _check_readable(session, actor, row.procedure_id)
            if row.status == RecordStatus.VOID.value:
                raise ValidationFailed([FieldError("complication", f"complication "
                                                   f"{complication_id} is already void")])
            before = _payload(row)
            row.status, row.void_reason = RecordStatus.VOID.value, text
            session.flush()
            record_event(session, actor=actor.username, action=AuditAction.VOID, entity=ENTITY,
                         entity_id=row.procedure_id, before=before, after=_payload(row),
                         reason=text)

    retrying(work)


def list_complications(engine: Engine, actor: Actor, procedure_id: int) -> list[dict[str, Any]]:
    """A record's complications, oldest first, void ones included (marked)."""
    require(actor, Permission.VIEW_RECORDS)
    with read_session(engine) as session:
        readable_procedure(session, actor, procedure_id)
        rows = session.scalars(select(Complication).where(
            Complication.procedure_id == procedure_id).order_by(Complication.id)).all()
        return [{**_payload(r), "void_reason": r.void_reason,
                 "created_at": r.created_at.isoformat(), "created_by": r.created_by}
                for r in rows]
