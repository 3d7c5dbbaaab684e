"""The Patient history and Committee report pages (Streamlit AppTest, both databases): the MRN
asked in a form (never in the address), every search audited, the letter and the report offered
for download, and the roles that may not open them refused."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
import streamlit as st
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from streamlit.testing.v1 import AppTest

from audit.auth import Actor
from audit.storage.models import AuditEvent
from audit.vocab import Role
from dashboard.navigation import PAGES

VIEWS = Path(__file__).resolve().parents[2] / "dashboard" / "views"


@pytest.fixture
def app_db(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("FLUORO_AUDIT_DB", db_url)
    st.cache_resource.clear()
    st.cache_data.clear()
    yield db_url
    st.cache_resource.clear()
    st.cache_data.clear()


def page(name: str, actor: Actor) -> AppTest:
    app = AppTest.from_file(str(VIEWS / name), default_timeout=60)
    app.session_state["actor"] = actor
    return app.run()


def audited(engine: Engine, entity: str) -> list[AuditEvent]:
    with Session(engine) as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.entity == entity)))


def test_pages_are_registered_with_their_permissions() -> None:
    specs = {spec.module: spec.permission.value for spec in PAGES}
    assert specs["patient_history.py"] == "patient_history"
    assert specs["committee_report.py"] == "view_dashboards"


def test_rso_finds_a_patient_and_downloads_the_letter(app_db: str, engine: Engine,
                                                      patient: str) -> None:
    at = page("patient_history.py", Actor("rso1", Role.RSO))
    assert not at.exception
    assert audited(engine, "patient_history") == []  # nothing read before a search
    at.text_input[0].input(patient)
    at.button[0].click().run()
    assert not at.exception and not at.error
    assert dict(at.query_params) == {}
    procedures = at.dataframe[0].value
    assert procedures["levels"].tolist() == ["L4, L5", "C6", "L4-L5"]
    assert len(audited(engine, "patient_history")) == 1
    at.run()  # a rerun draws the stored history: no second read
    assert len(audited(engine, "patient_history")) == 1
    next(b for b in at.button if b.label == "Prepare letter").click().run()
    assert not at.exception and not at.error
    assert len(audited(engine, "patient_letter")) == 1
    assert any("recorded in the audit trail" in c.value for c in at.caption)


def test_an_unknown_mrn_is_said_in_plain_words(app_db: str, engine: Engine,
                                               patient: str) -> None:
    at = page("patient_history.py", Actor("boss", Role.ADMIN))
    at.text_input[0].input("NOBODY")
    at.button[0].click().run()
    assert "no patient has that medical record number" in at.error[0].value


@pytest.mark.parametrize("role", [Role.TECHNOLOGIST, Role.QUALITY_OFFICER, Role.PHYSICIAN])
def test_patient_history_is_refused(app_db: str, role: Role) -> None:
    at = page("patient_history.py", Actor("someone", role))
    assert "cannot open this page" in at.error[0].value
    assert not at.text_input


def test_quality_officer_prepares_the_committee_report(app_db: str, engine: Engine,
                                                       patient: str) -> None:
    at = page("committee_report.py", Actor("quality", Role.QUALITY_OFFICER))
    assert not at.exception
    at.date_input[0].set_value(date(2026, 1, 1))
    at.date_input[1].set_value(date(2026, 6, 30))
    at.checkbox[0].check()
    at.button[0].click().run()
    assert not at.exception and not at.error
    events = audited(engine, "committee_report")
    assert len(events) == 1 and events[0].after["pseudonymised"] is True
    assert any("4 records, 2026-01-01 to 2026-06-30" in c.value for c in at.caption)


def test_committee_report_is_refused_to_a_technologist(app_db: str) -> None:
    at = page("committee_report.py", Actor("tech1", Role.TECHNOLOGIST))
    assert "cannot open this page" in at.error[0].value
    assert not at.button
