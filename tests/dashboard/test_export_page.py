"""The Export page (Streamlit AppTest, both databases): who sees the PHI option, the row count
before export, and a download that verifies."""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

import pytest
import streamlit as st
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from streamlit.testing.v1 import AppTest

from audit.auth import Actor, add_user, cli_actor
from audit.export.signing import TrustedKey
from audit.export.verify import verify_export
from audit.keys import load_keys
from audit.log.service import ProcedureLog
from audit.storage.models import AuditEvent
from audit.vocab import Role
from dashboard.navigation import PAGES
from tests.conftest import valid_record
from tests.dashboard.conftest import signed_in

PAGE = str(Path(__file__).resolve().parents[2] / "dashboard" / "views" / "export.py")


@pytest.fixture
def page(db_url: str, service: ProcedureLog, admin: Actor,
         monkeypatch: pytest.MonkeyPatch) -> AppTest:
    service.log_many([valid_record(), valid_record(performed_at="2026-03-20T10:00:00Z",
                                                   patient_id="MRN0002", physician="Ελένη")],
                     admin, create_missing=True)
    monkeypatch.setenv("FLUORO_AUDIT_DB", db_url)
    st.cache_resource.clear()  # the engine is per process: point it at this test's database
    st.cache_data.clear()
    return AppTest.from_file(PAGE, default_timeout=30)


def run_as(page: AppTest, role: Role) -> AppTest:
    page.session_state["actor"] = Actor(f"{role.value}1", role)
    return page.run()


def labels(at: AppTest) -> list[str]:
    return [c.label for c in at.checkbox]


def test_quality_officer_is_offered_no_phi(page: AppTest) -> None:
    at = run_as(page, Role.QUALITY_OFFICER)
    assert not at.exception
    assert "Include patient_id (MRN)" not in labels(at)
    assert any("patient_ref" in c.value for c in at.caption)


def test_rso_is_offered_phi(page: AppTest) -> None:
    at = run_as(page, Role.RSO)
    assert "Include patient_id (MRN)" in labels(at)


def test_technologist_cannot_open_the_page(page: AppTest) -> None:
    at = run_as(page, Role.TECHNOLOGIST)
    assert [e.value for e in at.error] == ["Your role (technologist) cannot open this page."]
    assert not at.button


@pytest.mark.parametrize(("role", "shown"), [
    (Role.QUALITY_OFFICER, True), (Role.RSO, True), (Role.ADMIN, True),
    (Role.TECHNOLOGIST, False), (Role.PHYSICIAN, False),
])
def test_navigation_offers_the_page_to_exporting_roles(role: Role, shown: bool) -> None:
    actor = Actor("u", role)  # pages_for keeps exactly the specs the actor's role can open
    assert any(p.module == "export.py" and actor.can(p.permission) for p in PAGES) is shown


def test_row_count_follows_the_filters(page: AppTest) -> None:
    at = run_as(page, Role.QUALITY_OFFICER)
    assert at.metric[0].label == "Rows to export" and at.metric[0].value == "2"
    at.selectbox[2].select("Ελένη").run()  # physician
    assert at.metric[0].value == "1"


def test_an_export_produces_a_download_that_verifies(page: AppTest, tmp_path: Path,
                                                     engine: Engine) -> None:
    at = run_as(page, Role.RSO)
    phi = next(c for c in at.checkbox if c.label == "Include patient_id (MRN)")
    phi.check().run()
    at.multiselect[0].select("audit_trail").run()
    at.button[0].click().run()
    assert not at.exception and not at.error
    assert [b.label for b in at.download_button] == ["Download zip"]
    download = at.session_state["export_download"]
    assert download["file_name"].endswith(".zip") and download["include_phi"] is True
    with zipfile.ZipFile(io.BytesIO(download["data"])) as archive:
        archive.extractall(tmp_path)
        folder = tmp_path / archive.namelist()[0].split("/")[0]
    assert verify_export(folder).ok
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.txt", "SHA256SUMS", "audit_trail.csv", "data_dictionary.csv",
        "manifest.json", "manifest.sig", "procedures.csv", "signing_public_key.txt"]
    assert "MRN0002" in (folder / "procedures.csv").read_text("utf-8-sig")
    assert "ready (with patient_id)" in at.success[0].value
    fingerprint = load_keys(engine).fingerprint()
    assert fingerprint in at.success[0].value and download["fingerprint"] == fingerprint
    report = verify_export(folder, trusted=TrustedKey(load_keys(engine).public_key_b64(),
                                                      "this site's key"), engine=engine)
    assert report.ok, report.problems
    with Session(engine) as s:  # the same runner: audited before its first byte
        events = s.scalars(select(AuditEvent).where(
            AuditEvent.action == "export").order_by(AuditEvent.id)).all()
    assert [(e.actor, e.after["stage"], e.after["include_phi"]) for e in events] == [
        ("rso1", "started", True), ("rso1", "completed", True)]
    name = download["file_name"].removesuffix(".zip")  # no copy stays on the server's disk
    assert not list(Path(events[0].after["target"]).parent.glob(f"*{name}*"))


def test_reached_through_the_app_navigation(page: AppTest, engine: Engine) -> None:
    """Through the real app: a signed-in RSO account (the app checks it is still active)."""
    add_user(engine, cli_actor(), "rso1", Role.RSO, "correct horse battery")
    app = str(Path(PAGE).parent.parent / "app.py")
    at = AppTest.from_file(app, default_timeout=30)
    signed_in(at, "rso1", Role.RSO)
    at.run()
    at.switch_page("views/export.py").run()
    assert not at.exception
    assert [t.value for t in at.title] == ["Audit export"]


def test_summaries_are_offered_and_exported_with_the_filters(page: AppTest,
                                                             tmp_path: Path) -> None:
    at = run_as(page, Role.QUALITY_OFFICER)
    assert at.multiselect[0].options == [
        "procedures.csv: The procedure log, one row per procedure",
        "audit_trail.csv: Audit events of the period (who changed what, when)",
        "compliance.csv: Contrast-confirmation compliance, overall and by physician, room, "
        "procedure and month",
        "dose_by_procedure.csv: Dose statistics by procedure beside the local reference levels "
        "(DRL, achievable, typical)",
        "reference_levels.csv: Reference levels in use: published, adopted and the SRDLs, each "
        "with its source",
        "alerts.csv: Dose alerts with their acknowledgement"]
    at.multiselect[0].unselect("procedures").select("compliance").select("alerts").run()
    assert [s.label for s in at.selectbox] == ["Site", "Room", "Physician", "Procedure"]
    assert "Include voided records (with their status and reason)" not in labels(at)
    at.selectbox[2].select("Ελένη").run()  # physician
    at.button[0].click().run()
    assert not at.exception and not at.error
    download = at.session_state["export_download"]
    with zipfile.ZipFile(io.BytesIO(download["data"])) as archive:
        archive.extractall(tmp_path)
        folder = tmp_path / archive.namelist()[0].split("/")[0]
    assert verify_export(folder).ok
    assert {"compliance.csv", "alerts.csv"} <= {p.name for p in folder.iterdir()}
    assert "procedures.csv" not in {p.name for p in folder.iterdir()}
    with open(folder / "compliance.csv", encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows[0]["eligible"] == "1"  # Ελένη's one TFESI
    assert [r["group"] for r in rows if r["grouping"] == "physician"] == ["Ελένη"]
