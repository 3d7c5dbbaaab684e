"""Issue 15 part A: height and BMI, C-arm operator, trainee, contrast class, ultrasound
guidance and complications, through the service every door uses (real SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, select

from audit.auth import Actor
from audit.errors import PermissionDenied, ValidationFailed, WarningsNotConfirmed
from audit.log.complications import list_complications, record_complication, void_complication
from audit.log.service import ProcedureLog
from audit.storage.engine import read_session
from audit.storage.models import AuditEvent
from audit.vocab import Role
from tests.conftest import valid_record


def ultrasound_sij(**overrides: Any) -> dict[str, Any]:
    """A sacroiliac joint injection under ultrasound: no dose field at all."""
    record = valid_record(procedure_code="SIJ", levels=None, guidance="ultrasound",
                          fluoro_time_s=None, dap_value=None, dap_unit=None,
                          air_kerma_mgy=None, contrast_confirmation="not_required",
                          contrast_agent=None, contrast_volume_ml=None,
                          confirmation_views=None, realtime_contrast=None,
                          contrast_class="none", laterality="left")
    record.update(overrides)
    return {k: v for k, v in record.items() if v is not None}


def errors_of(exc: pytest.ExceptionInfo[ValidationFailed]) -> dict[str, str]:
    return {e.field: e.message for e in exc.value.errors}


def test_new_fields_are_stored_and_bmi_is_computed(service: ProcedureLog, admin: Actor) -> None:
    rid = service.log(valid_record(patient_weight_kg=80, patient_height_cm=180,
                                   carm_operator="Radiographer", trainee_present="yes",
                                   contrast_class="iodinated"),
                      admin, create_missing=True).record_id
    shown = service.get(rid, admin)
    assert shown["patient_height_cm"] == 180
    assert shown["bmi_kg_m2"] == pytest.approx(24.7)
    assert shown["carm_operator"] == "radiographer"
    assert shown["trainee_present"] is True
    assert shown["contrast_class"] == "iodinated"


def test_old_style_records_leave_the_new_fields_empty(service: ProcedureLog,
                                                      admin: Actor) -> None:
    rid = service.log(valid_record(patient_weight_kg=80), admin, create_missing=True).record_id
    shown = service.get(rid, admin)
    assert shown["patient_height_cm"] is None and shown["bmi_kg_m2"] is None
    assert shown["carm_operator"] is None and shown["trainee_present"] is None


def test_amending_the_height_recomputes_bmi(service: ProcedureLog, admin: Actor) -> None:
    rid = service.log(valid_record(patient_weight_kg=90, patient_height_cm=180),
                      admin, create_missing=True).record_id
    service.amend(rid, {"patient_height_cm": 150}, admin, version=1, reason="height typo",
                  confirm_warnings=True)
    assert service.get(rid, admin)["bmi_kg_m2"] == pytest.approx(40.0)


def test_errors_name_the_field_and_what_is_allowed(service: ProcedureLog, admin: Actor) -> None:
    with pytest.raises(ValidationFailed) as exc:
        service.log(valid_record(carm_operator="nurse", contrast_class="barium",
                                 patient_height_cm=1000, trainee_present="maybe"),
                    admin, create_missing=True)
    found = errors_of(exc)
    assert "allowed: physician, technologist, radiographer" in found["carm_operator"]
    assert "allowed: iodinated, gadolinium, none" in found["contrast_class"]
    assert "20" in found["patient_height_cm"] and "272" in found["patient_height_cm"]
    assert "allowed: true, false" in found["trainee_present"]


def test_contrast_class_none_contradicts_confirmed_contrast(service: ProcedureLog,
                                                            admin: Actor) -> None:
    with pytest.raises(ValidationFailed) as exc:
        service.log(valid_record(contrast_class="none"), admin, create_missing=True)
    assert "confirmed" in errors_of(exc)["contrast_class"]


def test_a_height_in_inches_is_a_warning(service: ProcedureLog, admin: Actor) -> None:
    with pytest.raises(WarningsNotConfirmed) as exc:
        service.log(valid_record(patient_weight_kg=80, patient_height_cm=70), admin,
                    create_missing=True)
    assert any(w.field == "patient_height_cm" for w in exc.value.warnings)


def test_ultrasound_needs_no_dose_fields(service: ProcedureLog, admin: Actor) -> None:
    rid = service.log(ultrasound_sij(), admin, create_missing=True).record_id
    shown = service.get(rid, admin)
    assert shown["guidance"] == "ultrasound"
    assert shown["fluoro_time_s"] == 0
    assert shown["dap_gycm2"] is None and shown["air_kerma_mgy"] is None
    assert shown["dap_missing_reason"] is None and shown["effective_dose_msv"] is None


def test_ultrasound_with_a_dose_figure_is_an_error(service: ProcedureLog, admin: Actor) -> None:
    with pytest.raises(ValidationFailed) as exc:
        service.log(ultrasound_sij(dap_value=0.5, dap_unit="Gy·cm²", fluoro_time_s=20,
                                   carm_operator="physician"), admin, create_missing=True)
    found = errors_of(exc)
    for name in ("dap_value", "fluoro_time_s", "carm_operator"):
        assert "guidance is ultrasound" in found[name]


def test_ultrasound_tfesi_still_needs_contrast(service: ProcedureLog, admin: Actor) -> None:
    """Real-time contrast is TFESI's safeguard, which ultrasound cannot give (docs/design.md):
    not_required stays refused for it, as under fluoroscopy."""
    with pytest.raises(ValidationFailed) as exc:
        service.log(ultrasound_sij(procedure_code="TFESI", levels=["L4", "L5"]), admin,
                    create_missing=True)
    assert "TFESI requires contrast" in errors_of(exc)["contrast_confirmation"]


def test_a_complication_noted_while_logging(service: ProcedureLog, admin: Actor,
                                            engine: Engine) -> None:
    rid = service.log(valid_record(complications=[{"kind": "vasovagal reaction",
                                                   "severity": "mild"}]),
                      admin, create_missing=True).record_id
    [found] = list_complications(engine, admin, rid)
    assert found["kind"] == "vasovagal_reaction" and found["timing"] == "at_procedure"


def test_other_complication_needs_its_text(service: ProcedureLog, admin: Actor) -> None:
    with pytest.raises(ValidationFailed) as exc:
        service.log(valid_record(complications=[{"kind": "other", "severity": "mild"}]),
                    admin, create_missing=True)
    assert "detail required" in errors_of(exc)["complications"]


def test_follow_up_complication_is_audited_naming_the_procedure(
        engine: Engine, logged: int, admin: Actor) -> None:
    cid = record_complication(engine, admin, logged, "contrast_reaction", "moderate",
                              "hives the next morning", noticed_at="2026-03-15T10:00:00-05:00")
    [found] = list_complications(engine, admin, logged)
    assert found["complication_id"] == cid and found["timing"] == "follow_up"
    with read_session(engine) as session:
        event = session.scalars(select(AuditEvent).where(
            AuditEvent.entity == "complication")).one()
    assert event.action == "amend" and event.entity_id == str(logged)
    assert event.after is not None and event.after["severity"] == "moderate"


def test_complication_errors_name_the_field(engine: Engine, logged: int, admin: Actor) -> None:
    with pytest.raises(ValidationFailed) as exc:
        record_complication(engine, admin, logged, "contrast_reaction", "grade 5")
    assert "allowed: mild, moderate, severe" in errors_of(exc)["severity"]
    with pytest.raises(ValidationFailed) as exc:
        record_complication(engine, admin, logged, "headache", "mild")
    assert "contrast_reaction" in errors_of(exc)["kind"]


def test_who_may_record_a_complication(engine: Engine, logged: int) -> None:
    with pytest.raises(PermissionDenied):
        record_complication(engine, Actor("qo", Role.QUALITY_OFFICER), logged, "hematoma",
                            "mild")
    with pytest.raises(PermissionDenied):  # not their patient
        record_complication(engine, Actor("dr.other", Role.PHYSICIAN), logged, "hematoma",
                            "mild")
    record_complication(engine, Actor("tech1", Role.TECHNOLOGIST), logged, "hematoma", "mild")
    record_complication(engine, Actor("rso1", Role.RSO), logged, "infection", "moderate")
    assert len(list_complications(engine, Actor("rso1", Role.RSO), logged)) == 2


def test_a_complication_is_voided_never_deleted(engine: Engine, logged: int,
                                                admin: Actor) -> None:
    cid = record_complication(engine, admin, logged, "dural_puncture", "moderate")
    with pytest.raises(ValidationFailed):
        void_complication(engine, admin, cid, " ")
    void_complication(engine, admin, cid, "wrong patient")
    [found] = list_complications(engine, admin, logged)
    assert found["status"] == "void" and found["void_reason"] == "wrong patient"


def test_an_amend_cannot_add_a_complication(service: ProcedureLog, logged: int,
                                            admin: Actor) -> None:
    with pytest.raises(ValidationFailed) as exc:
        service.amend(logged, {"complications": [{"kind": "hematoma", "severity": "mild"}]},
                      admin, version=1, reason="bruise")
    assert "complication add" in errors_of(exc)["complications"]
