"""The "Log procedure" page: what each procedure type shows, validation next to the field,
warnings confirmed before saving, remembered choices, and a record identical to the CLI's."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import date, time
from typing import Any

import pytest
from sqlalchemy import Engine
from streamlit.testing.v1 import AppTest

from audit import auth
from audit.auth import Actor, cli_actor
from audit.log.compliance_check import CONSEQUENCE
from audit.log.service import ProcedureLog
from tests.dashboard.conftest import AppFactory, messages_after, page, texts

#: A complete lumbar TFESI as a person would send it to `fluoro-audit log` ...
CLI_RECORD: dict[str, Any] = {
    "performed_at": "2026-03-14T09:30:00-05:00",
    "site": "Riverside", "room": "OR 1", "physician": "Dr. Chen", "technologist": "tech1",
    "patient_id": "MRN0001", "accession_number": "ACC-77", "patient_sex": "F",
    "patient_weight_kg": 72.5, "pregnancy_status": "not_pregnant",
    "procedure_code": "TFESI", "levels": ["L4", "L5"], "laterality": "left",
    "guidance": "fluoroscopy", "fluoro_time_s": "0:32", "dap_value": 71,
    "dap_unit": "cGy·cm²", "air_kerma_mgy": 5.2, "saved_images": 2,
    "contrast_agent": "iohexol 240", "contrast_volume_ml": 1.5,
    "contrast_confirmation": "confirmed", "confirmation_views": ["AP", "LAT"],
    "realtime_contrast": True, "vascular_uptake": True, "needle_repositioned": True,
    "pulsed_fluoro": True, "pulse_rate_pps": 8, "low_dose_mode": False,
    "injectate": "dexamethasone", "notes": "right-sided pain; 2nd injection",
}
#: ... and the same case typed into the form (America/Chicago: 09:30 is -05:00 that day).
FORM = {
    "date": date(2026, 3, 14), "time": time(9, 30), "patient_id": "MRN0001",
    "accession_number": "ACC-77", "patient_sex": "F", "patient_weight_kg": "72.5",
    "pregnancy_status": "not_pregnant", "levels_TFESI": ["L4", "L5"], "laterality": "left",
    "guidance": "fluoroscopy", "fluoro_time_s": "0:32", "dap_value": "71",
    "air_kerma_mgy": "5.2", "saved_images": 2, "contrast_agent": "iohexol 240",
    "contrast_volume_ml": "1.5", "confirmation_views": ["AP", "LAT"],
    "realtime_contrast": "yes", "vascular_uptake": "yes", "needle_repositioned": "yes",
    "pulsed_fluoro": "yes", "pulse_rate_pps": "8", "low_dose_mode": "no",
    "injectate": "dexamethasone", "notes": "right-sided pain; 2nd injection",
}
NOT_COMPARED = {"record_id", "created_at", "created_by", "updated_at", "updated_by"}


def open_form(at: AppTest, procedure: str = "TFESI", room: str = "OR 1",
              physician: str = "Dr. Chen") -> AppTest:
    if at.session_state["lp_room"] != room:
        at.selectbox(key="lp_room").select(room)
    at.selectbox(key="lp_physician").select(physician)
    at.selectbox(key="lp_procedure").select(procedure)
    return at.run()


def fill(at: AppTest, values: dict[str, Any]) -> AppTest:
    """Type values into the current form generation's widgets, by widget kind."""
    gen = at.session_state["lp_gen"]
    for name, value in values.items():
        key = f"lp{gen}_{name}"
        for kind in ("text_input", "selectbox", "multiselect", "number_input", "date_input",
                     "time_input", "checkbox", "radio"):  # guidance: a radio (issue 15)
            widgets = [w for w in getattr(at, kind) if w.key == key]
            if widgets:
                widget = widgets[0]
                if kind == "text_input":
                    widget.input(value)
                else:
                    widget.set_value(value)
                break
        else:
            raise KeyError(f"no widget {key}")
    return at


def save(at: AppTest) -> AppTest:
    [button] = [b for b in at.button if b.label == "Save procedure"]
    return button.click().run()


def log_page(app: AppFactory, user: str = "tech1") -> AppTest:
    at = app(user).run()
    if texts(at.title) != ["Log procedure"]:
        at.switch_page(page("log_procedure")).run()
    return at


def test_a_record_entered_in_the_form_is_identical_to_the_same_record_sent_by_the_cli(
    app: AppFactory, people: dict[str, Actor], engine: Engine, db_url: str,
    service: ProcedureLog,
) -> None:
    at = fill(open_form(log_page(app)), FORM)
    save(at)
    assert not at.exception
    assert not at.error, texts(at.error)
    form_id = at.session_state["lp_saved"]["record_id"]

    # the same case again is a possible duplicate of the form's record: confirmed here
    cli = subprocess.run(
        [sys.executable, "-m", "audit.cli", "--db", db_url, "log", "-", "--confirm-warnings"],
        input=json.dumps(CLI_RECORD), capture_output=True, text=True, check=False)
    assert cli.returncode == 0, cli.stderr
    cli_id = json.loads(cli.stdout)["record_id"]

    system = cli_actor()
    from_form, from_cli = service.get(form_id, system), service.get(cli_id, system)
    assert set(from_form) == set(from_cli)
    differing = {k: (from_form[k], from_cli[k]) for k in from_form
                 if k not in NOT_COMPARED and from_form[k] != from_cli[k]}
    assert differing == {"warnings": ([], [{
        "field": "duplicate?", "message": f"record {form_id} is the same patient and TFESI at "
        "the same time (2026-03-14 14:30); confirm to log it anyway"}])}
    assert from_form["dap_gycm2"] == pytest.approx(0.71)
    assert from_form["fluoro_time_s"] == 32


def test_after_saving_the_record_id_and_the_dose_in_plain_words_are_shown(
    app: AppFactory, people: dict[str, Actor]
) -> None:
    at = save(fill(open_form(log_page(app)), FORM))
    [message] = texts(at.success)
    record_id = at.session_state["lp_saved"]["record_id"]
    assert f"Saved as record {record_id}" in message
    # 0.71 Gy·cm² x 0.33 mSv/Gy·cm² (lumbar) = 0.23 mSv = 28 days at 3.1 mSv/year
    assert "about 28 days of natural background radiation" in message
    # NCRP 184: the days figure never stands without its caution
    assert "A population estimate for comparison, not a measure of your personal risk" in message
    # the form is empty again for the next patient; the case stays chosen
    assert at.text_input(key=f"lp{at.session_state['lp_gen']}_patient_id").value == ""
    assert at.session_state["lp_procedure"] == "TFESI"


def test_each_error_is_shown_next_to_its_field_and_nothing_is_saved(
    app: AppFactory, people: dict[str, Actor], service: ProcedureLog
) -> None:
    at = open_form(log_page(app))
    fill(at, {"fluoro_time_s": "1:75", "dap_value": "lots", "patient_weight_kg": "-3"})
    save(at)
    gen = at.session_state["lp_gen"]
    assert messages_after(at, f"lp{gen}_patient_id") == ["Patient ID (MRN): required"]
    assert "seconds must be 00-59" in messages_after(at, f"lp{gen}_fluoro_time_s")[0]
    assert "expected a dose-area product value" in messages_after(at, f"lp{gen}_dap_value")[0]
    assert "out of range" in messages_after(at, f"lp{gen}_patient_weight_kg")[0]
    assert messages_after(at, f"lp{gen}_pregnancy_status") == [
        "Pregnancy status: required: choose Not applicable, Not pregnant, Pregnant or Unknown"]
    assert messages_after(at, f"lp{gen}_saved_images") == ["Saved images: required"]
    assert messages_after(at, f"lp{gen}_levels_TFESI") == [
        "Levels: pick at least one level for TFESI (e.g. L4 or L5-S1)"]
    assert messages_after(at, f"lp{gen}_accession_number") == []
    assert "lp_saved" not in at.session_state
    assert service.list(cli_actor())[1] == 0
    # what was typed is still there to be corrected
    assert at.text_input(key=f"lp{gen}_fluoro_time_s").value == "1:75"


def test_a_plausibility_warning_must_be_confirmed_before_saving(
    app: AppFactory, people: dict[str, Actor], service: ProcedureLog
) -> None:
    at = open_form(log_page(app))
    gen = at.session_state["lp_gen"]
    values = {**FORM, "dap_unit_Riverside_OR 1": "Gy·cm²"}  # 71 Gy·cm²: 100x the usual
    save(fill(at, values))
    [warning] = messages_after(at, f"lp{gen}_dap_value")
    assert "the usual for transforaminal" in warning and "is the unit cGy·cm²?" in warning
    [kerma] = messages_after(at, f"lp{gen}_air_kerma_mgy")  # KAP / Ka,r: a 1.4 m² field
    assert "check the units" in kerma
    assert service.list(cli_actor())[1] == 0
    save(at)  # saving again without ticking the box does not save
    assert service.list(cli_actor())[1] == 0
    at.checkbox(key=f"lp{gen}_confirm").check()
    save(at)
    saved = at.session_state["lp_saved"]
    assert saved["warnings"] == 2
    record = service.get(saved["record_id"], cli_actor())
    assert record["dap_gycm2"] == 71
    assert [w["field"] for w in record["warnings"]] == ["dap_value", "air_kerma_mgy"]


def test_a_possible_duplicate_and_a_non_compliance_are_warned_before_saving(
    app: AppFactory, people: dict[str, Actor], service: ProcedureLog
) -> None:
    """Issue 11: the same case entered twice, with one confirmation view, is stopped with both
    warnings on screen; ticking the box saves it with both kept on the record."""
    earlier = service.log(CLI_RECORD, cli_actor()).record_id
    at = open_form(log_page(app))
    gen = at.session_state["lp_gen"]
    save(fill(at, {**FORM, "confirmation_views": ["AP"]}))
    assert (f"Possible duplicate: record {earlier} is the same patient and TFESI at the same "
            "time (2026-03-14 14:30); confirm to log it anyway") in texts(at.warning)
    assert messages_after(at, f"lp{gen}_confirmation_views") == [
        f"Views saved: TFESI needs 2 confirmation views; 1 given: {CONSEQUENCE}"]
    assert service.list(cli_actor())[1] == 1  # nothing saved yet
    at.checkbox(key=f"lp{gen}_confirm").check()
    save(at)
    saved = at.session_state["lp_saved"]
    assert saved["warnings"] == 2
    record = service.get(saved["record_id"], cli_actor())
    assert [w["field"] for w in record["warnings"]] == ["duplicate?", "confirmation_views"]
    assert record["confirmation_views"] == ["AP"]


def test_the_procedure_type_decides_what_the_form_shows(
    app: AppFactory, people: dict[str, Actor]
) -> None:
    at = open_form(log_page(app), procedure="TFESI")
    gen = at.session_state["lp_gen"]
    levels = at.multiselect(key=f"lp{gen}_levels_TFESI")
    assert "L4-L5" in levels.options and "C5-C6" in levels.options
    assert "coccyx" in levels.options  # TFESI accepts sacral levels
    assert any(w.key == f"lp{gen}_laterality" for w in at.selectbox)
    assert at.radio(key="lp_contrast_TFESI").options == [
        "Confirmed with contrast", "Contrast used, placement not confirmed",
        "Contraindicated (give the reason)"]  # "not required" is not offered
    assert "(required)" in at.selectbox(key=f"lp{gen}_realtime_contrast").label

    at.selectbox(key="lp_procedure").select("CAUDAL").run()
    levels = at.multiselect(key=f"lp{gen}_levels_CAUDAL")
    assert set(levels.options) == {"S1", "S2", "S3", "S4", "S5", "coccyx", "SIJ"}
    assert not any(w.key == f"lp{gen}_laterality" for w in at.selectbox)

    at.selectbox(key="lp_procedure").select("RFA").run()
    assert at.radio(key="lp_contrast_RFA").value == "not_required"
    assert not any(w.key == f"lp{gen}_contrast_agent" for w in at.selectbox)
    at.radio(key="lp_contrast_RFA").set_value("contraindicated").run()
    assert any(w.key == f"lp{gen}_contrast_exception_reason" for w in at.selectbox)
    assert not any(w.key == f"lp{gen}_confirmation_views" for w in at.multiselect)

    at.selectbox(key="lp_procedure").select("OTHER").run()
    assert not any(w.key.startswith(f"lp{gen}_levels") for w in at.multiselect if w.key)


def test_a_contraindication_is_saved_with_its_reason(
    app: AppFactory, people: dict[str, Actor], service: ProcedureLog
) -> None:
    at = open_form(log_page(app), procedure="ILESI")
    at.radio(key="lp_contrast_ILESI").set_value("contraindicated").run()
    values = {k: v for k, v in FORM.items() if k not in {
        "levels_TFESI", "laterality", "contrast_agent", "contrast_volume_ml",
        "confirmation_views", "realtime_contrast", "vascular_uptake", "needle_repositioned"}}
    save(fill(at, {**values, "levels_ILESI": ["L5-S1"], "contrast_exception_reason": "other"}))
    gen = at.session_state["lp_gen"]
    assert messages_after(at, f"lp{gen}_contrast_exception_detail") == [
        "Detail of why no contrast: say why contrast was not used (required when the reason "
        "is “Other”)"]
    save(fill(at, {"contrast_exception_detail": "iodine and gadolinium reactions"}))
    record = service.get(at.session_state["lp_saved"]["record_id"], cli_actor())
    assert record["contrast_confirmation"] == "contraindicated"
    assert record["contrast_exception_reason"] == "other"
    assert record["contrast_agent"] is None and record["confirmation_views"] == []


@pytest.mark.parametrize(("typed", "seconds"), [("78", 78), ("1:18", 78), ("1.3 min", 78)])
def test_fluoro_time_accepts_seconds_m_ss_and_minutes(
    app: AppFactory, people: dict[str, Actor], service: ProcedureLog, typed: str,
    seconds: float,
) -> None:
    at = save(fill(open_form(log_page(app)), {**FORM, "fluoro_time_s": typed}))
    record = service.get(at.session_state["lp_saved"]["record_id"], cli_actor())
    assert record["fluoro_time_s"] == seconds


def test_the_dap_unit_defaults_to_the_room_display_unit(
    app: AppFactory, people: dict[str, Actor]
) -> None:
    at = open_form(log_page(app), room="OR 1")
    gen = at.session_state["lp_gen"]
    assert at.selectbox(key=f"lp{gen}_dap_unit_Riverside_OR 1").value == "cGy·cm²"
    at.selectbox(key="lp_room").select("OR 2").run()
    assert at.selectbox(key=f"lp{gen}_dap_unit_Riverside_OR 2").value == "Gy·cm²"


def test_room_physician_and_procedure_are_remembered_for_the_next_session(
    app: AppFactory, people: dict[str, Actor], engine: Engine
) -> None:
    at = open_form(log_page(app), room="OR 2", physician="Dr. Weiss")
    save(fill(at, {**FORM, "dap_value": "0.71"}))  # OR 2 displays Gy·cm²
    assert "lp_saved" in at.session_state
    assert auth.get_preferences(engine, "tech1") == {
        "site": "Riverside", "room": "OR 2", "physician": "Dr. Weiss",
        "procedure_code": "TFESI"}
    later = log_page(app)
    assert later.selectbox(key="lp_room").value == "OR 2"
    assert later.selectbox(key="lp_physician").value == "Dr. Weiss"
    assert later.selectbox(key="lp_procedure").value == "TFESI"


def test_the_technologist_is_the_signed_in_user(
    app: AppFactory, people: dict[str, Actor], service: ProcedureLog
) -> None:
    at = save(fill(open_form(log_page(app, "boss")), FORM))
    record = service.get(at.session_state["lp_saved"]["record_id"], cli_actor())
    assert record["technologist"] == "boss" and record["created_by"] == "boss"


# --- issue 12: plain language -------------------------------------------------------------------

#: A snake_case word: how a dictionary field name or a stored value looks.
SNAKE = re.compile(r"\b[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b")


def test_errors_name_the_field_as_the_form_labels_it_and_say_what_to_do(
    app: AppFactory, people: dict[str, Actor], service: ProcedureLog
) -> None:
    at = open_form(log_page(app))  # TFESI, confirmed with contrast
    values = {k: v for k, v in FORM.items() if k not in {
        "contrast_volume_ml", "confirmation_views", "realtime_contrast", "pulsed_fluoro"}}
    fill(at, {**values, "pregnancy_status": "pregnant", "patient_sex": "M",
              "pulsed_fluoro": "no", "dsa_runs": 2})
    save(at)
    gen = at.session_state["lp_gen"]
    assert messages_after(at, f"lp{gen}_confirmation_views") == [
        "Views saved: pick at least 2 views for TFESI (AP, LAT, CLO or OBL)"]
    assert messages_after(at, f"lp{gen}_contrast_volume_ml") == [
        "Contrast volume (mL): type the volume injected, in mL"]
    assert messages_after(at, f"lp{gen}_realtime_contrast") == [
        "Real-time fluoro / DSA during contrast: answer Yes or No: was contrast injected "
        "under live fluoroscopy or DSA?"]
    assert messages_after(at, f"lp{gen}_pregnancy_status") == [
        "Pregnancy status: “Pregnant”, but Sex is “Male”: correct one of them"]
    assert messages_after(at, f"lp{gen}_pulse_rate_pps") == [
        "Pulse rate (pulses/s): given, but Pulsed fluoro is “No”: leave it empty, or set "
        "Pulsed fluoro to “Yes”"]
    assert messages_after(at, f"lp{gen}_dsa_runs") == [
        "DSA runs: 2 DSA runs recorded, but Guidance is “Fluoroscopy”: set Guidance to "
        "“Fluoroscopy + DSA”"]
    shown = texts(at.error) + texts(at.warning)
    assert len(shown) == 6 and not [t for t in shown if SNAKE.search(t)], shown
    assert service.list(cli_actor())[1] == 0


def test_the_levels_hint_lists_what_the_procedure_takes(
    app: AppFactory, people: dict[str, Actor]
) -> None:
    at = open_form(log_page(app), procedure="CAUDAL")
    gen = at.session_state["lp_gen"]
    levels = at.multiselect(key=f"lp{gen}_levels_CAUDAL")
    assert levels.proto.placeholder == "Type a level: S1 to S5, coccyx or SIJ"
    assert levels.proto.help == "CAUDAL takes S1 to S5, coccyx or SIJ."
    at.selectbox(key="lp_procedure").select("TFESI").run()
    levels = at.multiselect(key=f"lp{gen}_levels_TFESI")
    assert levels.proto.placeholder == "Type e.g. L4 or L5-S1"
    assert levels.proto.help == ("TFESI takes C1 to C7, T1 to T12, L1 to L5, S1 to S5, "
                                 "segments C1-C2 to L5-S1, coccyx or SIJ.")


def test_choices_read_as_words_not_stored_values(
    app: AppFactory, people: dict[str, Actor]
) -> None:
    at = open_form(log_page(app))
    gen = at.session_state["lp_gen"]
    pregnancy = at.selectbox(key=f"lp{gen}_pregnancy_status")
    assert pregnancy.options == ["Not applicable", "Not pregnant", "Pregnant", "Unknown"]
    guidance = at.radio(key=f"lp{gen}_guidance").options  # a radio: it decides the dose fields
    assert "Fluoroscopy + DSA" in guidance and "Ultrasound (no radiation)" in guidance
    assert "Local anesthetic only" in at.selectbox(key=f"lp{gen}_injectate").options
