"""One set of bounds on every path into the log (issue 10): the service (what the entry form
calls), `fluoro-audit log` (JSON), CSV import and amend refuse the same extreme values with an
error naming the field, write nothing, and never raise anything else.

Each test runs its cases in a loop on one database per backend: the cases are cheap, a fresh
PostgreSQL database is not.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from audit.auth import Actor
from audit.cli import main
from audit.errors import ValidationFailed, WarningsNotConfirmed
from audit.log.csv_import import import_csv, rejected_path
from audit.log.entry_form import build_record, layout_for
from audit.log.service import ProcedureLog
from audit.storage.models import AuditEvent, Procedure
from tests.conftest import valid_record

MANY = 10**400
WEIGHT = "allowed: 0.3 to 350 kg"
TIME = "allowed: 0 to 21600 s"
KERMA = "allowed: 0 to 100000 mGy"
COMMA = "use a point for decimals"

#: (field, value, what the error says) for values any path can carry as text.
TEXT_CASES: list[tuple[str, Any, str]] = [
    ("patient_weight_kg", str(MANY), WEIGHT),
    ("patient_weight_kg", "1" * 5000, WEIGHT),
    ("patient_weight_kg", "inf", WEIGHT),
    ("patient_weight_kg", "nan", WEIGHT),
    ("patient_weight_kg", "1e308", WEIGHT),
    ("saved_images", str(MANY), "allowed: 0 to 10000"),
    ("dsa_runs", "1e400", "allowed: 0 to 1000"),
    ("fluoro_time_s", "inf", TIME),
    ("fluoro_time_s", "1e308", TIME),
    ("fluoro_time_s", str(MANY), TIME),
    ("fluoro_time_s", "1,250", COMMA),
    ("fluoro_time_s", "1,250 min", COMMA),
    ("air_kerma_mgy", "nan", KERMA),
    ("air_kerma_mgy", "1e308", KERMA),
    ("air_kerma_mgy", "1,250 mGy", COMMA),
    ("dap_value", "inf", "allowed: 0 to 25000 Gy·cm²"),
    ("dap_value", "1e308", "allowed: 0 to 25000 Gy·cm²"),
    ("contrast_volume_ml", "1,250", COMMA),
    ("performed_at", "0001-01-01T00:00:00+05:00", "year 1 is outside"),
    ("performed_at", "9999-12-31T23:00:00-05:00", "year 9999 is outside"),
    ("performed_at", "2026-03-14T09:30:00-23:59", "UTC offset -23:59"),
    ("performed_at", "2026-03-14T09:30:00+23:00", "UTC offset +23:00"),
    ("site", "River\x00side", "NUL"),
    ("physician", "Dr. \x00Chen", "NUL"),
    ("notes", "note\x00", "NUL"),
    ("accession_number", "A\x00", "NUL"),
    ("contrast_agent", "iohexol\x00", "NUL"),
    ("patient_id", "M" * 65, "at most 64"),
    ("physician", "D" * 161, "at most 160"),
    ("notes", "n" * 4001, "at most 4000"),
    ("guidance", "x" * 10_000, "at most 64"),
    ("levels", ";".join(["L4"] * 40), "at most 30"),
]
#: Cases only JSON and the service can carry: numbers, lists, objects, lone surrogates.
TYPED_CASES: list[tuple[str, Any, str]] = [
    ("patient_weight_kg", MANY, WEIGHT),
    ("patient_weight_kg", float("inf"), WEIGHT),
    ("patient_weight_kg", float("nan"), WEIGHT),
    ("patient_weight_kg", 1e308, WEIGHT),
    ("saved_images", MANY, "allowed: 0 to 10000"),
    ("fluoro_time_s", MANY, TIME),
    ("fluoro_time_s", float("nan"), TIME),
    ("air_kerma_mgy", MANY, KERMA),
    ("dap_value", float("inf"), "allowed"),
    ("room", "OR \ud800", "lone surrogate"),
    ("notes", "\udfff", "lone surrogate"),
    ("technologist", "tech\ud800", "lone surrogate"),
    ("levels", ["L4"] * 1000, "at most 30"),
    ("confirmation_views", ["AP"] * 100, "at most 8"),
    ("levels", ["L4\x00"], "NUL"),
    ("guidance", {"nested": [1, 2]}, "got a JSON object"),
    ("dap_unit", ["Gy·cm²"], "got a list"),
]
CREATED_NAMES = [("site", "New\x00Site"), ("room", "Room \ud800"), ("physician", "Dr \x00"),
                 ("technologist", "t\x00")]


def counts(engine: Engine) -> tuple[int, int]:
    with Session(engine) as session:
        return (session.scalar(select(func.count()).select_from(Procedure)) or 0,
                session.scalar(select(func.count()).select_from(AuditEvent)) or 0)


def refused(call: Any) -> list[Any]:
    """The field errors a call raised; it must raise ValidationFailed and nothing else."""
    with pytest.raises(ValidationFailed) as info:
        call()
    return info.value.errors


def names_field(errors: list[Any], field: str, fragment: str) -> bool:
    return any(e.field.endswith(field) and fragment in e.message for e in errors)


def test_the_service_refuses_extreme_values_naming_the_field(
        service: ProcedureLog, admin: Actor, engine: Engine) -> None:
    before = counts(engine)
    for field, value, fragment in TEXT_CASES + TYPED_CASES:
        errors = refused(lambda f=field, v=value: service.log(
            valid_record(**{f: v}), admin, create_missing=True, confirm_warnings=True))
        assert names_field(errors, field, fragment), (field, value, errors)
    assert counts(engine) == before


def test_names_created_with_create_missing_are_clean_text(
        service: ProcedureLog, admin: Actor, engine: Engine) -> None:
    before = counts(engine)
    for field, value in CREATED_NAMES:
        errors = refused(lambda f=field, v=value: service.log(
            valid_record(**{f: v}), admin, create_missing=True))
        assert [e.field for e in errors] == [field], errors
    assert counts(engine) == before


def test_the_entry_form_record_is_bounded_the_same_way(
        service: ProcedureLog, admin: Actor) -> None:
    layout = layout_for(service.catalog.lookup("TFESI"))
    for field, value, fragment in [("notes", "a\x00b", "NUL"),
                                   ("patient_weight_kg", "1,250", COMMA),
                                   ("patient_weight_kg", "1e308", WEIGHT)]:
        record = build_record(valid_record(**{field: value}), layout)
        errors = refused(lambda r=record: service.log(r, admin, create_missing=True))
        assert names_field(errors, field, fragment), errors


def run_log(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], db_url: str,
            text: str) -> tuple[int, str]:
    monkeypatch.setattr(sys, "stdin", io.StringIO(text))
    code = main(["--db", db_url, "log", "--create-missing", "--confirm-warnings"])
    return code, capsys.readouterr().err


def test_json_log_refuses_extreme_values_naming_the_field(
        db_url: str, engine: Engine, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    before = counts(engine)
    for field, value, fragment in TEXT_CASES + TYPED_CASES:
        text = json.dumps(valid_record(**{field: value}))
        code, err = run_log(monkeypatch, capsys, db_url, text)
        assert code == 1 and f"error: record 1: {field}: " in err and fragment in err, (
            field, err)
        assert "Traceback" not in err
    assert counts(engine) == before


def test_json_log_refuses_a_deep_or_huge_document_in_one_line(
        db_url: str, engine: Engine, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    before = counts(engine)
    for text, fragment in [("[" * 100_000 + "]" * 100_000, "nested too deeply"),
                           ('{"notes": ' + "[" * 50 + "]" * 50 + "}", "nested too deeply"),
                           (json.dumps(valid_record()) + "\n" + "[" * 5000, "nested too deeply"),
                           (" " * (17 * 1024 * 1024), "longer than")]:
        code, err = run_log(monkeypatch, capsys, db_url, text)
        assert code == 1 and err.startswith("error: ") and fragment in err, err[:300]
        assert len(err.strip().splitlines()) == 1
    assert counts(engine) == before


def write_csv(path: Path, records: list[dict[str, Any]]) -> Path:
    fields = list(dict.fromkeys(k for r in records for k in r))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields)
    writer.writeheader()
    for record in records:
        writer.writerow({k: ";".join(v) if isinstance(v, list) else v
                         for k, v in record.items()})
    path.write_text(buffer.getvalue(), encoding="utf-8")
    return path


def test_csv_import_refuses_extreme_values_per_row_naming_the_field(
        service: ProcedureLog, admin: Actor, engine: Engine, tmp_path: Path) -> None:
    rows = [valid_record(**{field: value}) for field, value, _ in TEXT_CASES]
    path = write_csv(tmp_path / "legacy.csv", rows)
    before = counts(engine)
    result = import_csv(service, admin, path, create_missing=True, confirm_warnings=True)
    assert not result.committed and counts(engine) == before
    for outcome, (field, value, fragment) in zip(result.rows, TEXT_CASES, strict=True):
        assert names_field(outcome.errors, field, fragment), (field, value, outcome.errors)


def test_csv_skip_invalid_writes_a_year_1_row_to_the_rejected_file(
        service: ProcedureLog, admin: Actor, engine: Engine, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "legacy.csv", [
        valid_record(), valid_record(performed_at="0001-01-01T00:00:00+01:00",
                                     patient_id="MRN0002")])
    result = import_csv(service, admin, path, create_missing=True, skip_invalid=True)
    assert result.committed and [o.status for o in result.rows] == ["ok", "invalid"]
    assert counts(engine)[0] == 1
    rejected = rejected_path(path).read_text(encoding="utf-8-sig")
    assert "0001-01-01T00:00:00+01:00" in rejected and "year 1 is outside" in rejected


def test_amend_refuses_extreme_values_and_unclean_reasons(
        service: ProcedureLog, admin: Actor, engine: Engine, logged: int) -> None:
    before = counts(engine)
    for field, value, fragment in TEXT_CASES + TYPED_CASES:
        errors = refused(lambda f=field, v=value: service.amend(
            logged, {f: v}, admin, version=1, reason="fix", confirm_warnings=True,
            create_missing=True))
        assert names_field(errors, field, fragment), (field, value, errors)
    for reason, fragment in [("typo\x00", "NUL"), ("\ud800", "lone surrogate"),
                             ("r" * 1001, "at most 1000"), (None, "required")]:
        errors = refused(lambda r=reason: service.amend(logged, {"notes": "n"}, admin,
                                                        version=1, reason=r))
        assert names_field(errors, "reason", fragment), errors
        errors = refused(lambda r=reason: service.void(logged, admin, version=1, reason=r))
        assert names_field(errors, "reason", fragment), errors
    assert counts(engine) == before


# --- impossible combinations -------------------------------------------------------------------

def test_pregnant_with_patient_sex_m_is_an_error(service: ProcedureLog, admin: Actor) -> None:
    errors = refused(lambda: service.log(valid_record(patient_sex="M",
                                                      pregnancy_status="pregnant"),
                                         admin, create_missing=True))
    assert [e.field for e in errors] == ["pregnancy_status"]
    assert "patient_sex is M" in errors[0].message
    service.log(valid_record(patient_sex="F", pregnancy_status="pregnant"), admin,
                create_missing=True)


@pytest.mark.parametrize(
    ("override", "field"),
    [({"dap_value": 0, "air_kerma_mgy": 5.2}, "dap_value"),
     ({"guidance": "fluoroscopy_dsa", "dsa_runs": 2, "saved_images": 0}, "saved_images"),
     ({"fluoro_time_s": 0}, "fluoro_time_s"),
     ({"fluoro_time_s": 0, "dap_value": 0, "air_kerma_mgy": 3.0}, "fluoro_time_s")],
)
def test_impossible_doses_are_warnings_to_confirm(
        service: ProcedureLog, admin: Actor, override: dict[str, Any], field: str) -> None:
    record = valid_record(**override)
    with pytest.raises(WarningsNotConfirmed) as info:
        service.log(record, admin, create_missing=True)
    assert field in [w.field for w in info.value.warnings]
    saved = service.log(record, admin, create_missing=True, confirm_warnings=True)
    assert field in [w.field for w in saved.warnings]
