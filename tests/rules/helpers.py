"""Hand-built patient histories for the practice-rule tests (issue 15, part B)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import Engine, select

from audit.auth import Actor, cli_actor
from audit.errors import FieldError, WarningsNotConfirmed
from audit.filters import Filters
from audit.log.service import ProcedureLog
from audit.rules import evaluate
from audit.rules.history import cases_from_rows
from audit.rules.packs import PACKS
from audit.rules.period import period_history
from audit.rules.report import COLUMNS
from audit.rules.store import load_packs, set_enabled
from audit.storage.engine import read_session
from audit.storage.models import Procedure, ProcedureLevel
from tests.conftest import valid_record

RULES_FIELD = "practice_rules"


def packs_on(engine: Engine) -> None:
    """The shared template has them off (tests/conftest.py); switch every pack on, audited."""
    for pack in PACKS:
        set_enabled(engine, cli_actor(), pack.key, True)


def at(day: str) -> str:
    return f"{day}T10:00:00Z"


def session(day: str, mrn: str = "MRN0100", **overrides: Any) -> dict[str, Any]:
    """A lumbar TFESI (dexamethasone, contrast under real-time fluoroscopy in AP) on `day`."""
    return valid_record(performed_at=at(day), patient_id=mrn, **overrides)


def ilesi(day: str, levels: list[str], mrn: str = "MRN0200", **overrides: Any) -> dict[str, Any]:
    fields = {"contrast_test_dose": True, **overrides}
    return valid_record(performed_at=at(day), patient_id=mrn, procedure_code="ILESI",
                        levels=levels, laterality="midline", **fields)


def logged(service: ProcedureLog, records: list[dict[str, Any]],
           actor: Actor | None = None) -> list[int]:
    """Log each record on its own (the history grows), confirming its warnings."""
    return [service.log(r, actor or cli_actor(), confirm_warnings=True,
                        create_missing=True).record_id for r in records]


def rule_warnings(service: ProcedureLog, record: dict[str, Any]) -> list[str]:
    """The practice-rule warnings logging `record` asks to confirm (nothing is written)."""
    try:
        service.log(record, cli_actor(), create_missing=True)
    except WarningsNotConfirmed as exc:
        return [w.message for w in exc.warnings if w.field == RULES_FIELD]
    pytest.fail("no warning at all: the record was written")
    return []


def any_warning(service: ProcedureLog, record: dict[str, Any]) -> list[FieldError]:
    try:
        service.log(record, cli_actor(), create_missing=True)
    except WarningsNotConfirmed as exc:
        return [w for w in exc.warnings if w.field == RULES_FIELD]
    return []


def findings_per_record(engine: Engine, filters: Filters) -> pd.DataFrame:
    """What report.findings must equal: evaluate.check called per record (the definition) on
    the same history the report reads."""
    chosen = select(Procedure.id).where(*filters.where())
    with read_session(engine) as session:
        packs = load_packs(session)
        rows = session.execute(period_history(filters, chosen).order_by(Procedure.id)).all()
        wanted = set(session.scalars(chosen))
        levels: dict[int, list[str]] = defaultdict(list)
        for pid, level in session.execute(
                select(ProcedureLevel.procedure_id, ProcedureLevel.level)
                .where(ProcedureLevel.procedure_id.in_(chosen))
                .order_by(ProcedureLevel.procedure_id, ProcedureLevel.position)):
            levels[pid].append(level)
    cases = cases_from_rows(rows, levels)
    patient_of = {r[0]: r[1] for r in rows}
    physician_of = {r[0]: r[13] for r in rows}
    by_patient: dict[int, list[evaluate.Case]] = defaultdict(list)
    for pid, case in cases.items():
        by_patient[patient_of[pid]].append(case)
    out: list[tuple[Any, ...]] = []
    for pid in sorted(wanted):
        case = cases[pid]
        head = (pid, case.performed_at, case.code, physician_of[pid],
                f"{case.performed_at:%Y-%m}")
        out.extend((*head, f.rule, f.pack, f.message is not None, f.message)
                   for f in evaluate.check(case, by_patient[patient_of[pid]], packs))
    return pd.DataFrame.from_records(out, columns=COLUMNS)
