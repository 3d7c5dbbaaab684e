"""Follow-up of a procedure: the outcome recorded later (percent relief and how many days it
lasted), which the repeat rules read (audit.rules.evaluate: a repeat ESI after relief of
>= 50% for >= 3 months, RFA after two blocks with >= 80% relief).

Why a table apart from the procedure: the outcome is known weeks after the procedure and must
not change the record's dose and compliance fields or its version. It is audited as an
amendment of the outcome only: an audit event (action amend, entity "follow_up", entity_id the
procedure's id) in the same transaction, so the record's history shows it. Who: permission
RECORD_FOLLOW_UP (technologist, physician, admin), and the actor must be able to read the
record (a technologist their own entries, a physician their own patients). Never deleted.
"""

from __future__ import annotations

import math
from datetime import date
from typing import Any

from sqlalchemy import Engine, select

from audit import bounds
from audit.auth import Actor, Permission, require
from audit.errors import FieldError, ValidationFailed
from audit.log.queries import readable_procedure
from audit.storage.engine import read_session, retrying, write_session
from audit.storage.models import FollowUp, utcnow
from audit.trail import lock_chain, record_event
from audit.vocab import AuditAction

#: The audit trail's entity for follow-ups; entity_id is the procedure's id.
ENTITY = "follow_up"
MAX_RELIEF_DAYS = 3650
NOTE_MAX_LENGTH = 1000


def _whole(value: Any, field: str, low: int, high: int, unit: str) -> int | FieldError:
    allowed = f"allowed: a whole number of {unit} from {low} to {high}"
    if value is None or isinstance(value, bool) or str(value).strip() == "":
        return FieldError(field, f"required; {allowed}")
    try:
        number = float(str(value).strip().rstrip("%"))
    except ValueError:
        return FieldError(field, f"{str(value)[:40]!r} is not a number; {allowed}")
    if not math.isfinite(number) or number != int(number) or not low <= number <= high:
        return FieldError(field, f"{str(value)[:40]!r} is out of range; {allowed}")
    return int(number)


def check_follow_up(followed_up_on: Any, relief_percent: Any, relief_days: Any,
                    note: Any = None) -> dict[str, Any]:
    """The follow-up's values, or ValidationFailed naming each field and what is allowed."""
    errors: list[FieldError] = []
    day: date | None = None
    if isinstance(followed_up_on, date):
        day = followed_up_on
    else:
        try:
            day = date.fromisoformat(str(followed_up_on or "").strip())
        except ValueError:
            errors.append(FieldError("followed_up_on", f"{str(followed_up_on)[:40]!r} is not a "
                                     "date; give YYYY-MM-DD"))
    if day is not None and day > utcnow().date():
        errors.append(FieldError("followed_up_on", f"{day} is in the future; allowed: today "
                                 "or earlier"))
    percent = _whole(relief_percent, "relief_percent", 0, 100, "percent")
    days = _whole(relief_days, "relief_days", 0, MAX_RELIEF_DAYS, "days")
    errors += [v for v in (percent, days) if isinstance(v, FieldError)]
    text = str(note).strip() if note is not None else ""
    problem = bounds.text_problem(text, NOTE_MAX_LENGTH) if text else None
    if problem:
        errors.append(FieldError("note", problem))
    if errors:
        raise ValidationFailed(errors)
    return {"followed_up_on": day, "relief_percent": percent, "relief_days": days,
            "note": text or None}


def _payload(row: FollowUp) -> dict[str, Any]:
    return {"follow_up_id": row.id, "record_id": row.procedure_id,
            "followed_up_on": row.followed_up_on.isoformat(),
            "relief_percent": row.relief_percent, "relief_days": row.relief_days,
            "note": row.note}


def record_follow_up(engine: Engine, actor: Actor, procedure_id: int, followed_up_on: Any,
                     relief_percent: Any, relief_days: Any, note: Any = None) -> int:
    """Record a procedure's outcome; the follow-up's id. Errors name the field."""
    require(actor, Permission.RECORD_FOLLOW_UP)
    values = check_follow_up(followed_up_on, relief_percent, relief_days, note)

    def work() -> int:
        with write_session(engine) as session:
            lock_chain(session)
            procedure = readable_procedure(session, actor, procedure_id,
                                           final_for="a follow-up")
            if values["followed_up_on"] < procedure.performed_at.date():
                raise ValidationFailed([FieldError(
                    "followed_up_on", f"{values['followed_up_on']} is before the procedure "
                    f"({procedure.performed_at.date()}); allowed: that day or later")])
            since = (values["followed_up_on"] - procedure.performed_at.date()).days
            if values["relief_days"] > since + 1:  # +1: a local evening is the next UTC day
                raise ValidationFailed([FieldError(
                    "relief_days", f"{values['relief_days']} days of relief cannot have passed "
                    f"{since} days after the procedure ({procedure.performed_at.date()}); "
                    f"allowed: 0 to {since + 1}")])
            row = FollowUp(procedure_id=procedure_id, created_by=actor.username,
                           created_at=utcnow(), **values)
            session.add(row)
            session.flush()
            record_event(session, actor=actor.username, action=AuditAction.AMEND, entity=ENTITY,
                         entity_id=procedure_id, after=_payload(row),
                         reason=f"outcome recorded on record {procedure_id}: "
                                f"{row.relief_percent}% relief for {row.relief_days} days")
            return row.id

    return retrying(work)


def list_follow_ups(engine: Engine, actor: Actor, procedure_id: int) -> list[dict[str, Any]]:
    """A record's follow-ups, oldest first."""
    require(actor, Permission.VIEW_RECORDS)
    with read_session(engine) as session:
        readable_procedure(session, actor, procedure_id)
        rows = session.scalars(select(FollowUp).where(FollowUp.procedure_id == procedure_id)
                               .order_by(FollowUp.followed_up_on, FollowUp.id)).all()
        return [{**_payload(r), "created_at": r.created_at.isoformat(),
                 "created_by": r.created_by} for r in rows]
