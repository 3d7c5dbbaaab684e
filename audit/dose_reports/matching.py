"""Reconcile a stored dose report with the log: find its procedure, fill, compare.

Why: a technologist types dose figures from the C-arm screen, where unit and m:ss mix-ups creep
in, and some procedures are never logged at all. The C-arm's own report settles both.

Matching rule (first that applies):

1. **Accession number.** A final procedure with the report's accession number. When several
   share it, those of the report's patient (MRN) are preferred.
2. **Patient, room and day.** A final procedure of the report's patient (MRN) performed on the
   report's study day at the site (``site_timezone`` setting; the day boundaries are converted
   to UTC and compared with ``performed_at``), in a room that is this device:

   - rooms whose ``serial`` equals the report's device serial number;
   - else rooms whose ``model`` equals the report's model (and ``make`` the manufacturer,
     when both are known), except rooms recorded with a different serial;
   - else rooms whose *name* is the report's model, serial, or "manufacturer model".

   Text is compared trimmed and case-insensitively. When no room is this device (rooms
   without make/model/serial), the patient and day alone decide, and only when exactly one
   final procedure of that patient is logged that day (rule ``patient_day``).

By patient and day, a procedure already linked to a current report of another study is not
a candidate (a second study that day is more likely a second, unlogged procedure). Among
several candidates, one not yet linked wins (by accession), then the one closest in time to
the study, then the lowest record id. A report with no match is
"procedure missing from the log" until a later run (:func:`find_procedure` again) finds it.

Filling and comparing, per dose field (``dap_gycm2`` <- DAP total, ``air_kerma_mgy`` <- Dose
(RP) total, ``fluoro_time_s`` <- total fluoro time):

- the log lacks the value (NULL): the report's value is filled in (DAP also as dap_value in
  Gy·cm², and the dap_missing_reason cleared, since the dose is now known);
- the value was filled from an earlier report of the same study and not changed since: it
  follows the fuller report;
- otherwise it is a manual value: more than ``discrepancy_tolerance`` (default 10%) away from
  the report's, and beyond the display's rounding (:data:`ROUNDING`), it is stored as a
  discrepancy for review, with a likely cause when the ratio matches a known entry error.

``dose_source`` becomes ``rdsr`` when every dose value on the record comes from the report,
else ``manual+rdsr``. Any change bumps the procedure's version and writes an ``amend`` audit
event by the importing user, in the import's transaction.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.orm import Session

from audit.dose_reports.bounds import json_safe
from audit.dosimetry import effective_dose  # the record's own E = KAP x k rule
from audit.errors import AuditError
from audit.settings import Settings
from audit.storage.models import DoseDiscrepancy, DoseReport, Patient, Procedure, Room, utcnow
from audit.trail import record_event
from audit.units import dap_factor, parse_dap_unit
from audit.vocab import (
    AuditAction,
    DapUnit,
    DiscrepancyStatus,
    DoseField,
    DoseReportStatus,
    DoseSource,
    RecordStatus,
)

MATCH_ACCESSION = "accession"
MATCH_PATIENT_ROOM_DAY = "patient_room_day"
MATCH_PATIENT_DAY = "patient_day"

#: The report total that answers each procedure dose field.
REPORT_VALUE: Mapping[DoseField, str] = {
    DoseField.DAP: "dap_total_gycm2",
    DoseField.AIR_KERMA: "air_kerma_total_mgy",
    DoseField.FLUORO_TIME: "fluoro_time_s",
}
#: Differences this small are display rounding, not entry errors: C-arms show fluoro time in
#: minutes and tenths (6 s steps), KAP to 0.01 Gy·cm² and Ka,r to 0.1 mGy at best.
ROUNDING: Mapping[DoseField, float] = {
    DoseField.DAP: 0.01,
    DoseField.AIR_KERMA: 0.1,
    DoseField.FLUORO_TIME: 6.0,
}


class SettingInvalid(AuditError):
    """A setting holds a value the operation cannot use; the message names the setting."""


def site_zone(settings: Settings) -> ZoneInfo:
    """The site's time zone (setting ``site_timezone``, default UTC)."""
    name = str(settings.site_timezone or "UTC")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise SettingInvalid(f"setting site_timezone: {name!r} is not an IANA time zone "
                             "(e.g. America/New_York, Europe/Paris, UTC)") from None


def study_moment(moment: datetime | None, zone: ZoneInfo) -> tuple[datetime | None, date | None]:
    """(UTC instant, site calendar day) of a study time; a naive time is the site's clock."""
    if moment is None:
        return None, None
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=zone)
    instant = aware.astimezone(UTC)
    return instant, instant.astimezone(zone).date()


def day_bounds(day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """[start, end) of a site calendar day, in UTC (DST days are 23 or 25 hours)."""
    start = datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone).astimezone(UTC)
    return start, end


def tolerance(settings: Settings) -> float:
    """The discrepancy tolerance as a fraction (0.10 = 10%)."""
    value = settings.discrepancy_tolerance
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise SettingInvalid(f"setting discrepancy_tolerance: {value!r} is not a number "
                             "(a fraction, e.g. 0.10 for 10%)") from None
    if not 0 <= number < 10:
        raise SettingInvalid(f"setting discrepancy_tolerance: {number:g} is out of range "
                             "(a fraction from 0 to 10, e.g. 0.10 for 10%)")
    return number


# --- matching ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Match:
    procedure_id: int
    rule: str
    candidates: int


@dataclass(frozen=True)
class _Candidate:
    id: int
    performed_at: datetime
    room_id: int
    mrn: str


def _fold(text: str | None) -> str | None:
    if text is None:
        return None
    folded = " ".join(text.split()).casefold()
    return folded or None


def device_rooms(session: Session, manufacturer: str | None, model: str | None,
                 serial: str | None) -> tuple[list[int], str | None]:
    """Rooms that are this device, and by which rule (module docstring); ([], None) if none."""
    rooms = session.execute(select(Room.id, Room.name, Room.make, Room.model, Room.serial)).all()
    make_f, model_f, serial_f = _fold(manufacturer), _fold(model), _fold(serial)
    if serial_f:
        by_serial = [r.id for r in rooms if _fold(r.serial) == serial_f]
        if by_serial:
            return by_serial, "serial"
    if model_f:
        by_model = [
            r.id for r in rooms
            if _fold(r.model) == model_f
            and (make_f is None or _fold(r.make) in (None, make_f))
            and (serial_f is None or _fold(r.serial) in (None, serial_f))
        ]
        if by_model:
            return by_model, "model"
    names = {n for n in (model_f, serial_f, _fold(f"{manufacturer or ''} {model or ''}")) if n}
    by_name = [r.id for r in rooms if _fold(r.name) in names]
    if by_name:
        return by_name, "name"
    return [], None


def _candidates(session: Session, *conditions: Any) -> list[_Candidate]:
    rows = session.execute(
        select(Procedure.id, Procedure.performed_at, Procedure.room_id, Patient.mrn)
        .join(Patient, Patient.id == Procedure.patient_id)
        .where(Procedure.status == RecordStatus.FINAL.value, *conditions)
        .order_by(Procedure.id)
    ).all()
    return [_Candidate(r.id, r.performed_at, r.room_id, r.mrn) for r in rows]


def _taken(session: Session, report: DoseReport, candidates: Sequence[_Candidate]) -> set[int]:
    """Candidates already linked to a current report of another study."""
    return set(session.scalars(
        select(DoseReport.procedure_id).where(
            DoseReport.procedure_id.in_([c.id for c in candidates]),
            DoseReport.status == DoseReportStatus.CURRENT.value,
            DoseReport.study_instance_uid != report.study_instance_uid,
        )
    ))


def _best(session: Session, report: DoseReport, candidates: Sequence[_Candidate]) -> _Candidate:
    """Unlinked first, then closest in time, then lowest id."""
    taken = _taken(session, report, candidates)
    moment = report.study_datetime

    def key(c: _Candidate) -> tuple[bool, float, int]:
        distance = abs((c.performed_at - moment).total_seconds()) if moment else 0.0
        return (c.id in taken, distance, c.id)

    return min(candidates, key=key)


def find_procedure(session: Session, report: DoseReport, zone: ZoneInfo) -> Match | None:
    """The logged procedure this report belongs to, by the module's matching rule."""
    accession = (report.accession_number or "").strip()
    if accession:
        found = _candidates(session, Procedure.accession_number == accession)
        same_patient = [c for c in found if report.patient_id and c.mrn == report.patient_id]
        found = same_patient or found
        if found:
            return Match(_best(session, report, found).id, MATCH_ACCESSION, len(found))
    if not report.patient_id or report.study_day is None:
        return None
    start, end = day_bounds(report.study_day, zone)
    found = _candidates(session, Patient.mrn == report.patient_id,
                        Procedure.performed_at >= start, Procedure.performed_at < end)
    taken = _taken(session, report, found)
    found = [c for c in found if c.id not in taken]
    if not found:
        return None
    rooms, _how = device_rooms(session, report.manufacturer, report.model, report.serial)
    if rooms:
        in_room = [c for c in found if c.room_id in rooms]
        if not in_room:
            return None
        return Match(_best(session, report, in_room).id, MATCH_PATIENT_ROOM_DAY, len(in_room))
    if len(found) == 1:
        return Match(found[0].id, MATCH_PATIENT_DAY, 1)
    return None


# --- filling and comparing --------------------------------------------------------------------

@dataclass(frozen=True)
class Applied:
    """What reconciling one report with its procedure did."""

    filled: list[str]
    discrepancies: list[dict[str, Any]]
    version: int
    changed: bool


def apply(session: Session, report: DoseReport, procedure_id: int, settings: Settings,
          actor: str, *, previous: DoseReport | None = None) -> Applied:
    """Fill what the log lacks, flag what disagrees, audit any change to the procedure.

    ``previous`` is the report of the same study this one supersedes: values it filled follow
    the new report. The procedure row is locked (SELECT ... FOR UPDATE on PostgreSQL; SQLite
    write transactions are already exclusive) so a concurrent amend cannot interleave.
    """
    procedure = session.get(Procedure, procedure_id, with_for_update=True)
    assert procedure is not None
    limit = tolerance(settings)
    carried = set(previous.filled_fields or []) if (
        previous is not None and previous.procedure_id == procedure_id) else set()
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    filled: list[str] = []
    flagged: list[dict[str, Any]] = []

    def change(name: str, value: Any) -> None:
        if getattr(procedure, name) == value:
            return
        before.setdefault(name, getattr(procedure, name))
        setattr(procedure, name, value)
        after[name] = value

    for dose_field in DoseField:
        name = dose_field.value
        value = getattr(report, REPORT_VALUE[dose_field])
        current = getattr(procedure, name)
        from_previous = (name in carried and previous is not None
                         and current == getattr(previous, REPORT_VALUE[dose_field]))
        if value is None:
            if from_previous:
                filled.append(name)  # the fuller report lacks it: keep the earlier figure
            continue
        if current is None or from_previous:
            change(name, value)
            if dose_field is DoseField.DAP:
                change("dap_value", value)
                change("dap_unit", DapUnit.GY_CM2.value)
                change("dap_missing_reason", None)
            filled.append(name)
            continue
        found = _compare(dose_field, float(current), float(value), limit, procedure)
        if found is not None:
            flagged.append(found)

    manual = [f for f in DoseField if getattr(procedure, f.value) is not None
              and f.value not in filled]
    change("dose_source", DoseSource.MANUAL_RDSR.value if manual else DoseSource.RDSR.value)
    if "dap_gycm2" in after:
        effective = effective_dose(procedure.dap_gycm2, _room_factor(session, procedure),
                                    procedure.region, settings.effective_dose_k)
        change("effective_dose_msv", effective)
    if after:
        version = procedure.version
        procedure.version = version + 1
        procedure.updated_at = utcnow()
        procedure.updated_by = actor
        session.flush()
        what = f"filled {', '.join(filled)}" if filled else "linked"
        record_event(
            session, actor=actor, action=AuditAction.AMEND, entity="procedure",
            entity_id=procedure.id,
            reason=f"reconciled with dose report {report.id} (SOP instance "
                   f"{report.sop_instance_uid}, file {report.source_file}): {what}",
            before=json_safe({**before, "version": version}),
            after=json_safe({**after, "version": procedure.version}),
        )
    for found in flagged:
        session.add(DoseDiscrepancy(dose_report_id=report.id, procedure_id=procedure.id,
                                    status=DiscrepancyStatus.OPEN.value, created_at=utcnow(),
                                    tolerance=limit, **found))
    report.filled_fields = filled or None
    session.flush()
    return Applied(filled, flagged, procedure.version, bool(after))


def _room_factor(session: Session, procedure: Procedure) -> float:
    factor = session.scalar(select(Room.kap_correction_factor)
                            .where(Room.id == procedure.room_id))
    return float(factor or 1.0)


def _compare(dose_field: DoseField, manual: float, report: float, limit: float,
             procedure: Procedure) -> dict[str, Any] | None:
    """A discrepancy row's values when the manual figure is out of tolerance, else None."""
    difference = manual - report
    if abs(difference) <= ROUNDING[dose_field]:
        return None
    relative = difference / report if report else None
    if relative is not None and not math.isfinite(relative):
        relative = None  # a report value near zero (1e-320): no meaningful ratio to store
    if relative is not None and abs(relative) <= limit:
        return None
    return {
        "field": dose_field.value,
        "manual_value": manual,
        "report_value": report,
        "relative_difference": relative,
        "likely_cause": likely_cause(dose_field, manual, report, procedure.dap_unit),
    }


def _near(ratio: float, target: float, within: float = 0.15) -> bool:
    return abs(ratio / target - 1) <= within


def likely_cause(dose_field: DoseField, manual: float, report: float,
                 dap_unit: str | None = None) -> str | None:
    """The usual entry error that explains the difference, if the numbers fit one.

    docs/reference.md §2: DAP unit mix-ups (10x-1000x), fluoro time typed as m.ss or minutes,
    Ka,r in Gy for mGy, and a counter not reset between patients.
    """
    if report <= 0 or manual <= 0:
        return None
    ratio = manual / report
    if dose_field is DoseField.DAP:
        for power in (1, 2, 3, 4):
            for factor, word in ((10.0**power, "×"), (10.0**-power, "1/")):
                if _near(ratio, factor):
                    shown = f"{word}{10**power:g}"
                    return (f"manual KAP is {shown} the report's: a DAP unit mix-up"
                            f"{_unit_suggestion(dap_unit, ratio)}")
    if dose_field is DoseField.AIR_KERMA and (_near(ratio, 1000.0) or _near(ratio, 0.001)):
        return "manual Ka,r is 1000× off: Gy and mGy confused (Ka,r is logged in mGy)"
    if dose_field is DoseField.FLUORO_TIME:
        tenths = round(report / 6)  # the C-arm shows minutes and tenths: 78 s = "1.3"
        as_mss = (tenths // 10) * 60 + (tenths % 10) * 10  # "1.3" read as 1:30 = 90 s
        if tenths % 10 and abs(manual - as_mss) <= 6 and abs(manual - report) > 6:
            return (f"the C-arm's {tenths / 10:.1f} min ({report:g} s) looks entered as "
                    f"{tenths // 10}:{(tenths % 10) * 10:02d} ({manual:g} s): minutes and tenths "
                    "are not minutes:seconds")
        if _near(ratio, 60.0):
            return "manual time is 60× the report's: seconds entered as minutes"
        if _near(ratio, 1 / 60):
            return "manual time is 1/60 of the report's: minutes entered as seconds"
    if ratio > 1.5:
        return ("manual value well above the report's: was the C-arm's counter reset between "
                "patients?")
    return None


def _unit_suggestion(dap_unit: str | None, ratio: float) -> str:
    """Name the unit that would make the manual figure agree, when one does."""
    if not dap_unit:
        return ""
    try:
        entered = parse_dap_unit(dap_unit)
    except ValueError:
        return ""
    wanted = dap_factor(entered) / ratio
    for unit in DapUnit:
        if math.isclose(dap_factor(unit), wanted, rel_tol=0.15):
            return f" (entered in {entered.value}; the report agrees with {unit.value})"
    return ""
