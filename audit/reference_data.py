"""Reference data an administrator maintains: sites, rooms, physicians, the procedure catalog.

Every change is checked against the actor's role here (not only on the page), validated with
errors that name the field, and written in one transaction with its audit event (before and
after of the fields that changed). Nothing is deleted: rows are deactivated, because records
keep pointing at them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from audit.auth import Actor, Permission, require
from audit.bounds import finite_number, text_problem
from audit.errors import FieldError, NotFound, ValidationFailed
from audit.storage.engine import read_session, retrying, write_session
from audit.storage.models import Physician, ProcedureType, Room, Site, UserAccount, utcnow
from audit.trail import record_event
from audit.units import parse_dap_unit
from audit.vocab import AuditAction, CatalogRegion, ContrastPolicy, DapUnit, Region, Role

_CODE = re.compile(r"^[A-Z0-9_]{2,32}$")
MAX_NAME = 120
KAP_FACTOR_RANGE = (0.1, 2.0)  # the schema allows (0, 2]; below 0.1 is surely a typo


# --- lists (reference data is not PHI: any signed-in user may read it) -------------------------

def list_sites(engine: Engine, *, active_only: bool = False) -> list[dict[str, Any]]:
    with read_session(engine) as s:
        q = select(Site).order_by(Site.name)
        if active_only:
            q = q.where(Site.active.is_(True))
        return [{"site_id": x.id, "name": x.name, "active": x.active} for x in s.scalars(q)]


def list_rooms(engine: Engine, *, active_only: bool = False) -> list[dict[str, Any]]:
    """Rooms with their site, device and dose display: what the log form offers."""
    with read_session(engine) as s:
        q = (select(Room, Site.name).join(Site, Site.id == Room.site_id)
             .order_by(Site.name, Room.name))
        if active_only:
            q = q.where(Room.active.is_(True), Site.active.is_(True))
        return [{"room_id": r.id, "site": site, "name": r.name, "make": r.make,
                 "model": r.model, "serial": r.serial, "dap_display_unit": r.dap_display_unit,
                 "kap_correction_factor": r.kap_correction_factor, "active": r.active}
                for r, site in s.execute(q)]


def list_physicians(engine: Engine, *, active_only: bool = False) -> list[dict[str, Any]]:
    with read_session(engine) as s:
        q = select(Physician).order_by(Physician.name)
        if active_only:
            q = q.where(Physician.active.is_(True))
        return [{"physician_id": p.id, "name": p.name, "username": p.username,
                 "active": p.active} for p in s.scalars(q)]


CATALOG_FIELDS = ("code", "name", "region", "level_regions", "levels_required", "max_levels",
                  "laterality_required", "contrast_policy", "realtime_contrast_required",
                  "min_views", "typical_time_s", "typical_dap_gycm2", "max_expected_time_s",
                  "typical_source", "active")


def list_procedure_types(engine: Engine, *, active_only: bool = False) -> list[dict[str, Any]]:
    with read_session(engine) as s:
        q = select(ProcedureType).order_by(ProcedureType.code)
        if active_only:
            q = q.where(ProcedureType.active.is_(True))
        return [_catalog_row(p) for p in s.scalars(q)]


def _catalog_row(p: ProcedureType) -> dict[str, Any]:
    row = {name: getattr(p, name) for name in CATALOG_FIELDS}
    row["level_regions"] = [r for r in (p.level_regions or "").split(";") if r]
    return row


# --- shared helpers ----------------------------------------------------------------------------

def _name(errors: list[FieldError], field: str, raw: Any, limit: int = MAX_NAME) -> str | None:
    text = str(raw or "").strip()
    if not text:
        errors.append(FieldError(field, "required"))
        return None
    problem = text_problem(text, limit)  # also a NUL, which PostgreSQL cannot store
    if problem:
        errors.append(FieldError(field, problem))
        return None
    return text


def _optional_text(errors: list[FieldError], field: str, raw: Any,
                   limit: int = MAX_NAME) -> str | None:
    text = str(raw or "").strip()
    problem = text_problem(text, limit)
    if problem:
        errors.append(FieldError(field, problem))
        return None
    return text or None


def _unknown(changes: Mapping[str, Any], allowed: set[str]) -> list[FieldError]:
    return [FieldError(k, f"cannot be changed here; allowed: {', '.join(sorted(allowed))}")
            for k in changes if k not in allowed]


def _apply(session: Session, actor: Actor, entity: str, obj: Any,
           values: Mapping[str, Any]) -> None:
    """Set the values that differ and audit them as one amend (or deactivate)."""
    before = {k: getattr(obj, k) for k in values if getattr(obj, k) != values[k]}
    if not before:
        raise ValidationFailed([FieldError("changes", "nothing would change")])
    after = {k: values[k] for k in before}
    for key, value in after.items():
        setattr(obj, key, value)
    session.flush()
    action = AuditAction.DEACTIVATE if after == {"active": False} else AuditAction.AMEND
    record_event(session, actor=actor.username, action=action, entity=entity,
                 entity_id=obj.id, before={"name": _label(obj), **before},
                 after={"name": _label(obj), **after})


def _label(obj: Any) -> str:
    return str(getattr(obj, "code", None) or obj.name)


def _created(session: Session, actor: Actor, entity: str, obj: Any,
             after: Mapping[str, Any]) -> None:
    session.add(obj)
    session.flush()
    record_event(session, actor=actor.username, action=AuditAction.CREATE, entity=entity,
                 entity_id=obj.id, after=dict(after))


def _write(engine: Engine, actor: Actor, work: Callable[[Session], Any]) -> Any:
    require(actor, Permission.ADMIN)

    def attempt() -> Any:
        with write_session(engine) as session:
            return work(session)

    return retrying(attempt)


def _get(session: Session, model: Any, ident: int, what: str) -> Any:
    obj = session.get(model, ident)
    if obj is None:
        raise NotFound(f"no {what} with id {ident}")
    return obj


# --- sites -------------------------------------------------------------------------------------

def add_site(engine: Engine, actor: Actor, name: str) -> int:
    errors: list[FieldError] = []
    clean = _name(errors, "name", name)
    if errors:
        raise ValidationFailed(errors)

    def work(s: Session) -> int:
        if s.scalar(select(Site.id).where(Site.name == clean)):
            raise ValidationFailed([FieldError("name", f"a site named {clean!r} exists")])
        site = Site(name=clean, active=True, created_at=utcnow())
        _created(s, actor, "site", site, {"name": clean})
        return int(site.id)

    return int(_write(engine, actor, work))


def _name_and_active(changes: Mapping[str, Any], allowed: set[str],
                     limit: int = MAX_NAME) -> dict[str, Any]:
    """The checked name and active flag of an update (sites and physicians share the rule)."""
    errors = _unknown(changes, allowed)
    values: dict[str, Any] = {}
    if "name" in changes:
        values["name"] = _name(errors, "name", changes["name"], limit)
    if "active" in changes:
        values["active"] = bool(changes["active"])
    if errors:
        raise ValidationFailed(errors)
    return values


def _refuse_taken_name(s: Session, model: Any, ident: int, what: str,
                       values: Mapping[str, Any]) -> None:
    """A rename must not take another row's name (names are how people find them)."""
    if "name" in values and s.scalar(select(model.id).where(
            model.name == values["name"], model.id != ident)):
        raise ValidationFailed([FieldError("name", f"a {what} named {values['name']!r} "
                                           "exists")])


def update_site(engine: Engine, actor: Actor, site_id: int, **changes: Any) -> None:
    """Rename, deactivate (active=False) or reactivate a site."""
    values = _name_and_active(changes, {"name", "active"})

    def work(s: Session) -> None:
        site = _get(s, Site, site_id, "site")
        _refuse_taken_name(s, Site, site_id, "site", values)
        _apply(s, actor, "site", site, values)

    _write(engine, actor, work)


# --- rooms -------------------------------------------------------------------------------------

ROOM_FIELDS = {"name", "make", "model", "serial", "dap_display_unit", "kap_correction_factor",
               "active"}


def _room_values(changes: Mapping[str, Any], errors: list[FieldError]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if "name" in changes:
        values["name"] = _name(errors, "name", changes["name"])
    for key in ("make", "model", "serial"):
        if key in changes:
            values[key] = _optional_text(errors, key, changes[key])
    if "dap_display_unit" in changes:
        try:
            values["dap_display_unit"] = parse_dap_unit(changes["dap_display_unit"]).value
        except ValueError as exc:
            errors.append(FieldError("dap_display_unit", str(exc)))
    if "kap_correction_factor" in changes:
        low, high = KAP_FACTOR_RANGE
        try:
            factor = finite_number(changes["kap_correction_factor"])
        except ValueError:
            factor = float("nan")
        if not low <= factor <= high:
            raw = changes["kap_correction_factor"]
            errors.append(FieldError("kap_correction_factor", f"{raw!r} is not allowed; give a "
                                     f"number from {low:g} to {high:g} "
                                     "(1 = no correction; about 0.75 for under-table tubes)"))
        else:
            values["kap_correction_factor"] = factor
    if "active" in changes:
        values["active"] = bool(changes["active"])
    return values


def add_room(engine: Engine, actor: Actor, site: str, name: str, *, make: str | None = None,
             model: str | None = None, serial: str | None = None,
             dap_display_unit: str = DapUnit.GY_CM2.value,
             kap_correction_factor: float = 1.0) -> int:
    """A room or C-arm at a site, with the unit its DAP display uses (the log form's default)
    and its KAP correction factor (set by the physicist)."""
    errors: list[FieldError] = []
    values = _room_values({"name": name, "make": make, "model": model, "serial": serial,
                           "dap_display_unit": dap_display_unit,
                           "kap_correction_factor": kap_correction_factor}, errors)
    site_name = _name(errors, "site", site)
    if errors:
        raise ValidationFailed(errors)

    def work(s: Session) -> int:
        site_id = s.scalar(select(Site.id).where(Site.name == site_name))
        if site_id is None:
            raise ValidationFailed([FieldError("site", f"no site named {site_name!r}; add it "
                                               "first")])
        if s.scalar(select(Room.id).where(Room.site_id == site_id,
                                          Room.name == values["name"])):
            raise ValidationFailed([FieldError("name", f"{site_name} already has a room named "
                                               f"{values['name']!r}")])
        room = Room(site_id=site_id, active=True, created_at=utcnow(), **values)
        _created(s, actor, "room", room, {"site": site_name, **values})
        return int(room.id)

    return int(_write(engine, actor, work))


def update_room(engine: Engine, actor: Actor, room_id: int, **changes: Any) -> None:
    errors = _unknown(changes, ROOM_FIELDS)
    values = _room_values(changes, errors)
    if errors:
        raise ValidationFailed(errors)

    def work(s: Session) -> None:
        room = _get(s, Room, room_id, "room")
        if "name" in values and s.scalar(select(Room.id).where(
                Room.site_id == room.site_id, Room.name == values["name"], Room.id != room_id)):
            raise ValidationFailed([FieldError("name", f"this site already has a room named "
                                               f"{values['name']!r}")])
        _apply(s, actor, "room", room, values)

    _write(engine, actor, work)


# --- physicians --------------------------------------------------------------------------------

def _physician_username(s: Session, raw: Any, physician_id: int | None) -> str | None:
    username = str(raw or "").strip() or None
    if username is None:
        return None
    role = s.scalar(select(UserAccount.role).where(UserAccount.username == username))
    if role is None:
        raise ValidationFailed([FieldError("username", f"no account named {username!r}; add "
                                           "the account first (role physician)")])
    if role != Role.PHYSICIAN.value:
        raise ValidationFailed([FieldError("username", f"{username} has role {role}; only a "
                                           "physician account can be linked")])
    taken = s.scalar(select(Physician.name).where(Physician.username == username,
                                                  Physician.id != (physician_id or -1)))
    if taken:
        raise ValidationFailed([FieldError("username", f"{username} is already linked to "
                                           f"{taken}")])
    return username


def add_physician(engine: Engine, actor: Actor, name: str, username: str | None = None) -> int:
    """A performing physician; `username` links their sign-in account so they see their own
    records and scorecard."""
    errors: list[FieldError] = []
    clean = _name(errors, "name", name, 160)
    if errors:
        raise ValidationFailed(errors)

    def work(s: Session) -> int:
        if s.scalar(select(Physician.id).where(Physician.name == clean)):
            raise ValidationFailed([FieldError("name", f"a physician named {clean!r} exists")])
        linked = _physician_username(s, username, None)
        doc = Physician(name=clean, username=linked, active=True, created_at=utcnow())
        _created(s, actor, "physician", doc, {"name": clean, "username": linked})
        return int(doc.id)

    return int(_write(engine, actor, work))


def update_physician(engine: Engine, actor: Actor, physician_id: int, **changes: Any) -> None:
    values = _name_and_active(changes, {"name", "username", "active"}, 160)

    def work(s: Session) -> None:
        doc = _get(s, Physician, physician_id, "physician")
        _refuse_taken_name(s, Physician, physician_id, "physician", values)
        if "username" in changes:
            values["username"] = _physician_username(s, changes["username"], physician_id)
        _apply(s, actor, "physician", doc, values)

    _write(engine, actor, work)


# --- procedure catalog -------------------------------------------------------------------------

def _bool(errors: list[FieldError], field: str, raw: Any) -> bool | None:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in {"true", "yes", "1"}:
        return True
    if text in {"false", "no", "0"}:
        return False
    errors.append(FieldError(field, f"{raw!r} is not a yes/no value; allowed: true, false"))
    return None


def _number(errors: list[FieldError], field: str, raw: Any, low: float, high: float,
            integer: bool = False) -> float | int | None:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    try:
        value = finite_number(raw)
    except ValueError:
        value = float("nan")
    if not low <= value <= high or (integer and value != int(value)):
        kind = "a whole number" if integer else "a number"
        errors.append(FieldError(field, f"{raw!r} is not allowed; give {kind} from {low:g} to "
                                 f"{high:g}, or leave it empty"))
        return None
    return int(value) if integer else value


def _catalog_values(changes: Mapping[str, Any], errors: list[FieldError]) -> dict[str, Any]:
    v: dict[str, Any] = {}
    if "code" in changes:
        code = str(changes["code"] or "").strip().upper()
        if not _CODE.match(code):
            errors.append(FieldError("code", "must be 2-32 capital letters, digits or '_', "
                                     "e.g. GENICULAR_RFA"))
        v["code"] = code
    if "name" in changes:
        v["name"] = _name(errors, "name", changes["name"], 160)
    if "region" in changes:
        try:
            v["region"] = CatalogRegion.parse(changes["region"]).value
        except ValueError as exc:
            errors.append(FieldError("region", str(exc)))
    if "level_regions" in changes:
        raw = changes["level_regions"] or []
        items = raw if isinstance(raw, list | tuple) else re.split(r"[;,]", str(raw))
        regions: list[str] = []
        for item in (str(i).strip() for i in items):
            if not item:
                continue
            try:
                regions.append(Region.parse(item).value)
            except ValueError as exc:
                errors.append(FieldError("level_regions", str(exc)))
        ordered = [r for r in Region.values() if r in regions]
        v["level_regions"] = ";".join(ordered) or None
    if "contrast_policy" in changes:
        try:
            v["contrast_policy"] = ContrastPolicy.parse(changes["contrast_policy"]).value
        except ValueError as exc:
            errors.append(FieldError("contrast_policy", str(exc)))
    for key in ("levels_required", "laterality_required", "realtime_contrast_required",
                "active"):
        if key in changes:
            v[key] = _bool(errors, key, changes[key])
    if "min_views" in changes:
        views = _number(errors, "min_views", changes["min_views"], 0, 4, integer=True)
        if views is None and not any(e.field == "min_views" for e in errors):
            errors.append(FieldError("min_views", "required: a whole number from 0 to 4"))
        v["min_views"] = views
    if "max_levels" in changes:
        v["max_levels"] = _number(errors, "max_levels", changes["max_levels"], 0, 30,
                                  integer=True)
    for key, high in (("typical_time_s", 7200), ("typical_dap_gycm2", 1000),
                      ("max_expected_time_s", 21600)):
        if key in changes:
            number = _number(errors, key, changes[key], 0, high)
            v[key] = None if number is None else float(number)
    if "typical_source" in changes:
        v["typical_source"] = _optional_text(errors, "typical_source", changes["typical_source"],
                                             2000)
    return v


def _check_catalog(values: Mapping[str, Any], errors: list[FieldError]) -> None:
    region, level_regions = values.get("region"), values.get("level_regions")
    if region == CatalogRegion.BY_LEVEL.value and not level_regions:
        errors.append(FieldError("level_regions", "required when the region is by_level: "
                                 "which regions' levels are accepted"))
    if values.get("levels_required") and not level_regions:
        errors.append(FieldError("levels_required", "levels cannot be required when no level "
                                 "region is accepted"))
    if (values.get("realtime_contrast_required")
            and values.get("contrast_policy") == ContrastPolicy.NOT_REQUIRED.value):
        errors.append(FieldError("realtime_contrast_required", "cannot be required when the "
                                 "contrast policy is not_required"))


def add_procedure_type(engine: Engine, actor: Actor, **fields: Any) -> int:
    """Add a catalog entry. Required: code, name, region, contrast_policy; the rest default
    to the least demanding value."""
    defaults: dict[str, Any] = {"level_regions": None, "levels_required": False,
                                "max_levels": None, "laterality_required": False,
                                "realtime_contrast_required": False, "min_views": 2,
                                "typical_time_s": None, "typical_dap_gycm2": None,
                                "max_expected_time_s": None, "typical_source": None,
                                "active": True}
    errors = _unknown(fields, set(CATALOG_FIELDS))
    given = {k: v for k, v in fields.items() if k in CATALOG_FIELDS and v not in (None, "")}
    errors += [FieldError(k, "required") for k in ("code", "name", "region", "contrast_policy")
               if k not in given]
    values = _catalog_values({**defaults, **given}, errors)
    if not errors:
        _check_catalog(values, errors)
    if errors:
        raise ValidationFailed(errors)

    def work(s: Session) -> int:
        if s.scalar(select(ProcedureType.id).where(ProcedureType.code == values["code"])):
            raise ValidationFailed([FieldError("code", f"{values['code']} is already in the "
                                               "catalog")])
        entry = ProcedureType(**values)
        _created(s, actor, "procedure_type", entry, values)
        return int(entry.id)

    return int(_write(engine, actor, work))


def update_procedure_type(engine: Engine, actor: Actor, code: str, **changes: Any) -> None:
    """Change a catalog entry (its code stays: records and exports refer to it)."""
    errors = _unknown(changes, set(CATALOG_FIELDS) - {"code"})
    values = _catalog_values(changes, errors)
    if errors:
        raise ValidationFailed(errors)

    def work(s: Session) -> None:
        entry = s.scalar(select(ProcedureType).where(ProcedureType.code == code.strip().upper()))
        if entry is None:
            raise NotFound(f"no procedure type {code!r} in the catalog")
        merged = {k: getattr(entry, k) for k in CATALOG_FIELDS} | values
        problems: list[FieldError] = []
        _check_catalog(merged, problems)
        if problems:
            raise ValidationFailed(problems)
        _apply(s, actor, "procedure_type", entry, values)

    _write(engine, actor, work)
