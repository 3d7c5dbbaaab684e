"""One stored dose report's irradiation events and warnings, for the Dose reports page.

Why here and not in review.py: review lists what needs a person's action; this only shows what
a report holds, event by event, as stored (audit/storage/models/irradiation.py). No patient
identifier is read, so every role that may open the page may see it.
"""

from __future__ import annotations

from typing import Final

import pandas as pd
from sqlalchemy import Engine, select

from audit.auth import Actor, Permission, require
from audit.errors import NotFound
from audit.storage.engine import read_session
from audit.storage.models import DoseReport, IrradiationEvent

#: The event columns shown, in order (the table's own names: the page labels them).
EVENT_COLUMNS: Final = ("sequence", "event_type", "fluoro_mode", "plane", "started_at",
                        "pulse_rate_pps", "kvp", "tube_current_ma", "field_area_cm2",
                        "dap_gycm2", "air_kerma_mgy", "exposure_time_s", "duration_s",
                        "primary_angle_deg", "secondary_angle_deg")


def list_reports(engine: Engine, actor: Actor, *, limit: int = 500) -> pd.DataFrame:
    """The newest stored reports (report_id, study_datetime, source_file, model, status,
    events, stored_events, warnings), newest import first."""
    require(actor, Permission.IMPORT)
    query = (select(DoseReport.id, DoseReport.study_datetime, DoseReport.source_file,
                    DoseReport.model, DoseReport.status, DoseReport.events,
                    DoseReport.warnings)
             .order_by(DoseReport.id.desc()).limit(limit))
    with read_session(engine) as session:
        rows = session.execute(query).all()
    frame = pd.DataFrame([tuple(r) for r in rows],
                         columns=["report_id", "study_datetime", "source_file", "model",
                                  "status", "events", "warnings"])
    frame["warnings"] = [len(w or []) for w in frame["warnings"]]
    return frame


def report_events(engine: Engine, actor: Actor,
                  report_id: int) -> tuple[pd.DataFrame, list[str]]:
    """The report's events in document order (EVENT_COLUMNS) and its warnings. A report
    imported before events were stored has none: an empty frame, not an error."""
    require(actor, Permission.IMPORT)
    with read_session(engine) as session:
        report = session.get(DoseReport, report_id)
        if report is None:
            raise NotFound(f"no dose report {report_id}")
        warnings = list(report.warnings or [])
        columns = [getattr(IrradiationEvent, name) for name in EVENT_COLUMNS]
        rows = session.execute(select(*columns)
                               .where(IrradiationEvent.dose_report_id == report_id)
                               .order_by(IrradiationEvent.sequence)).all()
    return pd.DataFrame([tuple(r) for r in rows], columns=list(EVENT_COLUMNS)), warnings


__all__ = ["EVENT_COLUMNS", "list_reports", "report_events"]
