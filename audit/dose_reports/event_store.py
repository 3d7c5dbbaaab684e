"""Write a report's irradiation events, in the importer's transaction, in one statement.

Why one multi-row INSERT: a report holds tens to thousands of events, and an ORM object per
event (or an INSERT each) would make them the slowest part of an import; SQLAlchemy's
insertmanyvalues sends them as few batched statements on SQLite and PostgreSQL alike, and
bench/bench_rdsr_import.py measures the import with them.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import insert
from sqlalchemy.orm import Session

from audit.dose_reports.matching import study_moment
from audit.dose_reports.report import IrradiationEvent as ParsedEvent
from audit.storage.models import IrradiationEvent


def event_rows(report_id: int, events: tuple[ParsedEvent, ...],
               zone: ZoneInfo) -> list[dict[str, Any]]:
    """The rows of ``events``: start times in UTC (a time without an offset is the site's
    clock, as for the study time), the event UID under its column's name."""
    rows = []
    for event in events:
        row = asdict(event)
        row["dose_report_id"] = report_id
        row["event_uid"] = row.pop("uid")
        row["started_at"] = study_moment(event.started_at, zone)[0]
        rows.append(row)
    return rows


def store_events(session: Session, report_id: int, events: tuple[ParsedEvent, ...],
                 zone: ZoneInfo) -> None:
    """Insert every event of report ``report_id`` (nothing when it has none)."""
    if events:
        session.execute(insert(IrradiationEvent), event_rows(report_id, events, zone))


__all__ = ["event_rows", "store_events"]
