"""Store dose reports (RDSR) and reconcile them with the log, one transaction per file.

One file is one transaction: the report row, its audit event, the supersession of an earlier
report of the same study, the procedure it fills and the discrepancies it raises commit
together or not at all. A file that cannot be read, parsed or stored is reported with a reason
and writes nothing; the caller goes on with the next file.

Outcomes per file (``ImportResult.status``):

- ``ok``: stored. ``record_id`` is the procedure it was linked to, or None when the procedure
  is missing from the log. A report of a study that already has a report with at least as many
  irradiation events is stored as ``superseded`` on arrival (it adds nothing); a report with
  more events supersedes the earlier one (audited) and takes over its reconciliation.
- ``duplicate``: the same SOP instance UID is already stored; nothing is written.
- ``rejected``: not an importable fluoroscopy dose report (unreadable, not fluoroscopy, or a
  number that is not finite or outside the data dictionary's bounds: audit.dose_reports.bounds),
  or the database refused this file's data; ``reason`` says why. Nothing of the file is stored.

A database error caused by one file's data (PostgreSQL: a data or integrity error) rolls that
file's transaction back and rejects the file; the next file is unaffected. An error that means
the database cannot be reached (:func:`database_unavailable`) is raised: every file would fail
the same way, so the caller stops or waits instead of rejecting them all.

A report linked to a procedure that may be logged twice (the same patient and type within
``duplicate_window_minutes``) carries ``review`` naming the other record
(matching.duplicate_review); the Reconciliation page lists such links until one copy is voided.

Matching, filling and discrepancy rules: audit.dose_reports.matching. What the pages list for
review (discrepancies, reports missing from the log, completeness): audit.dose_reports.review.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, or_, select, text
from sqlalchemy.exc import (
    DisconnectionError,
    InterfaceError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, aliased, sessionmaker

from audit.auth import Actor, Permission, require
from audit.dose_reports import matching as reconcile
from audit.dose_reports.bounds import json_safe, report_problem, value_problem
from audit.dose_reports.dicom_bytes import MAX_INPUT_BYTES
from audit.dose_reports.event_store import store_events
from audit.dose_reports.reader import read_dose_report
from audit.dose_reports.report import DoseReport as ParsedReport
from audit.dose_reports.report import RejectedReport
from audit.log.pseudonym import pseudonym, site_secret
from audit.settings import Settings, load_settings
from audit.storage.engine import read_session, retrying, writer
from audit.storage.models import DoseDiscrepancy, DoseReport, Procedure, utcnow
from audit.trail import lock_chain, record_event
from audit.vocab import AuditAction, DiscrepancyStatus, DoseReportStatus, RecordStatus

T = TypeVar("T")

OK, REJECTED, DUPLICATE = "ok", "rejected", "duplicate"
#: Totals reported per file, in canonical units (Gy·cm², s, mGy, count).
TOTAL_FIELDS: tuple[str, ...] = (
    "dap_total_gycm2", "fluoro_dap_gycm2", "acquisition_dap_gycm2", "fluoro_time_s",
    "acquisition_time_s", "air_kerma_total_mgy", "fluoro_air_kerma_mgy",
    "acquisition_air_kerma_mgy", "frames",
)
MISSING_FROM_LOG = "procedure missing from the log"
_SOURCE_NAME_MAX = 255


@dataclass
class ImportResult:
    """One file's outcome: what the CLI prints as a JSON line and the upload page as a row."""

    file: str
    status: str
    reason: str | None = None
    report_id: int | None = None
    record_id: int | None = None
    sop_instance_uid: str | None = None
    study_instance_uid: str | None = None
    events: int | None = None
    totals: dict[str, float | int | None] = field(default_factory=dict)
    match: str | None = None
    filled: list[str] = field(default_factory=list)
    discrepancies: list[dict[str, Any]] = field(default_factory=list)
    supersedes: list[int] = field(default_factory=list)
    superseded_by: int | None = None
    note: str | None = None
    #: Why the link needs a person's look: the procedure may be logged twice (names the other).
    review: str | None = None
    #: What the reader left out of the report's events and why (never a total).
    warnings: list[str] = field(default_factory=list)
    dry_run: bool = False

    def as_json(self) -> dict[str, Any]:
        """Flat JSON object: totals at the top level, in canonical units."""
        data = asdict(self)
        totals = data.pop("totals")
        return {**data, **{name: totals.get(name) for name in TOTAL_FIELDS}}


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class DoseImporter:
    """Imports dose reports for one actor; settings are read once per importer (per run).

    Raises PermissionDenied at construction when the actor may not import.
    """

    def __init__(self, engine: Engine, actor: Actor):
        require(actor, Permission.IMPORT)
        self.engine = engine
        self.actor = actor
        self._settings: Settings | None = None

    def settings(self) -> Settings:
        if self._settings is None:
            with read_session(self.engine) as session:
                self._settings = load_settings(session)
            reconcile.site_zone(self._settings)  # a bad setting fails the run, not each file
            reconcile.tolerance(self._settings)
        return self._settings

    # --- entry points ---------------------------------------------------------------------
    def import_path(self, path: str | os.PathLike[str], *, dry_run: bool = False,
                    name: str | None = None) -> ImportResult:
        """Import one file from disk; an unreadable file is rejected with the OS's reason."""
        label = name or str(path)
        try:
            size = Path(path).stat().st_size
            if size > MAX_INPUT_BYTES:  # a video or an image dropped in the folder
                return ImportResult(label, REJECTED, f"not a dose report: {size} bytes, larger "
                                    f"than any RDSR ({MAX_INPUT_BYTES} bytes)",
                                    dry_run=dry_run)
            data = Path(path).read_bytes()
        except OSError as exc:
            return ImportResult(label, REJECTED, f"cannot read the file: {exc.strerror or exc}",
                                dry_run=dry_run)
        return self.import_bytes(data, label, dry_run=dry_run)

    def import_bytes(self, data: bytes, name: str, *, dry_run: bool = False) -> ImportResult:
        """Import one report given as bytes (an upload); ``name`` is kept as its source."""
        try:
            report = read_dose_report(data)
        except RejectedReport as exc:
            return ImportResult(name, REJECTED, exc.reason, dry_run=dry_run)
        return self.store(report, name, sha256_hex(data), dry_run=dry_run)

    def store(self, report: ParsedReport, name: str, digest: str, *,
              dry_run: bool = False) -> ImportResult:
        """Store a parsed report and reconcile it, in one transaction (rolled back if dry).

        The report is checked again here (UIDs, finite numbers within bounds), since a caller
        may hand over a report it did not get from read_dose_report. A database error caused
        by this report rejects it; one that means the database is unavailable is raised.
        """
        problem = _unstorable(report)
        if problem:
            return ImportResult(name, REJECTED, problem, dry_run=dry_run)
        settings = self.settings()
        try:
            return retrying(lambda: self._transaction(
                lambda session: self._store(session, report, name, digest, settings, dry_run),
                commit=not dry_run))
        except SQLAlchemyError as exc:
            if database_unavailable(exc):
                raise
            return ImportResult(name, REJECTED, refusal(exc),
                                sop_instance_uid=report.sop_instance_uid,
                                study_instance_uid=report.study_instance_uid, dry_run=dry_run)

    def reconcile_unmatched(self) -> list[ImportResult]:
        """Try again to link every current report whose procedure is missing from the log
        (or whose procedure was voided): the technologist may have logged it since."""
        settings = self.settings()
        with read_session(self.engine) as session:
            rows = session.execute(unmatched_query().with_only_columns(
                DoseReport.id, DoseReport.source_file).order_by(DoseReport.id)).all()
        results = []
        for report_id, source in rows:
            try:
                result = retrying(lambda rid=report_id: self._transaction(
                    lambda session: self._relink(session, rid, settings), commit=True))
            except SQLAlchemyError as exc:  # this report's data; the others go on
                if database_unavailable(exc):
                    raise
                result = ImportResult(source, REJECTED, refusal(exc), report_id=report_id)
            if result is not None:
                results.append(result)
        return results

    def database_reachable(self) -> bool:
        """Whether the database answers at all: tells a file the database refuses from a
        database that is down (the watcher rejects the first, waits out the second)."""
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except SQLAlchemyError:
            return False
        return True

    # --- transaction work -----------------------------------------------------------------
    def _transaction(self, work: Callable[[Session], T], *, commit: bool) -> T:
        factory = sessionmaker(writer(self.engine), expire_on_commit=False)
        with factory() as session:
            session.begin()
            try:
                result = work(session)
            except BaseException:
                session.rollback()
                raise
            if commit:
                session.commit()
            else:
                session.rollback()
            return result

    def _store(self, session: Session, parsed: ParsedReport, name: str, digest: str,
               settings: Settings, dry_run: bool) -> ImportResult:
        # Serialise imports like every audited write (SQLite: BEGIN IMMEDIATE; PostgreSQL:
        # the audit chain's advisory lock, taken here before the duplicate and supersession
        # checks so two importers cannot both find "no earlier report" for one study).
        lock_chain(session)
        result = ImportResult(
            name, OK, sop_instance_uid=parsed.sop_instance_uid,
            study_instance_uid=parsed.study_instance_uid, events=parsed.events,
            totals={k: getattr(parsed, k) for k in TOTAL_FIELDS},
            warnings=list(parsed.warnings), dry_run=dry_run)
        existing = session.execute(
            select(DoseReport.id, DoseReport.procedure_id, DoseReport.source_file)
            .where(DoseReport.sop_instance_uid == parsed.sop_instance_uid)
        ).first()
        if existing is not None:
            result.status = DUPLICATE
            result.report_id, result.record_id = existing.id, existing.procedure_id
            result.reason = (f"already imported as dose report {existing.id} (from "
                             f"{existing.source_file}): same SOP instance UID; nothing written")
            return result

        zone = reconcile.site_zone(settings)
        instant, day = reconcile.study_moment(parsed.study_datetime, zone)
        secret = site_secret(session)
        row = DoseReport(
            sop_instance_uid=parsed.sop_instance_uid, sop_class_uid=parsed.sop_class_uid,
            study_instance_uid=parsed.study_instance_uid,
            accession_number=_clip(parsed.accession_number, 64),
            patient_id=_clip(parsed.patient_id, 64),
            patient_ref=pseudonym(secret, parsed.patient_id) if parsed.patient_id else None,
            study_datetime=instant, study_day=day,
            manufacturer=_clip(parsed.manufacturer, 120), model=_clip(parsed.model, 120),
            serial=_clip(parsed.serial, 120),
            planes=json_safe([asdict(p) for p in parsed.planes]),
            **{k: getattr(parsed, k) for k in TOTAL_FIELDS},
            events=parsed.events, fluoro_events=parsed.fluoro_events,
            acquisition_events=parsed.acquisition_events,
            pulsed_fluoro_share=parsed.pulsed_fluoro_share,
            max_pulse_rate_pps=parsed.max_pulse_rate_pps,
            warnings=list(parsed.warnings) or None,
            status=DoseReportStatus.CURRENT.value, source_file=_clip(name, _SOURCE_NAME_MAX),
            source_sha256=digest, imported_at=utcnow(), imported_by=self.actor.username,
        )
        session.add(row)
        session.flush()
        result.report_id = row.id
        store_events(session, row.id, parsed.irradiation_events, zone)

        earlier = list(session.scalars(
            select(DoseReport).where(
                DoseReport.study_instance_uid == row.study_instance_uid,
                DoseReport.status == DoseReportStatus.CURRENT.value,
                DoseReport.id != row.id,
            ).order_by(DoseReport.id).with_for_update()
        ))
        fuller = [r for r in earlier if r.events >= row.events]
        if fuller:
            keeper = max(fuller, key=lambda r: (r.events, -r.id))
            row.status = DoseReportStatus.SUPERSEDED.value
            row.superseded_by_id = keeper.id
            row.procedure_id = keeper.procedure_id
            result.superseded_by = keeper.id
            result.record_id = keeper.procedure_id
            result.note = (f"stored as superseded: dose report {keeper.id} of the same study "
                           f"has {keeper.events} events (this one {row.events})")
            self._audit_import(session, row, result)
            return result

        previous = None
        for old in earlier:
            self._supersede(session, old, row)
            result.supersedes.append(old.id)
            previous = old
        self._audit_import(session, row, result)
        self._link(session, row, settings, zone, previous, result)
        return result

    def _supersede(self, session: Session, old: DoseReport, new: DoseReport) -> None:
        old.status = DoseReportStatus.SUPERSEDED.value
        old.superseded_by_id = new.id
        closed = session.execute(
            select(DoseDiscrepancy).where(DoseDiscrepancy.dose_report_id == old.id,
                                          DoseDiscrepancy.status == DiscrepancyStatus.OPEN.value)
        ).scalars().all()
        for discrepancy in closed:
            discrepancy.status = DiscrepancyStatus.SUPERSEDED.value
        session.flush()
        record_event(
            session, actor=self.actor.username, action=AuditAction.AMEND, entity="dose_report",
            entity_id=old.id,
            reason=f"superseded by dose report {new.id} of the same study with more events "
                   f"({old.events} -> {new.events})",
            before=json_safe({"status": DoseReportStatus.CURRENT.value, "events": old.events,
                              "open_discrepancies": [d.id for d in closed]}),
            after={"status": DoseReportStatus.SUPERSEDED.value, "superseded_by": new.id},
        )

    def _audit_import(self, session: Session, row: DoseReport, result: ImportResult) -> None:
        record_event(
            session, actor=self.actor.username, action=AuditAction.IMPORT, entity="dose_report",
            entity_id=row.id, reason=f"RDSR import of {row.source_file}",
            after=json_safe({
                "sop_instance_uid": row.sop_instance_uid,
                "study_instance_uid": row.study_instance_uid,
                "accession_number": row.accession_number, "patient_ref": row.patient_ref,
                "source_file": row.source_file, "source_sha256": row.source_sha256,
                "status": row.status, "superseded_by": row.superseded_by_id,
                "supersedes": result.supersedes, "events": row.events,
                "warnings": row.warnings or [],
                **{k: getattr(row, k) for k in TOTAL_FIELDS},
            }),
        )

    def _link(self, session: Session, row: DoseReport, settings: Settings,
              zone: ZoneInfo, previous: DoseReport | None, result: ImportResult) -> None:
        """Find the procedure (the superseded report's, if still final) and reconcile."""
        match: reconcile.Match | None = None
        if previous is not None and previous.procedure_id is not None:
            status = session.scalar(select(Procedure.status)
                                    .where(Procedure.id == previous.procedure_id))
            if status == RecordStatus.FINAL.value:
                match = reconcile.Match(previous.procedure_id, previous.match_rule or "", 1)
        if match is None:
            match = reconcile.find_procedure(session, row, zone)
        if match is None:
            result.note = MISSING_FROM_LOG
            return
        row.procedure_id, row.match_rule = match.procedure_id, match.rule
        session.flush()
        applied = reconcile.apply(session, row, match.procedure_id, settings,
                                  self.actor.username, previous=previous)
        result.record_id, result.match = match.procedure_id, match.rule
        result.filled, result.discrepancies = applied.filled, applied.discrepancies
        result.review = reconcile.duplicate_review(session, match.procedure_id, settings)

    def _relink(self, session: Session, report_id: int,
                settings: Settings) -> ImportResult | None:
        lock_chain(session)
        row = session.get(DoseReport, report_id, with_for_update=True)
        if row is None or row.status != DoseReportStatus.CURRENT.value:
            return None
        problem = _stored_problem(row)
        if problem:  # stored before bounds were checked: never let it fill a procedure
            return ImportResult(row.source_file, REJECTED, problem, report_id=row.id,
                                sop_instance_uid=row.sop_instance_uid,
                                study_instance_uid=row.study_instance_uid, events=row.events)
        zone = reconcile.site_zone(settings)
        match = reconcile.find_procedure(session, row, zone)
        if match is None or match.procedure_id == row.procedure_id:
            return None
        before = {"procedure_id": row.procedure_id, "match_rule": row.match_rule}
        row.procedure_id, row.match_rule = match.procedure_id, match.rule
        session.flush()
        record_event(session, actor=self.actor.username, action=AuditAction.AMEND,
                     entity="dose_report", entity_id=row.id,
                     reason="reconciled again: a logged procedure now matches",
                     before=before,
                     after={"procedure_id": match.procedure_id, "match_rule": match.rule})
        applied = reconcile.apply(session, row, match.procedure_id, settings,
                                  self.actor.username)
        return ImportResult(row.source_file, OK, report_id=row.id, record_id=match.procedure_id,
                            sop_instance_uid=row.sop_instance_uid,
                            study_instance_uid=row.study_instance_uid, events=row.events,
                            totals={k: getattr(row, k) for k in TOTAL_FIELDS},
                            match=match.rule, filled=applied.filled,
                            discrepancies=applied.discrepancies,
                            review=reconcile.duplicate_review(session, match.procedure_id,
                                                              settings))


_UID_LIMIT = 64


def _unstorable(report: ParsedReport) -> str | None:
    """Why a parsed report cannot be stored faithfully (a UID is its identity: never cut; a
    number must be finite and within the data dictionary's bounds)."""
    for name in ("sop_instance_uid", "study_instance_uid", "sop_class_uid"):
        value = getattr(report, name)
        if len(value) > _UID_LIMIT or "\x00" in value:
            return (f"invalid dose report: {name} is not a DICOM UID (at most {_UID_LIMIT} "
                    f"characters, no NUL): {value[:80]!r}")
    return report_problem(report)


def _stored_problem(row: DoseReport) -> str | None:
    """A stored report's out-of-bounds totals (rows imported before the bounds existed)."""
    found = [problem for name in TOTAL_FIELDS
             if (problem := value_problem(name, getattr(row, name)))]
    return "implausible dose report, not reconciled: " + "; ".join(found) if found else None


def database_unavailable(exc: SQLAlchemyError) -> bool:
    """Whether ``exc`` means the database cannot be used at all (connection lost or refused,
    locked beyond the busy timeout, pool exhausted) rather than that it refused this data."""
    return isinstance(exc, OperationalError | InterfaceError | DisconnectionError | PoolTimeout)


def refusal(exc: BaseException) -> str:
    """The reason of a file the database refused: the driver's message, first line."""
    original = getattr(exc, "orig", None) or exc
    message = str(original).strip().splitlines()[0] if str(original).strip() else ""
    return (f"the database refused this report ({type(original).__name__}: {message}); "
            "nothing of it was written")


def _clip(text: str | None, limit: int) -> str | None:
    """Fit a column; DICOM LO is 64 characters, but a broken file may carry more, and NUL
    bytes, which PostgreSQL text refuses."""
    if text is None:
        return None
    return text.replace("\x00", "")[:limit] or None


def unmatched_query() -> Any:
    """Current reports with no final procedure linked: missing from the log."""
    linked = aliased(Procedure)
    return (
        select(DoseReport)
        .outerjoin(linked, linked.id == DoseReport.procedure_id)
        .where(DoseReport.status == DoseReportStatus.CURRENT.value,
               or_(DoseReport.procedure_id.is_(None),
                   linked.status != RecordStatus.FINAL.value))
    )



__all__ = [
    "DUPLICATE",
    "MISSING_FROM_LOG",
    "OK",
    "REJECTED",
    "TOTAL_FIELDS",
    "DoseImporter",
    "ImportResult",
    "database_unavailable",
    "refusal",
    "sha256_hex",
    "unmatched_query",
]
