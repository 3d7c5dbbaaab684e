"""Reading the log: one record, and the Records list with its filters, as SQL.

Why separate from the writes: reads must be fast at a million rows and are shaped by indexes
(see RecordConditions), while writes are shaped by validation and the audit trail. Both apply
the same read scope (audit.access), so a list never shows a record that get() would refuse.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session, selectinload

from audit import access, dosimetry
from audit.auth import Actor
from audit.errors import FieldError, NotFound, ValidationFailed
from audit.filters import Filters
from audit.log.names import record_names
from audit.log.record_fields import snapshot
from audit.settings import Settings
from audit.storage.models import (
    Patient,
    Physician,
    Procedure,
    ProcedureType,
    Room,
    Site,
    UserAccount,
)
from audit.vocab import RecordStatus

#: Void ids are checked against a count in chunks of this many (bound parameters per query).
VOID_CHUNK = 5000


def readable_procedure(session: Session, actor: Actor, procedure_id: int,
                       final_for: str | None = None) -> Procedure:
    """The procedure, if it exists and the actor may read it (NotFound, PermissionDenied): the
    check every note kept beside a record (complications, follow-ups) makes first. With
    `final_for` ("a complication", say), a void record is refused naming record_id."""
    row = session.execute(
        select(Procedure, Physician.username, UserAccount.username)
        .join(Physician, Physician.id == Procedure.physician_id)
        .join(UserAccount, UserAccount.id == Procedure.technologist_id)
        .where(Procedure.id == procedure_id)).first()
    if row is None:
        raise NotFound(f"no record {procedure_id}")
    procedure, physician_username, technologist = row
    access.check_may_read(actor, {"physician_username": physician_username,
                                  "technologist": technologist})
    if final_for is not None and procedure.status == RecordStatus.VOID.value:
        raise ValidationFailed([FieldError("record_id", f"record {procedure_id} is void; "
                                           f"{final_for} is recorded on a final record")])
    return procedure


def get_record(session: Session, record_id: int, actor: Actor,
               settings: Settings) -> dict[str, Any]:
    """One record in dictionary field names; patient_id only for roles that may see PHI.
    Raises NotFound, or PermissionDenied outside the actor's read scope."""
    procedure = session.get(Procedure, record_id, options=[selectinload(Procedure.levels)])
    if procedure is None:
        raise NotFound(f"no record {record_id}")
    names = record_names(session, procedure)
    access.check_may_read(actor, names)
    record = snapshot(procedure, names)
    annual = float(settings.annual_background_msv)
    record["background_days"] = dosimetry.background_days(record["effective_dose_msv"], annual)
    if not access.may_see_patient_id(actor):
        record["patient_id"] = None
    return record


def list_records(session: Session, actor: Actor, filters: Filters, *, limit: int,
                 offset: int) -> tuple[list[dict[str, Any]], int]:
    """A page of records (newest first) and the total count matching the filters.

    Fast at a million rows: the count and the page's ids come from the procedure table
    alone, names resolved to ids so each filter can use its index (see RecordConditions), and
    only the page's rows are joined to their names. Same rows and order as list_query.
    """
    order = (Procedure.performed_at.desc(), Procedure.id.desc())
    where = resolve_filters(session, actor, filters)
    if where is None:  # a name matched nothing
        return [], 0
    total = where.count(session)
    ids = session.scalars(select(Procedure.id).where(*where.page()).order_by(*order)
                          .limit(limit).offset(offset)).all() if total else []
    rows = session.execute(
        list_query(actor, Filters(record_ids=ids, include_voided=True)).order_by(*order)
    ).mappings().all() if ids else []
    page = [dict(r) for r in rows]
    if not access.may_see_patient_id(actor):
        for r in page:
            r["patient_id"] = None
    return page, total


def list_query(actor: Actor, f: Filters) -> Select[Any]:
    """The Records list as one joined SELECT, scoped to what the actor may see (the reference
    answer list_records must give: its tests compare the two)."""
    q = (
        select(
            Procedure.id.label("record_id"), Procedure.status, Procedure.version,
            Procedure.performed_at, Site.name.label("site"), Room.name.label("room"),
            Physician.name.label("physician"), UserAccount.username.label("technologist"),
            Patient.mrn.label("patient_id"), Patient.pseudonym.label("patient_ref"),
            ProcedureType.code.label("procedure_code"), Procedure.region,
            Procedure.laterality, Procedure.fluoro_time_s, Procedure.dap_gycm2,
            Procedure.air_kerma_mgy, Procedure.contrast_confirmation, Procedure.saved_images,
            Procedure.dose_source,
        )
        .join(Site, Site.id == Procedure.site_id)
        .join(Room, Room.id == Procedure.room_id)
        .join(Physician, Physician.id == Procedure.physician_id)
        .join(UserAccount, UserAccount.id == Procedure.technologist_id)
        .join(Patient, Patient.id == Procedure.patient_id)
        .join(ProcedureType, ProcedureType.id == Procedure.procedure_type_id)
    )
    scope = access.read_predicate(actor)
    if scope is not None:
        q = q.where(scope)
    return q.where(*f.where())


#: "Is void" as a set of ids from the (status, performed_at) index: the other filters then run
#: on their own covering index and only probe this (small) set.
_VOID_IDS = Procedure.id.in_(
    select(Procedure.id).where(Procedure.status == RecordStatus.VOID.value).scalar_subquery())


@dataclass
class RecordConditions:
    """list_query's scope and filters as conditions on the procedure table's own columns.

    Names are resolved to ids first, so the planner sees `room_id = 3` and the right index.
    A page walks one index in performed_at order and checks the other filters on the few rows
    it reads. A count must visit every match: on SQLite (one index per table scan) each further
    filter becomes a set of ids read from its own covering index instead of a table read per
    row; PostgreSQL combines the indexes itself.
    """

    ids: list[Any]
    dates: list[Any]
    status: str | None
    record_ids: Sequence[int] | None

    def _common(self) -> list[Any]:
        extra = [] if self.record_ids is None else [Procedure.id.in_(list(self.record_ids))]
        return [*self.dates, *extra]

    def page(self) -> list[Any]:
        status = []
        if self.status == RecordStatus.VOID.value:
            status = [_VOID_IDS]
        elif self.status == RecordStatus.FINAL.value and self.ids:
            # "not void" (the same: there are two statuses) cannot use the status index, so the
            # planner walks the index of the other filter instead of nearly every row.
            status = [Procedure.status != RecordStatus.VOID.value]
        elif self.status:
            status = [Procedure.status == self.status]
        return [*self.ids, *self._common(), *status]

    def _count_conditions(self, dialect: str) -> list[Any]:
        if dialect != "sqlite":  # PostgreSQL combines several indexes itself (BitmapAnd)
            return [*self.ids, *self._common()]
        first, rest = self.ids[:1], self.ids[1:]
        sets = [Procedure.id.in_(select(Procedure.id).where(c, *self.dates).scalar_subquery())
                for c in rest]
        return [*first, *sets, *self._common()]

    def count(self, session: Session) -> int:
        """Matching records. "final" is all minus void: void records are few, so they are
        fetched by their index and checked one by one, instead of checking every match."""
        conditions = self._count_conditions(session.get_bind().dialect.name)
        if self.status == RecordStatus.VOID.value:
            conditions.append(_VOID_IDS)
        total = session.scalar(select(func.count(Procedure.id)).where(*conditions)) or 0
        if self.status == RecordStatus.FINAL.value and total:
            void = session.scalars(select(Procedure.id).where(
                Procedure.status == RecordStatus.VOID.value)).all()
            for chunk in (void[i:i + VOID_CHUNK] for i in range(0, len(void), VOID_CHUNK)):
                total -= session.scalar(select(func.count(Procedure.id)).where(
                    Procedure.id.in_(chunk), *self.ids, *self._common())) or 0
        return total


def resolve_filters(session: Session, actor: Actor, f: Filters) -> RecordConditions | None:
    """The filters and the actor's read scope as RecordConditions; None when a name matches
    nothing (the answer is empty without reading the table)."""
    ids: list[Any] = []
    scope = access.read_scope_ids(actor)
    if scope is not None:
        column, query = scope
        found = session.scalars(query).all()
        if not found:
            return None
        ids.append(column == found[0] if len(found) == 1 else column.in_(found))
    names = f.id_conditions(session)
    if names is None:
        return None
    return RecordConditions([*ids, *names], f.period_conditions(Procedure.performed_at),
                            f.record_status, f.record_ids)
