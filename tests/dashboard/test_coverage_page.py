"""Issue 15 part B on the pages: the Coverage and safeguards page shows each rule's compliance
as `report rules --format json` gives it (and as counted by hand in tests/rules), with the
exceptions one click away; the record's detail takes a follow-up from a physician, not from a
quality officer; Admin → Rule packs switches a pack (audited)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from sqlalchemy import Engine, select

from audit.auth import Actor, cli_actor
from audit.log.service import ProcedureLog
from audit.rules.follow_up import list_follow_ups
from audit.storage.engine import read_session
from audit.storage.models import AuditEvent
from audit.vocab import Role
from dashboard.navigation import PAGES
from tests.conftest import valid_record
from tests.dashboard.conftest import AppFactory, page, texts
from tests.dashboard.test_log_procedure import FORM, fill, log_page, open_form, save
from tests.dashboard.test_records_page import open_record, records_page, seed, submit
from tests.rules.helpers import packs_on
from tests.rules.test_report_rules import fixture_history


def test_the_coverage_page_shows_the_report_rules_figures(
        app: AppFactory, people: dict[str, Actor], service: ProcedureLog, engine: Engine,
        db_url: str) -> None:
    packs_on(engine)
    fixture_history(engine, service)
    done = subprocess.run([sys.executable, "-m", "audit.cli", "--db", db_url, "report", "rules",
                           "--format", "json"], capture_output=True, text=True, check=False,
                          timeout=180)
    assert done.returncode == 0, done.stderr
    cli = {r["title"]: (r["eligible"], r["exceptions"], round(r["compliance_rate"], 6))
           for r in json.loads(done.stdout)["rules"]}
    at = app("quality").run().switch_page(page("coverage")).run()
    assert not at.exception, at.exception
    assert texts(at.title) == ["Coverage and safeguards"]
    shown = at.dataframe[0].value  # shares drawn as percentages (dashboard.tables)
    assert {r["title"]: (r["eligible"], r["exceptions"], round(r["compliance_rate"] / 100, 6))
            for r in shown.to_dict("records")} == cli
    # the hand count of tests/rules/test_report_rules.py
    assert cli["a repeat ESI follows documented relief of >= 50% for >= 3 months from the "
               "previous one"][:2] == (5, 4)
    assert {m.label: m.value for m in at.metric}["Exceptions"] == "7"
    # the exceptions, one click away
    at.selectbox(key="cov_rule").set_value("cervical_ilesi_level").run()
    exceptions = at.dataframe[1].value
    assert list(exceptions["message"]) == [
        "cervical ILESI at C4-C5: above C6-C7 (C7-T1 is preferred)"]
    assert {"By physician", "By month"} <= set(texts(at.subheader))


def test_the_coverage_page_is_for_quality_rso_and_admin() -> None:
    [spec] = [p for p in PAGES if p.module == "coverage.py"]
    allowed = {role for role in Role if Actor("someone", role).can(spec.permission)}
    assert allowed == {Role.QUALITY_OFFICER, Role.RSO, Role.ADMIN}


def test_a_physician_records_a_follow_up_and_a_quality_officer_may_not(
        app: AppFactory, people: dict[str, Actor], service: ProcedureLog,
        engine: Engine) -> None:
    [rid] = seed(service, 1)
    at = open_record(records_page(app, "quality"), rid)
    assert not at.exception
    assert not [w for w in at.number_input if w.key == f"fu_relief_{rid}"]
    at = open_record(records_page(app, "drchen"), rid)
    assert "No follow-up recorded." in texts(at.caption)
    at.number_input(key=f"fu_relief_{rid}").set_value(60)
    at.number_input(key=f"fu_days_{rid}").set_value(120)
    at.date_input(key=f"fu_day_{rid}").set_value("2026-07-15")
    submit(at, "Record follow-up")
    assert not at.exception and not at.error, texts(at.error)
    [found] = list_follow_ups(engine, cli_actor(), rid)
    assert (found["relief_percent"], found["relief_days"], found["created_by"]) == \
        (60, 120, "drchen")


def test_the_admin_switches_a_rule_pack_audited(
        app: AppFactory, people: dict[str, Actor], engine: Engine) -> None:
    at = app("boss").run().switch_page(page("admin")).run()
    assert not at.exception, at.exception
    [button] = [b for b in at.button if b.key == "rp_switch_lcd_esi"]
    assert button.label == "Switch on"  # the test template has the packs off
    button.click().run()
    assert not at.exception and not at.error, texts(at.error)
    with read_session(engine) as s:
        event = s.scalars(select(AuditEvent).where(AuditEvent.entity == "rule_pack")).one()
    assert (event.actor, event.entity_id, event.after) == ("boss", "lcd_esi",
                                                           {"enabled": True})
    at.text_input(key="rp_lcd_esi_max_sessions_per_region").set_value("99")
    [save] = [b for b in at.button if b.label == "Save parameters"
              and b.key and "lcd_esi" in str(b.proto.id)] or \
        [b for b in at.button if b.label == "Save parameters"][:1]
    save.click().run()
    assert any("max_sessions_per_region" in e for e in texts(at.error)) or \
        any("from 1 to 52" in e for e in texts(at.error)), texts(at.error)


def test_the_entry_form_warns_of_the_fifth_esi_session_and_keeps_it_confirmed(
        app: AppFactory, people: dict[str, Actor], service: ProcedureLog,
        engine: Engine) -> None:
    packs_on(engine)
    for day in ("2026-01-10", "2026-02-02", "2026-02-20", "2026-03-01"):
        service.log(valid_record(performed_at=f"{day}T10:00:00Z", dap_unit="Gy·cm²",
                                 dap_value=0.7), cli_actor(), confirm_warnings=True)
    at = open_form(log_page(app))
    gen = at.session_state["lp_gen"]
    save(fill(at, {**FORM, "dap_value": "71", "vascular_uptake": "no",
                   "needle_repositioned": "no"}))
    shown = " ".join(texts(at.warning))
    assert "5th ESI session in the lumbar region within 12 months (earlier: 2026-01-10, " \
           "2026-02-02, 2026-02-20, 2026-03-01)" in shown, shown
    at.checkbox(key=f"lp{gen}_confirm").check()
    save(at)
    saved = at.session_state["lp_saved"]
    record = service.get(saved["record_id"], cli_actor())
    assert any(w["field"] == "practice_rules" and w["message"].startswith("5th ESI")
               for w in record["warnings"])


def test_only_an_administrator_sees_the_rule_pack_switches(
        app: AppFactory, people: dict[str, Actor]) -> None:
    """The Admin page (and its Rule packs tab) is not opened for a quality officer or an RSO;
    the library refuses them anyway (tests/rules/test_follow_up_and_packs.py)."""
    for user in ("quality", "rso1"):
        at = app(user).run()
        assert not at.exception
        with pytest.raises(ValueError, match="Could not find a navigation page"):
            at.switch_page(page("admin"))  # only a "not available" stand-in is registered
        assert not [b for b in at.button if str(b.key or "").startswith("rp_switch_")]


def test_the_coverage_page_lists_the_newest_exceptions_and_counts_all(
        app: AppFactory, people: dict[str, Actor], service: ProcedureLog, engine: Engine,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 16: the page keeps the newest EXCEPTIONS_LISTED exceptions of each rule (1,000; 2
    here) and says how many there are; the counts still count every one."""
    monkeypatch.setattr("audit.rules.EXCEPTIONS_LISTED", 2)
    packs_on(engine)
    fixture_history(engine, service)
    at = app("quality").run().switch_page(page("coverage")).run()
    assert not at.exception, at.exception
    assert {m.label: m.value for m in at.metric}["Exceptions"] == "7"
    assert len(at.dataframe[1].value) == 2
    assert "The newest 2 of 7 exceptions" in " ".join(texts(at.caption))
    at.selectbox(key="cov_rule").set_value("esi_repeat_relief").run()
    shown = at.dataframe[1].value
    assert len(shown) == 2 and set(shown["title"]) == {
        "a repeat ESI follows documented relief of >= 50% for >= 3 months from the previous "
        "one"}
    assert "The newest 2 of 4 exceptions" in " ".join(texts(at.caption))
