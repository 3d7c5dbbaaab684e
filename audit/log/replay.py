"""Every procedure row checked against its audit history: `verify-audit` replays each record's
events (the create snapshot, then each amend's and void's `after`) and compares the result
with the row as it is now, field by field.

Why: the keyed chain proves the events are as written, but the procedure table itself can be
changed with SQL (`UPDATE procedure SET dap_gycm2 = ...`, `DELETE FROM procedure`) without any
event. Every change the application makes writes the changed fields in the same transaction,
so a row that differs from its replayed history, a row without a creation event, or a history
without its row was changed outside the application.

The comparison uses the same snapshot the service writes into the events
(audit.log.record_fields.snapshot), so the two sides are alike by construction. Records are
read by id in windows of CHUNK, with one query each for the rows, their levels, their patients
and their events: a million records is a few thousand queries, none per row.

What cannot be checked: records loaded in bulk (demo data) have one event for a range of ids
and no per-record snapshot, so only their existence and the fields later events changed are
checked; `updated_at` moves with every change but is not in the events (their own time is).
Names (site, room, physician) may have been renamed since: any name the same row has had, per
the trail, is accepted.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, cast, func, select
from sqlalchemy.orm import Session, selectinload

from audit.log.record_fields import snapshot
from audit.storage.models import (
    AuditEvent,
    Patient,
    Physician,
    Procedure,
    ProcedureType,
    Room,
    Site,
    UserAccount,
)
from audit.vocab import AuditAction

CHUNK = 1000
#: Fields the events do not determine: updated_at changes with every amend but the amend event
#: carries its own time instead; background_days is computed on display, never stored.
UNTRACKED = frozenset({"updated_at", "background_days"})
#: Fields whose values are not printed in a finding (patient identifiers).
MASKED = frozenset({"patient_id"})
DATETIMES = frozenset({"performed_at", "created_at", "updated_at"})
_RECORD_ACTIONS = (AuditAction.CREATE.value, AuditAction.AMEND.value, AuditAction.VOID.value)
#: Name fields renamed by an admin: the entity whose former names are accepted, and the
#: Procedure column naming the row.
_RENAMEABLE = {"site": ("site", "site_id"), "room": ("room", "room_id"),
               "physician": ("physician", "physician_id")}


@dataclass
class ProcedureCheck:
    """What the replay found: each damaged record's finding (the first `limit`) and counts."""

    records: int = 0
    bulk_only: int = 0
    found: int = 0
    findings: list[str] = field(default_factory=list)

    def add(self, message: str, limit: int) -> None:
        self.found += 1
        if len(self.findings) < limit:
            self.findings.append(message)

    def lines(self) -> list[str]:
        if not self.found:
            head = (f"procedures intact: {self.records} records match their audit history")
        else:
            head = (f"procedures DAMAGED: {self.found} records differ from their audit "
                    f"history (of {self.records} in the table)")
        out = [head, *self.findings]
        if self.found > len(self.findings):
            out.append(f"... and {self.found - len(self.findings)} more")
        if self.bulk_only:
            out.append(f"note: {self.bulk_only} records were loaded in bulk (demo data) with "
                       "no per-record snapshot: only their existence and later changes are "
                       "checked")
        return out


@dataclass
class _Replayed:
    """A record's state by its events: the fields they set, and whether it was created."""

    state: dict[str, Any] = field(default_factory=dict)
    created: bool = False

    def apply(self, action: str, actor: str, after: Mapping[str, Any] | None) -> None:
        if action == AuditAction.CREATE.value:
            self.state, self.created = dict(after or {}), True
            return
        self.state.update(after or {})
        self.state["updated_by"] = actor  # amend and void set it to the event's actor
        self.state.pop("updated_at", None)

    @property
    def version(self) -> int:
        return int(self.state.get("version") or 1)


class _Names:
    """The names a record's snapshot shows, for a whole window of records at once: the small
    tables whole (once), the patients of each window by one query."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.sites = dict(session.execute(select(Site.id, Site.name)).all())
        self.rooms = dict(session.execute(select(Room.id, Room.name)).all())
        self.physicians = dict(session.execute(select(Physician.id, Physician.name)).all())
        self.users = dict(session.execute(select(UserAccount.id, UserAccount.username)).all())
        self.codes = dict(session.execute(select(ProcedureType.id, ProcedureType.code)).all())
        self.former = self._former_names(session)
        self.patients: dict[int, tuple[str, str]] = {}

    @staticmethod
    def _former_names(session: Session) -> dict[tuple[str, str], set[str]]:
        """Every name a site, room or physician has had, from its amend events (`name`
        before and after, audit.reference_data)."""
        former: dict[tuple[str, str], set[str]] = defaultdict(set)
        rows = session.execute(
            select(AuditEvent.entity, AuditEvent.entity_id, AuditEvent.before, AuditEvent.after)
            .where(AuditEvent.entity.in_([e for e, _ in _RENAMEABLE.values()]),
                   AuditEvent.action.in_(_RECORD_ACTIONS)))
        for entity, entity_id, before, after in rows:
            for payload in (before, after):
                if isinstance(payload, dict) and payload.get("name"):
                    former[(entity, str(entity_id))].add(str(payload["name"]))
        return former

    def load_patients(self, ids: Iterable[int]) -> None:
        wanted = sorted(set(ids))
        self.patients = {pid: (mrn, ref) for pid, mrn, ref in self.session.execute(
            select(Patient.id, Patient.mrn, Patient.pseudonym).where(Patient.id.in_(wanted)))}

    def of(self, p: Procedure) -> dict[str, Any]:
        mrn, ref = self.patients.get(p.patient_id, (None, None))
        return {"site": self.sites.get(p.site_id), "room": self.rooms.get(p.room_id),
                "physician": self.physicians.get(p.physician_id),
                "technologist": self.users.get(p.technologist_id), "patient_id": mrn,
                "patient_ref": ref, "procedure_code": self.codes.get(p.procedure_type_id)}

    def accepts(self, name_field: str, p: Procedure, value: Any) -> bool:
        """Whether a name from the history is a name this record's row has had."""
        entity, column = _RENAMEABLE[name_field]
        return value in self.former.get((entity, str(getattr(p, column))), set())


def _same(name: str, table: Any, history: Any) -> bool:
    if name in DATETIMES and isinstance(table, str) and isinstance(history, str):
        try:
            return datetime.fromisoformat(table) == datetime.fromisoformat(history)
        except ValueError:
            return table == history
    if isinstance(table, float) and isinstance(history, int | float) \
            and not isinstance(history, bool):
        return math.isclose(table, history, rel_tol=1e-12, abs_tol=0.0)
    return bool(table == history)


def _shown(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _compare(record_id: int, p: Procedure, names: _Names, replayed: _Replayed) -> str | None:
    """A finding if the row differs from its replayed history, else None."""
    if not replayed.state:  # loaded in bulk and never changed since: nothing to compare
        return None
    current = snapshot(p, names.of(p))
    differences = []
    for name, expected in replayed.state.items():
        if name in UNTRACKED or name not in current:
            continue
        actual = current[name]
        if _same(name, actual, expected):
            continue
        if name in _RENAMEABLE and names.accepts(name, p, expected) \
                and names.accepts(name, p, actual):
            continue
        if name in MASKED:
            differences.append(f"{name} differs from its audit history (patient identifiers "
                               "are not shown)")
        else:
            differences.append(f"{name} is {_shown(actual)} in the table but "
                               f"{_shown(expected)} by its audit history")
    if not differences:
        return None
    return f"record {record_id}: {'; '.join(differences)} (changed outside the application)"


def _bulk_ranges(session: Session) -> list[tuple[int, int]]:
    """The id ranges ("120001-140000") of bulk-loaded records."""
    ranges = []
    for entity_id in session.scalars(select(AuditEvent.entity_id).where(
            AuditEvent.entity == "procedure",
            AuditEvent.action == AuditAction.BULK_CREATE.value)):
        first, _, last = (entity_id or "").partition("-")
        if first.isdigit() and last.isdigit():
            ranges.append((int(first), int(last)))
    return ranges


def _upper_id(session: Session, bulk: list[tuple[int, int]]) -> int:
    """The highest record id the table or the history knows of."""
    in_table = session.scalar(select(func.max(Procedure.id))) or 0
    in_history = session.scalar(
        select(func.max(cast(AuditEvent.entity_id, Integer)))
        .where(AuditEvent.entity == "procedure", AuditEvent.action.in_(_RECORD_ACTIONS))) or 0
    return max(int(in_table), int(in_history), *(hi for _, hi in bulk), 0)


def _events(session: Session, lo: int, hi: int) -> dict[int, _Replayed]:
    """The replayed history of every record in [lo, hi], from one query."""
    replayed: dict[int, _Replayed] = defaultdict(_Replayed)
    rows = session.execute(
        select(AuditEvent.entity_id, AuditEvent.action, AuditEvent.actor, AuditEvent.after)
        .where(AuditEvent.entity == "procedure", AuditEvent.action.in_(_RECORD_ACTIONS),
               AuditEvent.entity_id.in_([str(i) for i in range(lo, hi + 1)]))
        .order_by(AuditEvent.id))
    for entity_id, action, actor, after in rows:
        replayed[int(entity_id)].apply(action, actor, after)
    return replayed


def check_procedures(session: Session, *, limit: int = 20,
                     chunk: int = CHUNK) -> ProcedureCheck:
    """Replay every record's history and compare it with its row (see the module docstring).
    Findings name the record; the first `limit` are kept, all are counted."""
    result = ProcedureCheck()
    names = _Names(session)
    bulk = _bulk_ranges(session)
    upper = _upper_id(session, bulk)
    for lo in range(1, upper + 1, chunk):
        hi = min(upper, lo + chunk - 1)
        rows = {p.id: p for p in session.scalars(
            select(Procedure).where(Procedure.id.between(lo, hi))
            .options(selectinload(Procedure.levels)))}
        names.load_patients(p.patient_id for p in rows.values())
        histories = _events(session, lo, hi)
        in_bulk = {i for a, b in bulk for i in range(max(a, lo), min(b, hi) + 1)}
        for record_id in sorted(set(rows) | set(histories) | in_bulk):
            replayed = histories.get(record_id, _Replayed())
            row = rows.get(record_id)
            if row is None:
                result.add(f"record {record_id}: deleted outside the application (its history "
                           f"ends with version {replayed.version})", limit)
                continue
            result.records += 1
            if not replayed.created and record_id not in in_bulk:
                result.add(f"record {record_id}: in the table with no creation event", limit)
                continue
            if not replayed.created:
                result.bulk_only += 1
            finding = _compare(record_id, row, names, replayed)
            if finding is not None:
                result.add(finding, limit)
        session.expunge_all()
    return result
