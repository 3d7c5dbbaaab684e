"""Issue 15 on the pages: the entry form asks no dose field under ultrasound and takes the
case-mix fields and a complication; a record's detail takes a complication found later; the
Complications page shows the rates; the Dose page shows the fair comparisons and the method."""

from __future__ import annotations

from sqlalchemy import Engine

from audit.auth import Actor, cli_actor
from audit.log.complications import list_complications, record_complication
from audit.log.service import ProcedureLog
from audit.vocab import Role
from dashboard.navigation import PAGES
from tests.conftest import valid_record
from tests.dashboard.conftest import AppFactory, open_tab, page, texts
from tests.dashboard.test_log_procedure import fill, log_page, open_form, save
from tests.dashboard.test_records_page import open_record, records_page, seed, submit


def test_ultrasound_asks_no_dose_fields_and_the_case_mix_is_saved(
        app: AppFactory, people: dict[str, Actor], service: ProcedureLog,
        engine: Engine) -> None:
    at = open_form(log_page(app), procedure="SIJ")
    gen = at.session_state["lp_gen"]
    assert any(w.key == f"lp{gen}_fluoro_time_s" for w in at.text_input)
    at.radio(key=f"lp{gen}_guidance").set_value("ultrasound").run()
    shown = {w.key for w in at.text_input}
    for name in ("fluoro_time_s", "dap_value", "air_kerma_mgy", "dap_missing_reason"):
        assert f"lp{gen}_{name}" not in shown
    assert not any(w.key == f"lp{gen}_carm_operator" for w in at.selectbox)
    at.radio(key="lp_contrast_SIJ").set_value("not_required").run()
    fill(at, {"patient_id": "MRN0100", "pregnancy_status": "not_pregnant",
              "laterality": "left", "saved_images": 1, "patient_weight_kg": "100",
              "patient_height_cm": "170", "trainee_present": "yes",
              "contrast_class": "none", "complication_kind": "vasovagal_reaction",
              "complication_severity": "mild"})
    save(at)
    assert not at.exception and not at.error, texts(at.error)
    rid = at.session_state["lp_saved"]["record_id"]
    stored = service.get(rid, cli_actor())
    assert stored["guidance"] == "ultrasound" and stored["dap_gycm2"] is None
    assert stored["bmi_kg_m2"] == 34.6 and stored["trainee_present"] is True
    [noted] = list_complications(engine, cli_actor(), rid)
    assert (noted["kind"], noted["timing"]) == ("vasovagal_reaction", "at_procedure")


def test_a_physician_records_a_complication_found_at_follow_up(
        app: AppFactory, people: dict[str, Actor], service: ProcedureLog,
        engine: Engine) -> None:
    [rid] = seed(service, 1)
    at = open_record(records_page(app, "drchen"), rid)
    assert "No complication recorded." in texts(at.caption)
    at.selectbox(key=f"cx_kind_{rid}").set_value("contrast_reaction")
    at.selectbox(key=f"cx_severity_{rid}").set_value("moderate")
    submit(at, "Record complication")
    assert not at.exception and not at.error, texts(at.error)
    assert any("Complication" in s and "recorded" in s for s in texts(at.success))
    [found] = list_complications(engine, cli_actor(), rid)
    assert (found["kind"], found["timing"]) == ("contrast_reaction", "follow_up")
    assert found["created_by"] == "drchen"


def test_the_complications_page_shows_the_rates(
        app: AppFactory, people: dict[str, Actor], service: ProcedureLog,
        engine: Engine) -> None:
    assert {(p.module, p.permission.value) for p in PAGES} >= {
        ("complications.py", "view_dashboards")}
    ids = seed(service, 4)
    record_complication(engine, cli_actor(), ids[0], "hematoma", "mild")
    at = app("quality").run().switch_page(page("complications")).run()
    assert not at.exception, at.exception
    assert texts(at.title) == ["Complications"]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Procedures"] == "4" and metrics["With a complication"] == "1"
    assert metrics["Complication rate"] == "25.0%"
    assert {"By procedure type", "By physician", "By month"} <= set(texts(at.subheader))


def test_the_complications_page_is_for_quality_rso_and_admin() -> None:
    [spec] = [p for p in PAGES if p.module == "complications.py"]
    allowed = {role for role in Role if Actor("someone", role).can(spec.permission)}
    assert allowed == {Role.QUALITY_OFFICER, Role.RSO, Role.ADMIN}


def test_the_dose_page_shows_fair_comparisons_and_the_method(
        app: AppFactory, people: dict[str, Actor], service: ProcedureLog) -> None:
    records = [valid_record(patient_id=f"MRN{i:04d}", patient_weight_kg=70 + 8 * i,
                            patient_height_cm=175, carm_operator="physician",
                            performed_at=f"2026-03-{i + 1:02d}T09:30:00-05:00",
                            dap_value=0.5 + 0.1 * i) for i in range(6)]
    service.log_many(records, cli_actor(), confirm_warnings=True)
    at = app("rso1").run().switch_page(page("dose")).run()
    assert not at.exception, at.exception
    open_tab(at, "d_tab", "Physicians")
    assert not at.exception, at.exception
    headings = texts(at.subheader)
    assert "Physician scorecard adjusted for case mix" in headings
    assert any(c.startswith("Method (indirect standardisation)") for c in texts(at.caption))
    open_tab(at, "d_tab", "Case mix")
    assert not at.exception, at.exception
    headings = texts(at.subheader)
    assert "Injections done without radiation" in headings
    assert any("body-mass-index band" in h for h in headings)
    assert any("operated the C-arm" in h for h in headings)
    assert "Physician scorecard adjusted for case mix" not in headings  # one tab at a time


def test_leaving_ultrasound_brings_the_dose_fields_and_the_contrast_policy_back(
        app: AppFactory, people: dict[str, Actor]) -> None:
    at = open_form(log_page(app), procedure="SIJ")
    gen = at.session_state["lp_gen"]
    assert "Not required" not in at.radio(key="lp_contrast_SIJ").options
    at.radio(key=f"lp{gen}_guidance").set_value("ultrasound").run()
    at.radio(key="lp_contrast_SIJ").set_value("not_required").run()
    at.radio(key=f"lp{gen}_guidance").set_value("fluoroscopy").run()
    assert not at.exception
    assert at.radio(key="lp_contrast_SIJ").value == "confirmed"
    assert any(w.key == f"lp{gen}_fluoro_time_s" for w in at.text_input)
