"""Figures from the C-arm's irradiation events (audit.analytics.events), on SQLite and
PostgreSQL: pulsed use beside the form, pulse rates, events per procedure, split studies."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom.uid import generate_uid
from sqlalchemy import Engine

from audit.analytics import events_per_procedure, pulse_rates, pulsed_use, split_reports
from audit.auth import Actor
from audit.dose_reports.store import DoseImporter
from audit.errors import PermissionDenied
from audit.log.service import ProcedureLog
from audit.vocab import Role
from tests.dose_reports.dose_helpers import log_procedure
from tests.dose_reports.rdsr_builder import (
    CONTINUOUS,
    STATIONARY,
    EventSpec,
    PlaneSpec,
    build_rdsr,
    fluoro_totals,
    num,
    write,
)


def timed(seconds: float, **options: object) -> EventSpec:
    return EventSpec(extras=(num("113742", seconds, "s", "Irradiation Duration"),),
                     **options)  # type: ignore[arg-type]


def report(folder: Path, name: str, accession: str | None, patient: str,
           events: list[EventSpec], dap: float = 1.5, time_s: float = 60.0,
           dose: float = 10.0) -> Path:
    ds = build_rdsr(planes=[PlaneSpec(totals=fluoro_totals(dap, fluoro_time=time_s,
                                                           dose=dose))],
                    events=events, study_uid=generate_uid())
    ds.PatientID = patient
    if accession is None:
        del ds.AccessionNumber
    else:
        ds.AccessionNumber = accession
    return write(ds, folder / name)


@pytest.fixture
def imported(engine: Engine, service: ProcedureLog, admin: Actor, tmp_path: Path) -> dict:
    """Procedure A (form: pulsed) with one report; procedure B (form: not pulsed) whose study
    came as two reports; and a report with no logged procedure."""
    a = log_procedure(service, admin, patient_id="MRN-A", accession_number="ACC-A",
                      pulsed_fluoro=True, pulse_rate_pps=8)
    b = log_procedure(service, admin, patient_id="MRN-B", accession_number="ACC-B",
                      pulsed_fluoro=False, dap_value=3.0, fluoro_time_s=120,
                      air_kerma_mgy=20.0)
    importer = DoseImporter(engine, admin)
    results = [
        importer.import_path(report(tmp_path, "a.dcm", "ACC-A", "MRN-A", [
            timed(10, pulse_rate=7.5), timed(10, pulse_rate=7.5),
            timed(20, mode=CONTINUOUS, pulse_rate=None),
            EventSpec(STATIONARY, "DCM", None, None)])),
        importer.import_path(report(tmp_path, "b1.dcm", "ACC-B", "MRN-B",
                                    [timed(30, pulse_rate=15)], 1.5, 60, 10)),
        importer.import_path(report(tmp_path, "b2.dcm", "ACC-B", "MRN-B",
                                    [timed(30, pulse_rate=15)], 1.5, 60, 10)),
        importer.import_path(report(tmp_path, "x.dcm", None, "MRN-X",
                                    [timed(5, pulse_rate=30)])),
    ]
    assert [r.status for r in results] == ["ok"] * 4
    assert [r.record_id for r in results] == [a, b, b, None]
    return {"a": a, "b": b}


def test_pulsed_use_comes_from_the_events_beside_the_form(
        engine: Engine, admin: Actor, imported: dict) -> None:
    frame = pulsed_use(engine, admin).set_index("procedure")
    assert list(frame.index) == ["TFESI", "not in the log", "all procedures"]
    tfesi = frame.loc["TFESI"]
    assert (tfesi["reports"], tfesi["fluoro_events"]) == (3, 5)
    assert tfesi["pulsed_event_share"] == pytest.approx(4 / 5)
    assert tfesi["fluoro_event_time_s"] == pytest.approx(100.0)
    assert tfesi["pulsed_time_share"] == pytest.approx(80 / 100)
    assert tfesi["low_rate_time_share"] == pytest.approx(20 / 80)  # 7.5 pulses/s or less
    assert tfesi["form_recorded"] == 2 and tfesi["form_pulsed_share"] == pytest.approx(0.5)
    unlogged = frame.loc["not in the log"]
    assert unlogged["pulsed_event_share"] == 1.0 and unlogged["form_recorded"] == 0
    assert frame.loc["all procedures", "fluoro_events"] == 6


def test_pulse_rates_are_counted_per_rate(engine: Engine, admin: Actor, imported: dict) -> None:
    rates = pulse_rates(engine, admin)
    assert rates["pulse_rate_pps"].tolist() == [7.5, 15.0, 30.0]
    assert rates["fluoro_events"].tolist() == [2, 2, 1]
    assert rates["time_share"].tolist() == pytest.approx([20 / 85, 60 / 85, 5 / 85])


def test_events_per_procedure_counts_a_split_study_once_whole(
        engine: Engine, admin: Actor, imported: dict) -> None:
    frame = events_per_procedure(engine, admin)
    assert frame.to_dict("records") == [{
        "procedure": "TFESI", "procedures": 2, "median_events": 3.0,
        "median_fluoro_events": 2.5, "median_acquisition_events": 0.5, "events": 6}]


def test_a_study_split_into_two_reports_is_compared_with_the_log_by_their_sum(
        engine: Engine, admin: Actor, imported: dict) -> None:
    frame = split_reports(engine, admin)
    assert frame["record_id"].tolist() == [imported["b"]]
    row = frame.iloc[0]
    assert row["reports"] == 2 and bool(row["agrees"])
    assert (row["report_dap_gycm2"], row["dap_gycm2"]) == (pytest.approx(3.0), 3.0)
    assert (row["report_fluoro_time_s"], row["fluoro_time_s"]) == (120.0, 120.0)
    assert row["air_kerma_mgy_difference"] == pytest.approx(0.0)


def test_the_figures_need_the_dashboard_permission(engine: Engine) -> None:
    with pytest.raises(PermissionDenied):
        pulsed_use(engine, Actor("tech1", Role.TECHNOLOGIST))


def test_no_events_gives_empty_frames(engine: Engine, admin: Actor) -> None:
    assert pulsed_use(engine, admin).empty and events_per_procedure(engine, admin).empty
    assert pulse_rates(engine, admin).empty and split_reports(engine, admin).empty


def test_report_events_gives_the_same_figures_as_json(
        db_url: str, imported: dict) -> None:
    import json
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-m", "audit.cli", "--db", db_url, "report", "events",
                          "--format", "json"], capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr
    payload = json.loads(run.stdout)
    tfesi = {row["procedure"]: row for row in payload["pulsed_use"]}["TFESI"]
    assert tfesi["fluoro_events"] == 5 and tfesi["pulsed_event_share"] == pytest.approx(0.8)
    assert [row["pulse_rate_pps"] for row in payload["pulse_rates"]] == [7.5, 15.0, 30.0]
    assert payload["events_per_procedure"][0]["median_events"] == 3.0
    assert [row["record_id"] for row in payload["split_reports"]] == [imported["b"]]
    assert payload["split_reports"][0]["agrees"] is True
