"""The "Dose reports" upload page and the "Reconciliation" view, run with Streamlit's AppTest
against a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import streamlit as st
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from streamlit.testing.v1 import AppTest

from audit.auth import Actor
from audit.dose_reports.store import DoseImporter
from audit.log.service import ProcedureLog
from audit.storage.models import DoseDiscrepancy, DoseReport
from audit.vocab import Role
from dashboard.navigation import PAGES
from tests.dose_reports.dose_helpers import REAL_FILES, log_procedure, make_report

VIEWS = Path(__file__).resolve().parents[2] / "dashboard" / "views"
TECH = Actor("tech1", Role.TECHNOLOGIST)
QUALITY = Actor("qo", Role.QUALITY_OFFICER)


@pytest.fixture
def app_db(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Point the app's engine at this test's database (the engine is a cached resource)."""
    monkeypatch.setenv("FLUORO_AUDIT_DB", db_url)
    st.cache_resource.clear()
    st.cache_data.clear()
    yield db_url
    st.cache_resource.clear()
    st.cache_data.clear()


def page(name: str, actor: Actor) -> AppTest:
    app = AppTest.from_file(str(VIEWS / name), default_timeout=30)
    app.session_state["actor"] = actor
    return app.run()


def test_both_pages_are_registered_with_their_permissions() -> None:
    specs = {spec.module: spec.permission.value for spec in PAGES}
    assert specs["dose_reports.py"] == "import"
    assert specs["reconciliation.py"] == "view_dashboards"


# --- upload -----------------------------------------------------------------------------------

def test_upload_imports_each_file_and_shows_its_outcome(app_db: str, engine: Engine) -> None:
    app = page("dose_reports.py", TECH)
    assert not app.exception
    uploads = [(p.name, p.read_bytes(), "application/dicom") for p in REAL_FILES]
    uploads.append(("notes.txt", b"not a dose report", "text/plain"))
    app.file_uploader[0].set_value(uploads)
    app.button[0].click().run()
    assert not app.exception
    table = app.dataframe[0].value
    assert table["status"].tolist() == ["Imported", "Imported", "Imported", "Rejected"]
    assert table.loc[3, "details"].startswith("unreadable or non-DICOM")
    assert table["dap_gycm2"].iloc[2] == pytest.approx(2.7902)
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Imported"] == "3" and metrics["Rejected"] == "1"

    app.file_uploader[0].set_value(uploads[:3])
    app.button[0].click().run()
    assert app.dataframe[0].value["status"].tolist() == ["Duplicate"] * 3
    assert "Nothing new" in app.success[0].value


def test_upload_dry_run_saves_nothing(app_db: str, engine: Engine) -> None:
    app = page("dose_reports.py", TECH)
    app.file_uploader[0].set_value((REAL_FILES[0].name, REAL_FILES[0].read_bytes(),
                                    "application/dicom"))
    app.checkbox[0].check()
    app.button[0].click().run()
    assert "nothing was saved" in app.info[0].value
    assert app.dataframe[0].value["status"].tolist() == ["Imported"]
    with Session(engine) as session:
        assert session.scalar(select(DoseReport.id)) is None


def test_upload_page_is_refused_to_a_physician(app_db: str) -> None:
    app = page("dose_reports.py", Actor("dr", Role.PHYSICIAN))
    assert "cannot open this page" in app.error[0].value
    assert not app.file_uploader


# --- reconciliation ---------------------------------------------------------------------------

@pytest.fixture
def reconciled(engine: Engine, service: ProcedureLog, admin: Actor, tmp_path: Path) -> int:
    """One procedure with a DAP typed 10x too high and its report; one report not logged."""
    record_id = log_procedure(service, admin, patient_id="MRN-1", accession_number="ACC-1",
                              performed_at="2024-03-15T09:00:00+00:00", dap_value=15,
                              fluoro_time_s=60, air_kerma_mgy=12)
    importer = DoseImporter(engine, admin)
    importer.import_path(make_report(tmp_path, "logged.dcm"))
    importer.import_path(make_report(tmp_path, "unlogged.dcm", accession="ACC-9",
                                     patient="MRN-9"))
    return record_id


def test_reconciliation_shows_discrepancies_missing_reports_and_completeness(
    app_db: str, reconciled: int
) -> None:
    app = page("reconciliation.py", QUALITY)
    assert not app.exception
    assert headline(app) == ["1 dose report has no logged case (of 2 imported).",
                             "Every logged case has a dose report."]
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Log completeness"] == "50%"
    assert metrics["Dose reports without a logged case"] == "1"
    assert metrics["Logged cases without a dose report"] == "0"
    assert metrics["Open discrepancies"] == "1"
    discrepancies, missing, _, by_device = (frame.value for frame in app.dataframe[:4])
    assert discrepancies["record_id"].tolist() == [reconciled]
    assert discrepancies["field"].tolist() == ["DAP (Gy·cm²)"]
    assert "unit mix-up" in discrepancies["likely_cause"].iloc[0]
    assert missing["accession_number"].tolist() == ["ACC-9"]
    assert missing["patient_id"].isna().all()  # no PHI for the quality officer
    assert by_device["rate"].tolist() == [0.5]
    record = app.dataframe[4].value
    assert dict(zip(record["field"], record["value"], strict=True))["Record"] == str(
        reconciled)


def headline(app: AppTest) -> list[str]:
    """The page's headline as a person reads it (its first Markdown, bold marks removed)."""
    return [line.replace("**", "").strip() for line in app.markdown[0].value.split("  \n")]


def by_room_frame(app: AppTest) -> pd.DataFrame:
    """The "Logged without a dose report" table."""
    [frame] = [f.value for f in app.dataframe if "without_report" in f.value.columns]
    return frame


def test_the_headline_says_in_words_what_does_not_match_both_ways(
    app_db: str, engine: Engine, service: ProcedureLog, admin: Actor, tmp_path: Path
) -> None:
    """Issue 12: three dose reports that match no logged case read "3 dose reports have no
    logged case", not "Log completeness 0%"; the logged cases with no report are counted too."""
    for n in range(2):  # logged, but on another day than any report
        log_procedure(service, admin, patient_id=f"MRN-L{n}", accession_number=f"ACC-L{n}",
                      performed_at="2024-03-20T09:00:00+00:00")
    importer = DoseImporter(engine, admin)
    for n in range(3):
        importer.import_path(make_report(tmp_path, f"r{n}.dcm", accession=f"ACC-R{n}",
                                         patient=f"MRN-R{n}"))
    app = page("reconciliation.py", QUALITY)
    assert not app.exception
    assert headline(app) == ["3 dose reports have no logged case (of 3 imported).",
                             "2 logged cases have no dose report (of 2 logged)."]
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Dose reports without a logged case"] == "3"
    assert metrics["Logged cases without a dose report"] == "2"
    by_room = by_room_frame(app)
    assert by_room[["room", "logged", "without_report"]].values.tolist() == [["OR 1", 2, 2]]

    # A room whose C-arm sends reports counts; a room whose C-arm never did does not.
    log_procedure(service, admin, patient_id="MRN-R0", accession_number="ACC-R0",
                  performed_at="2024-03-15T09:30:00+00:00", room="OR 2")
    assert len(DoseImporter(engine, admin).reconcile_unmatched()) == 1
    st.cache_data.clear()  # written outside the app, which clears it after its own writes
    app = page("reconciliation.py", QUALITY)
    assert headline(app) == [
        "2 dose reports have no logged case (of 3 imported).",
        "Every logged case in the rooms whose C-arm sends dose reports has a dose report."]
    by_room = by_room_frame(app).set_index("room")
    assert by_room.loc["OR 1", "counted"] == False  # noqa: E712 - a numpy bool
    assert by_room.loc["OR 2", "without_report"] == 0


def test_without_dose_reports_the_headline_says_so(app_db: str, service: ProcedureLog,
                                                   admin: Actor) -> None:
    log_procedure(service, admin)
    app = page("reconciliation.py", QUALITY)
    assert headline(app) == ["No dose report imported for this period: nothing to compare "
                             "the log with yet. The C-arm's reports are imported on the Dose "
                             "reports page."]


def test_a_quality_officer_marks_a_discrepancy_reviewed(
    app_db: str, engine: Engine, reconciled: int
) -> None:
    app = page("reconciliation.py", QUALITY)
    app.text_input[0].input("typed in dGy·cm²; record amended")
    app.button(key="FormSubmitter:review-Mark reviewed").click().run()
    assert not app.exception
    assert "reviewed" in app.success[0].value
    assert {m.label: m.value for m in app.metric}["Open discrepancies"] == "0"
    with Session(engine) as session:
        status, note = session.execute(
            select(DoseDiscrepancy.status, DoseDiscrepancy.review_note)).one()
    assert (status, note) == ("reviewed", "typed in dGy·cm²; record amended")


def test_match_again_links_a_procedure_logged_later(
    app_db: str, engine: Engine, service: ProcedureLog, admin: Actor, reconciled: int
) -> None:
    late = log_procedure(service, admin, patient_id="MRN-9", accession_number="ACC-9",
                         performed_at="2024-03-15T09:00:00+00:00", dap_value=1.5,
                         fluoro_time_s=60, air_kerma_mgy=12)
    app = page("reconciliation.py", QUALITY)
    [button] = [b for b in app.button if b.label == "Match again"]
    button.click().run()
    assert "1 reports newly linked" in app.success[0].value
    assert {m.label: m.value for m in app.metric}["Log completeness"] == "100%"
    with Session(engine) as session:
        linked = session.scalar(select(DoseReport.procedure_id)
                                .where(DoseReport.accession_number == "ACC-9"))
    assert linked == late


def test_reconciliation_is_refused_to_a_technologist(app_db: str) -> None:
    app = page("reconciliation.py", TECH)
    assert "cannot open this page" in app.error[0].value
