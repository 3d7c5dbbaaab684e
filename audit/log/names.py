"""Names in a record (site, room, physician, technologist, patient) and the rows they stand for.

Why: input names things as people say them; the database stores ids. Each write resolves the
names to ids here and, with create_missing (a first import, or the demo), creates what does not
exist yet, each creation audited like any other change. Without it an unknown name is an error
that lists the known ones, so a typo does not silently create a second physician.

Issue 11 (split names): a name resolves to an existing row when it is that row's name, a name
merged into it (audit.log.merge, table name_alias), or its name written another way ("dr amelia
chen"; audit.log.near_names.same_name). A new name near an existing one ("Chen" beside "Dr.
Amelia Chen") is a warning (new_name_warnings) that must be confirmed before it is created, and
the log form creates names only through add_name (audit.log.name_entry), which asks the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from audit.auth import USERNAME_RULE, Actor, validate_username
from audit.bounds import text_problem
from audit.errors import FieldError, ValidationFailed
from audit.log import near_names
from audit.log.pseudonym import pseudonym
from audit.storage.models import (
    NameAlias,
    Patient,
    Physician,
    Procedure,
    ProcedureType,
    Room,
    Site,
    UserAccount,
    utcnow,
)
from audit.trail import record_event
from audit.vocab import AuditAction, DapUnit, Role

#: How many known names an "unknown name" error lists.
KNOWN_NAMES_SHOWN = 20
#: The keys of record_names, in the order its query selects them.
RECORD_NAME_KEYS = ("site", "room", "physician", "physician_username", "technologist",
                    "patient_id", "patient_ref", "procedure_code")


@dataclass(frozen=True)
class NameKind:
    """Where a kind of name is stored, and how its creation is audited."""

    model: Any
    column: str
    entity: str
    limit: int


KINDS: dict[str, NameKind] = {
    "site": NameKind(Site, "name", "site", 120),
    "room": NameKind(Room, "name", "room", 120),
    "physician": NameKind(Physician, "name", "physician", 160),
    "technologist": NameKind(UserAccount, "username", "user_account", 80),
}


def _column(kind: str) -> Any:
    spec = KINDS[kind]
    return getattr(spec.model, spec.column)


def _scoped(kind: str, query: Any, scope: int | None) -> Any:
    """A room's names are its site's; the other kinds have one list each."""
    return query.where(Room.site_id == scope) if kind == "room" else query


def stored_names(session: Session, kind: str, scope: int | None = None, *,
                 active_only: bool = False) -> list[tuple[int, str, bool]]:
    """(id, name, active) of every `kind` (a room: at site `scope`), ordered by name."""
    model = KINDS[kind].model
    query = _scoped(kind, select(model.id, _column(kind), model.active), scope)
    if active_only:
        query = query.where(model.active.is_(True))
    return [(int(i), str(n), bool(a)) for i, n, a in
            session.execute(query.order_by(_column(kind)))]


def find(session: Session, kind: str, name: str, scope: int | None = None
         ) -> tuple[int, str] | None:
    """The row that `name` stands for, as (id, stored name), or None if it is new.

    In order: an active row with exactly this name; a merged name (name_alias) and the row it
    was merged into; a deactivated row with exactly this name; the one row whose name is this
    one written another way (near_names.same_name: "dr amelia chen" is "Dr. Amelia Chen").
    A merged row is deactivated, so its alias wins over its own name.
    """
    model = KINDS[kind].model
    found = session.execute(_scoped(kind, select(model.id, _column(kind)), scope)
                            .where(_column(kind) == name, model.active.is_(True))).first()
    if found is not None:
        return int(found[0]), str(found[1])
    aliased = _alias_target(session, kind, name, scope)
    if aliased is not None:
        return aliased
    rows = stored_names(session, kind, scope)
    exact = [(i, n) for i, n, _ in rows if n == name]
    if exact:
        return exact[0]
    same = [(i, n, a) for i, n, a in rows if near_names.same_name(name, n, kind)]
    live = [(i, n) for i, n, a in same if a]
    if len(live) == 1:
        return live[0]
    if len(same) == 1:
        return same[0][0], same[0][1]
    return None


def _alias_target(session: Session, kind: str, name: str, scope: int | None
                  ) -> tuple[int, str] | None:
    """The row a merged name now means (exactly, or written another way)."""
    aliases = session.execute(select(NameAlias.alias, NameAlias.target_id).where(
        NameAlias.kind == kind, NameAlias.scope_id == (scope or 0))).all()
    exact = [t for a, t in aliases if a == name]
    same = exact or list(dict.fromkeys(t for a, t in aliases
                                       if near_names.same_name(name, a, kind)))
    if len(same) != 1:
        return None
    target = session.scalar(select(_column(kind)).where(KINDS[kind].model.id == same[0]))
    return (int(same[0]), str(target)) if target is not None else None


def candidates_for(session: Session, kind: str, name: str, scope: int | None = None
                   ) -> list[str]:
    """The existing active names a new `name` may have meant: names that are it written
    another way but ambiguous (two rows), then near matches, nearest first."""
    live = [n for _, n, active in stored_names(session, kind, scope) if active]
    same = near_names.same_names(name, live, kind)
    near = near_names.near_matches(name, live, kind)
    return list(dict.fromkeys([*same, *near]))[:near_names.SHOWN]


def _scope_of(session: Session, kind: str, names: Mapping[str, str]) -> tuple[bool, int | None]:
    """(whether the name can be looked up, its scope): a room needs its site to exist."""
    if kind != "room":
        return True, None
    site = find(session, "site", names["site"])
    return site is not None, site[0] if site else None


def new_name_warnings(session: Session, names: Mapping[str, str]) -> list[FieldError]:
    """Warnings for each name that `create_missing` would create while an existing name is
    near it (issue 11: "Chen" beside "Dr. Amelia Chen"): the record is refused until they are
    confirmed, as plausibility warnings are. Kept apart from audit.log.plausibility, which
    judges values, not names."""
    warnings: list[FieldError] = []
    known_place = session.execute(  # the usual case: one query for site and room
        select(Room.id).join(Site).where(Site.name == names.get("site"),
                                         Room.name == names.get("room"),
                                         Site.active.is_(True), Room.active.is_(True))
    ).first() is not None
    for kind in near_names.NAME_KINDS:
        name = names.get(kind)
        if not name or (known_place and kind in ("site", "room")):
            continue
        known, scope = _scope_of(session, kind, names)
        if not known or find(session, kind, name, scope) is not None:
            continue
        matches = candidates_for(session, kind, name, scope)
        # Another writer may have created this very name between the lookup and the list of
        # candidates (PostgreSQL reads each statement afresh): then it is not new after all.
        if matches and find(session, kind, name, scope) is None:
            warnings.append(FieldError(kind, f"{name!r} is new; "
                                       f"{near_names.did_you_mean(matches)} "
                                       "(--confirm-warnings to add it anyway)"))
    return warnings


class NameResolver:
    """Finds (or, with create_missing, creates) the referenced site, room, physician,
    technologist and patient. Creation is race-safe: INSERT .. ON CONFLICT DO NOTHING.

    A name resolves as audit.log.names.find says (exact, merged alias, written another way);
    the record then carries the stored name, so "dr amelia chen" is saved as "Dr. Amelia
    Chen"."""

    def __init__(self, session: Session, actor: Actor, create_missing: bool, secret: str):
        self.session, self.actor, self.create, self.secret = session, actor, create_missing, secret
        self.room_factor = 1.0
        #: The record's names in dictionary fields, known once resolved (no query needed).
        self.names: dict[str, str] = {}
        self.errors: list[FieldError] = []

    def resolve(self, names: Mapping[str, str], code: str,
                dap_unit: str | None = None) -> dict[str, int]:
        """The Procedure id columns for `names`; ValidationFailed lists every unknown name.
        A room created here displays `dap_unit` (the unit its first record was read in)."""
        s = self.session
        stored: dict[str, str] = {}
        known_room = s.execute(
            select(Room.site_id, Room.id, Room.kap_correction_factor).join(Site)
            .where(Site.name == names["site"], Room.name == names["room"],
                   Site.active.is_(True), Room.active.is_(True))
        ).first()
        if known_room is not None:  # the usual case: one query for site and room
            site_id, room_id, self.room_factor = known_room
        else:
            site_id = self._find_or_create(
                "site", names["site"], stored, {"active": True, "created_at": utcnow()})
            room_id = None
            if site_id is not None:
                room_id = self._find_or_create(
                    "room", names["room"], stored,
                    {"site_id": site_id, "active": True,
                     "dap_display_unit": dap_unit or DapUnit.GY_CM2.value,
                     "kap_correction_factor": 1.0, "created_at": utcnow()},
                    scope=site_id, where=f" at site {stored['site']!r}")
                if room_id is not None:
                    self.room_factor = s.scalar(select(Room.kap_correction_factor)
                                                .where(Room.id == room_id)) or 1.0
        physician_id = self._find_or_create(
            "physician", names["physician"], stored, {"active": True, "created_at": utcnow()})
        tech_id = self._find_or_create(
            "technologist", names["technologist"], stored,
            {"role": Role.TECHNOLOGIST.value, "can_sign_in": False, "active": True,
             "failed_logins": 0, "created_at": utcnow()})
        if self.errors:
            raise ValidationFailed(self.errors)
        assert site_id and room_id and physician_id and tech_id
        mrn = names["patient_id"]
        patient = s.execute(select(Patient.id, Patient.pseudonym)
                            .where(Patient.mrn == mrn)).first()
        if patient is None:
            insert_ignore(s, Patient, {"mrn": mrn, "pseudonym": pseudonym(self.secret, mrn),
                                       "created_at": utcnow()})
            patient = s.execute(select(Patient.id, Patient.pseudonym)
                                .where(Patient.mrn == mrn)).one()
        self.names = {**names, **stored, "patient_ref": patient[1], "procedure_code": code}
        return {"site_id": site_id, "room_id": room_id, "physician_id": physician_id,
                "technologist_id": tech_id, "patient_id": patient[0]}

    def _find_or_create(self, kind: str, name: str, stored: dict[str, str],
                        values: dict[str, Any], scope: int | None = None,
                        where: str = "") -> int | None:
        found = find(self.session, kind, name, scope)
        if found is not None:
            stored[kind] = found[1]
            return found[0]
        spec = KINDS[kind]
        near = candidates_for(self.session, kind, name, scope)
        if not self.create:
            known = [n for _, n, _ in stored_names(self.session, kind, scope)]
            listing = ", ".join(repr(k) for k in known[:KNOWN_NAMES_SHOWN]) or "none yet"
            hint = f"; {near_names.did_you_mean(near)}" if near else ""
            self.errors.append(FieldError(
                kind, f"no {kind} named {name!r}{where}{hint}; known: {listing} (or allow "
                "creating missing names)"))
            return None
        if kind == "technologist" and (problem := new_account_problem(name)):
            self.errors.append(problem)
            return None
        values = {**values, spec.column: name}
        insert_ignore(self.session, spec.model, values)
        new_id = int(self.session.scalar(_scoped(kind, select(spec.model.id), scope)
                                         .where(_column(kind) == name)))
        after = {k: v for k, v in values.items() if k != "created_at"}
        reason = "created from a logged record (create missing)"
        if near:
            after["near_names_confirmed"] = near
            reason += ("; confirmed as different from " + ", ".join(repr(n) for n in near))
        record_event(self.session, actor=self.actor.username, action=AuditAction.CREATE,
                     entity=spec.entity, entity_id=new_id, after=after, reason=reason)
        stored[kind] = name
        return new_id


def new_account_problem(username: str) -> FieldError | None:
    """Why `username` cannot become a technologist's account (the username rule of
    audit.auth), as an error on the technologist field; None if it can."""
    try:
        validate_username(username, "technologist")
    except ValidationFailed:
        return FieldError("technologist", f"no account named {username!r}, and it cannot be "
                          f"created: a username {USERNAME_RULE}")
    return None


def insert_ignore(session: Session, model: Any, values: dict[str, Any]) -> None:
    """INSERT that does nothing when a unique key already exists (a concurrent writer won)."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        stmt = postgresql.insert(model).values(**values).on_conflict_do_nothing()
    elif dialect == "sqlite":
        stmt = sqlite.insert(model).values(**values).on_conflict_do_nothing()
    else:
        stmt = insert(model).values(**values)
    session.execute(stmt)


def room_display_unit(session: Session, data: Mapping[str, Any]) -> DapUnit | None:
    """The room's display unit: the default when a DAP value comes without a unit. The room
    is found as a record's names are (a merged or differently written name included)."""
    room, site = name_text(data.get("room")), name_text(data.get("site"))
    if not room or not site:
        return None
    unit = session.scalar(
        select(Room.dap_display_unit).join(Site).where(Room.name == room, Site.name == site)
    )
    if unit is None:
        site_row = find(session, "site", site)
        room_row = find(session, "room", room, site_row[0]) if site_row else None
        if room_row is not None:
            unit = session.scalar(select(Room.dap_display_unit)
                                  .where(Room.id == room_row[0]))
    return DapUnit(unit) if unit else None


def name_text(value: Any) -> str | None:
    """A name as validation will read it (text, or a number), if it could be stored: only such
    names are looked up (PostgreSQL refuses a NUL in a query); validation names the others."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) < 10**40:
        value = str(value)
    if not isinstance(value, str) or text_problem(value.strip(), 200):
        return None
    return value.strip()


def record_names(session: Session, procedure: Procedure) -> dict[str, Any]:
    """A stored record's names (RECORD_NAME_KEYS), with the physician's username for the read
    check (audit.access.may_read)."""
    row = session.execute(
        select(Site.name, Room.name, Physician.name, Physician.username, UserAccount.username,
               Patient.mrn, Patient.pseudonym, ProcedureType.code)
        .select_from(Procedure)
        .join(Site, Site.id == Procedure.site_id).join(Room, Room.id == Procedure.room_id)
        .join(Physician, Physician.id == Procedure.physician_id)
        .join(UserAccount, UserAccount.id == Procedure.technologist_id)
        .join(Patient, Patient.id == Procedure.patient_id)
        .join(ProcedureType, ProcedureType.id == Procedure.procedure_type_id)
        .where(Procedure.id == procedure.id)
    ).one()
    return dict(zip(RECORD_NAME_KEYS, row, strict=True))
