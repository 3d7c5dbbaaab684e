"""Reconciling dose reports with the log: matching, filling, discrepancies, review, listings.

Every test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydicom.uid import generate_uid
from sqlalchemy import Engine, update
from sqlalchemy.orm import Session

from audit.auth import Actor
from audit.dose_reports import review
from audit.dose_reports import store as doses
from audit.dose_reports.matching import likely_cause
from audit.dose_reports.store import DoseImporter
from audit.errors import PermissionDenied, ValidationFailed
from audit.log.service import ProcedureLog
from audit.settings import update_setting
from audit.storage.models import DoseDiscrepancy, Room
from audit.vocab import DoseField, Role

from .dose_helpers import events, log_procedure, make_report, procedure, reports

QUALITY = Actor("qo", Role.QUALITY_OFFICER)
RSO = Actor("rso", Role.RSO)
DAY = "2024-03-15T09:00:00+00:00"  # the builder's study: 2024-03-15 09:30:12


@pytest.fixture
def importer(engine: Engine, admin: Actor) -> DoseImporter:
    return DoseImporter(engine, admin)


def log(service: ProcedureLog, admin: Actor, **overrides: Any) -> int:
    values: dict[str, Any] = {"patient_id": "MRN-1", "performed_at": DAY,
                              "accession_number": "ACC-1", "dap_value": 1.5,
                              "fluoro_time_s": 60, "air_kerma_mgy": 12.0}
    values.update(overrides)
    return log_procedure(service, admin, **values)


def set_room(engine: Engine, room: str, **values: Any) -> None:
    with Session(engine) as session, session.begin():
        session.execute(update(Room).where(Room.name == room).values(**values))


def open_discrepancies(engine: Engine) -> list[DoseDiscrepancy]:
    with Session(engine) as session:
        rows = list(session.query(DoseDiscrepancy).order_by(DoseDiscrepancy.id))
        session.expunge_all()
        return rows


# --- matching by accession --------------------------------------------------------------------

def test_accession_match_fills_what_the_log_lacks_and_audits_it(
    engine: Engine, service: ProcedureLog, admin: Actor, importer: DoseImporter, tmp_path: Path
) -> None:
    record_id = log(service, admin, air_kerma_mgy=None)
    result = importer.import_path(make_report(tmp_path, dap=1.5, fluoro_time=60, dose=12.5))
    assert (result.record_id, result.match, result.filled) == (record_id, "accession",
                                                               ["air_kerma_mgy"])
    assert result.discrepancies == []
    row = procedure(engine, record_id)
    assert row.air_kerma_mgy == 12.5 and row.dose_source == "manual+rdsr"
    assert row.version == 2 and row.updated_by == admin.username
    amend = [e for e in events(engine, "procedure", record_id) if e.action == "amend"]
    assert len(amend) == 1
    assert amend[0].before == {"air_kerma_mgy": None, "dose_source": "manual", "version": 1}
    assert amend[0].after == {"air_kerma_mgy": 12.5, "dose_source": "manual+rdsr", "version": 2}
    assert f"dose report {result.report_id}" in (amend[0].reason or "")
    assert reports(engine)[0].filled_fields == ["air_kerma_mgy"]


def test_a_missing_dap_is_filled_with_its_effective_dose(
    engine: Engine, service: ProcedureLog, admin: Actor, importer: DoseImporter, tmp_path: Path
) -> None:
    record_id = log(service, admin, dap_value=None, dap_unit=None,
                    dap_missing_reason="C-arm shows no DAP")
    importer.import_path(make_report(tmp_path, dap=1.5))
    row = procedure(engine, record_id)
    assert (row.dap_gycm2, row.dap_value, row.dap_unit) == (1.5, 1.5, "Gy·cm²")
    assert row.dap_missing_reason is None
    assert row.effective_dose_msv == pytest.approx(1.5 * 0.33)  # lumbar k (docs/reference.md §8)


def test_a_report_agreeing_with_the_log_only_marks_the_source(
    engine: Engine, service: ProcedureLog, admin: Actor, importer: DoseImporter, tmp_path: Path
) -> None:
    record_id = log(service, admin)
    result = importer.import_path(make_report(tmp_path, dap=1.52, fluoro_time=62, dose=12.3))
    assert result.filled == [] and result.discrepancies == []
    row = procedure(engine, record_id)
    assert row.dose_source == "manual+rdsr" and row.version == 2


def test_accession_shared_by_two_patients_prefers_the_reports_patient(
    engine: Engine, service: ProcedureLog, admin: Actor, importer: DoseImporter, tmp_path: Path
) -> None:
    log(service, admin, patient_id="MRN-OTHER")
    mine = log(service, admin)
    assert importer.import_path(make_report(tmp_path)).record_id == mine


# --- discrepancies ----------------------------------------------------------------------------

def test_a_dap_ten_times_off_is_flagged_with_the_unit_mix_up(
    engine: Engine, service: ProcedureLog, admin: Actor, importer: DoseImporter, tmp_path: Path
) -> None:
    record_id = log(service, admin, dap_value=15, dap_unit="Gy·cm²")
    result = importer.import_path(make_report(tmp_path, dap=1.5))
    assert [d["field"] for d in result.discrepancies] == ["dap_gycm2"]
    frame = review.list_discrepancies(engine, QUALITY)
    assert frame["record_id"].tolist() == [record_id]
    found = frame.iloc[0]
    assert (found["manual_value"], found["report_value"]) == (15.0, 1.5)
    assert found["relative_difference"] == pytest.approx(9.0)
    assert "×10" in found["likely_cause"] and "dGy·cm²" in found["likely_cause"]
    assert procedure(engine, record_id).dap_gycm2 == 15.0  # manual values are never overwritten


def test_the_tolerance_setting_decides_what_is_flagged(
    engine: Engine, service: ProcedureLog, admin: Actor, importer: DoseImporter, tmp_path: Path
) -> None:
    log(service, admin, dap_value=1.6)  # 6.7% above the report's 1.5
    assert importer.import_path(make_report(tmp_path, "a.dcm")).discrepancies == []
    update_setting(engine, admin, "discrepancy_tolerance", 0.05)
    log(service, admin, dap_value=1.6, accession_number="ACC-2")
    result = DoseImporter(engine, admin).import_path(
        make_report(tmp_path, "b.dcm", accession="ACC-2"))
    assert [d["field"] for d in result.discrepancies] == ["dap_gycm2"]
    assert open_discrepancies(engine)[0].tolerance == 0.05


def test_fluoro_time_typed_as_mss_is_explained(
    engine: Engine, service: ProcedureLog, admin: Actor, importer: DoseImporter, tmp_path: Path
) -> None:
    log(service, admin, fluoro_time_s="1:30")  # the C-arm showed 1.3 (min) = 78 s
    result = importer.import_path(make_report(tmp_path, fluoro_time=78))
    (found,) = result.discrepancies
    assert found["field"] == "fluoro_time_s" and found["manual_value"] == 90.0
    assert "1.3 min" in found["likely_cause"] and "1:30" in found["likely_cause"]


def test_display_rounding_is_not_a_discrepancy(
    engine: Engine, service: ProcedureLog, admin: Actor, importer: DoseImporter, tmp_path: Path
) -> None:
    log(service, admin, fluoro_time_s=12, dap_value=0.05, air_kerma_mgy=0.3)
    result = importer.import_path(make_report(tmp_path, fluoro_time=7, dap=0.045, dose=0.35))
    assert result.discrepancies == []


@pytest.mark.parametrize(
    ("field", "manual", "report", "expected"),
    [(DoseField.DAP, 150.0, 1.5, "×100"), (DoseField.DAP, 0.0015, 1.5, "1/1000"),
     (DoseField.AIR_KERMA, 12000.0, 12.0, "Gy and mGy"),
     (DoseField.FLUORO_TIME, 3600.0, 60.0, "seconds entered as minutes"),
     (DoseField.FLUORO_TIME, 400.0, 60.0, "counter reset"),
     (DoseField.DAP, 1.2, 1.5, None)],
)
def test_likely_causes(field: DoseField, manual: float, report: float,
                       expected: str | None) -> None:
    cause = likely_cause(field, manual, report)
    assert (cause is None) if expected is None else (expected in (cause or ""))


# --- matching by patient, room and day ----------------------------------------------------------

def test_patient_room_and_day_match_by_device_serial(
    engine: Engine, service: ProcedureLog, admin: Actor, importer: DoseImporter, tmp_path: Path
) -> None:
    record_id = log(service, admin, accession_number=None)
    log(service, admin, accession_number=None, room="OR 2", patient_id="MRN-2")
    set_room(engine, "OR 1", serial="sn-42 ")  # compared trimmed, case-insensitively
    set_room(engine, "OR 2", serial="SN-99")
    result = importer.import_path(make_report(tmp_path, accession=None))
    assert (result.record_id, result.match) == (record_id, "patient_room_day")


def test_a_procedure_in_another_room_is_not_matched(
    engine: Engine, service: ProcedureLog, admin: Actor, importer: DoseImporter, tmp_path: Path
) -> None:
    log(service, admin, accession_number=None, room="OR 2")
    log(service, admin, accession_number=None, patient_id="MRN-X")  # creates OR 1
    set_room(engine, "OR 1", serial="SN-42")
    result = importer.import_path(make_report(tmp_path, accession=None))
    assert result.record_id is None and result.note == doses.MISSING_FROM_LOG


@pytest.mark.parametrize(
    "room_values",
    [{"model": "c-arm 9000"}, {"make": "Acme Medical", "model": "C-Arm 9000", "serial": None},
     {"name": "C-Arm 9000"}],
    ids=["model", "make-and-model", "room-name"],
)
def test_rooms_match_by_model_or_name(
    engine: Engine, service: ProcedureLog, admin: Actor, importer: DoseImporter, tmp_path: Path,
    room_values: dict[str, Any],
) -> None:
    record_id = log(service, admin, accession_number=None)
    log(service, admin, accession_number=None, room="OR 2")  # same patient and day, other room
    set_room(engine, "OR 1", **room_values)
    result = importer.import_path(make_report(tmp_path, accession=None))
    assert (result.record_id, result.match) == (record_id, "patient_room_day")


def test_a_room_with_another_serial_is_not_this_device_even_with_the_same_model(
    engine: Engine, service: ProcedureLog, admin: Actor, importer: DoseImporter, tmp_path: Path
) -> None:
    log(service, admin, accession_number=None)
    set_room(engine, "OR 1", model="C-Arm 9000", serial="SN-7")
    result = importer.import_path(make_report(tmp_path, accession=None))
    # The device is unknown to every room: patient and day decide, one candidate.
    assert result.match == "patient_day"


def test_unknown_device_matches_only_a_single_procedure_that_day(
    engine: Engine, service: ProcedureLog, admin: Actor, importer: DoseImporter, tmp_path: Path
) -> None:
    log(service, admin, accession_number=None)
    log(service, admin, accession_number=None, performed_at="2024-03-15T15:00:00+00:00")
    result = importer.import_path(make_report(tmp_path, accession=None))
    assert result.record_id is None


def test_two_studies_of_one_patient_link_to_the_nearest_unlinked_procedures(
    engine: Engine, service: ProcedureLog, admin: Actor, importer: DoseImporter, tmp_path: Path
) -> None:
    morning = log(service, admin, accession_number=None)
    afternoon = log(service, admin, accession_number=None,
                    performed_at="2024-03-15T15:00:00+00:00")
    set_room(engine, "OR 1", serial="SN-42")
    late = importer.import_path(make_report(tmp_path, "pm.dcm", accession=None,
                                            study_time="150500"))
    early = importer.import_path(make_report(tmp_path, "am.dcm", accession=None,
                                             study_time="091000"))
    assert (late.record_id, early.record_id) == (afternoon, morning)
    third = importer.import_path(make_report(tmp_path, "x.dcm", accession=None,
                                             study_time="151000"))
    assert third.record_id is None  # both taken: a third study is a third procedure


def test_the_study_day_is_the_sites_calendar_day(
    engine: Engine, service: ProcedureLog, admin: Actor, tmp_path: Path
) -> None:
    # 20:30 in New York on 15 March is 00:30 UTC on the 16th.
    record_id = log(service, admin, accession_number=None,
                    performed_at="2024-03-15T20:30:00-04:00")
    report = make_report(tmp_path, accession=None, study_time="210000")
    assert DoseImporter(engine, admin).import_path(report, dry_run=True).record_id is None
    update_setting(engine, admin, "site_timezone", "America/New_York")
    result = DoseImporter(engine, admin).import_path(report)
    assert result.record_id == record_id
    stored = reports(engine)[0]
    assert str(stored.study_day) == "2024-03-15"
    assert stored.study_datetime.isoformat() == "2024-03-16T01:00:00+00:00"


def test_a_file_with_a_utc_offset_is_read_at_that_offset(
    engine: Engine, importer: DoseImporter, tmp_path: Path
) -> None:
    importer.import_path(make_report(tmp_path, study_time="093000", timezone_offset="+0100"))
    assert reports(engine)[0].study_datetime.isoformat() == "2024-03-15T08:30:00+00:00"


# --- growing reports and later logging --------------------------------------------------------

def test_a_fuller_report_updates_what_the_earlier_filled_and_compares_again(
    engine: Engine, service: ProcedureLog, admin: Actor, importer: DoseImporter, tmp_path: Path
) -> None:
    record_id = log(service, admin, air_kerma_mgy=None, dap_value=3.0)
    study = generate_uid()
    first = importer.import_path(make_report(tmp_path, "1.dcm", study_uid=study, events=2,
                                             dap=1.5, dose=8.0))
    assert first.filled == ["air_kerma_mgy"] and len(first.discrepancies) == 1
    second = importer.import_path(make_report(tmp_path, "2.dcm", study_uid=study, events=6,
                                              dap=2.9, dose=15.0))
    assert second.record_id == record_id and second.filled == ["air_kerma_mgy"]
    assert second.discrepancies == []  # 3.0 vs 2.9 is within 10%
    row = procedure(engine, record_id)
    assert row.air_kerma_mgy == 15.0 and row.version == 3
    statuses = [(d.dose_report_id, d.status) for d in open_discrepancies(engine)]
    assert statuses == [(first.report_id, "superseded")]
    assert review.list_discrepancies(engine, QUALITY).empty


def test_a_value_amended_by_hand_is_not_overwritten_by_a_fuller_report(
    engine: Engine, service: ProcedureLog, admin: Actor, importer: DoseImporter, tmp_path: Path
) -> None:
    record_id = log(service, admin, air_kerma_mgy=None)
    study = generate_uid()
    importer.import_path(make_report(tmp_path, "1.dcm", study_uid=study, events=2, dose=8.0))
    service.amend(record_id, {"air_kerma_mgy": 30.0}, admin, version=2, reason="from the chart",
                  confirm_warnings=True)
    second = importer.import_path(make_report(tmp_path, "2.dcm", study_uid=study, events=3,
                                              dose=15.0))
    assert second.filled == []
    assert [d["field"] for d in second.discrepancies] == ["air_kerma_mgy"]
    assert procedure(engine, record_id).air_kerma_mgy == 30.0


def test_a_procedure_logged_after_its_report_is_linked_by_reconcile(
    engine: Engine, service: ProcedureLog, admin: Actor, importer: DoseImporter, tmp_path: Path
) -> None:
    result = importer.import_path(make_report(tmp_path))
    assert result.record_id is None
    missing = review.list_missing(engine, QUALITY)
    assert missing["report_id"].tolist() == [result.report_id]
    assert review.completeness_rate(review.completeness(engine, QUALITY))["rate"] == 0.0

    record_id = log(service, admin, air_kerma_mgy=None)
    relinked = DoseImporter(engine, admin).reconcile_unmatched()
    assert [(r.report_id, r.record_id, r.filled) for r in relinked] == [
        (result.report_id, record_id, ["air_kerma_mgy"])]
    assert review.list_missing(engine, QUALITY).empty
    overall = review.completeness_rate(review.completeness(engine, QUALITY))
    assert overall == {"reports": 1, "matched": 1, "missing": 0, "rate": 1.0}
    assert DoseImporter(engine, admin).reconcile_unmatched() == []  # nothing left to do


def test_a_voided_procedure_puts_its_report_back_on_the_missing_list(
    engine: Engine, service: ProcedureLog, admin: Actor, importer: DoseImporter, tmp_path: Path
) -> None:
    record_id = log(service, admin, dap_value=15)
    importer.import_path(make_report(tmp_path))
    assert len(review.list_discrepancies(engine, QUALITY)) == 1
    service.void(record_id, admin, version=2, reason="wrong patient")
    assert review.list_discrepancies(engine, QUALITY).empty  # nothing left to review
    missing = review.list_missing(engine, QUALITY)
    assert missing["voided_record_id"].tolist() == [record_id]
    replacement = log(service, admin, patient_id="MRN-1")
    relinked = DoseImporter(engine, admin).reconcile_unmatched()
    assert [r.record_id for r in relinked] == [replacement]


# --- listings and review ----------------------------------------------------------------------

def test_missing_list_shows_the_mrn_only_to_roles_with_phi(
    engine: Engine, importer: DoseImporter, tmp_path: Path
) -> None:
    importer.import_path(make_report(tmp_path))
    hidden = review.list_missing(engine, QUALITY).iloc[0]
    shown = review.list_missing(engine, RSO).iloc[0]
    assert hidden["patient_id"] is None and hidden["patient_ref"].startswith("P")
    assert shown["patient_id"] == "MRN-1" and shown["patient_ref"] == hidden["patient_ref"]


def test_completeness_is_counted_per_device(
    engine: Engine, service: ProcedureLog, admin: Actor, importer: DoseImporter, tmp_path: Path
) -> None:
    log(service, admin)
    importer.import_path(make_report(tmp_path, "1.dcm"))
    importer.import_path(make_report(tmp_path, "2.dcm", accession="ACC-9", patient="MRN-9"))
    importer.import_path(make_report(tmp_path, "3.dcm", accession="ACC-8", serial="OTHER",
                                     patient="MRN-8"))
    frame = review.completeness(engine, QUALITY)
    rows = {r.serial: (r.reports, r.matched) for r in frame.itertuples()}
    assert rows == {"SN-42": (2, 1), "OTHER": (1, 0)}
    overall = review.completeness_rate(frame)
    assert overall["rate"] == pytest.approx(1 / 3)


def test_listings_need_dashboard_permission(engine: Engine) -> None:
    tech = Actor("tech1", Role.TECHNOLOGIST)
    for listing in (review.list_missing, review.list_discrepancies, review.completeness):
        with pytest.raises(PermissionDenied):
            listing(engine, tech)


def test_reviewing_a_discrepancy_is_audited_once(
    engine: Engine, service: ProcedureLog, admin: Actor, importer: DoseImporter, tmp_path: Path
) -> None:
    log(service, admin, dap_value=15)
    importer.import_path(make_report(tmp_path))
    (found,) = open_discrepancies(engine)
    with pytest.raises(PermissionDenied):
        review.review_discrepancy(engine, Actor("tech1", Role.TECHNOLOGIST), found.id, "ok")
    with pytest.raises(ValidationFailed):
        review.review_discrepancy(engine, QUALITY, found.id, "  ")
    review.review_discrepancy(engine, QUALITY, found.id, "typed in dGy·cm²; record amended")
    (reviewed,) = open_discrepancies(engine)
    assert (reviewed.status, reviewed.reviewed_by) == ("reviewed", "qo")
    assert review.list_discrepancies(engine, QUALITY).empty
    assert len(review.list_discrepancies(engine, QUALITY, status="reviewed")) == 1
    acknowledged = events(engine, "dose_discrepancy", found.id)
    assert [e.action for e in acknowledged] == ["acknowledge"]
    with pytest.raises(ValidationFailed, match="reviewed"):
        review.review_discrepancy(engine, QUALITY, found.id, "again")
