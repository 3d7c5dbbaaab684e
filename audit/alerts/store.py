"""Stored dose alerts: refreshed from the computed ones, acknowledged by the RSO, listed, counted.

Which alerts the records call for is decided in audit.alerts.detection (pure); this module
gives them an identity in table `alert`. `refresh_alerts` (audit.alerts.refresh, incremental)
reconciles the stored alerts with the
computed ones: new ones are opened, changed evidence is updated (an acknowledged alert whose
records or value changed is reopened), and stored alerts no longer met (a record was voided or
amended) are withdrawn, never deleted. `acknowledge_many` acknowledges the alerts ticked on the
Alerts page, all or none; audit.alerts.summary adds them up (rates, per patient, per physician).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine, Select, false, func, select, update
from sqlalchemy.orm import Session

from audit import access
from audit.alerts.refresh import RefreshResult as RefreshResult
from audit.alerts.refresh import levels_in_force as levels_in_force
from audit.alerts.refresh import refresh_alerts as refresh_alerts
from audit.auth import Actor, Permission, require
from audit.errors import FieldError, NotFound, ValidationFailed
from audit.filters import Filters, Target
from audit.storage.engine import read_session, retrying, write_session
from audit.storage.models import (
    Alert,
    AlertAcknowledgement,
    Patient,
    Physician,
    ProcedureType,
    Room,
    Site,
    utcnow,
)
from audit.trail import record_event
from audit.vocab import AlertKind, AlertStatus, AuditAction


def review_levels(engine: Engine, actor: Actor, found: Any) -> RefreshResult:
    """Review the investigation levels now (audit.alerts.level_review): computed again from
    every final record, kept as the levels in force, and the investigation alerts of the types
    whose level moved re-evaluated. For the RSO after a change of technique or equipment that
    the automatic reviews would only catch later. `found`: what refresh_alerts reads (the
    analysis frame, or a FigureSource)."""
    require(actor, Permission.MANAGE_ALERTS)
    return refresh_alerts(engine, found, review=f"requested by {actor.username}",
                          actor=actor.username)


def acknowledge(engine: Engine, actor: Actor, alert_ids: list[int], note: str, *,
                patient_informed: bool | None = None,
                skin_check_date: date | None = None) -> int:
    """Record the RSO's follow-up of one or more alerts (all or none). A later note on an
    acknowledged alert is added beside the first. Returns the number acknowledged."""
    require(actor, Permission.MANAGE_ALERTS)
    errors = _note_errors(note, skin_check_date)
    if not alert_ids:
        errors.append(FieldError("alert_ids", "choose at least one alert"))
    if errors:
        raise ValidationFailed(errors)

    def work() -> int:
        with write_session(engine) as session:
            alerts = {a.id: a for a in session.scalars(
                select(Alert).where(Alert.id.in_(list(alert_ids))))}
            missing = sorted(set(alert_ids) - set(alerts))
            if missing:
                raise NotFound(f"no alert {', '.join(map(str, missing))}")
            withdrawn = [i for i, a in alerts.items() if a.status == AlertStatus.WITHDRAWN.value]
            if withdrawn:
                raise ValidationFailed([FieldError(
                    "alert_ids", f"alert {', '.join(map(str, withdrawn))} was withdrawn (no "
                                 "longer met); there is nothing to acknowledge")])
            now = utcnow()
            for alert_id in sorted(alerts):
                alert = alerts[alert_id]
                before = alert.status
                session.add(AlertAcknowledgement(
                    alert_id=alert_id, acknowledged_at=now, acknowledged_by=actor.username,
                    note=note.strip(), patient_informed=patient_informed,
                    skin_check_date=skin_check_date))
                alert.status = AlertStatus.ACKNOWLEDGED.value
                alert.updated_at = now
                record_event(session, actor=actor.username, action=AuditAction.ACKNOWLEDGE,
                             entity="alert", entity_id=alert_id, reason=note.strip(),
                             before={"status": before},
                             after={"status": alert.status, "patient_informed": patient_informed,
                                    "skin_check_date": skin_check_date})
            return len(alerts)

    return retrying(work)


def acknowledge_many(engine: Engine, actor: Actor, alert_ids: list[int], note: str, *,
                     patient_informed: bool | None = None,
                     skin_check_date: date | None = None) -> int:
    """Acknowledge the open alerts a person ticked one by one, with one follow-up note: all or
    none, one audit event per alert. Returns how many were acknowledged.

    Unlike `acknowledge` (which adds a later note to an alert already followed up), every id
    must name an alert that is open now: an unknown id, or one acknowledged or withdrawn since
    the page was drawn, refuses the whole batch and is named, so a stale or mistaken selection
    never acknowledges something nobody looked at. The statuses are changed by a conditional
    UPDATE whose row count is checked, so two people acknowledging at once cannot both win."""
    require(actor, Permission.MANAGE_ALERTS)
    errors = acknowledgement_errors(alert_ids, note, skin_check_date)
    if errors:
        raise ValidationFailed(errors)
    ids = [int(i) for i in dict.fromkeys(alert_ids)]

    def work() -> int:
        with write_session(engine) as session:
            status = dict(session.execute(
                select(Alert.id, Alert.status).where(Alert.id.in_(ids))
                .with_for_update()).all())
            _refuse_unless_open(ids, status)
            now = utcnow()
            changed = session.execute(
                update(Alert).where(Alert.id.in_(ids), Alert.status == AlertStatus.OPEN.value)
                .values(status=AlertStatus.ACKNOWLEDGED.value, updated_at=now)
                .execution_options(synchronize_session=False)).rowcount
            if changed != len(ids):  # changed between the read and the write: none of them
                _refuse_unless_open(ids, dict(session.execute(
                    select(Alert.id, Alert.status).where(Alert.id.in_(ids))).all()))
                raise ValidationFailed([FieldError("alert_ids", "the alerts changed while "
                                                                "acknowledging; reload")])
            text_note = note.strip()
            for alert_id in sorted(ids):
                session.add(AlertAcknowledgement(
                    alert_id=alert_id, acknowledged_at=now, acknowledged_by=actor.username,
                    note=text_note, patient_informed=patient_informed,
                    skin_check_date=skin_check_date))
                record_event(session, actor=actor.username, action=AuditAction.ACKNOWLEDGE,
                             entity="alert", entity_id=alert_id, reason=text_note,
                             before={"status": AlertStatus.OPEN.value},
                             after={"status": AlertStatus.ACKNOWLEDGED.value,
                                    "patient_informed": patient_informed,
                                    "skin_check_date": skin_check_date,
                                    "acknowledged_together": len(ids)})
            return len(ids)

    return retrying(work)


def acknowledgement_errors(alert_ids: list[int], note: str,
                           skin_check_date: date | None = None) -> list[FieldError]:
    """What acknowledge_many would refuse before reading the database (no note, nothing
    ticked, not alert numbers), so a page can ask "Acknowledge 3 alerts?" only when the answer
    can be yes; the same checks acknowledge_many makes."""
    errors = _note_errors(note, skin_check_date)
    ids = list(alert_ids or ())
    bad = [i for i in ids if isinstance(i, bool) or not isinstance(i, int | np.integer)]
    if bad:
        errors.append(FieldError("alert_ids", f"not alert numbers: {', '.join(map(repr, bad))}"))
    elif not ids:
        errors.append(FieldError("alert_ids", "tick at least one alert"))
    return errors


def _note_errors(note: str, skin_check_date: date | None) -> list[FieldError]:
    errors = []
    if not (note or "").strip():
        errors.append(FieldError("note", "required: what was done (patient informed, skin "
                                         "check booked, no action needed and why)"))
    if skin_check_date is not None and not isinstance(skin_check_date, date):
        errors.append(FieldError("skin_check_date", "a date, e.g. 2026-03-31"))
    return errors


def _refuse_unless_open(ids: list[int], status: Mapping[int, str]) -> None:
    """ValidationFailed naming every id that is not an open alert, grouped by why."""
    why = {"no such alert": [i for i in ids if i not in status],
           "already acknowledged": [i for i in ids
                                    if status.get(i) == AlertStatus.ACKNOWLEDGED.value],
           "withdrawn (no longer met)": [i for i in ids
                                         if status.get(i) == AlertStatus.WITHDRAWN.value]}
    parts = [f"{reason}: {', '.join(f'#{i}' for i in found)}"
             for reason, found in why.items() if found]
    if parts:
        raise ValidationFailed([FieldError(
            "alert_ids", "nothing was acknowledged; " + "; ".join(parts))])


def _joined(query: Any) -> Any:
    """The names of the alert's site, room, physician and procedure (small tables, by key)."""
    return (query.join(ProcedureType, ProcedureType.id == Alert.procedure_type_id)
            .join(Physician, Physician.id == Alert.physician_id)
            .join(Room, Room.id == Alert.room_id)
            .join(Site, Site.id == Alert.site_id))


#: The stored alerts as a filter target: each alert copies its trigger record's keys (the record
#: is `procedure_id`), so the common filters apply to the alert table alone.
ALERTS = Target(Alert.performed_at, Alert.procedure_id, Alert.site_id, Alert.room_id,
                Alert.physician_id, Alert.procedure_type_id, patient_id=Alert.patient_id)


def alert_counts(engine: Engine, actor: Actor, filters: Filters | None = None) -> pd.DataFrame:
    """Counts by kind and quantity, per status, in one GROUP BY (for the headline and chart)."""
    require(actor, Permission.VIEW_DASHBOARDS)
    filters = filters or Filters()
    query = select(Alert.kind, Alert.quantity, Alert.status,
                   func.count().label("alerts")).select_from(Alert)
    with read_session(engine) as session:
        # names looked up first, so the count reads the alert table alone (about 3x faster
        # over 250,000 alerts on SQLite than joining the names); same alerts as alerts_query
        found = filters.id_conditions(session, ALERTS)
        query = query.where(*filters.where(ALERTS, names=False),
                            *(found if found is not None else [false()]))
        rows = session.execute(query.group_by(Alert.kind, Alert.quantity, Alert.status)).all()
    frame = pd.DataFrame(rows, columns=["kind", "quantity", "status", "alerts"])
    statuses = AlertStatus.values()
    if frame.empty:
        return pd.DataFrame(columns=["kind", "quantity", *statuses, "total"])
    table = (frame.pivot_table(index=["kind", "quantity"], columns="status", values="alerts",
                               aggfunc="sum").reindex(columns=statuses).fillna(0).astype(int)
             .reset_index())
    table.columns.name = None
    table["total"] = table[statuses].sum(axis=1)
    return table


def alerts_query(filters: Filters, patient: Mapping[str, Any], *,
                 count_acknowledgements: bool = False) -> Select[Any]:
    """Stored alerts (every status) with their trigger record's names and their latest
    acknowledgement, under the common filters: what the Alerts page lists and the export's
    alerts.csv holds. `patient` names the patient columns to show ({"patient": Patient.mrn}
    or the pseudonym), placed after performed_at: the caller's PHI decision.
    count_acknowledgements adds a last column, how many follow-up notes the alert has."""
    last_ack = (select(AlertAcknowledgement.alert_id,
                       func.max(AlertAcknowledgement.id).label("ack_id"),
                       func.count().label("acknowledgements"))
                .group_by(AlertAcknowledgement.alert_id).subquery())
    ack = AlertAcknowledgement
    query = (_joined(
        select(Alert.id.label("alert_id"), Alert.kind, Alert.quantity, Alert.status,
               Alert.performed_at, *(column.label(name) for name, column in patient.items()),
               Alert.procedure_id, ProcedureType.code.label("procedure"),
               Physician.name.label("physician"), Room.name.label("room"),
               Site.name.label("site"), Alert.value, Alert.threshold,
               Alert.threshold_source, Alert.window_start, Alert.window_end,
               Alert.record_ids, Alert.detected_at, Alert.withdrawn_reason,
               ack.acknowledged_at, ack.acknowledged_by, ack.note, ack.patient_informed,
               ack.skin_check_date)
        .select_from(Alert)
        .join(Patient, Patient.id == Alert.patient_id))
        .outerjoin(last_ack, last_ack.c.alert_id == Alert.id)
        .outerjoin(ack, ack.id == last_ack.c.ack_id)
        .where(*filters.where(ALERTS)))
    if count_acknowledgements:
        query = query.add_columns(
            func.coalesce(last_ack.c.acknowledgements, 0).label("acknowledgements"))
    return query


def list_alerts(engine: Engine, actor: Actor, filters: Filters | None = None,
                status: str | None = None, kind: str | None = None,
                limit: int | None = None) -> pd.DataFrame:
    """Stored alerts with their trigger record and last acknowledgement, newest first. The
    patient is the MRN for roles that may see PHI, else the pseudonym."""
    require(actor, Permission.VIEW_DASHBOARDS)
    patient = access.patient_column(actor)
    query = alerts_query(filters or Filters(), {"patient": patient})
    if status:
        query = query.where(Alert.status == AlertStatus.parse(status).value)
    if kind:
        query = query.where(Alert.kind == AlertKind.parse(kind).value)
    query = query.order_by(Alert.performed_at.desc(), Alert.id.desc())
    if limit is not None:
        query = query.limit(limit)
    with read_session(engine) as session:
        rows = session.execute(query).all()
    columns = ["alert_id", "kind", "quantity", "status", "performed_at", "patient",
               "procedure_id", "procedure", "physician", "room", "site", "value", "threshold",
               "threshold_source", "window_start", "window_end", "record_ids", "detected_at",
               "withdrawn_reason", "acknowledged_at", "acknowledged_by", "note",
               "patient_informed", "skin_check_date"]
    frame = pd.DataFrame(rows, columns=columns)
    frame["records"] = frame["record_ids"].map(len) if len(frame) else pd.Series(dtype=int)
    return frame


def acknowledgements(engine: Engine, actor: Actor, alert_id: int) -> pd.DataFrame:
    """Every follow-up note on one alert, oldest first."""
    require(actor, Permission.VIEW_DASHBOARDS)
    with read_session(engine) as session:
        rows = session.execute(
            select(AlertAcknowledgement.acknowledged_at, AlertAcknowledgement.acknowledged_by,
                   AlertAcknowledgement.note, AlertAcknowledgement.patient_informed,
                   AlertAcknowledgement.skin_check_date)
            .where(AlertAcknowledgement.alert_id == alert_id)
            .order_by(AlertAcknowledgement.id)).all()
    return pd.DataFrame(rows, columns=["acknowledged_at", "acknowledged_by", "note",
                                       "patient_informed", "skin_check_date"])


def open_count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Alert)
                          .where(Alert.status == AlertStatus.OPEN.value)) or 0
