"""A patient's earlier procedures as the rules read them, from the database.

Entry (`for_patient`) reads one patient's final procedures in the look-back window with their
follow-ups in one query on the (patient_id, performed_at) index: fast for a patient with a
hundred procedures on a database of a million (bench/bench_rule_checks.py). The report
(audit.rules.report) reads every record of a period with their patients' history in one query
too, never one query per record.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from audit.rules.evaluate import Case, Relief
from audit.storage.models import FollowUp, Patient, Procedure, ProcedureType
from audit.vocab import RecordStatus

#: How far back entry and the report look: the longest window of a pack (12 months) and the
#: "patient's first lumbar TFESI" of the safeguards, taken as the first in five years.
LOOKBACK = timedelta(days=5 * 365)

COLUMNS = (Procedure.id, Procedure.patient_id, Procedure.performed_at, ProcedureType.code,
           Procedure.region, Procedure.injectate, Procedure.guidance,
           Procedure.contrast_confirmation, Procedure.realtime_contrast,
           Procedure.confirmation_views, Procedure.contrast_test_dose,
           FollowUp.relief_percent, FollowUp.relief_days)


def history_query() -> Select[Any]:
    """Final procedures with their type code and follow-ups (one row per follow-up)."""
    return (select(*COLUMNS)
            .join(ProcedureType, ProcedureType.id == Procedure.procedure_type_id)
            .outerjoin(FollowUp, FollowUp.procedure_id == Procedure.id)
            .where(Procedure.status == RecordStatus.FINAL.value))


def cases_from_rows(rows: Sequence[Any],
                    levels: Mapping[int, Sequence[str]] | None = None) -> dict[int, Case]:
    """Rows of history_query() (ordered any way; extra columns after COLUMNS ignored) as Cases
    by procedure id, follow-ups folded in, with the `levels` given (the rules read only the
    checked procedure's levels; the history's are not needed)."""
    relief: dict[int, list[Relief]] = {}
    first: dict[int, Any] = {}
    for r in rows:
        pid = r[0]
        if pid not in first:
            first[pid] = r
        if r[11] is not None:
            relief.setdefault(pid, []).append(Relief(int(r[11]), int(r[12])))
    levels = levels or {}
    views: dict[str | None, frozenset[str]] = {}
    cases: dict[int, Case] = {}
    for pid, r in first.items():
        seen = views.get(r[9])
        if seen is None:
            seen = views[r[9]] = frozenset((r[9] or "").split(";")) - {""}
        cases[pid] = Case(r[2], r[3], r[4], tuple(levels.get(pid, ())), r[5], r[6], r[7], r[8],
                          seen, r[10], tuple(relief.get(pid, ())), pid)
    return cases


def for_patient(session: Session, mrn: str, before: datetime,
                exclude_id: int | None = None) -> list[Case]:
    """The patient's final procedures from LOOKBACK before `before` up to it (one query)."""
    query = (history_query().join(Patient, Patient.id == Procedure.patient_id)
             .where(Patient.mrn == mrn, Procedure.performed_at >= before - LOOKBACK,
                    Procedure.performed_at <= before))
    if exclude_id is not None:
        query = query.where(Procedure.id != exclude_id)
    return list(cases_from_rows(session.execute(query).all()).values())


def candidate(values: Mapping[str, Any], code: str, levels: Sequence[str],
              record_id: int | None = None) -> Case:
    """The record being logged, from validation's canonical values."""
    views = values.get("confirmation_views") or ""
    return Case(performed_at=values["performed_at"], code=code, region=values["region"],
                levels=tuple(levels), injectate=values.get("injectate"),
                guidance=values.get("guidance") or "fluoroscopy",
                contrast_confirmation=values.get("contrast_confirmation") or "",
                realtime_contrast=values.get("realtime_contrast"),
                views=frozenset(views.split(";")) - {""},
                contrast_test_dose=values.get("contrast_test_dose"), id=record_id)
