"""Adding a site, room or physician on purpose, from the log form (issue 11).

Why: the form's name fields used to accept whatever was typed, so "River" and Enter created a
site beside "Riverside Spine Center", a room created that way displayed Gy·cm² instead of the
real C-arm's µGy·m², and the wrong names were remembered for the next case. The form now only
selects existing names; a new one comes through add_name, which

* returns the existing name when the new one is it written another way ("dr amelia chen" is
  "Dr. Amelia Chen", or a name merged into it): nothing is created;
* refuses a name near an existing one ("Chen" beside "Dr. Amelia Chen") with
  WarningsNotConfirmed naming them, until the person confirms it is a different one;
* asks a room for its site and for the unit its DAP display shows (the form's default unit).

Any role that may log procedures may add a name (the first case can be logged before an
administrator has set anything up); every creation is audited, with the near names confirmed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from audit.auth import Actor, Permission, require
from audit.errors import FieldError, NearNamesFound, ValidationFailed
from audit.log import near_names
from audit.log.names import KINDS, candidates_for, find, insert_ignore
from audit.storage.engine import retrying, write_session
from audit.storage.models import Room, utcnow
from audit.trail import record_event
from audit.units import parse_dap_unit
from audit.vocab import AuditAction

#: What the log form can add (technologists come from accounts, not from the form).
FORM_KINDS = ("site", "room", "physician")


@dataclass(frozen=True)
class NameAdded:
    """The name to select now, and whether it was created (False: it existed already)."""

    kind: str
    name: str
    created: bool
    site: str | None = None


def _clean(errors: list[FieldError], kind: str, raw: Any) -> str:
    """The name with its whitespace collapsed; required and within the column's length."""
    text = " ".join(str(raw or "").split())
    limit = KINDS[kind].limit if kind in KINDS else 120
    if not text:
        errors.append(FieldError("name", f"required: type the new {kind}'s name"))
    elif len(text) > limit:
        errors.append(FieldError("name", f"is {len(text)} characters; at most {limit} "
                                 "allowed"))
    return text


def add_name(engine: Engine, actor: Actor, kind: str, name: str, *, site: str | None = None,
             dap_display_unit: str | None = None, confirm: bool = False) -> NameAdded:
    """Add a site, room or physician (see the module docstring); returns what to select.

    Raises ValidationFailed (nothing to add, a room without its site or display unit),
    NearNamesFound (a WarningsNotConfirmed naming the near names, unless `confirm`) or
    PermissionDenied.
    """
    require(actor, Permission.LOG_PROCEDURE)
    errors: list[FieldError] = []
    if kind not in FORM_KINDS:
        raise ValidationFailed([FieldError("kind", f"{kind!r} cannot be added here; allowed: "
                                           + ", ".join(FORM_KINDS))])
    clean = _clean(errors, kind, name)
    unit = None
    if kind == "room":
        if not str(site or "").strip():
            errors.append(FieldError("site", "choose the room's site first (or add it)"))
        if not str(dap_display_unit or "").strip():
            errors.append(FieldError("dap_display_unit", "required: the unit the C-arm's DAP "
                                     "display shows (the form's default unit for this room)"))
        else:
            try:
                unit = parse_dap_unit(dap_display_unit).value
            except ValueError as exc:
                errors.append(FieldError("dap_display_unit", str(exc)))
    if errors:
        raise ValidationFailed(errors)
    return retrying(lambda: _add_once(engine, actor, kind, clean, str(site or "").strip(),
                                      unit, confirm))


def _add_once(engine: Engine, actor: Actor, kind: str, name: str, site: str,
              unit: str | None, confirm: bool) -> NameAdded:
    with write_session(engine) as s:
        scope, site_name = None, None
        if kind == "room":
            found_site = find(s, "site", site)
            if found_site is None:
                raise ValidationFailed([FieldError("site", f"no site named {site!r}; add the "
                                                   "site first")])
            scope, site_name = found_site
        existing = find(s, kind, name, scope)
        if existing is not None:
            _refuse_inactive(s, kind, existing)
            return NameAdded(kind, existing[1], False, site_name)
        near = candidates_for(s, kind, name, scope)
        if near and not confirm:
            raise NearNamesFound([FieldError(
                kind, f"{name!r} is new; {near_names.did_you_mean(near)} Choose it, or "
                f"confirm that {name!r} is a different {kind} to add it")], near)
        spec = KINDS[kind]
        values: dict[str, Any] = {spec.column: name, "active": True, "created_at": utcnow()}
        if kind == "room":
            values |= {"site_id": scope, "dap_display_unit": unit, "kap_correction_factor": 1.0}
        insert_ignore(s, spec.model, values)
        query = select(spec.model.id).where(getattr(spec.model, spec.column) == name)
        if kind == "room":
            query = query.where(Room.site_id == scope)
        new_id = int(s.scalar(query))
        after = {k: v for k, v in values.items() if k not in ("created_at", "site_id")}
        if site_name is not None:
            after["site"] = site_name
        reason = "added from the log form"
        if near:
            after["near_names_confirmed"] = near
            reason += "; confirmed as different from " + ", ".join(repr(n) for n in near)
        record_event(s, actor=actor.username, action=AuditAction.CREATE, entity=spec.entity,
                     entity_id=new_id, after=after, reason=reason)
        return NameAdded(kind, name, True, site_name)


def _refuse_inactive(s: Session, kind: str, existing: tuple[int, str]) -> None:
    """A deactivated name is not offered by the form: say so rather than select it."""
    model = KINDS[kind].model
    if not s.scalar(select(model.active).where(model.id == existing[0])):
        raise ValidationFailed([FieldError("name", f"{existing[1]!r} exists but is "
                                           "deactivated; ask an administrator to reactivate "
                                           "it (Admin)")])
