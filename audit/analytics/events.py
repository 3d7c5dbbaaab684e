"""Figures from the C-arm's own irradiation events (issue 13), aggregated in SQL.

Why apart from the snapshot analytics: those read the log (what people typed); these read what
the C-arm recorded, event by event (audit/storage/models/irradiation.py), for the procedures
that have a dose report. Three questions:

- Pulsed fluoroscopy and low pulse rates, from the C-arm: the share of fluoroscopy events, and
  of fluoroscopy time, that ran pulsed, and the pulse rates used, beside what the form says for
  the same procedures. Fluoroscopy time per event is its Irradiation Duration, else its
  Exposure Time (vendors write one or the other).
- Events per procedure: how many irradiation events a procedure type takes (median), split
  into fluoroscopy and acquisitions (spot images and runs).
- Studies split into several reports: a procedure linked to more than one current report
  (two studies under one accession number, a report per plane or per procedure step) is
  compared with the log by the reports' sum; each report alone only holds a part.

Only current reports count (a superseded one is contained in the report that replaced it).
Reports imported before migration 0014 have no events: they are absent here, not zero.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

import pandas as pd
from sqlalchemy import Engine, and_, case, distinct, func, literal, select
from sqlalchemy.sql import ColumnElement

from audit.auth import Actor, Permission, require
from audit.dose_reports.matching import tolerance
from audit.settings import load_settings
from audit.storage.engine import read_session
from audit.storage.models import DoseReport, IrradiationEvent, Procedure, ProcedureType
from audit.vocab import DoseReportStatus, FluoroMode, IrradiationEventType, RecordStatus

#: A pulse rate at or below this is counted as a low pulse rate: a quarter of 30 frames/s
#: video, the lowest standard setting of most C-arms' pulsed fluoroscopy.
LOW_PULSE_RATE_PPS: Final = 7.5
#: The group of reports whose procedure is not in the log.
NOT_LOGGED: Final = "not in the log"
ALL: Final = "all procedures"
_ACQUISITIONS: Final = (IrradiationEventType.STATIONARY.value,
                        IrradiationEventType.STEPPING.value,
                        IrradiationEventType.ROTATIONAL.value)


def _period(date_from: datetime | None, date_to: datetime | None) -> list[ColumnElement[bool]]:
    conditions = [DoseReport.status == DoseReportStatus.CURRENT.value]
    if date_from is not None:
        conditions.append(DoseReport.study_datetime >= date_from)
    if date_to is not None:
        conditions.append(DoseReport.study_datetime < date_to)
    return conditions


def _frame(rows: Any, columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame([tuple(r) for r in rows], columns=columns)


def _share(part: pd.Series, whole: pd.Series) -> pd.Series:
    """part / whole, empty (NaN) where whole is 0."""
    whole = whole.astype(float)
    return (part.astype(float) / whole.where(whole > 0)).astype(float)


def pulsed_use(engine: Engine, actor: Actor, *, date_from: datetime | None = None,
               date_to: datetime | None = None) -> pd.DataFrame:
    """Per procedure type (and all procedures), from the C-arm and from the form.

    Columns: procedure, reports, fluoro_events, pulsed_event_share (of fluoroscopy events with
    a stated mode), fluoro_event_time_s, pulsed_time_share, low_rate_time_share (of pulsed
    time with a stated rate, at or below LOW_PULSE_RATE_PPS), form_recorded (procedures whose
    form answers "pulsed?"), form_pulsed_share, form_low_dose_share. Empty when no current
    report has events.
    """
    require(actor, Permission.VIEW_DASHBOARDS)
    fluoro = IrradiationEvent.event_type == IrradiationEventType.FLUOROSCOPY.value
    pulsed = and_(fluoro, IrradiationEvent.fluoro_mode == FluoroMode.PULSED.value)
    moded = and_(fluoro, IrradiationEvent.fluoro_mode.is_not(None))
    seconds = func.coalesce(IrradiationEvent.duration_s, IrradiationEvent.exposure_time_s)
    low = and_(pulsed, IrradiationEvent.pulse_rate_pps <= LOW_PULSE_RATE_PPS)
    rated = and_(pulsed, IrradiationEvent.pulse_rate_pps.is_not(None))

    def total(condition: ColumnElement[bool], value: Any = 1) -> Any:
        return func.coalesce(func.sum(case((condition, value), else_=0)), 0)

    group = func.coalesce(ProcedureType.code, literal(NOT_LOGGED))
    measures = (
        func.count(distinct(DoseReport.id)), total(fluoro), total(pulsed), total(moded),
        total(fluoro, seconds), total(pulsed, seconds), total(moded, seconds),
        total(low, seconds), total(rated, seconds))
    base = (select().select_from(IrradiationEvent)
            .join(DoseReport, DoseReport.id == IrradiationEvent.dose_report_id)
            .outerjoin(Procedure, Procedure.id == DoseReport.procedure_id)
            .outerjoin(ProcedureType, ProcedureType.id == Procedure.procedure_type_id)
            .where(*_period(date_from, date_to)))
    columns = ["procedure", "reports", "fluoro_events", "pulsed", "moded", "fluoro_event_time_s",
               "pulsed_time", "moded_time", "low_time", "rated_time"]
    with read_session(engine) as session:
        per_type = session.execute(base.add_columns(group, *measures)
                                   .group_by(group).order_by(group)).all()
        overall = session.execute(base.add_columns(literal(ALL), *measures)).all()
        forms = session.execute(_form_answers(date_from, date_to)).all()
    frame = _frame([*per_type, *overall], columns)
    frame = frame[frame["reports"] > 0].reset_index(drop=True)
    if frame.empty:
        return pd.DataFrame(columns=PULSED_COLUMNS)
    frame["pulsed_event_share"] = _share(frame["pulsed"], frame["moded"])
    frame["pulsed_time_share"] = _share(frame["pulsed_time"], frame["moded_time"])
    frame["low_rate_time_share"] = _share(frame["low_time"], frame["rated_time"])
    answers = _frame(forms, ["procedure", "form_recorded", "form_pulsed", "form_low_dose_recorded",
                             "form_low_dose"])
    if len(answers):
        totals = answers.drop(columns="procedure").sum()
        answers = pd.concat([answers, pd.DataFrame([{"procedure": ALL, **totals}])])
    frame = frame.merge(answers, on="procedure", how="left")
    frame["form_recorded"] = frame["form_recorded"].fillna(0).astype(int)
    frame["form_pulsed_share"] = _share(frame["form_pulsed"].fillna(0), frame["form_recorded"])
    frame["form_low_dose_share"] = _share(frame["form_low_dose"].fillna(0),
                                          frame["form_low_dose_recorded"].fillna(0))
    return frame[PULSED_COLUMNS]


PULSED_COLUMNS: Final = ["procedure", "reports", "fluoro_events", "pulsed_event_share",
                         "fluoro_event_time_s", "pulsed_time_share", "low_rate_time_share",
                         "form_recorded", "form_pulsed_share", "form_low_dose_share"]


def _form_answers(date_from: datetime | None, date_to: datetime | None) -> Any:
    """What the form says (pulsed? low-dose mode?) for the final procedures with a report."""
    linked = (select(distinct(DoseReport.procedure_id).label("procedure_id"))
              .where(DoseReport.procedure_id.is_not(None), *_period(date_from, date_to))
              .subquery())

    def count(condition: ColumnElement[bool]) -> Any:
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    return (select(ProcedureType.code,
                   count(Procedure.pulsed_fluoro.is_not(None)),
                   count(Procedure.pulsed_fluoro.is_(True)),
                   count(Procedure.low_dose_mode.is_not(None)),
                   count(Procedure.low_dose_mode.is_(True)))
            .join(linked, linked.c.procedure_id == Procedure.id)
            .join(ProcedureType, ProcedureType.id == Procedure.procedure_type_id)
            .where(Procedure.status == RecordStatus.FINAL.value)
            .group_by(ProcedureType.code).order_by(ProcedureType.code))


def pulse_rates(engine: Engine, actor: Actor, *, date_from: datetime | None = None,
                date_to: datetime | None = None) -> pd.DataFrame:
    """The pulse rates of pulsed fluoroscopy events: pulse_rate_pps, fluoro_events,
    fluoro_event_time_s and time_share (of the pulsed time with a stated rate)."""
    require(actor, Permission.VIEW_DASHBOARDS)
    seconds = func.coalesce(IrradiationEvent.duration_s, IrradiationEvent.exposure_time_s)
    rate = IrradiationEvent.pulse_rate_pps
    query = (select(rate, func.count(), func.coalesce(func.sum(seconds), 0))
             .join(DoseReport, DoseReport.id == IrradiationEvent.dose_report_id)
             .where(IrradiationEvent.event_type == IrradiationEventType.FLUOROSCOPY.value,
                    IrradiationEvent.fluoro_mode == FluoroMode.PULSED.value,
                    rate.is_not(None), *_period(date_from, date_to))
             .group_by(rate).order_by(rate))
    with read_session(engine) as session:
        frame = _frame(session.execute(query).all(),
                       ["pulse_rate_pps", "fluoro_events", "fluoro_event_time_s"])
    frame["time_share"] = _share(frame["fluoro_event_time_s"],
                                 pd.Series(frame["fluoro_event_time_s"].sum(), index=frame.index))
    return frame


def events_per_procedure(engine: Engine, actor: Actor, *, date_from: datetime | None = None,
                         date_to: datetime | None = None) -> pd.DataFrame:
    """Per procedure type: procedures with events, the median events per procedure (all,
    fluoroscopy, acquisitions) and the events in all. A procedure's events are those of all
    its current reports (a study split in two counts once, whole)."""
    require(actor, Permission.VIEW_DASHBOARDS)
    fluoro = IrradiationEvent.event_type == IrradiationEventType.FLUOROSCOPY.value
    acquisition = IrradiationEvent.event_type.in_(_ACQUISITIONS)
    query = (select(ProcedureType.code, DoseReport.procedure_id, func.count(),
                    func.sum(case((fluoro, 1), else_=0)),
                    func.sum(case((acquisition, 1), else_=0)))
             .join(DoseReport, DoseReport.id == IrradiationEvent.dose_report_id)
             .join(Procedure, Procedure.id == DoseReport.procedure_id)
             .join(ProcedureType, ProcedureType.id == Procedure.procedure_type_id)
             .where(Procedure.status == RecordStatus.FINAL.value, *_period(date_from, date_to))
             .group_by(ProcedureType.code, DoseReport.procedure_id))
    with read_session(engine) as session:
        per = _frame(session.execute(query).all(),
                     ["procedure", "record_id", "events", "fluoro", "acquisitions"])
    columns = ["procedure", "procedures", "median_events", "median_fluoro_events",
               "median_acquisition_events", "events"]
    if per.empty:
        return pd.DataFrame(columns=columns)
    grouped = per.groupby("procedure", sort=True)
    out = pd.DataFrame({
        "procedures": grouped["record_id"].count(),
        "median_events": grouped["events"].median(),
        "median_fluoro_events": grouped["fluoro"].median(),
        "median_acquisition_events": grouped["acquisitions"].median(),
        "events": grouped["events"].sum(),
    }).reset_index()
    return out[columns]


#: Report total -> the logged field it is compared with, for split studies.
_SPLIT_FIELDS: Final = (("dap_total_gycm2", "dap_gycm2"), ("fluoro_time_s", "fluoro_time_s"),
                        ("air_kerma_total_mgy", "air_kerma_mgy"))


def split_reports(engine: Engine, actor: Actor, *, date_from: datetime | None = None,
                  date_to: datetime | None = None) -> pd.DataFrame:
    """Final procedures linked to more than one current report, the reports' sums beside the
    logged values: record_id, performed_at, procedure, reports, then per quantity
    ``report_<field>`` (the sum), ``<field>`` (logged) and ``<field>_difference``
    ((logged - sum) / sum), and ``agrees``: every quantity both give is within the
    discrepancy tolerance (setting ``discrepancy_tolerance``)."""
    require(actor, Permission.VIEW_DASHBOARDS)
    sums = [func.sum(getattr(DoseReport, total)).label(f"report_{field}")
            for total, field in _SPLIT_FIELDS]
    per = (select(DoseReport.procedure_id, func.count().label("reports"), *sums)
           .where(DoseReport.procedure_id.is_not(None), *_period(date_from, date_to))
           .group_by(DoseReport.procedure_id)
           .having(func.count() > 1).subquery())
    query = (select(per.c.procedure_id, Procedure.performed_at, ProcedureType.code,
                    per.c.reports,
                    *(c for _, field in _SPLIT_FIELDS
                      for c in (per.c[f"report_{field}"], getattr(Procedure, field))))
             .join(Procedure, Procedure.id == per.c.procedure_id)
             .join(ProcedureType, ProcedureType.id == Procedure.procedure_type_id)
             .where(Procedure.status == RecordStatus.FINAL.value)
             .order_by(Procedure.performed_at.desc(), Procedure.id))
    with read_session(engine) as session:
        rows = session.execute(query).all()
        limit = tolerance(load_settings(session))
    names = ["record_id", "performed_at", "procedure", "reports",
             *(n for _, field in _SPLIT_FIELDS for n in (f"report_{field}", field))]
    frame = _frame(rows, names)
    agrees = pd.Series(True, index=frame.index, dtype=bool)
    for _, field in _SPLIT_FIELDS:
        summed = frame[f"report_{field}"].astype(float)
        logged = frame[field].astype(float)
        difference = (logged - summed) / summed.where(summed > 0)
        frame[f"{field}_difference"] = difference
        agrees &= ~(difference.abs() > limit)
    frame["agrees"] = agrees
    order = ["record_id", "performed_at", "procedure", "reports", "agrees",
             *(n for _, field in _SPLIT_FIELDS
               for n in (f"report_{field}", field, f"{field}_difference"))]
    return frame[order]


__all__ = ["ALL", "LOW_PULSE_RATE_PPS", "NOT_LOGGED", "events_per_procedure", "pulse_rates",
           "pulsed_use", "split_reports"]
