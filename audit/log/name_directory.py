"""The names of a batch of records (CSV import), resolved before the write transaction.

Why (issue 10): audit.log.names.NameResolver runs inside the write transaction, a few queries per
record; for a 30,000-row file that held SQLite's write lock for minutes. NameDirectory reads
each name table once, before the write, resolves names as NameResolver does (issue 11: merged
names and names written another way are the kept row's; a new name near an existing one is a
warning) and creates what the batch needs inside the write transaction, audited the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from audit.auth import Actor
from audit.errors import FieldError
from audit.log import near_names
from audit.log.names import (
    KNOWN_NAMES_SHOWN,
    candidates_for,
    find,
    insert_ignore,
    name_text,
    new_account_problem,
)
from audit.log.pseudonym import pseudonym
from audit.storage.models import Patient, Physician, Room, Site, UserAccount, utcnow
from audit.trail import record_event
from audit.vocab import AuditAction, DapUnit, Role

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
        self._session = session
        #: (kind, name as written, site name for a room) -> (stored name or None, near names)
        self._resolved: dict[tuple[str, str, str], tuple[str | None, list[str]]] = {}
        #: (kind, name, site for a room) -> near names confirmed by creating it anyway
        self.near_confirmed: dict[tuple[str, str, str], list[str]] = {}

    # --- before the write: per record --------------------------------------------------------
    def canonical(self, names: Mapping[str, str]) -> tuple[dict[str, str], list[FieldError]]:
        """The record's names as stored (a merged name or one written another way becomes the
        kept row's name, as NameResolver resolves it) and, with create_missing, a warning for
        each new name near an existing one (new_name_warnings). Each distinct name is looked
        up once per batch, during prepare (the read session is still open)."""
        out, warnings = dict(names), []
        for kind in ("site", "room", "physician", "technologist"):
            name = out.get(kind)
            if not name:
                continue
            site = out["site"] if kind == "room" else ""
            if kind == "room" and (site, name) in self.rooms:
                continue
            if kind != "room" and name in self._exact(kind):
                continue
            stored, near = self._lookup(kind, name, site)
            if stored is not None:
                out[kind] = stored
            elif near and self.create:
                self.near_confirmed[kind, name, site] = near
                warnings.append(FieldError(kind, f"{name!r} is new; "
                                           f"{near_names.did_you_mean(near)} "
                                           "(--confirm-warnings to add it anyway)"))
        return out, warnings

    def _exact(self, kind: str) -> Mapping[str, int]:
        return {"site": self.sites, "physician": self.physicians,
                "technologist": self.users}[kind]

    def _lookup(self, kind: str, name: str, site: str) -> tuple[str | None, list[str]]:
        key = (kind, name, site)
        if key not in self._resolved:
            scope = None
            if kind == "room":
                scope = self.sites.get(site)
                if scope is None:  # a new site: its rooms are new too
                    self._resolved[key] = (None, [])
                    return self._resolved[key]
            found = find(self._session, kind, name, scope)
            near = [] if found else candidates_for(self._session, kind, name, scope)
            self._resolved[key] = (found[1] if found else None, near)
        return self._resolved[key]

    def display_unit(self, data: Mapping[str, Any]) -> DapUnit | None:
        """room_display_unit from the names read (a merged or differently written name is
        looked up once)."""
        room, site = name_text(data.get("room")), name_text(data.get("site"))
        if not room or not site:
            return None
        if site not in self.sites:
            site = self._lookup("site", site, "")[0] or site
        known = self.rooms.get((site, room))
        if known is None and site in self.sites:
            stored = self._lookup("room", room, site)[0]
            known = self.rooms.get((site, stored)) if stored else None
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
                    records: Sequence[Mapping[str, str]],
                    units: Sequence[str | None] | None = None) -> list[dict[str, int]]:
        """Create the names `records` need that do not exist yet (each creation audited), add
        their new patients, and return each record's Procedure id columns. A room created
        here displays the DAP unit of its first record (`units`, as NameResolver does).

        Works on copies: a transaction that is rolled back and retried starts again from what
        was read before it."""
        sites, physicians, users = dict(self.sites), dict(self.physicians), dict(self.users)
        rooms = {key: value[0] for key, value in self.rooms.items()}
        now = utcnow()
        near = self.near_confirmed
        for index, names in enumerate(records):
            site, room = names["site"], names["room"]
            if site not in sites:
                sites[site] = _create(session, actor, "site", Site, Site.name == site,
                                      {"name": site, "active": True, "created_at": now},
                                      near=near.get(("site", site, "")))
            if (site, room) not in rooms:
                site_id = sites[site]
                unit = (units[index] if units else None) or DapUnit.GY_CM2.value
                rooms[site, room] = _create(
                    session, actor, "room", Room, (Room.name == room) & (Room.site_id == site_id),
                    {"name": room, "site_id": site_id, "active": True,
                     "dap_display_unit": unit, "kap_correction_factor": 1.0,
                     "created_at": now}, near=near.get(("room", room, site)))
            doctor = names["physician"]
            if doctor not in physicians:
                physicians[doctor] = _create(
                    session, actor, "physician", Physician, Physician.name == doctor,
                    {"name": doctor, "active": True, "created_at": now},
                    near=near.get(("physician", doctor, "")))
            tech = names["technologist"]
            if tech not in users:
                users[tech] = _create(
                    session, actor, "technologist", UserAccount, UserAccount.username == tech,
                    {"username": tech, "role": Role.TECHNOLOGIST.value, "can_sign_in": False,
                     "active": True, "failed_logins": 0, "created_at": now},
                    entity="user_account", near=near.get(("technologist", tech, "")))
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
            values: dict[str, Any], entity: str | None = None,
            near: list[str] | None = None) -> int:
    """The id of the row `where` finds, created (and audited) if there is none yet. `near`:
    the near names the import confirmed this one differs from (kept in the event)."""
    found = session.scalar(select(model.id).where(where))
    if found is not None:  # created by someone else since the batch was checked
        return int(found)
    insert_ignore(session, model, values)
    new_id = int(session.scalar(select(model.id).where(where)))
    after = {k: v for k, v in values.items() if k != "created_at"}
    reason = "created from a logged record (create missing)"
    if near:
        after["near_names_confirmed"] = near
        reason += "; confirmed as different from " + ", ".join(repr(n) for n in near)
    record_event(session, actor=actor.username, action=AuditAction.CREATE,
                 entity=entity or field_name, entity_id=new_id, after=after, reason=reason)
    return new_id
