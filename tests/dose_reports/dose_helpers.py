"""Helpers shared by the dose import, reconciliation and CLI tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydicom.uid import generate_uid
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from audit.auth import Actor
from audit.log.service import ProcedureLog
from audit.storage.models import (
    AuditEvent,
    DoseDiscrepancy,
    DoseReport,
    IrradiationEvent,
    Procedure,
)
from tests.conftest import valid_record

from .rdsr_builder import EventSpec, PlaneSpec, build_rdsr, fluoro_totals, write

DATA = Path(__file__).resolve().parent.parent / "data" / "rdsr"
REAL_FILES = tuple(sorted(DATA.glob("*.dcm")))


def make_report(
    folder: Path,
    name: str = "report.dcm",
    *,
    accession: str | None = "ACC-1",
    patient: str | None = "MRN-1",
    dap: float = 1.5,
    dap_unit: str = "Gy.cm2",
    fluoro_time: float = 60.0,
    dose: float = 12.0,
    events: int = 1,
    study_uid: str | None = None,
    study_date: str = "20240315",
    study_time: str = "093012",
    serial: str = "SN-42",
    model: str = "C-Arm 9000",
    **kwargs: Any,
) -> Path:
    """A single-plane fluoroscopy RDSR written to ``folder/name``."""
    ds = build_rdsr(
        planes=[PlaneSpec(totals=fluoro_totals(dap, dap_unit, fluoro_time, dose))],
        events=[EventSpec() for _ in range(events)],
        study_uid=study_uid or generate_uid(), serial=serial, model=model, **kwargs,
    )
    if accession is None:
        del ds.AccessionNumber
    else:
        ds.AccessionNumber = accession
    if patient is None:
        del ds.PatientID
    else:
        ds.PatientID = patient
    ds.StudyDate, ds.StudyTime = study_date, study_time
    return write(ds, folder / name)


def log_procedure(service: ProcedureLog, actor: Actor, **overrides: Any) -> int:
    """Log a valid record (creating names, confirming warnings); return its id."""
    record = valid_record(**overrides)
    return service.log(record, actor, create_missing=True, confirm_warnings=True).record_id


def counts(engine: Engine) -> dict[str, int]:
    """Rows in every table an import may write."""
    with Session(engine) as session:
        return {
            model.__tablename__: session.scalar(select(func.count()).select_from(model)) or 0
            for model in (DoseReport, DoseDiscrepancy, AuditEvent, Procedure, IrradiationEvent)
        }


def procedure(engine: Engine, record_id: int) -> Procedure:
    with Session(engine) as session:
        row = session.get(Procedure, record_id)
        assert row is not None
        session.expunge(row)
        return row


def reports(engine: Engine) -> list[DoseReport]:
    with Session(engine) as session:
        rows = list(session.scalars(select(DoseReport).order_by(DoseReport.id)))
        session.expunge_all()
        return rows


def events(engine: Engine, entity: str, entity_id: object = None) -> list[AuditEvent]:
    with Session(engine) as session:
        query = select(AuditEvent).where(AuditEvent.entity == entity).order_by(AuditEvent.id)
        if entity_id is not None:
            query = query.where(AuditEvent.entity_id == str(entity_id))
        rows = list(session.scalars(query))
        session.expunge_all()
        return rows
