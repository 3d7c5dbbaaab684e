"""What the Dose reports and Reconciliation pages list for review, and the review itself.

Why apart from the importer (audit.dose_reports.store): these are read-side queries for people
(DataFrames for pages and reports, filtered by period and permission), while the importer is
the write side, one transaction per file. Marking a discrepancy reviewed is the one write here:
it is what a person does with these lists.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import Engine, and_, case, func, select
from sqlalchemy.orm import aliased

from audit import access
from audit.auth import Actor, Permission, require
from audit.dose_reports.matching import review_text, site_zone
from audit.dose_reports.store import TOTAL_FIELDS, unmatched_query
from audit.errors import FieldError, NotFound, ValidationFailed
from audit.log.duplicates import record_duplicates
from audit.settings import load_settings
from audit.storage.engine import read_session, retrying, write_session
from audit.storage.models import DoseDiscrepancy, DoseReport, Procedure, Room, Site, utcnow
from audit.trail import record_event
from audit.vocab import AuditAction, DiscrepancyStatus, DoseReportStatus, RecordStatus


def review_discrepancy(engine: Engine, actor: Actor, discrepancy_id: int, note: str) -> None:
    """Mark an open discrepancy reviewed, with a note saying what was found (audited).

    Correcting the record itself is an ordinary amend of the procedure.
    """
    require(actor, Permission.VIEW_DASHBOARDS)
    if not (note or "").strip():
        raise ValidationFailed([FieldError("note", "required: say what the review found")])

    def work() -> None:
        with write_session(engine) as session:
            row = session.get(DoseDiscrepancy, discrepancy_id, with_for_update=True)
            if row is None:
                raise NotFound(f"no discrepancy {discrepancy_id}")
            if row.status != DiscrepancyStatus.OPEN.value:
                raise ValidationFailed([FieldError(
                    "status", f"discrepancy {discrepancy_id} is {row.status}; only open ones "
                    "are reviewed")])
            row.status = DiscrepancyStatus.REVIEWED.value
            row.reviewed_at = utcnow()
            row.reviewed_by = actor.username
            row.review_note = note.strip()
            session.flush()
            record_event(session, actor=actor.username, action=AuditAction.ACKNOWLEDGE,
                         entity="dose_discrepancy", entity_id=row.id, reason=note.strip(),
                         before={"status": DiscrepancyStatus.OPEN.value},
                         after={"status": row.status, "procedure_id": row.procedure_id})

    retrying(work)



def _period(column: Any, date_from: datetime | None, date_to: datetime | None) -> list[Any]:
    conditions = []
    if date_from is not None:
        conditions.append(column >= date_from)
    if date_to is not None:
        conditions.append(column < date_to)
    return conditions


def list_discrepancies(engine: Engine, actor: Actor, *, status: str | None = "open",
                       date_from: datetime | None = None,
                       date_to: datetime | None = None) -> pd.DataFrame:
    """Discrepancies (default: open, of final records) with their record id, newest first."""
    require(actor, Permission.VIEW_DASHBOARDS)
    query = (
        select(
            DoseDiscrepancy.id.label("discrepancy_id"),
            DoseDiscrepancy.procedure_id.label("record_id"),
            Procedure.performed_at, Room.name.label("room"),
            DoseDiscrepancy.field, DoseDiscrepancy.manual_value, DoseDiscrepancy.report_value,
            DoseDiscrepancy.relative_difference, DoseDiscrepancy.likely_cause,
            DoseDiscrepancy.status, DoseDiscrepancy.dose_report_id,
            DoseReport.source_file, DoseDiscrepancy.reviewed_by, DoseDiscrepancy.review_note,
        )
        .join(Procedure, Procedure.id == DoseDiscrepancy.procedure_id)
        .join(Room, Room.id == Procedure.room_id)
        .join(DoseReport, DoseReport.id == DoseDiscrepancy.dose_report_id)
        .where(*_period(Procedure.performed_at, date_from, date_to))
        .order_by(Procedure.performed_at.desc(), DoseDiscrepancy.id)
    )
    if status:
        query = query.where(DoseDiscrepancy.status == status)
    if status == DiscrepancyStatus.OPEN.value:  # a voided record has nothing left to review
        query = query.where(Procedure.status == RecordStatus.FINAL.value)
    with read_session(engine) as session:
        rows = session.execute(query).mappings().all()
    columns = [c.name for c in query.selected_columns]
    return pd.DataFrame([dict(r) for r in rows], columns=columns)


def list_missing(engine: Engine, actor: Actor, *, date_from: datetime | None = None,
                 date_to: datetime | None = None) -> pd.DataFrame:
    """Current reports whose procedure is missing from the log (patient_id only with PHI)."""
    require(actor, Permission.VIEW_DASHBOARDS)
    query = (
        unmatched_query()
        .with_only_columns(
            DoseReport.id.label("report_id"), DoseReport.study_datetime,
            DoseReport.accession_number, DoseReport.patient_id, DoseReport.patient_ref,
            DoseReport.manufacturer, DoseReport.model, DoseReport.serial,
            DoseReport.dap_total_gycm2, DoseReport.fluoro_time_s,
            DoseReport.air_kerma_total_mgy, DoseReport.events, DoseReport.source_file,
            DoseReport.procedure_id.label("voided_record_id"),
        )
        .where(*_period(DoseReport.study_datetime, date_from, date_to))
        .order_by(DoseReport.study_datetime.desc(), DoseReport.id.desc())
    )
    with read_session(engine) as session:
        rows = session.execute(query).mappings().all()
    columns = [c.name for c in query.selected_columns]
    frame = pd.DataFrame([dict(r) for r in rows], columns=columns)
    if not access.may_see_patient_id(actor):
        frame["patient_id"] = None
    return frame


def list_duplicates(engine: Engine, actor: Actor, *, date_from: datetime | None = None,
                    date_to: datetime | None = None) -> pd.DataFrame:
    """Current reports linked to a final procedure that may be logged twice, with why
    (matching.duplicate_review): one row per report, until one copy is voided or moved."""
    require(actor, Permission.VIEW_DASHBOARDS)
    query = (
        select(DoseReport.id.label("report_id"), DoseReport.procedure_id.label("record_id"),
               DoseReport.study_datetime, DoseReport.source_file)
        .join(Procedure, Procedure.id == DoseReport.procedure_id)
        .where(DoseReport.status == DoseReportStatus.CURRENT.value,
               Procedure.status == RecordStatus.FINAL.value,
               *_period(DoseReport.study_datetime, date_from, date_to))
        .order_by(DoseReport.study_datetime.desc(), DoseReport.id.desc())
    )
    columns = ["report_id", "record_id", "study_datetime", "source_file", "possible_duplicates",
               "review"]
    with read_session(engine) as session:
        rows = session.execute(query).mappings().all()
        settings = load_settings(session)
        found = record_duplicates(session, [r["record_id"] for r in rows], settings)
    zone = site_zone(settings)
    listed = [{**dict(r), "possible_duplicates": ", ".join(
        str(p.record_id) for p in found[r["record_id"]].others),
        "review": review_text(found[r["record_id"]], zone)}
        for r in rows if r["record_id"] in found]
    return pd.DataFrame(listed, columns=columns)


def completeness(engine: Engine, actor: Actor, *, date_from: datetime | None = None,
                 date_to: datetime | None = None) -> pd.DataFrame:
    """Log completeness by device: current reports and how many match a final procedure.

    The rate is matched / reports: the share of procedures the C-arm recorded that were
    also logged. One row per device (manufacturer, model, serial).
    """
    require(actor, Permission.VIEW_DASHBOARDS)
    linked = aliased(Procedure)
    matched = func.sum(case((and_(DoseReport.procedure_id.is_not(None),
                                  linked.status == RecordStatus.FINAL.value), 1), else_=0))
    query = (
        select(DoseReport.manufacturer, DoseReport.model, DoseReport.serial,
               func.count(DoseReport.id).label("reports"), matched.label("matched"))
        .outerjoin(linked, linked.id == DoseReport.procedure_id)
        .where(DoseReport.status == DoseReportStatus.CURRENT.value,
               *_period(DoseReport.study_datetime, date_from, date_to))
        .group_by(DoseReport.manufacturer, DoseReport.model, DoseReport.serial)
        .order_by(DoseReport.manufacturer, DoseReport.model, DoseReport.serial)
    )
    with read_session(engine) as session:
        rows = session.execute(query).mappings().all()
    frame = pd.DataFrame([dict(r) for r in rows],
                         columns=["manufacturer", "model", "serial", "reports", "matched"])
    frame["matched"] = frame["matched"].fillna(0).astype(int)
    frame["reports"] = frame["reports"].astype(int)
    frame["rate"] = frame["matched"] / frame["reports"]
    return frame


def completeness_rate(frame: pd.DataFrame) -> dict[str, Any]:
    """Overall figures from :func:`completeness`'s frame (rate None when there are none)."""
    reports = int(frame["reports"].sum()) if len(frame) else 0
    matched = int(frame["matched"].sum()) if len(frame) else 0
    return {"reports": reports, "matched": matched, "missing": reports - matched,
            "rate": matched / reports if reports else None}


def logged_without_report(engine: Engine, actor: Actor, *, date_from: datetime | None = None,
                          date_to: datetime | None = None) -> pd.DataFrame:
    """The other side of log completeness: final procedures performed in the period with no
    current dose report linked, by room (site, room, logged, without_report, counted).

    `counted` marks the rooms whose C-arm sends dose reports (at least one report linked to
    one of its procedures, at any time): a room whose C-arm sends none would otherwise count
    every case it ever logged. Until any room has a linked report, every room counts.
    """
    require(actor, Permission.VIEW_DASHBOARDS)
    current = DoseReport.status == DoseReportStatus.CURRENT.value
    reported = select(DoseReport.procedure_id).where(current, DoseReport.procedure_id.is_not(None))
    query = (
        select(Site.name.label("site"), Room.name.label("room"), Room.id.label("room_id"),
               func.count(Procedure.id).label("logged"),
               func.sum(case((Procedure.id.in_(reported), 0), else_=1)).label("without_report"))
        .join(Room, Room.id == Procedure.room_id)
        .join(Site, Site.id == Procedure.site_id)
        .where(Procedure.status == RecordStatus.FINAL.value,
               *_period(Procedure.performed_at, date_from, date_to))
        .group_by(Site.name, Room.name, Room.id)
        .order_by(Site.name, Room.name)
    )
    sending = (select(Procedure.room_id).join(DoseReport, DoseReport.procedure_id == Procedure.id)
               .where(current).distinct())
    with read_session(engine) as session:
        rows = session.execute(query).mappings().all()
        rooms = set(session.scalars(sending))
    frame = pd.DataFrame([dict(r) for r in rows],
                         columns=["site", "room", "room_id", "logged", "without_report"])
    frame["logged"] = frame["logged"].astype(int)
    frame["without_report"] = frame["without_report"].fillna(0).astype(int)
    frame["counted"] = frame["room_id"].isin(rooms) if rooms else True
    return frame.drop(columns=["room_id"])


def without_report_total(frame: pd.DataFrame) -> dict[str, Any]:
    """Overall figures from :func:`logged_without_report`'s frame: cases without a report and
    cases logged, in the counted rooms, and whether every room counted."""
    counted = frame[frame["counted"].astype(bool)] if len(frame) else frame
    return {"cases": int(counted["without_report"].sum()) if len(counted) else 0,
            "logged": int(counted["logged"].sum()) if len(counted) else 0,
            "all_rooms": bool(frame["counted"].all()) if len(frame) else True}


def report_for_record(engine: Engine, actor: Actor, record_id: int) -> pd.DataFrame:
    """Every dose report linked to one record (current and superseded), newest first."""
    require(actor, Permission.VIEW_RECORDS)
    query = (
        select(DoseReport.id.label("report_id"), DoseReport.status, DoseReport.study_datetime,
               DoseReport.events, DoseReport.match_rule, DoseReport.filled_fields,
               *(getattr(DoseReport, k) for k in TOTAL_FIELDS), DoseReport.source_file,
               DoseReport.imported_at, DoseReport.imported_by)
        .where(DoseReport.procedure_id == record_id)
        .order_by(DoseReport.id.desc())
    )
    with read_session(engine) as session:
        rows = session.execute(query).mappings().all()
    return pd.DataFrame([dict(r) for r in rows], columns=[c.name for c in query.selected_columns])


def count_reports(engine: Engine) -> dict[str, int]:
    """Stored reports by status (for tests and the summary)."""
    with read_session(engine) as session:
        rows = session.execute(
            select(DoseReport.status, func.count()).group_by(DoseReport.status)).all()
    counts = {status.value: 0 for status in DoseReportStatus}
    counts.update({status: int(n) for status, n in rows})
    return counts


__all__ = [
    "completeness",
    "completeness_rate",
    "count_reports",
    "list_discrepancies",
    "list_duplicates",
    "list_missing",
    "logged_without_report",
    "report_for_record",
    "review_discrepancy",
    "without_report_total",
]
