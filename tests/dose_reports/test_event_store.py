"""Per-event detail stored with its report (issue 13), on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from audit.auth import Actor
from audit.dose_reports.store import DoseImporter
from audit.storage.models import DoseReport, IrradiationEvent

from .dose_helpers import REAL_FILES, counts, make_report
from .test_event_units import set_unit


@pytest.fixture
def importer(engine: Engine, admin: Actor) -> DoseImporter:
    return DoseImporter(engine, admin)


def stored_events(engine: Engine, report_id: int) -> list[IrradiationEvent]:
    with Session(engine) as session:
        rows = list(session.scalars(select(IrradiationEvent)
                                    .where(IrradiationEvent.dose_report_id == report_id)
                                    .order_by(IrradiationEvent.sequence)))
        session.expunge_all()
        return rows


def test_every_real_file_stores_one_row_per_irradiation_event(
        engine: Engine, importer: DoseImporter) -> None:
    for path in REAL_FILES:
        result = importer.import_path(path)
        assert result.status == "ok" and result.warnings == []
        rows = stored_events(engine, result.report_id)
        with Session(engine) as session:
            report = session.get(DoseReport, result.report_id)
            assert report is not None
            assert len(rows) == report.events == result.events
            assert [r.sequence for r in rows] == list(range(1, report.events + 1))
            fluoro = sum(r.event_type == "fluoroscopy" for r in rows)
            acquisitions = sum(r.event_type in ("stationary", "stepping", "rotational")
                               for r in rows)
            assert (fluoro, acquisitions) == (report.fluoro_events, report.acquisition_events)
            pulsed = sum(r.fluoro_mode == "pulsed" for r in rows if r.event_type == "fluoroscopy")
            assert pulsed / fluoro == pytest.approx(report.pulsed_fluoro_share)
            assert report.warnings is None
        assert all(r.event_uid and r.started_at is not None for r in rows)
        assert all(r.started_at.tzinfo is not None for r in rows)  # UTC, like every time
    siemens = stored_events(engine, 3)
    first = siemens[0]
    assert (first.event_type, first.fluoro_mode, first.pulse_rate_pps, first.kvp,
            first.tube_current_ma, first.plane) == ("fluoroscopy", "pulsed", 7.5, 77.0, 79.5,
                                                    "single")
    assert first.field_area_cm2 == pytest.approx(1105.3067)  # 0.11053067 m2
    assert first.dap_gycm2 == pytest.approx(0.542 / 10)  # 5.42e-6 Gy.m2
    assert first.air_kerma_mgy == pytest.approx(0.13)
    assert first.exposure_time_s == pytest.approx(0.1221)  # 122.1 ms
    assert (first.primary_angle_deg, first.secondary_angle_deg) == (0.2, -0.3)


def test_a_dry_run_a_duplicate_and_a_rejected_file_store_no_event(
        engine: Engine, importer: DoseImporter, tmp_path: Path) -> None:
    path = make_report(tmp_path, events=4)
    before = counts(engine)
    assert importer.import_path(path, dry_run=True).status == "ok"
    assert counts(engine) == before
    assert importer.import_path(path).status == "ok"
    after = counts(engine)
    assert after["irradiation_event"] == before["irradiation_event"] + 4
    assert importer.import_path(path).status == "duplicate"
    assert counts(engine) == after


def test_a_superseded_report_keeps_its_events(
        engine: Engine, importer: DoseImporter, tmp_path: Path) -> None:
    first = importer.import_path(make_report(tmp_path, "a.dcm", events=2, study_uid="1.2.3"))
    second = importer.import_path(make_report(tmp_path, "b.dcm", events=5, study_uid="1.2.3"))
    assert second.supersedes == [first.report_id]
    assert [len(stored_events(engine, r.report_id)) for r in (first, second)] == [2, 5]


def test_an_unknown_pulse_rate_unit_is_stored_as_a_warning_and_printed_by_import_rdsr(
        db_url: str, engine: Engine, tmp_path: Path) -> None:
    ds = pydicom.dcmread(REAL_FILES[2])  # Siemens: 24 pulse rates
    set_unit(ds, "113791", "imp/min/whatever")
    path = tmp_path / "odd-unit.dcm"
    ds.save_as(path)
    run = subprocess.run([sys.executable, "-m", "audit.cli", "--db", db_url, "import", "rdsr",
                          str(path), "--json"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    line = json.loads(run.stdout)
    expected = ("Pulse Rate (113791) left out of 24 irradiation events: unit "
                "'imp/min/whatever' is not a known pulse/s unit")
    assert line["status"] == "ok" and line["warnings"] == [expected]
    assert line["dap_total_gycm2"] == pytest.approx(2.7902)
    with Session(engine) as session:
        report = session.get(DoseReport, line["report_id"])
        assert report is not None and report.warnings == [expected]
        pulse_rates = session.scalar(select(func.count(IrradiationEvent.pulse_rate_pps)))
        assert pulse_rates == 0
