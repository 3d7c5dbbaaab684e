"""Legacy CSV import: headers, units, errors per row, all-or-nothing, skip-invalid, round trip.

Every database test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from audit.auth import Actor
from audit.dictionary import FIELD_NAMES
from audit.errors import PermissionDenied
from audit.log.csv_headers import CsvFormatError, map_columns
from audit.log.csv_import import import_csv
from audit.log.service import ProcedureLog
from audit.settings import update_setting
from audit.storage.models import AuditEvent, Procedure
from audit.vocab import Role
from tests.conftest import valid_record
from tests.dose_reports.dose_helpers import log_procedure

COLUMNS = list(valid_record())


def procedures(engine: Engine) -> int:
    with Session(engine) as session:
        return session.scalar(select(func.count()).select_from(Procedure)) or 0


def cell(value: Any) -> str:
    """How the export writes a value: lists ';'-separated, booleans true/false."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ";".join(v if isinstance(v, str) else json.dumps(v) for v in value)
    return str(value)


def write_csv(path: Path, rows: list[dict[str, Any]], columns: list[str] | None = None,
              delimiter: str = ",", bom: bool = False) -> Path:
    columns = columns or list(rows[0])
    buffer = io.StringIO()
    out = csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n")
    out.writerow(columns)
    for row in rows:
        out.writerow([cell(row.get(c)) for c in columns])
    path.write_text(("\ufeff" if bom else "") + buffer.getvalue(), encoding="utf-8")
    return path


def cli(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "audit.cli", "--db", db_url, *args],
                          capture_output=True, text=True, timeout=120)


# --- happy paths ------------------------------------------------------------------------------

def test_dictionary_headers_import_through_the_cli(
    db_url: str, engine: Engine, service: ProcedureLog, admin: Actor, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "log.csv", [valid_record(), valid_record(patient_id="MRN0002")],
                     COLUMNS)
    run = cli(db_url, "import", "csv", str(path), "--create-missing")
    assert run.returncode == 0, run.stderr
    assert "imported 2 of 2 rows" in run.stderr
    page, total = service.list(admin)
    assert total == 2
    record = service.get(page[-1]["record_id"], admin)
    assert record["levels"] == ["L4", "L5"] and record["confirmation_views"] == ["AP", "LAT"]
    assert record["realtime_contrast"] is True and record["dap_gycm2"] == pytest.approx(0.71)


def test_legacy_headers_semicolons_bom_and_units_in_headers(
    engine: Engine, service: ProcedureLog, admin: Actor, tmp_path: Path
) -> None:
    text = (
        "\ufeffMRN;Date;Time;Procedure;Level;Side;Physician;Tech;Room;Site;DAP (mGy·cm²);"
        "Fluoro time (min);Air kerma (Gy);Images;Contrast;Contrast volume (mL);Views;"
        "Realtime contrast;Pregnancy;Guidance;Contrast confirmation\r\n"
        "MRN7;2024-03-15;09:30;tfesi;L4-L5;Left;Dr. Chen;tech1;OR 1;Riverside;710;1,3;0.0052;2;"
        "iohexol 240;1.5;AP;true;not pregnant;fluoroscopy;confirmed\r\n"
    )
    path = tmp_path / "legacy.csv"
    path.write_text(text, encoding="utf-8")
    result = import_csv(service, admin, path, create_missing=True, confirm_warnings=True,
                        timezone="Europe/Paris")
    assert result.committed and not result.failed, [r.problems() for r in result.rows]
    record = service.get(result.rows[0].record_id, admin)  # type: ignore[arg-type]
    assert record["performed_at"] == "2024-03-15T08:30:00+00:00"
    assert (record["dap_value"], record["dap_unit"]) == (710.0, "mGy·cm²")
    assert record["dap_gycm2"] == pytest.approx(0.71)
    assert record["fluoro_time_s"] == 78.0
    assert record["air_kerma_mgy"] == pytest.approx(5.2)
    assert record["patient_id"] == "MRN7" and record["procedure_code"] == "TFESI"


def test_a_procedure_named_as_in_the_catalog_is_accepted(
    engine: Engine, service: ProcedureLog, admin: Actor, tmp_path: Path
) -> None:
    name = service.catalog.lookup("TFESI").name  # type: ignore[union-attr]
    path = write_csv(tmp_path / "n.csv", [valid_record(procedure_code=name.upper())], COLUMNS)
    result = import_csv(service, admin, path, create_missing=True)
    assert result.committed
    assert service.get(result.rows[0].record_id, admin)["procedure_code"] == "TFESI"  # type: ignore[arg-type]


def test_dap_unit_per_row(engine: Engine, service: ProcedureLog, admin: Actor,
                          tmp_path: Path) -> None:
    rows = [valid_record(dap_value=71, dap_unit="cGy·cm²"),
            valid_record(dap_value=7100, dap_unit="mGycm2", patient_id="MRN2")]
    result = import_csv(service, admin, write_csv(tmp_path / "u.csv", rows, COLUMNS),
                        create_missing=True)
    assert result.committed
    stored = [service.get(r.record_id, admin)["dap_gycm2"] for r in result.rows]  # type: ignore[arg-type]
    assert stored == [pytest.approx(0.71), pytest.approx(7.1)]


# --- errors, all-or-nothing -------------------------------------------------------------------

def bad_rows() -> list[dict[str, Any]]:
    return [
        valid_record(),
        valid_record(patient_id="MRN2", dap_unit="Gy/cm"),
        valid_record(patient_id="MRN3", physician=None, levels=["L4", "C7"]),
    ]


def test_one_bad_row_means_nothing_is_written_and_every_error_is_listed(
    db_url: str, engine: Engine, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "bad.csv", bad_rows(), COLUMNS)
    run = cli(db_url, "import", "csv", str(path), "--create-missing")
    assert run.returncode == 1
    assert "row 3: dap_unit:" in run.stderr
    assert "row 4: physician: required" in run.stderr
    assert "row 4: levels:" in run.stderr
    assert "nothing was written" in run.stderr and "--skip-invalid" in run.stderr
    assert procedures(engine) == 0
    assert not (tmp_path / "bad.csv.rejected.csv").exists()


def test_dry_run_lists_each_rows_errors_as_json_and_writes_nothing(
    db_url: str, engine: Engine, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "bad.csv", bad_rows(), COLUMNS)
    run = cli(db_url, "import", "csv", str(path), "--dry-run", "--json", "--create-missing")
    assert run.returncode == 1
    rows = [json.loads(line) for line in run.stdout.splitlines()]
    assert [(r["row"], r["status"]) for r in rows] == [(2, "ok"), (3, "invalid"),
                                                      (4, "invalid")]
    assert {e["field"] for e in rows[2]["errors"]} == {"physician", "levels"}
    assert "dry run: 2 of 3 rows are invalid; nothing was written" in run.stderr
    assert procedures(engine) == 0

    valid = write_csv(tmp_path / "ok.csv", [valid_record()], COLUMNS)
    clean = cli(db_url, "import", "csv", str(valid), "--dry-run", "--create-missing")
    assert clean.returncode == 0 and "all 1 rows valid" in clean.stderr
    assert procedures(engine) == 0


def test_skip_invalid_imports_the_rest_and_writes_the_rejected_rows_beside_the_input(
    engine: Engine, service: ProcedureLog, admin: Actor, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "bad.csv", bad_rows(), COLUMNS, delimiter=";", bom=True)
    result = import_csv(service, admin, path, skip_invalid=True, create_missing=True)
    assert result.committed and len(result.imported) == 1
    assert procedures(engine) == 1
    rejected = Path(result.rejected_file or "")
    assert rejected == tmp_path / "bad.csv.rejected.csv"
    with rejected.open(encoding="utf-8-sig", newline="") as handle:
        table = list(csv.reader(handle, delimiter=";"))
    assert table[0] == [*COLUMNS, "reasons"]
    assert [r[COLUMNS.index("patient_id")] for r in table[1:]] == ["MRN2", "MRN3"]
    assert table[1][-1].startswith("row 3: dap_unit:")
    assert "physician: required" in table[2][-1]
    with Session(engine) as session:
        event = session.scalar(select(AuditEvent).where(AuditEvent.entity == "procedure_csv"))
    assert event is not None and event.after["rejected_rows"] == [3, 4]
    assert event.after["record_ids"] == [result.imported[0].record_id]


def test_rows_with_warnings_need_confirmation(
    engine: Engine, service: ProcedureLog, admin: Actor, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "w.csv", [valid_record(dap_value=71)], COLUMNS)  # 100x usual
    refused = import_csv(service, admin, path, create_missing=True)
    assert not refused.committed and refused.rows[0].status == "unconfirmed"
    assert "confirm with --confirm-warnings" in refused.rows[0].problems()[0]
    assert procedures(engine) == 0
    accepted = import_csv(service, admin, path, create_missing=True, confirm_warnings=True)
    record = service.get(accepted.rows[0].record_id, admin)  # type: ignore[arg-type]
    assert record["warnings"] and record["warnings"][0]["field"] == "dap_value"


def test_unknown_names_need_create_missing(
    engine: Engine, service: ProcedureLog, admin: Actor, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "n.csv", [valid_record()], COLUMNS)
    result = import_csv(service, admin, path)
    fields = {e.field for e in result.rows[0].errors}
    assert {"site", "physician", "technologist"} <= fields
    assert procedures(engine) == 0


def test_a_naive_date_time_is_refused_with_the_timezone_hint(
    engine: Engine, service: ProcedureLog, admin: Actor, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "d.csv", [valid_record(performed_at="2024-03-15 09:30")],
                     COLUMNS)
    result = import_csv(service, admin, path, create_missing=True)
    (error,) = result.rows[0].errors
    assert error.field == "performed_at" and "--timezone" in error.message


def test_a_row_with_more_cells_than_headers_is_invalid(
    engine: Engine, service: ProcedureLog, admin: Actor, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "x.csv", [valid_record()], COLUMNS)
    path.write_text(path.read_text() + ",".join(cell(v) for v in valid_record().values())
                    + ",surprise\r\n")
    result = import_csv(service, admin, path, create_missing=True)
    assert result.rows[1].errors[0].field == "row"
    assert "delimiter" in result.rows[1].errors[0].message


# --- file-level errors ------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("headers", "says"),
    [(["patient_id", "Patient name"], "'Patient name' is not a field"),
     (["MRN", "patient_id"], "both give patient_id"),
     (["Weight (lb)"], "unit 'lb' is not allowed for patient_weight_kg"),
     (["DAP (Gy/m)"], "'DAP (Gy/m)'"),
     (["Time"], "needs a date column"),
     (["dap_gycm2 (mGy·cm²)"], "always Gy·cm²"),
     (["patient_id", ""], "column 2 has no header")],
)
def test_header_problems_are_named(headers: list[str], says: str) -> None:
    with pytest.raises(CsvFormatError, match="header") as caught:
        map_columns(headers)
    assert says in str(caught.value)


def test_header_error_through_the_cli_writes_nothing(
    db_url: str, engine: Engine, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "h.csv", [{**valid_record(), "Patient name": "Doe^J"}])
    run = cli(db_url, "import", "csv", str(path), "--create-missing")
    assert run.returncode == 1 and "'Patient name' is not a field" in run.stderr
    assert procedures(engine) == 0


@pytest.mark.parametrize(
    ("data", "says"),
    [("patient_id\nMRN1\n".encode("utf-16"), "not UTF-8"),
     ("patient_id,room\nMüller,OR 1\n".encode("latin-1"), "not UTF-8"),
     (b"", "empty"), (b"\xef\xbb\xbf\r\n", "empty")],
)
def test_unreadable_files_are_refused(
    engine: Engine, service: ProcedureLog, admin: Actor, tmp_path: Path, data: bytes, says: str
) -> None:
    path = tmp_path / "f.csv"
    path.write_bytes(data)
    with pytest.raises(CsvFormatError, match=says):
        import_csv(service, admin, path)


def test_a_missing_file_is_an_error(db_url: str, tmp_path: Path) -> None:
    run = cli(db_url, "import", "csv", str(tmp_path / "absent.csv"))
    assert run.returncode == 1 and "cannot read" in run.stderr


def test_roles_that_cannot_log_cannot_import(
    engine: Engine, service: ProcedureLog, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "p.csv", [valid_record()], COLUMNS)
    with pytest.raises(PermissionDenied):
        import_csv(service, Actor("qo", Role.QUALITY_OFFICER), path)


# --- the export's procedures.csv round-trips --------------------------------------------------

def test_an_exported_log_round_trips_and_void_rows_are_skipped(
    engine: Engine, service: ProcedureLog, admin: Actor, tmp_path: Path
) -> None:
    kept = log_procedure(service, admin, pulsed_fluoro=True, pulse_rate_pps=7.5,
                         low_dose_mode=False, dap_value=75, dap_unit="cGy·cm²",
                         fluoro_time_s="1:18", notes="a; b, \"quoted\"")
    voided = log_procedure(service, admin, patient_id="MRN0002")
    service.void(voided, admin, version=1, reason="duplicate entry")
    exported = [service.get(kept, admin), service.get(voided, admin)]
    path = write_csv(tmp_path / "procedures.csv", exported, list(FIELD_NAMES), bom=True)
    # the original goes, so that its copy is not a possible duplicate of it (audit.log.duplicates)
    service.void(kept, admin, version=1, reason="moved to another database")

    result = import_csv(service, admin, path)
    assert result.committed, [r.problems() for r in result.rows]
    assert [r.status for r in result.rows] == ["ok", "skipped"]
    copy = service.get(result.rows[0].record_id, admin)  # type: ignore[arg-type]
    original = exported[0]
    out_only = {"record_id", "created_at", "updated_at", "version"}
    differing = {k for k in FIELD_NAMES if k not in out_only and copy[k] != original[k]}
    assert differing == set()


def test_an_imported_row_is_stored_and_audited_as_the_same_record_logged(
    engine: Engine, service: ProcedureLog, admin: Actor, tmp_path: Path
) -> None:
    """The bulk write (issue 10) stores what ProcedureLog.log stores, with the same create
    event, apart from the record's id and timestamps. The same record twice would be a
    possible duplicate (tests/log/test_duplicates.py): the window is off here."""
    update_setting(service.engine, admin, "duplicate_window_minutes", 0)
    service.refresh()
    record = valid_record(dap_value=71, notes="a note", accession_number="ACC-9")  # 100x: warns
    logged = service.log(record, admin, create_missing=True, confirm_warnings=True).record_id
    path = write_csv(tmp_path / "same.csv", [record], list(record))
    result = import_csv(service, admin, path, confirm_warnings=True)
    [imported] = [r.record_id for r in result.imported]
    differ = {"record_id", "created_at", "updated_at"}

    def without(d: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in d.items() if k not in differ}

    assert without(service.get(imported, admin)) == without(service.get(logged, admin))
    with Session(engine) as session:
        after = {e.entity_id: e.after for e in session.scalars(select(AuditEvent).where(
            AuditEvent.entity == "procedure", AuditEvent.action == "create"))}
        levels = session.scalars(select(Procedure).where(Procedure.id == imported)).one().levels
        assert [(lv.position, lv.level, lv.region) for lv in levels] == [
            (1, "L4", "lumbar"), (2, "L5", "lumbar")]
    assert without(after[str(imported)]) == without(after[str(logged)])
    assert after[str(imported)]["record_id"] == imported
    assert after[str(imported)]["warnings"] and after[str(imported)]["effective_dose_msv"]
