"""Stored dose alerts: refreshed from the computed ones, acknowledged by the RSO, listed, counted.

Which alerts the records call for is decided in audit.alerts.detection (pure); this module
gives them an identity in table `alert`. `refresh_alerts` reconciles the stored alerts with the
computed ones: new ones are opened, changed evidence is updated (an acknowledged alert whose
records or value changed is reopened), and stored alerts no longer met (a record was voided or
amended) are withdrawn, never deleted. `acknowledge_many` acknowledges the alerts ticked on the
Alerts page, all or none; audit.alerts.summary adds them up (rates, per patient, per physician).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine, Select, false, func, insert, select, text, update
from sqlalchemy.orm import Session

from audit import access
from audit.alerts.detection import PLACE_COLUMNS, RULES_VERSION, compute_alerts
from audit.analytics.snapshot import Snapshot
from audit.auth import Actor, Permission, require
from audit.errors import FieldError, NotFound, ValidationFailed
from audit.filters import Filters, Target
from audit.storage.engine import read_session, retrying, write_session
from audit.storage.models import (
    Alert,
    AlertAcknowledgement,
    AuditEvent,
    Patient,
    Physician,
    ProcedureType,
    Room,
    Site,
    utcnow,
)
from audit.trail import record_event
from audit.vocab import AlertKind, AlertStatus, AuditAction

SYSTEM_ACTOR = "system"
_PG_ALERT_LOCK = 0x416C7274  # "Alrt": one refresh at a time across processes


@dataclass(frozen=True)
class RefreshResult:
    opened: int
    updated: int
    reopened: int
    withdrawn: int

    @property
    def changed(self) -> bool:
        return bool(self.opened or self.updated or self.reopened or self.withdrawn)


def _when(epoch: Any) -> datetime | None:
    if epoch is None or (isinstance(epoch, float) and np.isnan(epoch)):
        return None
    return datetime.fromtimestamp(int(epoch), UTC)


def _digests(texts: Any) -> list[str]:
    return [hashlib.blake2b(t.encode(), digest_size=8).hexdigest() for t in texts]


#: Audit entities whose changes can change the alerts (records, thresholds, catalog, and rooms:
#: a room's KAP correction factor scales the KAP every alert compares).
ALERT_INPUTS = ("procedure", "setting", "procedure_type", "room")
UNCHANGED = RefreshResult(0, 0, 0, 0)


def _up_to_date(session: Session, snap: Snapshot) -> bool | None:
    """True: the stored alerts already reflect this snapshot's data (the last refresh was made
    from it, or nothing alerts depend on changed since). False: they need a refresh (also when
    the last refresh ran under other rules: a new version of the code). None: the snapshot is
    older than the stored alerts or than the data (refresh it first)."""
    last = session.execute(
        select(AuditEvent.after).where(AuditEvent.entity == "alert",
                                       AuditEvent.action == AuditAction.BULK_CREATE.value)
        .order_by(AuditEvent.id.desc()).limit(1)).scalar()
    synced = (last or {}).get("data_version")
    stored = session.scalar(select(func.count()).select_from(Alert))
    if synced is not None and ((last or {}).get("stored") != stored
                               or (last or {}).get("rules") != RULES_VERSION):
        synced = None  # the table does not hold what the last refresh left, or older rules
    newer_data = session.scalar(
        select(func.max(AuditEvent.id)).where(AuditEvent.id > snap.token,
                                              AuditEvent.entity.in_(ALERT_INPUTS)))
    if newer_data is not None or (synced is not None and synced > snap.token):
        return None
    if synced is None:
        return False
    changed = session.scalar(
        select(func.max(AuditEvent.id)).where(AuditEvent.id > synced,
                                              AuditEvent.id <= snap.token,
                                              AuditEvent.entity.in_(ALERT_INPUTS)))
    return changed is None


def refresh_alerts(engine: Engine, snap: Snapshot) -> RefreshResult:
    """Make the stored alerts match the computed ones (see module doc). One transaction with
    one audit event recording what changed and the data version it was computed from, so
    later calls on the same data (in any process) return at once without recomputing."""
    if snap.cache.get("alerts_refreshed") is not None:
        return UNCHANGED
    with read_session(engine) as session:
        state = _up_to_date(session, snap)
    if state is not False:  # current, or this snapshot is stale: nothing to do from it
        snap.cache["alerts_refreshed"] = True
        return UNCHANGED
    computed = compute_alerts(snap)
    computed["evidence"] = _digests(
        f"{round(v, 9)!r}|{','.join(map(str, ids))}"
        for v, ids in zip(computed["value"].tolist(), computed["record_ids"].tolist(),
                          strict=True))
    computed["context"] = _digests(
        "|".join(map(repr, parts)) for parts in zip(
            *(computed[c].tolist() for c in ("threshold", "threshold_source", *PLACE_COLUMNS)),
            strict=True))

    def work() -> RefreshResult:
        with write_session(engine) as session:
            if session.get_bind().dialect.name == "postgresql":
                session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_ALERT_LOCK})
            if _up_to_date(session, snap) is not False:  # another process got there first
                return UNCHANGED
            rows = session.connection().execute(
                select(Alert.id, Alert.key, Alert.status, Alert.evidence, Alert.context)).all()
            stored = pd.DataFrame({
                name: pd.Series([r[i] for r in rows], dtype=object)
                for i, name in enumerate(("id", "key", "status", "stored_evidence",
                                          "stored_context"))})
            merged = computed.merge(stored, on="key", how="left")
            now = utcnow()
            fresh = merged[merged["id"].isna()]
            if len(fresh):
                session.execute(insert(Alert), [
                    {"key": row.key, "kind": row.kind, "quantity": row.quantity,
                     "status": AlertStatus.OPEN.value, "patient_id": int(row.patient_id),
                     "procedure_id": int(row.procedure_id), "performed_at": _when(row.t),
                     "value": float(row.value), "threshold": float(row.threshold),
                     "threshold_source": row.threshold_source,
                     "window_start": _when(row.window_start),
                     "window_end": _when(row.window_end),
                     "record_ids": [int(i) for i in row.record_ids],
                     **{c: int(getattr(row, c)) for c in PLACE_COLUMNS},
                     "evidence": row.evidence, "context": row.context,
                     "detected_at": now, "updated_at": now}
                    for row in fresh.itertuples()])
            known = merged[merged["id"].notna()]
            evidence_changed = known["evidence"] != known["stored_evidence"]
            level_changed = known["context"] != known["stored_context"]
            withdrawn_before = known["status"] == AlertStatus.WITHDRAWN.value
            reopen = withdrawn_before | (evidence_changed
                                         & (known["status"] == AlertStatus.ACKNOWLEDGED.value))
            touch = known[evidence_changed | level_changed | withdrawn_before]
            if len(touch):
                session.execute(update(Alert), [
                    {"id": int(row.id), "value": float(row.value),
                     "threshold": float(row.threshold),
                     "threshold_source": row.threshold_source,
                     "record_ids": [int(i) for i in row.record_ids],
                     "window_start": _when(row.window_start),
                     "window_end": _when(row.window_end), "updated_at": now,
                     **{c: int(getattr(row, c)) for c in PLACE_COLUMNS},
                     "evidence": row.evidence, "context": row.context,
                     **({"status": AlertStatus.OPEN.value, "withdrawn_reason": None}
                        if reopen.loc[row.Index] else {})}
                    for row in touch.itertuples()])
            gone = stored[~stored["key"].isin(computed["key"])
                          & (stored["status"] != AlertStatus.WITHDRAWN.value)]
            if len(gone):
                session.execute(update(Alert), [
                    {"id": int(i), "status": AlertStatus.WITHDRAWN.value, "updated_at": now,
                     "withdrawn_reason": "no longer met: a record was voided or amended, or a "
                                         "threshold changed"}
                    for i in gone["id"].tolist()])
            result = RefreshResult(len(fresh), int((evidence_changed | level_changed).sum()),
                                   int(reopen.sum()), len(gone))
            record_event(session, actor=SYSTEM_ACTOR, action=AuditAction.BULK_CREATE,
                         entity="alert", entity_id=None,
                         reason="alerts recomputed from all final records",
                         after={"opened": result.opened, "updated": result.updated,
                                "reopened": result.reopened, "withdrawn": result.withdrawn,
                                "withdrawn_ids": gone["id"].astype(int).tolist()[:1000],
                                "data_version": snap.token, "rules": RULES_VERSION,
                                "stored": len(stored) + len(fresh)})
            return result

    result = retrying(work)
    snap.cache["alerts_refreshed"] = True
    return result


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
