"""Names in a record (site, room, physician, technologist, patient) and the rows they stand for.

Why: input names things as people say them; the database stores ids. Each write resolves the
names to ids here and, with create_missing (a first import, or the demo), creates what does not
exist yet, each creation audited like any other change. Without it an unknown name is an error
that lists the known ones, so a typo does not silently create a second physician.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from audit.auth import USERNAME_RULE, Actor, validate_username
from audit.bounds import text_problem
from audit.errors import FieldError, ValidationFailed
from audit.log.pseudonym import pseudonym
from audit.storage.models import (
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


class NameResolver:
    """Finds (or, with create_missing, creates) the referenced site, room, physician,
    technologist and patient. Creation is race-safe: INSERT .. ON CONFLICT DO NOTHING."""

    def __init__(self, session: Session, actor: Actor, create_missing: bool, secret: str):
        self.session, self.actor, self.create, self.secret = session, actor, create_missing, secret
        self.room_factor = 1.0
        #: The record's names in dictionary fields, known once resolved (no query needed).
        self.names: dict[str, str] = {}
        self.errors: list[FieldError] = []

    def resolve(self, names: Mapping[str, str], code: str) -> dict[str, int]:
        """The Procedure id columns for `names`; ValidationFailed lists every unknown name."""
        s = self.session
        known_room = s.execute(
            select(Room.site_id, Room.id, Room.kap_correction_factor).join(Site)
            .where(Site.name == names["site"], Room.name == names["room"])
        ).first()
        if known_room is not None:  # the usual case: one query for site and room
            site_id, room_id, self.room_factor = known_room
        else:
            site_id = self._find_or_create(
                "site", Site, Site.name == names["site"],
                {"name": names["site"], "active": True, "created_at": utcnow()})
            room_id = None
            if site_id is not None:
                room_id = self._find_or_create(
                    "room", Room, (Room.name == names["room"]) & (Room.site_id == site_id),
                    {"name": names["room"], "site_id": site_id, "active": True,
                     "dap_display_unit": DapUnit.GY_CM2.value, "kap_correction_factor": 1.0,
                     "created_at": utcnow()}, scope=f" at site {names['site']!r}")
                if room_id is not None:
                    self.room_factor = s.scalar(select(Room.kap_correction_factor)
                                                .where(Room.id == room_id)) or 1.0
        physician_id = self._find_or_create(
            "physician", Physician, Physician.name == names["physician"],
            {"name": names["physician"], "active": True, "created_at": utcnow()})
        tech_id = self._find_or_create(
            "technologist", UserAccount, UserAccount.username == names["technologist"],
            {"username": names["technologist"], "role": Role.TECHNOLOGIST.value,
             "can_sign_in": False, "active": True, "failed_logins": 0, "created_at": utcnow()},
            entity="user_account")
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
        self.names = {**names, "patient_ref": patient[1], "procedure_code": code}
        return {"site_id": site_id, "room_id": room_id, "physician_id": physician_id,
                "technologist_id": tech_id, "patient_id": patient[0]}

    def _find_or_create(self, field_name: str, model: Any, where: Any, values: dict[str, Any],
                        scope: str = "", entity: str | None = None) -> int | None:
        found = self.session.scalar(select(model.id).where(where))
        if found is not None:
            return int(found)
        if not self.create:
            known = self.session.scalars(select(
                model.username if model is UserAccount else model.name)
                .limit(KNOWN_NAMES_SHOWN)).all()
            listing = ", ".join(repr(k) for k in known) or "none yet"
            self.errors.append(FieldError(
                field_name, f"no {field_name} named {values.get('name', values.get('username'))!r}"
                f"{scope}; known: {listing} (or allow creating missing names)"))
            return None
        if model is UserAccount and (problem := new_account_problem(values["username"])):
            self.errors.append(problem)
            return None
        insert_ignore(self.session, model, values)
        new_id = int(self.session.scalar(select(model.id).where(where)))
        record_event(self.session, actor=self.actor.username, action=AuditAction.CREATE,
                     entity=entity or field_name, entity_id=new_id,
                     after={k: v for k, v in values.items() if k != "created_at"},
                     reason="created from a logged record (create missing)")
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
    """The room's display unit: the default when a DAP value comes without a unit."""
    room, site = _name_text(data.get("room")), _name_text(data.get("site"))
    if not room or not site:
        return None
    unit = session.scalar(
        select(Room.dap_display_unit).join(Site).where(Room.name == room, Site.name == site)
    )
    return DapUnit(unit) if unit else None


def _name_text(value: Any) -> str | None:
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


#: MRNs per IN (...) query when a batch looks its patients up.
_IN_CHUNK = 500


class NameDirectory:
    """The names of a batch of records (CSV import), resolved without holding the write lock.

    Why (issue 10): NameResolver runs inside the write transaction, a few queries per record;
    for a 30,000-row file that held SQLite's write lock for minutes. Here each name table is
    read once, before the write transaction (sites, rooms, physicians and accounts are small;
    patients are looked up for the batch's MRNs only), and every record is checked against
    that. Names the batch must create (create_missing) are noted in order of first use and
    created by `write_names`, inside the write transaction, audited as NameResolver would.
    Same rules and messages as NameResolver, the technologist username rule included.
    """

    def __init__(self, session: Session, create_missing: bool, secret: str,
                 mrns: Iterable[str]):
        self.create, self.secret = create_missing, secret
        self.sites: dict[str, int] = {n: i for n, i in session.execute(
            select(Site.name, Site.id))}
        #: (site name, room name) -> (room id, KAP correction factor, display unit)
        self.rooms: dict[tuple[str, str], tuple[int, float, str]] = {
            (site, room): (rid, factor or 1.0, unit) for site, room, rid, factor, unit in
            session.execute(select(Site.name, Room.name, Room.id, Room.kap_correction_factor,
                                   Room.dap_display_unit).join(Site))}
        self.physicians: dict[str, int] = {n: i for n, i in session.execute(
            select(Physician.name, Physician.id))}
        self.users: dict[str, int] = {n: i for n, i in session.execute(
            select(UserAccount.username, UserAccount.id))}
        self.patients: dict[str, tuple[int, str]] = {}
        wanted = sorted(set(mrns))
        for start in range(0, len(wanted), _IN_CHUNK):
            chunk = wanted[start:start + _IN_CHUNK]
            self.patients.update((mrn, (pid, ref)) for mrn, pid, ref in session.execute(
                select(Patient.mrn, Patient.id, Patient.pseudonym)
                .where(Patient.mrn.in_(chunk))))

    # --- before the write: per record --------------------------------------------------------
    def display_unit(self, data: Mapping[str, Any]) -> DapUnit | None:
        """room_display_unit without a query."""
        room, site = data.get("room"), data.get("site")
        if not room or not site:
            return None
        known = self.rooms.get((str(site).strip(), str(room).strip()))
        return DapUnit(known[2]) if known else None

    def room_factor(self, names: Mapping[str, str]) -> float:
        known = self.rooms.get((names["site"], names["room"]))
        return known[1] if known else 1.0  # a room created now starts at 1.0

    def patient_ref(self, mrn: str) -> str:
        known = self.patients.get(mrn)
        return known[1] if known else pseudonym(self.secret, mrn)

    def check(self, names: Mapping[str, str]) -> list[FieldError]:
        """The record's unknown names as NameResolver reports them (none with create_missing,
        except a technologist the username rule refuses)."""
        errors: list[FieldError] = []
        site, room = names["site"], names["room"]
        if self.create:
            tech = names["technologist"]
            problem = None if tech in self.users else new_account_problem(tech)
            return [problem] if problem else []
        if site not in self.sites:
            errors.append(self._unknown("site", site, self.sites))
        elif (site, room) not in self.rooms:
            errors.append(self._unknown("room", room, [r for s, r in self.rooms if s == site],
                                        f" at site {site!r}"))
        if names["physician"] not in self.physicians:
            errors.append(self._unknown("physician", names["physician"], self.physicians))
        if names["technologist"] not in self.users:
            errors.append(self._unknown("technologist", names["technologist"], self.users))
        return errors

    @staticmethod
    def _unknown(field_name: str, name: str, known: Iterable[str], scope: str = "") -> FieldError:
        shown = list(known)[:KNOWN_NAMES_SHOWN]
        listing = ", ".join(repr(k) for k in shown) or "none yet"
        return FieldError(field_name, f"no {field_name} named {name!r}{scope}; known: "
                          f"{listing} (or allow creating missing names)")

    # --- in the write transaction --------------------------------------------------------------
    def write_names(self, session: Session, actor: Actor,
                    records: Sequence[Mapping[str, str]]) -> list[dict[str, int]]:
        """Create the names `records` need that do not exist yet (each creation audited), add
        their new patients, and return each record's Procedure id columns.

        Works on copies: a transaction that is rolled back and retried starts again from what
        was read before it."""
        sites, physicians, users = dict(self.sites), dict(self.physicians), dict(self.users)
        rooms = {key: value[0] for key, value in self.rooms.items()}
        now = utcnow()
        for names in records:
            site, room = names["site"], names["room"]
            if site not in sites:
                sites[site] = _create(session, actor, "site", Site, Site.name == site,
                                      {"name": site, "active": True, "created_at": now})
            if (site, room) not in rooms:
                site_id = sites[site]
                rooms[site, room] = _create(
                    session, actor, "room", Room, (Room.name == room) & (Room.site_id == site_id),
                    {"name": room, "site_id": site_id, "active": True,
                     "dap_display_unit": DapUnit.GY_CM2.value, "kap_correction_factor": 1.0,
                     "created_at": now})
            doctor = names["physician"]
            if doctor not in physicians:
                physicians[doctor] = _create(
                    session, actor, "physician", Physician, Physician.name == doctor,
                    {"name": doctor, "active": True, "created_at": now})
            tech = names["technologist"]
            if tech not in users:
                users[tech] = _create(
                    session, actor, "technologist", UserAccount, UserAccount.username == tech,
                    {"username": tech, "role": Role.TECHNOLOGIST.value, "can_sign_in": False,
                     "active": True, "failed_logins": 0, "created_at": now},
                    entity="user_account")
        patients = self._write_patients(session, [n["patient_id"] for n in records], now)
        return [{"site_id": sites[n["site"]], "room_id": rooms[n["site"], n["room"]],
                 "physician_id": physicians[n["physician"]],
                 "technologist_id": users[n["technologist"]],
                 "patient_id": patients[n["patient_id"]]} for n in records]

    def _write_patients(self, session: Session, mrns: Sequence[str],
                        now: datetime) -> dict[str, int]:
        """Patient ids of `mrns`; the new ones inserted in one statement (race-safe, like
        NameResolver: ON CONFLICT DO NOTHING, then read back)."""
        ids = {mrn: known[0] for mrn, known in self.patients.items()}
        new = list(dict.fromkeys(m for m in mrns if m not in ids))
        if not new:
            return ids
        dialect = session.get_bind().dialect.name
        rows = [{"mrn": m, "pseudonym": pseudonym(self.secret, m), "created_at": now}
                for m in new]
        if dialect in ("postgresql", "sqlite"):
            module = postgresql if dialect == "postgresql" else sqlite
            session.execute(module.insert(Patient).on_conflict_do_nothing(), rows)
        else:
            session.execute(insert(Patient), rows)
        for start in range(0, len(new), _IN_CHUNK):
            ids.update((mrn, pid) for mrn, pid in session.execute(
                select(Patient.mrn, Patient.id)
                .where(Patient.mrn.in_(new[start:start + _IN_CHUNK]))))
        return ids

    def factors(self, session: Session, room_ids: Iterable[int]) -> dict[int, float]:
        """The rooms' KAP correction factors as of now (the physicist may have changed one
        since the batch was checked)."""
        wanted = sorted(set(room_ids))
        found: dict[int, float] = {}
        for start in range(0, len(wanted), _IN_CHUNK):
            found.update((rid, factor or 1.0) for rid, factor in session.execute(
                select(Room.id, Room.kap_correction_factor)
                .where(Room.id.in_(wanted[start:start + _IN_CHUNK]))))
        return found


def _create(session: Session, actor: Actor, field_name: str, model: Any, where: Any,
            values: dict[str, Any], entity: str | None = None) -> int:
    """The id of the row `where` finds, created (and audited) if there is none yet."""
    found = session.scalar(select(model.id).where(where))
    if found is not None:  # created by someone else since the batch was checked
        return int(found)
    insert_ignore(session, model, values)
    new_id = int(session.scalar(select(model.id).where(where)))
    record_event(session, actor=actor.username, action=AuditAction.CREATE,
                 entity=entity or field_name, entity_id=new_id,
                 after={k: v for k, v in values.items() if k != "created_at"},
                 reason="created from a logged record (create missing)")
    return new_id
