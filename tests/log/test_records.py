"""The procedure log service: log, validate, warn, amend, void, read; on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from audit.auth import Actor
from audit.errors import (
    PermissionDenied,
    RecordVoided,
    StaleVersion,
    ValidationFailed,
    WarningsNotConfirmed,
)
from audit.filters import Filters
from audit.log.service import ProcedureLog
from audit.storage.models import (
    AuditEvent,
    Patient,
    Physician,
    Procedure,
    ProcedureLevel,
    UserAccount,
)
from audit.vocab import Role
from tests.conftest import valid_record


def count(engine: Engine, model: Any) -> int:
    with Session(engine) as s:
        return s.scalar(select(func.count()).select_from(model)) or 0


def errors_of(service: ProcedureLog, actor: Actor, record: dict[str, Any],
              **kwargs: Any) -> dict[str, str]:
    with pytest.raises(ValidationFailed) as info:
        service.log(record, actor, **kwargs)
    return {e.field: e.message for e in info.value.errors}


# --- logging ----------------------------------------------------------------------------------

def test_dap_in_ugy_m2_is_stored_in_gycm2_with_the_entry_kept(
    service: ProcedureLog, admin: Actor
) -> None:
    result = service.log(valid_record(dap_value=125, dap_unit="µGy·m²"), admin,
                         create_missing=True)
    record = service.get(result.record_id, admin)
    assert record["dap_gycm2"] == pytest.approx(1.25)
    assert record["dap_value"] == 125
    assert record["dap_unit"] == "µGy·m²"


def test_a_logged_record_reads_back_in_dictionary_fields(
    service: ProcedureLog, admin: Actor, logged: int
) -> None:
    record = service.get(logged, admin)
    assert record["record_id"] == logged
    assert record["status"] == "final" and record["version"] == 1
    assert record["performed_at"] == "2026-03-14T14:30:00+00:00"  # stored in UTC
    assert record["levels"] == ["L4", "L5"]
    assert record["region"] == "lumbar"
    assert record["confirmation_views"] == ["AP", "LAT"]
    assert record["patient_ref"].startswith("P") and record["patient_ref"] != "MRN0001"
    assert record["dose_source"] == "manual"
    # E = KAP x k(lumbar) = 0.71 x 0.33 mSv; background days at 3.1 mSv/year
    assert record["effective_dose_msv"] == pytest.approx(0.71 * 0.33)
    assert record["background_days"] == pytest.approx(0.71 * 0.33 * 365 / 3.1, abs=0.1)


def test_levels_are_one_row_each(engine: Engine, logged: int) -> None:
    with Session(engine) as s:
        rows = s.execute(select(ProcedureLevel.position, ProcedureLevel.level,
                                ProcedureLevel.region)
                         .where(ProcedureLevel.procedure_id == logged)
                         .order_by(ProcedureLevel.position)).all()
    assert [tuple(r) for r in rows] == [(1, "L4", "lumbar"), (2, "L5", "lumbar")]


def test_datetimes_come_back_timezone_aware_in_utc(engine: Engine, logged: int) -> None:
    with Session(engine) as s:
        performed = s.get(Procedure, logged).performed_at
    assert performed.tzinfo is not None
    assert performed == datetime(2026, 3, 14, 14, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("override", "field", "message"),
    [
        ({"dap_unit": "mGy"}, "dap_unit", "not a dose-area product unit"),
        ({"levels": ["L9-L10"]}, "levels", "not a spinal level"),
        ({"fluoro_time_s": -3}, "fluoro_time_s", "zero or more"),
        ({"procedure_code": "XYZ"}, "procedure_code", "not in the procedure catalog; allowed: "),
        ({"performed_at": "2026-03-14T09:30:00"}, "performed_at", "needs a UTC offset"),
        ({"performed_at": "yesterday"}, "performed_at", "not an ISO 8601"),
        ({"laterality": "up"}, "laterality", "allowed: left, right, bilateral, midline"),
        ({"procedure_code": "SIJ", "levels": ["C5-C6"]}, "levels", "SIJ allows levels in: sacral"),
        ({"levels": ["L4", "L4"]}, "levels", "listed twice"),
        ({"saved_images": -1}, "saved_images", "allowed: 0 to 10000"),
        ({"saved_images": 1.5}, "saved_images", "whole number"),
        ({"pregnancy_status": None}, "pregnancy_status", "required; allowed"),
        ({"contrast_agent": None}, "contrast_agent", "required when contrast_confirmation"),
        ({"confirmation_views": ["AP", "UP"]}, "confirmation_views", "allowed: AP, LAT, CLO"),
        ({"contrast_confirmation": "not_required"}, "contrast_confirmation",
         "TFESI requires contrast"),
        ({"patient_weight_kg": 900}, "patient_weight_kg", "out of range"),
        ({"pulsed_fluoro": "maybe"}, "pulsed_fluoro", "not a yes/no value"),
        ({"colour": "blue"}, "colour", "unknown field"),
        ({"dap_value": None, "dap_unit": None}, "dap_gycm2",
         "or dap_missing_reason if the unit displays no DAP"),
        ({"dsa_runs": 2}, "dsa_runs", "set guidance to fluoroscopy_dsa"),
    ],
)
def test_invalid_input_names_the_field_and_writes_nothing(
    service: ProcedureLog, admin: Actor, engine: Engine, override: dict[str, Any], field: str,
    message: str,
) -> None:
    before = count(engine, Procedure), count(engine, AuditEvent)
    errors = errors_of(service, admin, valid_record(**override), create_missing=True)
    assert field in errors, errors
    assert message in errors[field]
    assert (count(engine, Procedure), count(engine, AuditEvent)) == before


def test_every_error_is_reported_at_once(service: ProcedureLog, admin: Actor) -> None:
    errors = errors_of(service, admin, valid_record(dap_unit="mGy", levels=["L9-L10"],
                                                     fluoro_time_s=-3, procedure_code="XYZ"),
                       create_missing=True)
    assert {"dap_unit", "levels", "fluoro_time_s", "procedure_code"} <= set(errors)


def test_future_dates_are_refused(service: ProcedureLog, admin: Actor) -> None:
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    errors = errors_of(service, admin, valid_record(performed_at=tomorrow), create_missing=True)
    assert "in the future" in errors["performed_at"]


def test_levels_must_fit_the_procedure_region(service: ProcedureLog, admin: Actor) -> None:
    errors = errors_of(service, admin, valid_record(procedure_code="ILESI",
                                                     levels=["C7-T1", "L4-L5"],
                                                     laterality="midline"),
                       create_missing=True)
    assert "log each region as its own procedure" in errors["levels"]


def test_contraindication_needs_a_reason_and_no_contrast_fields(
    service: ProcedureLog, admin: Actor
) -> None:
    errors = errors_of(service, admin, valid_record(contrast_confirmation="contraindicated"),
                       create_missing=True)
    assert "required when contrast is contraindicated" in errors["contrast_exception_reason"]
    assert "no contrast was used" in errors["contrast_agent"]
    result = service.log(
        valid_record(contrast_confirmation="contraindicated", contrast_exception_reason="allergy",
                     contrast_agent=None, contrast_volume_ml=None, confirmation_views=None,
                     realtime_contrast=None),
        admin, create_missing=True)
    assert service.get(result.record_id, admin)["contrast_exception_reason"] == "allergy"


def test_unknown_names_are_errors_unless_creating_missing(
    service: ProcedureLog, admin: Actor, engine: Engine
) -> None:
    errors = errors_of(service, admin, valid_record())
    assert set(errors) == {"site", "physician", "technologist"}  # room waits for its site
    assert "no physician named 'Dr. Chen'" in errors["physician"]
    service.log(valid_record(), admin, create_missing=True)
    created = {(e.entity, e.reason) for e in _events(engine) if e.action == "create"}
    assert {"site", "room", "physician", "user_account"} <= {entity for entity, _ in created}
    with Session(engine) as s:
        tech = s.scalar(select(UserAccount).where(UserAccount.username == "tech1"))
        assert tech.role == "technologist" and not tech.can_sign_in and tech.password_hash is None


def test_patients_are_matched_by_mrn(service: ProcedureLog, admin: Actor, engine: Engine) -> None:
    a = service.log(valid_record(), admin, create_missing=True).record_id
    b = service.log(valid_record(performed_at="2026-04-01T10:00:00Z"), admin).record_id
    assert service.get(a, admin)["patient_ref"] == service.get(b, admin)["patient_ref"]
    assert count(engine, Patient) == 1


# --- warnings ---------------------------------------------------------------------------------

def test_unit_slip_needs_confirmation_and_the_warning_stays_on_the_record(
    service: ProcedureLog, admin: Actor, engine: Engine
) -> None:
    slip = valid_record(dap_value=71, dap_unit="Gy·cm²")  # really 71 cGy·cm²
    with pytest.raises(WarningsNotConfirmed) as info:
        service.log(slip, admin, create_missing=True)
    warning = info.value.warnings[0]
    assert warning.field == "dap_value"
    assert "the usual for transforaminal" in warning.message
    assert "is the unit cGy·cm²?" in warning.message
    assert count(engine, Procedure) == 0
    result = service.log(slip, admin, create_missing=True, confirm_warnings=True)
    assert service.get(result.record_id, admin)["warnings"][0]["field"] == "dap_value"


def test_minutes_typed_as_seconds_warns(service: ProcedureLog, admin: Actor) -> None:
    with pytest.raises(WarningsNotConfirmed, match="if the C-arm showed minutes"):
        service.log(valid_record(fluoro_time_s="1.3"), admin, create_missing=True)


def test_long_mbb_time_warns(service: ProcedureLog, admin: Actor) -> None:
    record = valid_record(procedure_code="MBB", levels=["L3-L4", "L4-L5"], fluoro_time_s="11:00",
                          realtime_contrast=False)
    with pytest.raises(WarningsNotConfirmed, match="unusually long for medial branch block"):
        service.log(record, admin, create_missing=True)


def test_more_levels_than_allowed_is_a_confirmed_warning(
    service: ProcedureLog, admin: Actor
) -> None:
    record = valid_record(levels=["L3", "L4", "L5"])
    with pytest.raises(WarningsNotConfirmed, match="exceeds the 2 that TFESI allows"):
        service.log(record, admin, create_missing=True)
    result = service.log(record, admin, create_missing=True, confirm_warnings=True)
    assert service.get(result.record_id, admin)["levels"] == ["L3", "L4", "L5"]


def test_particulate_steroid_in_cervical_tfesi_warns(service: ProcedureLog, admin: Actor) -> None:
    record = valid_record(levels=["C6"], injectate="triamcinolone", dap_value=0.3)
    with pytest.raises(WarningsNotConfirmed, match="particulate steroid"):
        service.log(record, admin, create_missing=True)


# --- amend and void ---------------------------------------------------------------------------

def _events(engine: Engine) -> list[AuditEvent]:
    with Session(engine) as s:
        return list(s.scalars(select(AuditEvent).order_by(AuditEvent.id)))


def test_amend_records_before_and_after(
    service: ProcedureLog, admin: Actor, engine: Engine, logged: int
) -> None:
    service.amend(logged, {"fluoro_time_s": "0:45", "levels": ["L5"]}, admin, version=1,
                  reason="time read from the C-arm again")
    record = service.get(logged, admin)
    assert record["version"] == 2 and record["fluoro_time_s"] == 45
    assert record["levels"] == ["L5"]
    event = _events(engine)[-1]
    assert event.action == "amend" and event.reason == "time read from the C-arm again"
    assert event.before == {"fluoro_time_s": 32, "levels": ["L4", "L5"], "version": 1}
    assert event.after["fluoro_time_s"] == 45 and event.after["version"] == 2


def test_stale_amend_is_refused_and_changes_nothing(
    service: ProcedureLog, admin: Actor, logged: int
) -> None:
    service.amend(logged, {"saved_images": 3}, admin, version=1, reason="PACS count")
    with pytest.raises(StaleVersion, match=r"changed by .* after you opened it") as info:
        service.amend(logged, {"saved_images": 5}, admin, version=1, reason="other edit")
    assert "nothing was saved" in str(info.value)
    record = service.get(logged, admin)
    assert record["saved_images"] == 3 and record["version"] == 2


def test_amend_needs_a_reason_and_a_change(service: ProcedureLog, admin: Actor,
                                           logged: int) -> None:
    with pytest.raises(ValidationFailed, match="reason: required"):
        service.amend(logged, {"saved_images": 3}, admin, version=1, reason=" ")
    with pytest.raises(ValidationFailed, match="nothing would change"):
        service.amend(logged, {"saved_images": 2}, admin, version=1, reason="no-op")


def test_amend_revalidates_the_whole_record(service: ProcedureLog, admin: Actor,
                                            logged: int) -> None:
    with pytest.raises(ValidationFailed, match="dap_unit"):
        service.amend(logged, {"dap_unit": "mGy"}, admin, version=1, reason="unit")
    assert service.get(logged, admin)["version"] == 1


def test_amend_dap_in_canonical_units_replaces_the_displayed_value(
    service: ProcedureLog, admin: Actor, logged: int
) -> None:
    service.amend(logged, {"dap_gycm2": 0.8}, admin, version=1, reason="corrected")
    record = service.get(logged, admin)
    assert record["dap_gycm2"] == 0.8 and record["dap_unit"] == "Gy·cm²"


def test_void_keeps_the_record_visible_as_void(
    service: ProcedureLog, admin: Actor, engine: Engine, logged: int
) -> None:
    with pytest.raises(ValidationFailed, match="reason"):
        service.void(logged, admin, version=1, reason="")
    service.void(logged, admin, version=1, reason="duplicate entry")
    record = service.get(logged, admin)
    assert record["status"] == "void" and record["void_reason"] == "duplicate entry"
    assert count(engine, Procedure) == 1
    with pytest.raises(RecordVoided):
        service.amend(logged, {"saved_images": 3}, admin, version=2, reason="x")
    page, total = service.list(admin, Filters(status="void"))
    assert total == 1 and page[0]["record_id"] == logged


# --- roles ------------------------------------------------------------------------------------

def test_technologists_log_and_amend_only_their_own(
    service: ProcedureLog, admin: Actor, tech: Actor, logged: int
) -> None:
    other = Actor("tech2", Role.TECHNOLOGIST)
    with pytest.raises(PermissionDenied, match="only their own"):
        service.amend(logged, {"saved_images": 3}, other, version=1, reason="x")
    service.amend(logged, {"saved_images": 3}, tech, version=1, reason="PACS count")
    with pytest.raises(ValidationFailed, match="you are signed in as tech2"):
        service.log(valid_record(), other)


@pytest.mark.parametrize("role", [Role.PHYSICIAN, Role.QUALITY_OFFICER, Role.RSO])
def test_roles_that_cannot_log(service: ProcedureLog, role: Role) -> None:
    with pytest.raises(PermissionDenied, match="may not log procedure"):
        service.log(valid_record(), Actor("someone", role))


def test_quality_officer_sees_no_phi(service: ProcedureLog, logged: int) -> None:
    qo = Actor("qo", Role.QUALITY_OFFICER)
    assert service.get(logged, qo)["patient_id"] is None
    page, _ = service.list(qo)
    assert page[0]["patient_id"] is None and page[0]["patient_ref"]


def test_list_is_scoped_to_the_technologists_own_entries(
    service: ProcedureLog, admin: Actor, logged: int
) -> None:
    assert service.list(Actor("tech1", Role.TECHNOLOGIST))[1] == 1
    assert service.list(Actor("tech2", Role.TECHNOLOGIST))[1] == 0
    with pytest.raises(PermissionDenied):
        service.get(logged, Actor("tech2", Role.TECHNOLOGIST))


def test_physicians_read_their_own_records(
    service: ProcedureLog, engine: Engine, logged: int
) -> None:
    with Session(engine) as s, s.begin():
        s.scalar(select(Physician).where(Physician.name == "Dr. Chen")).username = "chen"
    assert service.list(Actor("chen", Role.PHYSICIAN))[1] == 1
    assert service.list(Actor("weiss", Role.PHYSICIAN))[1] == 0


# --- batches and filters ----------------------------------------------------------------------

def test_a_batch_is_all_or_nothing(service: ProcedureLog, admin: Actor, engine: Engine) -> None:
    good, other = valid_record(), valid_record(patient_id="MRN0002")
    bad = valid_record(levels=["L9-L10"], patient_id="MRN0003")
    with pytest.raises(ValidationFailed) as info:
        service.log_many([good, other, bad], admin, create_missing=True)
    assert [e.field for e in info.value.errors] == ["record 3: levels"]
    assert count(engine, Procedure) == 0 and count(engine, AuditEvent) == 0
    results = service.log_many([good, other], admin, create_missing=True)
    assert len(results) == 2 and count(engine, Procedure) == 2


def test_list_filters_and_pages(service: ProcedureLog, admin: Actor) -> None:
    for day in range(1, 8):
        service.log(valid_record(performed_at=f"2026-03-{day:02d}T10:00:00Z",
                                 procedure_code="CAUDAL" if day % 2 else "TFESI",
                                 levels=None if day % 2 else ["L5"],
                                 laterality=None if day % 2 else "left",
                                 realtime_contrast=not day % 2),
                    admin, create_missing=True)
    page, total = service.list(admin, Filters(procedures=("CAUDAL",), include_voided=True),
                               limit=2)
    assert total == 4 and len(page) == 2
    assert page[0]["performed_at"] > page[1]["performed_at"]  # newest first
    page, total = service.list(admin, Filters(
        start=datetime(2026, 3, 3, tzinfo=UTC), before=datetime(2026, 3, 5, tzinfo=UTC),
        include_voided=True))
    assert total == 2


def test_every_input_field_round_trips(service: ProcedureLog, admin: Actor) -> None:
    """Each dictionary input field comes back as given (canonicalised where it should be)."""
    full = valid_record(
        accession_number="ACC-77", patient_sex="female", patient_weight_kg=71.5,
        guidance="fluoroscopy_dsa", dsa_runs=1, fluoro_time_s="1.3 min", dap_value=87,
        dap_unit="cGy.cm2", air_kerma_mgy="0.0061 Gy", pulsed_fluoro=True, pulse_rate_pps=8,
        low_dose_mode="yes", vascular_uptake=True, needle_repositioned=True,
        confirmation_views="lat; ap", notes="Réalisé sans incident — 完了",
        levels="l5-s1", procedure_code="tfesi",
    )
    record = service.get(service.log(full, admin, create_missing=True).record_id, admin)
    expected = {
        "accession_number": "ACC-77", "patient_sex": "F", "patient_weight_kg": 71.5,
        "guidance": "fluoroscopy_dsa", "dsa_runs": 1, "fluoro_time_s": 78.0,
        "dap_value": 87, "dap_unit": "cGy·cm²", "air_kerma_mgy": pytest.approx(6.1),
        "pulsed_fluoro": True, "pulse_rate_pps": 8, "low_dose_mode": True,
        "vascular_uptake": True, "needle_repositioned": True,
        "confirmation_views": ["AP", "LAT"], "notes": "Réalisé sans incident — 完了",
        "levels": ["L5-S1"], "procedure_code": "TFESI", "region": "lumbar",
        "dap_gycm2": pytest.approx(0.87), "pregnancy_status": "not_pregnant",
        "laterality": "left", "contrast_agent": "iohexol 240", "contrast_volume_ml": 1.5,
        "realtime_contrast": True, "injectate": "dexamethasone", "saved_images": 2,
        "site": "Riverside", "room": "OR 1", "physician": "Dr. Chen", "technologist": "tech1",
        "patient_id": "MRN0001",
    }
    assert {k: record[k] for k in expected} == expected


def test_room_display_unit_is_the_default_dap_unit(
    service: ProcedureLog, admin: Actor, engine: Engine, logged: int
) -> None:
    from audit.storage.models import Room

    with Session(engine) as s, s.begin():
        s.scalar(select(Room).where(Room.name == "OR 1")).dap_display_unit = "µGy·m²"
    record_id = service.log(valid_record(dap_value=71, dap_unit=None, patient_id="MRN0002"),
                            admin).record_id
    record = service.get(record_id, admin)
    assert record["dap_unit"] == "µGy·m²" and record["dap_gycm2"] == pytest.approx(0.71)


def test_a_technologist_cannot_hand_a_record_to_another_technologist(
    service: ProcedureLog, admin: Actor, tech: Actor, logged: int
) -> None:
    """Issue 10: amending `technologist` gave a case to someone else (who then answers for its
    dose and contrast); refused with the field named, and the record keeps its technologist."""
    service.log(valid_record(technologist="tech2", patient_id="MRN0002"), admin,
                create_missing=True)
    with pytest.raises(ValidationFailed, match="technologist: you are signed in as tech1"):
        service.amend(logged, {"technologist": "tech2"}, tech, version=1, reason="not mine")
    record = service.get(logged, admin)
    assert record["technologist"] == "tech1" and record["version"] == 1
    # naming themselves is allowed; an administrator may re-assign
    service.amend(logged, {"technologist": "tech1", "saved_images": 3}, tech, version=1,
                  reason="PACS count")
    service.amend(logged, {"technologist": "tech2"}, admin, version=2, reason="wrong tech")
    assert service.get(logged, admin)["technologist"] == "tech2"
