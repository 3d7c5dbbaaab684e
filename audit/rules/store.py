"""The rule packs as the site has them (table `rule_pack`): read for the checks, listed,
switched on or off and their parameters changed by an administrator, each change audited
(action setting, entity "rule_pack", before and after).

The parameters a pack reads are the stored ones merged over the pack's defaults
(audit.rules.packs), so a parameter added by a later release has its default until an
administrator sets it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from audit.auth import Actor, Permission, require
from audit.errors import FieldError, NotFound, ValidationFailed
from audit.rules.packs import BY_KEY, spec
from audit.storage.engine import read_session, retrying, write_session
from audit.storage.models import RulePack, utcnow
from audit.trail import lock_chain, record_event
from audit.vocab import AuditAction

ENTITY = "rule_pack"


@dataclass(frozen=True)
class ActivePack:
    """A pack as the checks see it: switched on, the dates it applies to, its parameters."""

    key: str
    enabled: bool
    parameters: dict[str, Any]
    effective_from: date | None = None
    effective_to: date | None = None

    def applies(self, day: date) -> bool:
        """On, and `day` within its effective dates."""
        return (self.enabled and (self.effective_from is None or day >= self.effective_from)
                and (self.effective_to is None or day <= self.effective_to))


def _active(row: RulePack) -> ActivePack:
    known = BY_KEY.get(row.key)
    params = {**(known.defaults() if known else {}), **(row.parameters or {})}
    return ActivePack(row.key, bool(row.enabled), params, row.effective_from, row.effective_to)


def load_packs(session: Session) -> dict[str, ActivePack]:
    """Every pack the site has (on or off), by key: one small query."""
    return {row.key: _active(row) for row in session.scalars(select(RulePack))}


def default_packs() -> dict[str, ActivePack]:
    """The packs as seeded (every one on, default parameters): for tests and the bench."""
    return {p.key: ActivePack(p.key, True, p.defaults(), p.effective_from, p.effective_to)
            for p in BY_KEY.values()}


def _row(row: RulePack) -> dict[str, Any]:
    known = BY_KEY.get(row.key)
    return {"key": row.key, "title": row.title, "source": row.source,
            "effective_from": row.effective_from.isoformat() if row.effective_from else None,
            "effective_to": row.effective_to.isoformat() if row.effective_to else None,
            "enabled": bool(row.enabled), "parameters": _active(row).parameters,
            "rules": [r.key for r in known.rules] if known else [],
            "updated_at": row.updated_at.isoformat(), "updated_by": row.updated_by}


def list_packs(engine: Engine, actor: Actor) -> list[dict[str, Any]]:
    """Every pack with its source, dates, switch, parameters and rules."""
    require(actor, Permission.VIEW_RECORDS)
    with read_session(engine) as session:
        return [_row(r) for r in session.scalars(select(RulePack).order_by(RulePack.key))]


def _change(engine: Engine, actor: Actor, key: str, apply: Any) -> dict[str, Any]:
    require(actor, Permission.ADMIN)
    try:
        name = spec(key).key
    except ValueError as exc:
        raise ValidationFailed([FieldError("pack", str(exc))]) from None

    def work() -> dict[str, Any]:
        with write_session(engine) as session:
            lock_chain(session)
            row = session.get(RulePack, name, with_for_update=True)
            if row is None:
                raise NotFound(f"rule pack {name} is not in this database (migrate it)")
            before = _row(row)
            what = apply(row)
            row.updated_at, row.updated_by = utcnow(), actor.username
            session.flush()
            after = _row(row)
            changed = [k for k in ("enabled", "parameters") if before[k] != after[k]]
            record_event(session, actor=actor.username, action=AuditAction.SETTING,
                         entity=ENTITY, entity_id=name,
                         before={k: before[k] for k in changed},
                         after={k: after[k] for k in changed}, reason=what)
            return after

    return retrying(work)


def set_enabled(engine: Engine, actor: Actor, key: str, enabled: bool) -> dict[str, Any]:
    """Switch a pack on or off (administrators; audited)."""
    def apply(row: RulePack) -> str:
        row.enabled = bool(enabled)
        return f"rule pack {row.key} switched {'on' if enabled else 'off'}"

    return _change(engine, actor, key, apply)


def set_parameter(engine: Engine, actor: Actor, key: str, parameter: str,
                  value: Any) -> dict[str, Any]:
    """Change one parameter of a pack (administrators; audited). A name the pack does not
    have, or a value out of its range, is an error naming the parameter and what is allowed."""
    try:
        pack = spec(key)
    except ValueError as exc:
        raise ValidationFailed([FieldError("pack", str(exc))]) from None
    try:
        checked = pack.parameter(str(parameter).strip()).check(value)
    except ValueError as exc:
        raise ValidationFailed([FieldError(str(parameter).strip()[:60] or "parameter",
                                           str(exc))]) from None

    def apply(row: RulePack) -> str:
        row.parameters = {**_active(row).parameters, parameter.strip(): checked}
        return f"rule pack {row.key}: {parameter.strip()} set to {checked}"

    return _change(engine, actor, key, apply)
