"""One patient's dose history, found by MRN: every procedure, the cumulative figures over the
last 12 months and over all time, and the patient's alerts with their follow-up (issue 14).

Who: Permission.PATIENT_HISTORY (rso, admin). Every read is audited as PHI access, in the same
transaction as the read (audit.documents.events): a history that was shown is a history the
trail knows was shown. The page, `fluoro-audit patient history`, the letter and the surveyor
packet all read it through `patient_history`, so they cannot disagree.

Figures: KAP is the value the C-arm displayed (Gy·cm², not room-corrected: it is what the
patient's record says), effective dose the stored estimate (audit.dosimetry), days of natural
background from the site's annual background setting. Voided records are left out.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from audit.alerts.store import alerts_query
from audit.auth import Actor, Permission, require
from audit.documents.events import PATIENT_HISTORY, record_document
from audit.dosimetry import background_days
from audit.errors import FieldError, NotFound, ValidationFailed
from audit.filters import Filters
from audit.settings import load_settings
from audit.storage.engine import write_session
from audit.storage.models import (
    Alert,
    Patient,
    Physician,
    Procedure,
    ProcedureLevel,
    ProcedureType,
    Room,
    Site,
)
from audit.vocab import RecordStatus

#: The columns of the procedure table, in the order every format shows them.
PROCEDURE_COLUMNS = [
    "procedure_id", "performed_at", "procedure", "procedure_name", "region", "levels",
    "laterality", "guidance", "site", "room", "physician", "fluoro_time_s", "dap_gycm2",
    "air_kerma_mgy",
    "effective_dose_msv", "background_days", "contrast_agent", "contrast_volume_ml",
    "contrast_confirmation", "contrast_exception_reason", "contrast_exception_detail"]
TOTAL_COLUMNS = ["period", "procedures", "fluoro_time_s", "dap_gycm2", "air_kerma_mgy",
                 "effective_dose_msv", "background_days"]
ALERT_COLUMNS = ["alert_id", "kind", "quantity", "status", "performed_at", "procedure_id",
                 "procedure", "value", "threshold", "acknowledged_at", "acknowledged_by",
                 "note", "patient_informed", "skin_check_date"]
FORMATS = ("table", "json", "csv")
#: The cumulative windows: the last 12 months (365 days up to the day of reading) and all time.
LAST_12_MONTHS, ALL_TIME = "last 12 months", "all time"
MRN_MAX = 64


@dataclass(frozen=True)
class PatientHistory:
    """What was read for one patient, as of one moment."""

    mrn: str
    pseudonym: str
    as_of: datetime
    procedures: pd.DataFrame
    totals: pd.DataFrame
    alerts: pd.DataFrame
    annual_background_msv: float
    event_id: int


def check_mrn(mrn: str) -> str:
    """The MRN as searched: stripped; empty or overlong is an error naming the field."""
    text = (mrn or "").strip()
    if not text or len(text) > MRN_MAX:
        raise ValidationFailed([FieldError(
            "mrn", f"give the patient's medical record number (1 to {MRN_MAX} characters)")])
    return text


def patient_history(engine: Engine, actor: Actor, mrn: str, *, access: str = "view",
                    first: date | None = None, last: date | None = None,
                    now: datetime | None = None) -> PatientHistory:
    """Read one patient's history and audit the read in the same transaction.

    `first`/`last` (UTC days, inclusive) limit the procedures listed; the cumulative figures
    always cover the last 12 months and all time. Raises PermissionDenied without
    PATIENT_HISTORY, NotFound when no patient has the MRN."""
    with write_session(engine) as session:
        history = read_history(session, actor, mrn, first=first, last=last, now=now)
        event_id = record_document(session, actor, PATIENT_HISTORY, history.pseudonym,
                                   access=access, procedures=len(history.procedures),
                                   period=period_text(first, last))
    return replace(history, event_id=event_id)


def read_history(session: Session, actor: Actor, mrn: str, *, first: date | None = None,
                 last: date | None = None, now: datetime | None = None) -> PatientHistory:
    """The history read in the caller's transaction, which must also record the audit event
    (patient_history does; the letter records its own, with the PDF's SHA-256)."""
    require(actor, Permission.PATIENT_HISTORY)
    mrn = check_mrn(mrn)
    now = now or datetime.now(UTC)
    patient = session.execute(select(Patient.id, Patient.pseudonym)
                              .where(Patient.mrn == mrn)).first()
    if patient is None:
        raise NotFound("no patient has that medical record number")
    background = float(load_settings(session).annual_background_msv)
    every = _procedures(session, patient.id, background)
    shown = _within(every, first, last)
    return PatientHistory(mrn, patient.pseudonym, now, shown, _totals(every, now, background),
                          _alerts(session, mrn), background, 0)


def period_text(first: date | None, last: date | None) -> str:
    return f"{first or 'first record'} to {last or 'latest'}"


def _procedures(session: Session, patient_id: int, background: float) -> pd.DataFrame:
    query = (select(Procedure.id, Procedure.performed_at, ProcedureType.code, ProcedureType.name,
                    Procedure.region, Procedure.laterality, Procedure.guidance, Site.name,
                    Room.name, Physician.name,
                    Procedure.fluoro_time_s, Procedure.dap_gycm2, Procedure.air_kerma_mgy,
                    Procedure.effective_dose_msv, Procedure.contrast_agent,
                    Procedure.contrast_volume_ml, Procedure.contrast_confirmation,
                    Procedure.contrast_exception_reason, Procedure.contrast_exception_detail)
             .join(ProcedureType, ProcedureType.id == Procedure.procedure_type_id)
             .join(Site, Site.id == Procedure.site_id).join(Room, Room.id == Procedure.room_id)
             .join(Physician, Physician.id == Procedure.physician_id)
             .where(Procedure.patient_id == patient_id,
                    Procedure.status == RecordStatus.FINAL.value)
             .order_by(Procedure.performed_at, Procedure.id))
    rows = session.execute(query).all()
    names = [c for c in PROCEDURE_COLUMNS if c not in ("levels", "background_days")]
    frame = pd.DataFrame(rows, columns=names)
    levels: dict[int, list[str]] = {}
    if len(frame):
        for pid, level in session.execute(
                select(ProcedureLevel.procedure_id, ProcedureLevel.level)
                .where(ProcedureLevel.procedure_id.in_(frame["procedure_id"].tolist()))
                .order_by(ProcedureLevel.procedure_id, ProcedureLevel.position)):
            levels.setdefault(pid, []).append(level)
    frame["levels"] = [", ".join(levels.get(int(i), [])) for i in frame["procedure_id"]]
    frame["background_days"] = [background_days(_number(v), background)
                                for v in frame["effective_dose_msv"]]
    frame["performed_at"] = pd.to_datetime(frame["performed_at"], utc=True)
    return frame[PROCEDURE_COLUMNS]


def _number(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def _alerts(session: Session, mrn: str) -> pd.DataFrame:
    query = alerts_query(Filters(patient_id=mrn), {"patient": Patient.pseudonym})
    rows = session.execute(query.order_by(Alert.performed_at, Alert.id)).all()
    names = ["alert_id", "kind", "quantity", "status", "performed_at", "patient",
             "procedure_id", "procedure", "physician", "room", "site", "value", "threshold",
             "threshold_source", "window_start", "window_end", "record_ids", "detected_at",
             "withdrawn_reason", "acknowledged_at", "acknowledged_by", "note",
             "patient_informed", "skin_check_date"]
    return pd.DataFrame(rows, columns=names)[ALERT_COLUMNS]


def _within(frame: pd.DataFrame, first: date | None, last: date | None) -> pd.DataFrame:
    if first and last and last < first:
        raise ValidationFailed([FieldError("to", f"{last} is before the start {first}")])
    keep = pd.Series(True, index=frame.index)
    days = frame["performed_at"].dt.date
    if first:
        keep &= days >= first
    if last:
        keep &= days <= last
    return frame[keep].reset_index(drop=True)


def _totals(frame: pd.DataFrame, now: datetime, background: float) -> pd.DataFrame:
    """Cumulative figures: sums over the records that have the quantity (a missing KAP adds
    nothing; `procedures` counts every record)."""
    since = pd.Timestamp(now - timedelta(days=365))
    rows = []
    for name, part in ((LAST_12_MONTHS, frame[frame["performed_at"] >= since]),
                       (ALL_TIME, frame)):
        dose = float(pd.to_numeric(part["effective_dose_msv"]).sum()) if len(part) else 0.0
        rows.append({"period": name, "procedures": len(part),
                     "fluoro_time_s": float(pd.to_numeric(part["fluoro_time_s"]).sum()),
                     "dap_gycm2": float(pd.to_numeric(part["dap_gycm2"]).sum()),
                     "air_kerma_mgy": float(pd.to_numeric(part["air_kerma_mgy"]).sum()),
                     "effective_dose_msv": dose,
                     "background_days": background_days(dose, background)})
    return pd.DataFrame(rows, columns=TOTAL_COLUMNS)


def render_history(history: PatientHistory, fmt: str) -> str:
    """The history as `fluoro-audit patient history` prints it: a table for people, JSON
    (missing values null) or CSV (the procedures, one row each)."""
    from audit.analytics.reports import csv_text, records_of

    if fmt == "json":
        payload = {"patient_id": history.mrn, "patient_ref": history.pseudonym,
                   "as_of": history.as_of.isoformat(),
                   "annual_background_msv": history.annual_background_msv,
                   "procedures": records_of(history.procedures),
                   "totals": records_of(history.totals),
                   "alerts": records_of(history.alerts)}
        return json.dumps(payload, ensure_ascii=False, indent=1, allow_nan=False) + "\n"
    if fmt == "csv":
        return csv_text(history.procedures)
    if fmt != "table":
        raise ValidationFailed([FieldError("format", f"allowed: {', '.join(FORMATS)}")])
    out = io.StringIO()
    out.write(f"patient {history.mrn} ({history.pseudonym}), as of "
              f"{history.as_of:%Y-%m-%d %H:%M} UTC\n\nprocedures:\n")
    shown = history.procedures[["performed_at", "procedure", "levels", "fluoro_time_s",
                                "dap_gycm2", "air_kerma_mgy", "effective_dose_msv"]]
    out.write(_table(shown.assign(performed_at=shown["performed_at"].dt.strftime(
        "%Y-%m-%d %H:%M"))))
    out.write("\ncumulative:\n" + _table(history.totals))
    out.write("\nalerts:\n" + _table(history.alerts[["alert_id", "kind", "quantity", "status",
                                                     "performed_at", "acknowledged_by",
                                                     "note"]]))
    return out.getvalue()


def _table(frame: pd.DataFrame) -> str:
    if not len(frame):
        return "(none)\n"
    return frame.to_string(index=False, na_rep="", float_format=lambda x: f"{x:.4g}") + "\n"
