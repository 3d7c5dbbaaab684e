"""Hand-built patient histories for the practice-rule tests (issue 15, part B)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine

from audit.auth import Actor, cli_actor
from audit.errors import FieldError, WarningsNotConfirmed
from audit.log.service import ProcedureLog
from audit.rules.packs import PACKS
from audit.rules.store import set_enabled
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
