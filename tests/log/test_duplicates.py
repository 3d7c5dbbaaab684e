"""Possible duplicates (issue 11): the same patient and procedure type within the window of a final
record is a warning to confirm, naming the record, from every path: the service (form), `log`
(one record and within a batch), CSV import (against the database and within the file, read
once per file), and a dose report that fills a record which may be logged twice.

Every database test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event

from audit.auth import Actor
from audit.dose_reports import review
from audit.dose_reports.store import DoseImporter
from audit.errors import ValidationFailed, WarningsNotConfirmed
from audit.log.csv_import import import_csv
from audit.log.service import ProcedureLog
from audit.settings import update_setting
from tests.cli.test_cli import cli
from tests.conftest import valid_record
from tests.dose_reports.dose_helpers import make_report
from tests.log.test_csvlog import COLUMNS, write_csv

AT = "2026-03-14T09:30:00-05:00"
EARLIER = "2026-03-14T09:26:00-05:00"


def first(service: ProcedureLog, admin: Actor, **overrides: Any) -> int:
    record = valid_record(**{"performed_at": EARLIER, **overrides})
    return service.log(record, admin, create_missing=True).record_id


def warned(service: ProcedureLog, admin: Actor, **overrides: Any) -> list[str]:
    """The warnings logging valid_record(**overrides) asks to confirm ([] if it saved)."""
    try:
        service.log(valid_record(**overrides), admin, create_missing=True)
    except WarningsNotConfirmed as exc:
        return [str(w) for w in exc.warnings]
    return []


def set_setting(service: ProcedureLog, admin: Actor, key: str, value: Any) -> None:
    update_setting(service.engine, admin, key, value)
    service.refresh()


# --- the service (the form's path) ------------------------------------------------------------

def test_a_record_like_a_final_one_4_minutes_earlier_names_it_in_the_sites_time(
    service: ProcedureLog, admin: Actor
) -> None:
    set_setting(service, admin, "site_timezone", "America/Chicago")
    earlier = first(service, admin)
    assert warned(service, admin) == [
        f"duplicate?: record {earlier} is the same patient and TFESI 4 minutes earlier "
        "(2026-03-14 09:26); confirm to log it anyway"]
    assert service.list(admin)[1] == 1  # nothing written


def test_confirmed_the_record_is_saved_with_the_duplicate_warning_kept_on_it(
    service: ProcedureLog, admin: Actor
) -> None:
    earlier = first(service, admin)
    result = service.log(valid_record(), admin, confirm_warnings=True)
    assert [w.field for w in result.warnings] == ["duplicate?"]
    stored = service.get(result.record_id, admin)["warnings"]
    assert stored == [{"field": "duplicate?", "message": f"record {earlier} is the same "
                       "patient and TFESI 4 minutes earlier (2026-03-14 14:26); confirm to log "
                       "it anyway"}]


def test_a_record_logged_later_than_the_new_one_is_named_as_later(
    service: ProcedureLog, admin: Actor
) -> None:
    later = first(service, admin, performed_at="2026-03-14T09:45:00-05:00")
    assert warned(service, admin) == [
        f"duplicate?: record {later} is the same patient and TFESI 15 minutes later "
        "(2026-03-14 14:45); confirm to log it anyway"]


def test_the_window_setting_decides_31_minutes_apart_is_no_duplicate_by_default(
    service: ProcedureLog, admin: Actor
) -> None:
    def apart(patient: str, minutes: int) -> list[str]:
        first(service, admin, patient_id=patient, performed_at="2026-03-14T09:00:00-05:00")
        return warned(service, admin, patient_id=patient,
                      performed_at=f"2026-03-14T09:{minutes:02d}:00-05:00")

    assert apart("MRN0031", 31) == []  # a second record that day, not a duplicate
    assert apart("MRN0030", 30) == [
        "duplicate?: record 3 is the same patient and TFESI 30 minutes earlier "
        "(2026-03-14 14:00); confirm to log it anyway"]
    set_setting(service, admin, "duplicate_window_minutes", 45)
    assert len(apart("MRN0045", 45)) == 1 and apart("MRN0046", 46) == []
    set_setting(service, admin, "duplicate_window_minutes", 0)  # 0: no duplicate check
    assert apart("MRN0000", 0) == []


def test_a_bad_window_setting_is_named_with_what_is_allowed(
    service: ProcedureLog, admin: Actor
) -> None:
    set_setting(service, admin, "duplicate_window_minutes", -5)
    with pytest.raises(ValidationFailed, match="duplicate_window_minutes: setting is -5: "
                       "expected minutes from 0"):
        first(service, admin)


def test_a_void_record_another_patient_or_another_procedure_is_no_duplicate(
    service: ProcedureLog, admin: Actor
) -> None:
    voided = first(service, admin)
    service.void(voided, admin, version=1, reason="entered twice")
    assert warned(service, admin) == []
    assert warned(service, admin, patient_id="MRN0002") == []
    assert warned(service, admin, patient_id="MRN0003", procedure_code="CAUDAL", levels=None,
                  laterality=None, realtime_contrast=False) == []
    assert warned(service, admin, patient_id="MRN0003") == []  # that one was a CAUDAL


def test_an_amend_is_no_duplicate_of_its_own_record_but_of_another(
    service: ProcedureLog, admin: Actor
) -> None:
    earlier = first(service, admin)
    service.amend(earlier, {"notes": "left L4-L5"}, admin, version=1, reason="note")
    other = first(service, admin, patient_id="MRN0002")
    with pytest.raises(WarningsNotConfirmed) as info:
        service.amend(other, {"patient_id": "MRN0001"}, admin, version=1, reason="wrong MRN")
    assert [f"{w.field}: {w.message}" for w in info.value.warnings] == [
        f"duplicate?: record {earlier} is the same patient and TFESI at the same time "
        "(2026-03-14 14:26); confirm to log it anyway"]


# --- log_many and `fluoro-audit log` ---------------------------------------------------------

def test_two_identical_records_in_one_batch_name_each_other_by_position(
    service: ProcedureLog, admin: Actor
) -> None:
    batch = [valid_record(), valid_record(patient_id="MRN0002"), valid_record()]
    with pytest.raises(WarningsNotConfirmed) as info:
        service.log_many(batch, admin, create_missing=True)
    assert [str(w) for w in info.value.warnings] == [
        "record 3: duplicate?: record 1 of this batch is the same patient and TFESI at the "
        "same time (2026-03-14 14:30); confirm to log it anyway"]
    assert service.list(admin)[1] == 0
    results = service.log_many(batch, admin, create_missing=True, confirm_warnings=True)
    assert [len(r.warnings) for r in results] == [0, 0, 1]
    assert results[2].warnings[0].message.startswith(
        f"record {results[0].record_id} (record 1 of this batch) is the same patient")


def test_a_batch_record_like_a_stored_one_names_the_stored_record(
    service: ProcedureLog, admin: Actor
) -> None:
    earlier = first(service, admin)
    with pytest.raises(WarningsNotConfirmed) as info:
        service.log_many([valid_record(patient_id="MRN0002"), valid_record()], admin)
    assert [w.field for w in info.value.warnings] == ["record 2: duplicate?"]
    assert info.value.warnings[0].message.startswith(f"record {earlier} is the same patient")


def test_the_cli_refuses_a_duplicate_alone_and_within_a_batch_until_confirmed(
    db_url: str
) -> None:
    one = json.dumps(valid_record())
    assert cli(db_url, "log", "--create-missing", stdin=one).returncode == 0
    again = cli(db_url, "log", stdin=one)
    assert again.returncode == 1
    assert ("record 1: duplicate?: record 1 is the same patient and TFESI at the same time "
            "(2026-03-14 14:30); confirm to log it anyway (confirm with --confirm-warnings)"
            in again.stderr)
    pair = json.dumps([valid_record(patient_id="MRN0002")] * 2)
    batch = cli(db_url, "log", stdin=pair)
    assert batch.returncode == 1
    assert "record 2: duplicate?: record 1 of this batch is the same patient" in batch.stderr
    saved = cli(db_url, "log", "--confirm-warnings", stdin=pair)
    assert saved.returncode == 0, saved.stderr
    out = [json.loads(line) for line in saved.stdout.splitlines()]
    assert out[1]["warnings"][0]["message"].startswith(
        f"record {out[0]['record_id']} (record 1 of this batch) is the same patient")


# --- CSV import --------------------------------------------------------------------------------

@pytest.fixture
def candidate_reads() -> Iterator[list[str]]:
    """The statements that read possible duplicates (audit.log.duplicates.Duplicates.read)."""
    seen: list[str] = []

    def listen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "procedure.procedure_type_id IN" in statement and "patient.mrn IN" in statement:
            seen.append(statement)

    event.listen(Engine, "before_cursor_execute", listen)
    yield seen
    event.remove(Engine, "before_cursor_execute", listen)


def test_csv_rows_like_a_stored_record_or_an_earlier_row_are_warned_with_one_read(
    service: ProcedureLog, admin: Actor, tmp_path: Path, candidate_reads: list[str]
) -> None:
    stored = first(service, admin)
    rows = [valid_record(patient_id=f"MRN{n:04d}", performed_at=f"2026-03-{n % 28 + 1:02d}"
                         "T09:30:00-05:00") for n in range(10, 70)]
    rows[5] = valid_record()  # row 7: like the stored record
    rows[20] = valid_record(patient_id="MRN0099", performed_at="2026-03-02T10:00:00-05:00")
    rows[21] = valid_record(patient_id="MRN0099", performed_at="2026-03-02T10:20:00-05:00")
    path = write_csv(tmp_path / "log.csv", rows, COLUMNS)
    candidate_reads.clear()
    result = import_csv(service, admin, path)
    assert len(candidate_reads) == 1  # one read for 60 rows, not one per row
    assert not result.committed
    flagged = {o.row: [str(w) for w in o.warnings] for o in result.rows if o.warnings}
    assert flagged == {
        7: [f"duplicate?: record {stored} is the same patient and TFESI 4 minutes earlier "
            "(2026-03-14 14:26); confirm to log it anyway"],
        23: ["duplicate?: row 22 of this file is the same patient and TFESI 20 minutes earlier "
             "(2026-03-02 15:00); confirm to log it anyway"],
    }
    assert service.list(admin)[1] == 1

    confirmed = import_csv(service, admin, path, confirm_warnings=True)
    assert confirmed.committed
    row_22 = next(o for o in confirmed.rows if o.row == 22).record_id
    row_23 = next(o for o in confirmed.rows if o.row == 23).record_id
    assert row_22 is not None and row_23 is not None
    assert service.get(row_23, admin)["warnings"][0]["message"].startswith(
        f"record {row_22} (row 22 of this file) is the same patient and TFESI")


def test_a_csv_row_outside_the_window_or_of_a_void_record_is_imported(
    service: ProcedureLog, admin: Actor, tmp_path: Path
) -> None:
    voided = first(service, admin)
    service.void(voided, admin, version=1, reason="entered twice")
    rows = [valid_record(), valid_record(performed_at="2026-03-14T10:01:00-05:00")]
    result = import_csv(service, admin, write_csv(tmp_path / "log.csv", rows, COLUMNS))
    assert result.committed, [o.problems() for o in result.rows]


# --- dose reports -----------------------------------------------------------------------------

RDSR_DAY = "2024-03-15T09:28:00+00:00"  # the builder's study: 2024-03-15 09:30:12


def test_a_report_matching_a_procedure_logged_twice_is_flagged_naming_the_other(
    service: ProcedureLog, admin: Actor, engine: Engine, tmp_path: Path
) -> None:
    common = {"patient_id": "MRN-1", "accession_number": "ACC-1", "air_kerma_mgy": None}
    one = service.log(valid_record(performed_at=RDSR_DAY, **common), admin,
                      create_missing=True).record_id
    two = service.log(valid_record(performed_at="2024-03-15T09:31:00+00:00", **common), admin,
                      confirm_warnings=True).record_id
    result = DoseImporter(engine, admin).import_path(make_report(tmp_path))
    assert result.record_id == two  # the nearer in time, as before; filled, but flagged
    assert result.filled == ["air_kerma_mgy"]
    assert result.review == (
        f"duplicate?: linked to record {two}, which may be logged twice: record {one} is the "
        "same patient and TFESI 3 minutes earlier (2024-03-15 09:28); check which record this "
        "report belongs to and void the one entered twice")
    assert result.as_json()["review"] == result.review
    listed = review.list_duplicates(engine, admin)
    assert listed[["report_id", "record_id", "possible_duplicates"]].values.tolist() == [
        [result.report_id, two, str(one)]]
    service.void(one, admin, version=1, reason="entered twice")
    assert review.list_duplicates(engine, admin).empty
    again = DoseImporter(engine, admin).import_path(make_report(tmp_path, "b.dcm",
                                                                accession="ACC-2"))
    assert again.review is None


def test_a_report_filling_a_record_whose_copy_has_no_accession_is_flagged_too(
    service: ProcedureLog, admin: Actor, engine: Engine, tmp_path: Path
) -> None:
    linked = service.log(valid_record(performed_at=RDSR_DAY, patient_id="MRN-1",
                                      accession_number="ACC-1"), admin,
                         create_missing=True).record_id
    copy = service.log(valid_record(performed_at=RDSR_DAY, patient_id="MRN-1"), admin,
                       confirm_warnings=True).record_id
    result = DoseImporter(engine, admin).import_path(make_report(tmp_path))
    assert result.record_id == linked
    assert result.review is not None and f"record {copy} is the same patient" in result.review
