"""The procedure log service: log, amend, void, get, list.

Every write is one transaction with its audit event, checked against the actor's role, retried on
lock contention, and validated in full before anything is written. Names (site, room, physician,
technologist) are resolved here; with create_missing they are created, and each creation is
audited too.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import statistics
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, Select, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, selectinload

from audit.auth import Actor, Permission, require
from audit.catalog import Catalog, load_catalog
from audit.errors import (
    FieldError,
    NotFound,
    PermissionDenied,
    RecordVoided,
    StaleVersion,
    ValidationFailed,
    WarningsNotConfirmed,
)
from audit.log.validation import Usual, Validated, validate
from audit.settings import Settings, load_settings
from audit.storage.engine import read_session, retrying, write_session
from audit.storage.models import (
    Patient,
    Physician,
    Procedure,
    ProcedureLevel,
    ProcedureType,
    Room,
    Site,
    UserAccount,
    utcnow,
)
from audit.trail import record_event
from audit.vocab import AuditAction, DapUnit, DoseSource, RecordStatus, Role, level_region

ENV_PSEUDONYM_KEY = "FLUORO_AUDIT_PSEUDONYM_KEY"
#: Local medians replace the catalog's typical values once this many records exist.
MIN_LOCAL_RECORDS = 30
_CACHE_SECONDS = 60.0
DAP_FIELDS = frozenset({"dap_gycm2", "dap_value", "dap_unit", "dap_missing_reason"})


@dataclass(frozen=True)
class LogResult:
    record_id: int
    warnings: list[FieldError]
    effective_dose_msv: float | None
    background_days: float | None

    def as_dict(self) -> dict[str, Any]:
        return {"record_id": self.record_id, "warnings": [w.as_dict() for w in self.warnings]}


@dataclass
class RecordFilter:
    """Filters of the Records list; None means "any"."""

    date_from: datetime | None = None
    date_to: datetime | None = None
    site: str | None = None
    room: str | None = None
    physician: str | None = None
    technologist: str | None = None
    procedure_code: str | None = None
    status: str | None = None
    patient_id: str | None = None
    record_ids: Sequence[int] | None = None


@dataclass
class _Cache:
    catalog: Catalog | None = None
    settings: Settings = field(default_factory=Settings)
    loaded_at: float = 0.0
    usual: dict[int, tuple[float, Usual | None]] = field(default_factory=dict)


def pseudonym(secret: str, mrn: str) -> str:
    """Keyed, irreversible patient reference: HMAC-SHA-256(site secret, MRN), 20 hex digits."""
    digest = hmac.new(secret.encode(), mrn.encode("utf-8"), hashlib.sha256).hexdigest()
    return "P" + digest[:20].upper()


class ProcedureLog:
    """The service. One per process (the app keeps one in st.cache_resource)."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self._cache = _Cache()

    # --- cached reference data ----------------------------------------------------------------
    def refresh(self) -> None:
        """Forget cached catalog and settings (after an admin changes them)."""
        self._cache = _Cache()

    def _reference(self, session: Session) -> tuple[Catalog, Settings]:
        cache = self._cache
        if cache.catalog is None or time.monotonic() - cache.loaded_at > _CACHE_SECONDS:
            cache.catalog = load_catalog(session)
            cache.settings = load_settings(session)
            cache.loaded_at = time.monotonic()
        return cache.catalog, cache.settings

    @property
    def catalog(self) -> Catalog:
        with read_session(self.engine) as session:
            return self._reference(session)[0]

    @property
    def settings(self) -> Settings:
        with read_session(self.engine) as session:
            return self._reference(session)[1]

    def _usual(self, session: Session, type_id: int) -> Usual | None:
        """Local median KAP and time of the latest 500 records of a type, if there are enough."""
        cached = self._cache.usual.get(type_id)
        if cached and time.monotonic() - cached[0] < _CACHE_SECONDS * 5:
            return cached[1]
        rows = session.execute(
            select(Procedure.dap_gycm2, Procedure.fluoro_time_s)
            .where(Procedure.procedure_type_id == type_id,
                   Procedure.status == RecordStatus.FINAL.value)
            .order_by(Procedure.performed_at.desc())
            .limit(500)
        ).all()
        daps = [r[0] for r in rows if r[0] is not None]
        usual = None
        if len(daps) >= MIN_LOCAL_RECORDS:
            usual = Usual(statistics.median(daps), statistics.median(r[1] for r in rows),
                          f"local median of {len(daps)} recent records")
        self._cache.usual[type_id] = (time.monotonic(), usual)
        return usual

    def _secret(self, settings: Settings) -> str:
        return os.environ.get(ENV_PSEUDONYM_KEY) or str(settings.pseudonym_secret)

    # --- writes ------------------------------------------------------------------------------
    def log(
        self,
        data: Mapping[str, Any],
        actor: Actor,
        *,
        confirm_warnings: bool = False,
        create_missing: bool = False,
    ) -> LogResult:
        """Validate and store one procedure. Raises ValidationFailed or WarningsNotConfirmed
        (nothing written), or PermissionDenied."""
        require(actor, Permission.LOG_PROCEDURE)
        return retrying(lambda: self._log_once(data, actor, confirm_warnings, create_missing))

    def _log_once(self, data: Mapping[str, Any], actor: Actor, confirm: bool,
                  create_missing: bool) -> LogResult:
        with write_session(self.engine) as session:
            return self._log_in(session, data, actor, confirm, create_missing)

    def log_many(
        self,
        records: Sequence[Mapping[str, Any]],
        actor: Actor,
        *,
        confirm_warnings: bool = False,
        create_missing: bool = False,
    ) -> list[LogResult]:
        """Log several records in one transaction: all are written, or none.

        Errors and unconfirmed warnings of every record are collected (field names prefixed
        with "record N: ") so a batch is fixed in one pass.
        """
        require(actor, Permission.LOG_PROCEDURE)

        def work() -> list[LogResult]:
            results: list[LogResult] = []
            errors: list[FieldError] = []
            warnings: list[FieldError] = []
            with write_session(self.engine) as session:
                for index, data in enumerate(records, start=1):
                    try:
                        with session.begin_nested():
                            results.append(self._log_in(session, data, actor, confirm_warnings,
                                                        create_missing))
                    except ValidationFailed as exc:
                        errors += [FieldError(f"record {index}: {e.field}", e.message)
                                   for e in exc.errors]
                    except WarningsNotConfirmed as exc:
                        warnings += [FieldError(f"record {index}: {w.field}", w.message)
                                     for w in exc.warnings]
                if errors:
                    raise ValidationFailed(errors)
                if warnings:
                    raise WarningsNotConfirmed(warnings)
            return results

        return retrying(work)

    def log_in_session(
        self,
        session: Session,
        data: Mapping[str, Any],
        actor: Actor,
        *,
        confirm_warnings: bool = False,
        create_missing: bool = False,
    ) -> LogResult:
        """Log one record inside the caller's transaction.

        For importers that own the transaction: a whole file commits or not at all, each row
        runs in a savepoint, and a dry run is rolled back. Same checks and audit event as log().
        """
        require(actor, Permission.LOG_PROCEDURE)
        return self._log_in(session, data, actor, confirm_warnings, create_missing)

    def _log_in(self, session: Session, data: Mapping[str, Any], actor: Actor, confirm: bool,
                create_missing: bool) -> LogResult:
        if not actor.system and actor.role is Role.TECHNOLOGIST:
            tech = str(data.get("technologist") or "").strip()
            if tech and tech != actor.username:
                raise ValidationFailed([FieldError(
                    "technologist", f"you are signed in as {actor.username}; a technologist "
                    "logs their own cases")])
        catalog, settings = self._reference(session)
        checked = self._validate(session, data, catalog, settings)
        if not confirm and checked.warnings:
            raise WarningsNotConfirmed(checked.warnings)
        refs = _Resolver(session, actor, create_missing, self._secret(settings))
        ids = refs.resolve(checked.names, checked.entry.code)
        now = utcnow()
        procedure = Procedure(
            status=RecordStatus.FINAL.value, version=1, procedure_type_id=checked.entry.id,
            dose_source=DoseSource.MANUAL.value, created_by=actor.username,
            updated_by=actor.username, created_at=now, updated_at=now,
            warnings=[w.as_dict() for w in checked.warnings] or None,
            **ids, **checked.values,
        )
        procedure.effective_dose_msv = effective_dose(
            procedure.dap_gycm2, refs.room_factor, checked.values["region"], settings)
        procedure.levels = _level_rows(checked.levels)
        session.add(procedure)
        session.flush()
        record_event(session, actor=actor.username, action=AuditAction.CREATE,
                     entity="procedure", entity_id=procedure.id,
                     after=_snapshot(procedure, refs.names))
        return LogResult(procedure.id, checked.warnings, procedure.effective_dose_msv,
                         background_days(procedure.effective_dose_msv, settings))

    def _validate(self, session: Session, data: Mapping[str, Any], catalog: Catalog,
                  settings: Settings) -> Validated:
        code = str(data.get("procedure_code") or "").strip().upper()
        entry = catalog.lookup(code) if code else None
        usual = self._usual(session, entry.id) if entry else None
        checked, errors = validate(
            data, catalog, now=utcnow(), default_dap_unit=_room_unit(session, data),
            usual=usual, warning_kap_ratio=float(settings.warning_kap_ratio),
        )
        if errors:
            raise ValidationFailed(errors)
        assert checked is not None
        return checked

    def amend(
        self,
        record_id: int,
        changes: Mapping[str, Any],
        actor: Actor,
        *,
        version: int,
        reason: str,
        confirm_warnings: bool = False,
        create_missing: bool = False,
    ) -> LogResult:
        """Change fields of a record. `version` is the version the user read: if the record
        changed since, StaleVersion is raised and nothing is written."""
        if not (reason or "").strip():
            raise ValidationFailed([FieldError("reason", "required: say why the record changes")])
        if not changes:
            raise ValidationFailed([FieldError("changes", "nothing to change")])

        def work() -> LogResult:
            with write_session(self.engine) as session:
                procedure = self._load_for_change(session, record_id, actor, version)
                catalog, settings = self._reference(session)
                before_names = _names(session, procedure)
                before = _snapshot(procedure, before_names)
                merged = _input_view(before)
                if DAP_FIELDS & set(changes):  # a new DAP replaces the old one entirely
                    merged = {k: v for k, v in merged.items() if k not in DAP_FIELDS}
                merged.update(changes)
                checked = self._validate(session, merged, catalog, settings)
                if not confirm_warnings and checked.warnings:
                    raise WarningsNotConfirmed(checked.warnings)
                refs = _Resolver(session, actor, create_missing, self._secret(settings))
                entered = procedure.fluoro_time_entered
                ids = refs.resolve(checked.names, checked.entry.code)
                for key, value in {**ids, **checked.values}.items():
                    setattr(procedure, key, value)
                if not {"fluoro_time_s", "fluoro_time"} & set(changes):
                    procedure.fluoro_time_entered = entered
                procedure.procedure_type_id = checked.entry.id
                procedure.warnings = [w.as_dict() for w in checked.warnings] or None
                procedure.effective_dose_msv = effective_dose(
                    procedure.dap_gycm2, refs.room_factor, checked.values["region"], settings)
                if [lv.level for lv in procedure.levels] != checked.levels:
                    procedure.levels.clear()
                    session.flush()
                    procedure.levels.extend(_level_rows(checked.levels))
                after = _snapshot(procedure, refs.names)
                changed = {k for k in after if after[k] != before[k]}
                if not changed:
                    raise ValidationFailed([FieldError("changes", "nothing would change")])
                procedure.version += 1
                procedure.updated_at = utcnow()
                procedure.updated_by = actor.username
                session.flush()
                record_event(
                    session, actor=actor.username, action=AuditAction.AMEND, entity="procedure",
                    entity_id=record_id, reason=reason.strip(),
                    before={k: before[k] for k in sorted(changed)} | {"version": version},
                    after={k: after[k] for k in sorted(changed)} | {"version": procedure.version},
                )
                return LogResult(record_id, checked.warnings, procedure.effective_dose_msv,
                                 background_days(procedure.effective_dose_msv, settings))

        return retrying(work)

    def void(self, record_id: int, actor: Actor, *, version: int, reason: str) -> None:
        """Mark a record void, with a reason. The row stays, visible as void."""
        require(actor, Permission.VOID)
        if not (reason or "").strip():
            raise ValidationFailed([FieldError("reason", "required: say why the record is "
                                               "voided")])

        def work() -> None:
            with write_session(self.engine) as session:
                procedure = self._load_for_change(session, record_id, actor, version)
                procedure.status = RecordStatus.VOID.value
                procedure.void_reason = reason.strip()
                procedure.version += 1
                procedure.updated_at = utcnow()
                procedure.updated_by = actor.username
                session.flush()
                record_event(session, actor=actor.username, action=AuditAction.VOID,
                             entity="procedure", entity_id=record_id, reason=reason.strip(),
                             before={"status": RecordStatus.FINAL.value, "version": version},
                             after={"status": RecordStatus.VOID.value,
                                    "void_reason": reason.strip(),
                                    "version": procedure.version})

        retrying(work)

    def _load_for_change(self, session: Session, record_id: int, actor: Actor,
                         version: int) -> Procedure:
        procedure = session.get(Procedure, record_id, options=[selectinload(Procedure.levels)])
        if procedure is None:
            raise NotFound(f"no record {record_id}")
        if not actor.can(Permission.AMEND_ANY):
            require(actor, Permission.AMEND_OWN)
            owner = session.scalar(select(UserAccount.username)
                                   .where(UserAccount.id == procedure.technologist_id))
            if actor.username not in (procedure.created_by, owner):
                raise PermissionDenied(f"record {record_id} was logged by {owner}; a "
                                       "technologist may change only their own entries")
        if procedure.status == RecordStatus.VOID.value:
            raise RecordVoided(f"record {record_id} is void ({procedure.void_reason}); it cannot "
                               "be changed")
        if procedure.version != version:
            raise StaleVersion(record_id, version, procedure.version, procedure.updated_by)
        return procedure

    # --- reads -------------------------------------------------------------------------------
    def get(self, record_id: int, actor: Actor) -> dict[str, Any]:
        """One record in dictionary field names; patient_id only for roles that may see PHI."""
        require(actor, Permission.VIEW_RECORDS)
        with read_session(self.engine) as session:
            procedure = session.get(Procedure, record_id,
                                    options=[selectinload(Procedure.levels)])
            if procedure is None:
                raise NotFound(f"no record {record_id}")
            names = _names(session, procedure)
            _check_can_read(actor, names)
            _, settings = self._reference(session)
            record = _snapshot(procedure, names)
        record["background_days"] = background_days(record["effective_dose_msv"], settings)
        if not actor.can(Permission.VIEW_PHI):
            record["patient_id"] = None
        return record

    def list(self, actor: Actor, filters: RecordFilter | None = None, *, limit: int = 50,
             offset: int = 0) -> tuple[list[dict[str, Any]], int]:
        """A page of records (newest first) and the total count matching the filters.

        Fast at a million rows: the count and the page's ids come from the procedure table
        alone, names resolved to ids so each filter can use its index (see _Where), and only
        the page's rows are joined to their names. Same rows and order as list_query.
        """
        require(actor, Permission.VIEW_RECORDS)
        f = filters or RecordFilter()
        order = (Procedure.performed_at.desc(), Procedure.id.desc())
        with read_session(self.engine) as session:
            where = _resolve(session, actor, f)
            if where is None:  # a name matched nothing
                return [], 0
            total = where.count(session)
            ids = session.scalars(select(Procedure.id).where(*where.page()).order_by(*order)
                                  .limit(limit).offset(offset)).all() if total else []
            rows = session.execute(
                list_query(actor, RecordFilter(record_ids=ids)).order_by(*order)
            ).mappings().all() if ids else []
        page = [dict(r) for r in rows]
        if not actor.can(Permission.VIEW_PHI):
            for r in page:
                r["patient_id"] = None
        return page, total


# --- helpers ----------------------------------------------------------------------------------

def list_query(actor: Actor, f: RecordFilter) -> Select[Any]:
    """The Records list as one joined SELECT, scoped to what the actor may see."""
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
    if not actor.can(Permission.VIEW_ALL_RECORDS):
        if actor.role is Role.PHYSICIAN:
            q = q.where(Physician.username == actor.username)
        else:
            q = q.where(UserAccount.username == actor.username)
    conditions = [
        (f.date_from, lambda v: Procedure.performed_at >= v),
        (f.date_to, lambda v: Procedure.performed_at < v),
        (f.site, lambda v: Site.name == v),
        (f.room, lambda v: Room.name == v),
        (f.physician, lambda v: Physician.name == v),
        (f.technologist, lambda v: UserAccount.username == v),
        (f.procedure_code, lambda v: ProcedureType.code == v),
        (f.status, lambda v: Procedure.status == v),
        (f.patient_id, lambda v: Patient.mrn == v),
        (f.record_ids, lambda v: Procedure.id.in_(list(v))),
    ]
    for value, condition in conditions:
        if value is not None and value != "":
            q = q.where(condition(value))
    return q


@dataclass
class _Where:
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
            for chunk in (void[i:i + 5000] for i in range(0, len(void), 5000)):
                total -= session.scalar(select(func.count(Procedure.id)).where(
                    Procedure.id.in_(chunk), *self.ids, *self._common())) or 0
        return total


def _resolve(session: Session, actor: Actor, f: RecordFilter) -> _Where | None:
    """The filters and the actor's scope as a _Where; None when a name matches nothing (the
    answer is empty without reading the table)."""
    lookups: list[tuple[Any, Any, Any]] = []
    if not actor.can(Permission.VIEW_ALL_RECORDS):
        if actor.role is Role.PHYSICIAN:
            lookups.append((Procedure.physician_id, Physician.id,
                            Physician.username == actor.username))
        else:
            lookups.append((Procedure.technologist_id, UserAccount.id,
                            UserAccount.username == actor.username))
    by_name = [
        (f.site, Procedure.site_id, Site.id, Site.name),
        (f.room, Procedure.room_id, Room.id, Room.name),
        (f.physician, Procedure.physician_id, Physician.id, Physician.name),
        (f.technologist, Procedure.technologist_id, UserAccount.id, UserAccount.username),
        (f.procedure_code, Procedure.procedure_type_id, ProcedureType.id, ProcedureType.code),
        (f.patient_id, Procedure.patient_id, Patient.id, Patient.mrn),
    ]
    lookups += [(column, key, name == value) for value, column, key, name in by_name
                if value is not None and value != ""]
    ids: list[Any] = []
    for column, key, where in lookups:
        found = session.scalars(select(key).where(where)).all()
        if not found:
            return None
        ids.append(column == found[0] if len(found) == 1 else column.in_(found))
    dates = []
    if f.date_from is not None:
        dates.append(Procedure.performed_at >= f.date_from)
    if f.date_to is not None:
        dates.append(Procedure.performed_at < f.date_to)
    return _Where(ids, dates, f.status or None, f.record_ids)


#: "Is void" as a set of ids from the (status, performed_at) index: the other filters then run
#: on their own covering index and only probe this (small) set.
_VOID_IDS = Procedure.id.in_(
    select(Procedure.id).where(Procedure.status == RecordStatus.VOID.value).scalar_subquery())


def _check_can_read(actor: Actor, names: Mapping[str, Any]) -> None:
    if actor.can(Permission.VIEW_ALL_RECORDS):
        return
    if actor.role is Role.PHYSICIAN and names.get("physician_username") == actor.username:
        return
    if actor.role is not Role.PHYSICIAN and names.get("technologist") == actor.username:
        return
    raise PermissionDenied(f"{actor.username} ({actor.role.value}) may not read this record")


def _room_unit(session: Session, data: Mapping[str, Any]) -> DapUnit | None:
    """The room's display unit: the default when a DAP value comes without a unit."""
    room, site = data.get("room"), data.get("site")
    if not room or not site:
        return None
    unit = session.scalar(
        select(Room.dap_display_unit).join(Site)
        .where(Room.name == str(room).strip(), Site.name == str(site).strip())
    )
    return DapUnit(unit) if unit else None


def effective_dose(dap: float | None, room_factor: float, region: str,
                    settings: Settings) -> float | None:
    """E = KAP x room KAP correction x k(region), in mSv (REFERENCE.md §6)."""
    if dap is None:
        return None
    k = settings.effective_dose_k.get(region)
    return None if k is None else round(dap * room_factor * float(k), 6)


def background_days(effective_msv: float | None, settings: Settings) -> float | None:
    if effective_msv is None:
        return None
    annual = float(settings.annual_background_msv)
    return round(effective_msv * 365 / annual, 1)


def _level_rows(levels: Iterable[str]) -> list[ProcedureLevel]:
    return [ProcedureLevel(position=i, level=lv, region=level_region(lv).value)
            for i, lv in enumerate(levels, start=1)]


def _names(session: Session, p: Procedure) -> dict[str, Any]:
    row = session.execute(
        select(Site.name, Room.name, Physician.name, Physician.username, UserAccount.username,
               Patient.mrn, Patient.pseudonym, ProcedureType.code)
        .select_from(Procedure)
        .join(Site, Site.id == Procedure.site_id).join(Room, Room.id == Procedure.room_id)
        .join(Physician, Physician.id == Procedure.physician_id)
        .join(UserAccount, UserAccount.id == Procedure.technologist_id)
        .join(Patient, Patient.id == Procedure.patient_id)
        .join(ProcedureType, ProcedureType.id == Procedure.procedure_type_id)
        .where(Procedure.id == p.id)
    ).one()
    keys = ("site", "room", "physician", "physician_username", "technologist", "patient_id",
            "patient_ref", "procedure_code")
    return dict(zip(keys, row, strict=True))


def _snapshot(p: Procedure, names: Mapping[str, Any]) -> dict[str, Any]:
    """The record in dictionary field names and order (what `show --json` prints)."""
    from audit.dictionary import FIELD_NAMES

    values: dict[str, Any] = {
        "record_id": p.id,
        "levels": [lv.level for lv in p.levels],
        "confirmation_views": p.confirmation_views.split(";") if p.confirmation_views else [],
        "warnings": p.warnings or [],
        "background_days": None,
        **{k: names[k] for k in ("site", "room", "physician", "technologist", "patient_id",
                                 "patient_ref", "procedure_code")},
    }
    record: dict[str, Any] = {}
    for name in FIELD_NAMES:
        value = values[name] if name in values else getattr(p, name)
        record[name] = value.isoformat() if isinstance(value, datetime) else value
    return record


def _input_view(record: Mapping[str, Any]) -> dict[str, Any]:
    """A stored record as input for re-validation (amend = old input + changes)."""
    from audit.dictionary import INPUT_FIELDS

    data = {k: v for k, v in record.items() if k in INPUT_FIELDS}
    if data.get("dap_value") is not None:
        data.pop("dap_gycm2", None)  # the displayed value and unit are what was entered
    return data


class _Resolver:
    """Finds (or, with create_missing, creates) the referenced site, room, physician,
    technologist and patient. Creation is race-safe: INSERT .. ON CONFLICT DO NOTHING."""

    def __init__(self, session: Session, actor: Actor, create_missing: bool, secret: str):
        self.session, self.actor, self.create, self.secret = session, actor, create_missing, secret
        self.room_factor = 1.0
        #: The record's names in dictionary fields, known once resolved (no query needed).
        self.names: dict[str, str] = {}
        self.errors: list[FieldError] = []

    def resolve(self, names: Mapping[str, str], code: str) -> dict[str, int]:
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
            _insert_ignore(s, Patient, {"mrn": mrn, "pseudonym": pseudonym(self.secret, mrn),
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
                model.username if model is UserAccount else model.name).limit(20)).all()
            listing = ", ".join(repr(k) for k in known) or "none yet"
            self.errors.append(FieldError(
                field_name, f"no {field_name} named {values.get('name', values.get('username'))!r}"
                f"{scope}; known: {listing} (or allow creating missing names)"))
            return None
        _insert_ignore(self.session, model, values)
        new_id = int(self.session.scalar(select(model.id).where(where)))
        record_event(self.session, actor=self.actor.username, action=AuditAction.CREATE,
                     entity=entity or field_name, entity_id=new_id,
                     after={k: v for k, v in values.items() if k != "created_at"},
                     reason="created from a logged record (create missing)")
        return new_id


def _insert_ignore(session: Session, model: Any, values: dict[str, Any]) -> None:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        stmt = postgresql.insert(model).values(**values).on_conflict_do_nothing()
    elif dialect == "sqlite":
        stmt = sqlite.insert(model).values(**values).on_conflict_do_nothing()
    else:
        stmt = insert(model).values(**values)
    session.execute(stmt)


# --- history and permissions for the Records page ---------------------------------------------

@dataclass(frozen=True)
class HistoryEntry:
    """One event in a record's life: who did what, when, why, and each field before/after."""

    event_id: int
    occurred_at: datetime
    actor: str
    action: str
    reason: str | None
    changes: list[tuple[str, Any, Any]]  # (field, before, after)


def record_history(service: ProcedureLog, record_id: int, actor: Actor) -> list[HistoryEntry]:
    """The audit events of one record, oldest first, readable by whoever may read the record.

    Records loaded in bulk (demo data, batch imports) have one event for a range of ids
    ("120001-140000"); that event is included so the history never starts from nothing.
    Patient identifiers inside before/after are hidden from roles without PHI access.
    """
    from audit.storage.models import AuditEvent
    from audit.trail import history

    service.get(record_id, actor)  # raises unless the actor may read this record
    hide_phi = not actor.can(Permission.VIEW_PHI)
    with read_session(service.engine) as session:
        events = history(session, "procedure", record_id)
        bulk = session.scalars(
            select(AuditEvent).where(AuditEvent.entity == "procedure",
                                     AuditEvent.action == AuditAction.BULK_CREATE.value)
            .order_by(AuditEvent.id)).all()
    covering = [e for e in bulk if _covers(e.entity_id, record_id)]
    entries = []
    for event in sorted([*covering, *events], key=lambda e: e.id):
        before, after = event.before or {}, event.after or {}
        if event.action == AuditAction.BULK_CREATE.value:
            before, after = {}, {}
        keys = [k for k in dict.fromkeys([*before, *after]) if k != "record_id"]
        if event.action == AuditAction.CREATE.value:
            keys = [k for k in keys if after.get(k) not in (None, [], "")]
        changes = []
        for key in keys:
            old, new = before.get(key), after.get(key)
            if hide_phi and key == "patient_id":
                old, new = ("(hidden)" if old else old), ("(hidden)" if new else new)
            changes.append((key, old, new))
        entries.append(HistoryEntry(event.id, event.occurred_at, event.actor, event.action,
                                    event.reason, changes))
    return entries


def _covers(entity_id: str | None, record_id: int) -> bool:
    first, _, last = (entity_id or "").partition("-")
    return first.isdigit() and last.isdigit() and int(first) <= record_id <= int(last)


def may_change(actor: Actor, record: Mapping[str, Any]) -> bool:
    """Whether `actor` may amend or void `record` (a dict from ProcedureLog.get): the same rule
    the service enforces, so a page can hide buttons the service would refuse."""
    if record.get("status") == RecordStatus.VOID.value:
        return False
    if actor.can(Permission.AMEND_ANY):
        return True
    return actor.can(Permission.AMEND_OWN) and actor.username in (
        record.get("created_by"), record.get("technologist"))
