"""The procedure log service: log, amend and void records; get and list delegate to queries.

Why a service object: every write is one transaction with its audit event, checked against the
actor's role (audit.access), retried on lock contention, and validated in full before anything
is written, whichever door it came through (command line, form, CSV import). Names are resolved
by audit.log.names; with create_missing they are created, and each creation is audited too.
Before a record is written it gets every warning it calls for (audit.log.entry_warnings): a
possible duplicate, the plausibility warnings of validation, why it will count as non-compliant
and the practice rules the patient's history breaks (not for CSV imports); unconfirmed, nothing
is written.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, selectinload
from sqlalchemy.orm.exc import StaleDataError

from audit import access, bounds, dosimetry
from audit.auth import Actor, Permission, require
from audit.catalog import Catalog
from audit.dictionary import REASON_MAX_LENGTH
from audit.errors import (
    FieldError,
    NotFound,
    RecordVoided,
    StaleVersion,
    ValidationFailed,
    WarningsNotConfirmed,
)
from audit.filters import Filters
from audit.log import bulk, complications
from audit.log.duplicates import Duplicates, scan
from audit.log.entry_warnings import entry_warnings
from audit.log.name_directory import NameDirectory
from audit.log.names import (
    NameResolver,
    new_name_warnings,
    record_names,
    room_display_unit,
)
from audit.log.pseudonym import site_secret
from audit.log.queries import get_record, list_records
from audit.log.record_fields import input_view, level_rows, snapshot
from audit.log.reference_cache import ReferenceCache
from audit.log.validation import Validated, validate
from audit.settings import Settings
from audit.storage.engine import read_session, retrying, write_session
from audit.storage.models import Procedure, UserAccount, utcnow
from audit.trail import lock_chain, record_event
from audit.vocab import AuditAction, DoseSource, RecordStatus

DAP_FIELDS = frozenset({"dap_gycm2", "dap_value", "dap_unit", "dap_missing_reason"})
#: The KAP ratio to the usual value that asks for confirmation, when the site sets none.
DEFAULT_WARNING_KAP_RATIO = 40


@dataclass(frozen=True)
class LogResult:
    """What a write returns: the record's id, its confirmed warnings and its dose figures."""

    record_id: int
    warnings: list[FieldError]
    effective_dose_msv: float | None
    background_days: float | None

    def as_dict(self) -> dict[str, Any]:
        return {"record_id": self.record_id, "warnings": [w.as_dict() for w in self.warnings]}


def _effective_dose(dap: float | None, room_factor: float, region: str | None,
                    settings: Settings) -> float | None:
    """dosimetry.effective_dose with the site's region coefficients."""
    return dosimetry.effective_dose(dap, room_factor, region, settings.effective_dose_k)


def _background_days(effective_msv: float | None, settings: Settings) -> float | None:
    """dosimetry.background_days with the site's annual background."""
    return dosimetry.background_days(effective_msv, float(settings.annual_background_msv))


def _reason(reason: Any, missing: str) -> str:
    """The reason of an amend or void, trimmed: required, clean text (no NUL, no lone
    surrogate) and at most REASON_MAX_LENGTH characters, as every stored text is."""
    text = reason.strip() if isinstance(reason, str) else ""
    if not text:
        raise ValidationFailed([FieldError("reason", missing)])
    problem = bounds.text_problem(text, REASON_MAX_LENGTH)
    if problem:
        raise ValidationFailed([FieldError("reason", problem)])
    return text


def _refuse_unconfirmed(session: Session, checked: Validated, create_missing: bool) -> None:
    """WarningsNotConfirmed with the record's plausibility warnings and, when names may be
    created, each new name near an existing one (audit.log.names.new_name_warnings). The name
    warnings are not kept on the record: a confirmed one is in the new name's creation event."""
    pending = list(checked.warnings)
    if create_missing:
        pending += new_name_warnings(session, checked.names)
    if pending:
        raise WarningsNotConfirmed(pending)


class ProcedureLog:
    """The service. One per process (the app keeps one in st.cache_resource)."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self._cache = ReferenceCache()

    # --- cached reference data ----------------------------------------------------------------
    def refresh(self) -> None:
        """Forget cached catalog and settings (after an admin changes them)."""
        self._cache = ReferenceCache()

    def _reference(self, session: Session) -> tuple[Catalog, Settings]:
        return self._cache.reference(session)

    @property
    def catalog(self) -> Catalog:
        with read_session(self.engine) as session:
            return self._reference(session)[0]

    @property
    def settings(self) -> Settings:
        with read_session(self.engine) as session:
            return self._reference(session)[1]

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
                batch = self.duplicates(session, records, name_saved=confirm_warnings)
                for index, data in enumerate(records, start=1):
                    try:
                        with session.begin_nested():
                            results.append(self._log_in(
                                session, data, actor, confirm_warnings, create_missing,
                                batch, f"record {index} of this batch"))
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
        batch: Duplicates | None = None,
        label: str | None = None,
    ) -> LogResult:
        """Log one record inside the caller's transaction.

        For importers that own the transaction: a whole file commits or not at all, each row
        runs in a savepoint, and a dry run is rolled back. Same checks and audit event as log().
        `batch` (from :meth:`duplicates`, read once for the whole file) holds the stored records
        the file's records may duplicate and the file's earlier records; `label` names this
        record to the later ones ("row 5 of this file").
        """
        require(actor, Permission.LOG_PROCEDURE)
        return self._log_in(session, data, actor, confirm_warnings, create_missing, batch, label)

    def duplicates(self, session: Session, records: Sequence[Mapping[str, Any]], *,
                   name_saved: bool = False) -> Duplicates:
        """The stored records that raw input `records` may duplicate, read in one go (one
        query per 500 patients) for a batch or file; see audit.log.duplicates."""
        catalog, settings = self._reference(session)
        return Duplicates.load(session, scan(records, catalog, utcnow()), settings,
                               name_saved=name_saved)

    def _entry_warnings(self, session: Session, checked: Validated, dups: Duplicates,
                        exclude_id: int | None = None, rules: bool = True) -> list[FieldError]:
        """audit.log.entry_warnings: duplicate, plausibility, compliance and (unless `rules`
        is False, as for CSV imports) practice-rule warnings."""
        return entry_warnings(session, checked, dups, exclude_id, rules=rules)

    def prepare_batch(
        self,
        records: Sequence[Mapping[str, Any]],
        actor: Actor,
        *,
        confirm_warnings: bool = False,
        create_missing: bool = False,
        labels: Sequence[str] | None = None,
    ) -> bulk.Batch:
        """Check many records for one bulk write (CSV import), holding no lock: reference data,
        the records' names and the stored records they may duplicate are read in one short
        read session, and every record is checked with the checks of log() (the "duplicate?"
        and compliance warnings included; `labels` name the records to the later ones, "row 5
        of this file"). Nothing is written; see write_batch."""
        require(actor, Permission.LOG_PROCEDURE)
        with read_session(self.engine) as session:
            catalog, settings = self._reference(session)
            mappings = [r for r in records if isinstance(r, Mapping)]
            mrns = [str(r.get("patient_id") or "").strip() for r in mappings]
            directory = NameDirectory(session, create_missing, site_secret(settings), mrns)
            entries = [catalog.lookup(c) for c in {bulk.procedure_code(r) for r in mappings}
                       if c]
            usual = {e.id: self._cache.usual(session, e.id) for e in entries if e is not None}
            dups = Duplicates.load(session, scan(mappings, catalog, utcnow()), settings)

            def entry_warnings(checked: Validated, label: str) -> list[FieldError]:
                found = self._entry_warnings(session, checked, dups, rules=False)
                dups.remember(checked.names["patient_id"], checked.entry.id,
                              checked.values["performed_at"], label)
                return found

            # Inside the read session: names written another way or merged, and records the
            # batch's read did not cover, are looked up as the records are checked.
            return bulk.prepare(records, actor, catalog=catalog, settings=settings,
                                usual=usual, directory=directory,
                                confirm_warnings=confirm_warnings,
                                entry_warnings=entry_warnings, labels=labels)

    def write_batch(self, session: Session, batch: bulk.Batch, actor: Actor) -> list[int]:
        """Insert the valid records of a prepared batch in the caller's write transaction
        (with their audit events; names created as needed) and return their ids."""
        require(actor, Permission.LOG_PROCEDURE)
        return bulk.write(session, batch, actor)

    def _log_in(self, session: Session, data: Mapping[str, Any], actor: Actor, confirm: bool,
                create_missing: bool, batch: Duplicates | None = None,
                label: str | None = None) -> LogResult:
        if not isinstance(data, Mapping):
            raise ValidationFailed([FieldError("record", "expected an object of dictionary "
                                               "fields")])
        access.check_names_self_as_technologist(actor, data.get("technologist"))
        catalog, settings = self._reference(session)
        checked = self._validate(session, data, catalog, settings)
        checked.warnings = self._entry_warnings(
            session, checked, batch if batch is not None else Duplicates.for_settings(settings))
        key = (checked.names["patient_id"], checked.entry.id, checked.values["performed_at"])
        if not confirm:
            try:
                _refuse_unconfirmed(session, checked, create_missing)
            except WarningsNotConfirmed:
                if batch is not None and label:  # valid: its batch's later records may repeat it
                    batch.remember(*key, label)
                raise
        refs = NameResolver(session, actor, create_missing, site_secret(session))
        ids = refs.resolve(checked.names, checked.entry.code, checked.values.get("dap_unit"))
        now = utcnow()
        procedure = Procedure(
            status=RecordStatus.FINAL.value, version=1, procedure_type_id=checked.entry.id,
            dose_source=DoseSource.MANUAL.value, created_by=actor.username,
            updated_by=actor.username, created_at=now, updated_at=now,
            warnings=[w.as_dict() for w in checked.warnings] or None,
            **ids, **checked.values,
        )
        procedure.effective_dose_msv = _effective_dose(
            procedure.dap_gycm2, refs.room_factor, checked.values["region"], settings)
        procedure.levels = level_rows(checked.levels)
        session.add(procedure)
        session.flush()
        record_event(session, actor=actor.username, action=AuditAction.CREATE,
                     entity="procedure", entity_id=procedure.id,
                     after=snapshot(procedure, refs.names))
        complications.write_noted(session, actor, procedure.id, checked.complications)
        if batch is not None and label:
            batch.remember(*key, label, procedure.id)
        return LogResult(procedure.id, checked.warnings, procedure.effective_dose_msv,
                         _background_days(procedure.effective_dose_msv, settings))

    def _validate(self, session: Session, data: Mapping[str, Any], catalog: Catalog,
                  settings: Settings) -> Validated:
        code = str(data.get("procedure_code") or "").strip().upper()
        entry = catalog.lookup(code) if code else None
        usual = self._cache.usual(session, entry.id) if entry else None
        checked, errors = validate(
            data, catalog, now=utcnow(), default_dap_unit=room_display_unit(session, data),
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
        reason = _reason(reason, "required: say why the record changes")
        if not isinstance(changes, Mapping):
            raise ValidationFailed([FieldError("changes", "expected fields and their new "
                                               "values")])
        if not changes:
            raise ValidationFailed([FieldError("changes", "nothing to change")])
        if complications.INPUT_KEY in changes:  # their own table, never an amend (issue 15)
            raise ValidationFailed([FieldError(complications.INPUT_KEY, complications.ADD)])
        if "technologist" in changes:
            access.check_names_self_as_technologist(actor, changes["technologist"])

        def work() -> LogResult:
            with self._changing(record_id, version) as session:
                procedure = self._load_for_change(session, record_id, actor, version)
                catalog, settings = self._reference(session)
                before_names = record_names(session, procedure)
                before = snapshot(procedure, before_names)
                merged = input_view(before)
                if DAP_FIELDS & set(changes):  # a new DAP replaces the old one entirely
                    merged = {k: v for k, v in merged.items() if k not in DAP_FIELDS}
                merged.update(changes)
                checked = self._validate(session, merged, catalog, settings)
                checked.warnings = self._entry_warnings(  # not a duplicate of itself
                    session, checked, Duplicates.for_settings(settings), exclude_id=record_id)
                if not confirm_warnings:
                    _refuse_unconfirmed(session, checked, create_missing)
                refs = NameResolver(session, actor, create_missing, site_secret(session))
                entered = procedure.fluoro_time_entered
                ids = refs.resolve(checked.names, checked.entry.code,
                                   checked.values.get("dap_unit"))
                for key, value in {**ids, **checked.values}.items():
                    setattr(procedure, key, value)
                if not {"fluoro_time_s", "fluoro_time"} & set(changes):
                    procedure.fluoro_time_entered = entered
                procedure.procedure_type_id = checked.entry.id
                procedure.warnings = [w.as_dict() for w in checked.warnings] or None
                procedure.effective_dose_msv = _effective_dose(
                    procedure.dap_gycm2, refs.room_factor, checked.values["region"], settings)
                if [lv.level for lv in procedure.levels] != checked.levels:
                    procedure.levels.clear()
                    session.flush()
                    procedure.levels.extend(level_rows(checked.levels))
                after = snapshot(procedure, refs.names)
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
                                 _background_days(procedure.effective_dose_msv, settings))

        return retrying(work)

    def void(self, record_id: int, actor: Actor, *, version: int, reason: str) -> None:
        """Mark a record void, with a reason. The row stays, visible as void."""
        require(actor, Permission.VOID)
        reason = _reason(reason, "required: say why the record is voided")

        def work() -> None:
            with self._changing(record_id, version) as session:
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

    @contextmanager
    def _changing(self, record_id: int, version: int) -> Iterator[Session]:
        """The write transaction of an amend or void, with the database's version check turned
        into the same StaleVersion the service raises itself.

        _load_for_change locks the row, so the version it compares is the committed one; the
        UPDATE still names the version read (Procedure's version_id_col), and if it finds no
        such row (a writer that did not lock) the whole transaction is rolled back.
        """
        try:
            with write_session(self.engine) as session:
                yield session
        except StaleDataError:
            with read_session(self.engine) as session:
                row = session.execute(select(Procedure.version, Procedure.updated_by)
                                      .where(Procedure.id == record_id)).one()
            raise StaleVersion(record_id, version, row.version, row.updated_by) from None

    def _load_for_change(self, session: Session, record_id: int, actor: Actor,
                         version: int) -> Procedure:
        """The record, locked for the rest of the transaction, checked for the actor's right
        to change it and for the version the user read.

        Why lock (issue 10): on PostgreSQL two amends naming version 1 both read version 1
        without a lock and both committed, each audit event saying 1->2. The chain lock is
        taken first, the order every other writer of the chain and a record uses (dose report
        import), so the two locks cannot deadlock; FOR UPDATE then waits for any writer of
        this row, and reads the version it committed. SQLite's IMMEDIATE transaction already
        serialises writers (FOR UPDATE is not emitted there).
        """
        lock_chain(session)
        procedure = session.get(Procedure, record_id, options=[selectinload(Procedure.levels)],
                                with_for_update=True)
        if procedure is None:
            raise NotFound(f"no record {record_id}")
        if not actor.can(Permission.AMEND_ANY):  # only then is the owner looked up
            owner = session.scalar(select(UserAccount.username)
                                   .where(UserAccount.id == procedure.technologist_id))
            access.check_may_change(actor, record_id, procedure.created_by, owner)
        if procedure.status == RecordStatus.VOID.value:
            raise RecordVoided(f"record {record_id} is void ({procedure.void_reason}); it cannot "
                               "be changed")
        if procedure.version != version:
            raise StaleVersion(record_id, version, procedure.version, procedure.updated_by)
        return procedure

    # --- reads -------------------------------------------------------------------------------
    def get(self, record_id: int, actor: Actor) -> dict[str, Any]:
        """One record in dictionary field names; patient_id only for roles that may see PHI
        (see audit.log.queries.get_record)."""
        require(actor, Permission.VIEW_RECORDS)
        with read_session(self.engine) as session:
            return get_record(session, record_id, actor, self._reference(session)[1])

    def list(self, actor: Actor, filters: Filters | None = None, *, limit: int = 50,
             offset: int = 0) -> tuple[list[dict[str, Any]], int]:
        """A page of records (newest first) and the total count matching the filters (see
        audit.log.queries.list_records); without filters, every record, voided ones too."""
        require(actor, Permission.VIEW_RECORDS)
        with read_session(self.engine) as session:
            return list_records(session, actor, filters or Filters(include_voided=True),
                                limit=limit, offset=offset)
