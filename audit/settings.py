"""Settings: thresholds and site configuration, each with its source, every change audited."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from audit.auth import Actor, Permission, require
from audit.errors import FieldError, NotFound, ValidationFailed
from audit.storage.engine import write_session
from audit.storage.models import Setting, utcnow
from audit.trail import record_event
from audit.vocab import AuditAction

#: Settings never shown or exported (the pseudonym key would let anyone reverse patient_ref).
SECRET_KEYS = frozenset({"pseudonym_secret"})


def load_settings(session: Session) -> dict[str, Any]:
    return {s.key: s.value for s in session.scalars(select(Setting))}


def list_settings(session: Session) -> list[Setting]:
    """Every setting that may be shown, with its source."""
    return [s for s in session.scalars(select(Setting).order_by(Setting.key))
            if s.key not in SECRET_KEYS]


def update_setting(engine: Engine, actor: Actor, key: str, value: Any,
                   source: str | None = None) -> None:
    require(actor, Permission.ADMIN)
    if key in SECRET_KEYS:
        raise ValidationFailed([FieldError(key, "this setting cannot be changed here")])
    with write_session(engine) as session:
        setting = session.get(Setting, key)
        if setting is None:
            raise NotFound(f"no setting named {key!r}")
        if type(value) is not type(setting.value) and not (
            isinstance(value, int | float) and isinstance(setting.value, int | float)
        ):
            raise ValidationFailed([FieldError(
                key, f"expected a value like {setting.value!r}, got {value!r}")])
        before = {"value": setting.value, "source": setting.source}
        setting.value = value
        if source is not None:
            setting.source = source
        setting.updated_at = utcnow()
        setting.updated_by = actor.username
        record_event(session, actor=actor.username, action=AuditAction.SETTING,
                     entity="setting", entity_id=key, before=before,
                     after={"value": value, "source": setting.source})
