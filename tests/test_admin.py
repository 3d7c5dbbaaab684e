"""Reference data administration (audit.reference_data): sites, rooms, physicians, the procedure
catalog. Admin permission checked in the library; errors name the field; every change audited
with before and after; nothing deleted."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from audit import auth
from audit import reference_data as admin
from audit.auth import Actor, cli_actor
from audit.errors import NotFound, PermissionDenied, ValidationFailed
from audit.log.service import ProcedureLog
from audit.storage.models import AuditEvent
from audit.vocab import Role
from tests.conftest import valid_record

BOSS = Actor("boss", Role.ADMIN)
TECH = Actor("tech1", Role.TECHNOLOGIST)


def trail(engine: Engine, entity: str) -> list[AuditEvent]:
    with Session(engine) as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.entity == entity)
                              .order_by(AuditEvent.id)))


def fields_of(exc: pytest.ExceptionInfo[ValidationFailed]) -> dict[str, str]:
    return {e.field: e.message for e in exc.value.errors}


@pytest.fixture
def site(engine: Engine) -> int:
    return admin.add_site(engine, BOSS, "Riverside")


def test_writes_need_the_admin_permission(engine: Engine, site: int) -> None:
    calls = [
        lambda: admin.add_site(engine, TECH, "Elsewhere"),
        lambda: admin.update_site(engine, TECH, site, name="X"),
        lambda: admin.add_room(engine, TECH, "Riverside", "OR 9"),
        lambda: admin.add_physician(engine, TECH, "Dr. Who"),
        lambda: admin.add_procedure_type(engine, TECH, code="NEW", name="n", region="other",
                                         contrast_policy="required"),
        lambda: admin.update_procedure_type(engine, TECH, "MBB", max_levels=1),
    ]
    for call in calls:
        with pytest.raises(PermissionDenied):
            call()
    assert [s["name"] for s in admin.list_sites(engine)] == ["Riverside"]


def test_a_site_is_created_renamed_and_deactivated_with_its_trail(
    engine: Engine, site: int
) -> None:
    admin.update_site(engine, BOSS, site, name="Riverside Spine Center")
    admin.update_site(engine, BOSS, site, active=False)
    assert admin.list_sites(engine) == [{"site_id": site, "name": "Riverside Spine Center",
                                         "active": False}]
    assert admin.list_sites(engine, active_only=True) == []
    events = [(e.action, e.before, e.after) for e in trail(engine, "site")]
    assert events == [
        ("create", None, {"name": "Riverside"}),
        ("amend", {"name": "Riverside"}, {"name": "Riverside Spine Center"}),
        ("deactivate", {"name": "Riverside Spine Center", "active": True},
         {"name": "Riverside Spine Center", "active": False}),
    ]
    with pytest.raises(ValidationFailed, match="nothing would change"):
        admin.update_site(engine, BOSS, site, active=False)
    with pytest.raises(ValidationFailed) as info:
        admin.add_site(engine, BOSS, "Riverside Spine Center")
    assert "exists" in fields_of(info)["name"]


def test_a_room_carries_device_display_unit_and_kap_factor(engine: Engine, site: int) -> None:
    room = admin.add_room(engine, BOSS, "Riverside", "OR 1", make="Siemens",
                          model="Cios Alpha", serial="SN-1", dap_display_unit="uGy.m2",
                          kap_correction_factor="0,75")
    [row] = admin.list_rooms(engine)
    assert row == {"room_id": room, "site": "Riverside", "name": "OR 1", "make": "Siemens",
                   "model": "Cios Alpha", "serial": "SN-1", "dap_display_unit": "µGy·m²",
                   "kap_correction_factor": 0.75, "active": True}
    admin.update_room(engine, BOSS, room, kap_correction_factor=0.8, serial="")
    [row] = admin.list_rooms(engine)
    assert row["kap_correction_factor"] == 0.8 and row["serial"] is None
    last = trail(engine, "room")[-1]
    assert last.before == {"name": "OR 1", "kap_correction_factor": 0.75, "serial": "SN-1"}
    assert last.after == {"name": "OR 1", "kap_correction_factor": 0.8, "serial": None}


def test_room_errors_name_each_field(engine: Engine, site: int) -> None:
    with pytest.raises(ValidationFailed) as info:
        admin.add_room(engine, BOSS, "Riverside", "", dap_display_unit="mGy",
                       kap_correction_factor="x")
    errors = fields_of(info)
    assert errors["name"] == "required"
    assert "air kerma unit" in errors["dap_display_unit"]
    assert "from 0.1 to 2" in errors["kap_correction_factor"]
    with pytest.raises(ValidationFailed) as info:
        admin.add_room(engine, BOSS, "Nowhere", "OR 1")
    assert "no site named 'Nowhere'" in fields_of(info)["site"]
    with pytest.raises(ValidationFailed) as info:
        admin.update_room(engine, BOSS, 1, colour="red")
    assert "cannot be changed here" in fields_of(info)["colour"]
    with pytest.raises(NotFound):
        admin.update_room(engine, BOSS, 999, name="X")


def test_the_kap_factor_of_a_room_changes_the_effective_dose(
    engine: Engine, site: int, service: ProcedureLog
) -> None:
    admin.add_room(engine, BOSS, "Riverside", "OR 1", kap_correction_factor=0.5)
    admin.add_physician(engine, BOSS, "Dr. Chen")
    auth.add_user(engine, BOSS, "tech1", Role.TECHNOLOGIST, None)
    result = service.log(valid_record(), cli_actor())
    assert result.effective_dose_msv == pytest.approx(0.71 * 0.5 * 0.33)


def test_a_physician_links_only_to_a_physician_account(engine: Engine) -> None:
    auth.add_user(engine, cli_actor(), "drchen", Role.PHYSICIAN, None)
    auth.add_user(engine, cli_actor(), "tech1", Role.TECHNOLOGIST, None)
    doc = admin.add_physician(engine, BOSS, "Dr. Chen", username="drchen")
    assert admin.list_physicians(engine)[0]["username"] == "drchen"
    with pytest.raises(ValidationFailed, match=r"already linked to Dr\. Chen"):
        admin.add_physician(engine, BOSS, "Dr. Other", username="drchen")
    with pytest.raises(ValidationFailed, match="only a physician account"):
        admin.update_physician(engine, BOSS, doc, username="tech1")
    with pytest.raises(ValidationFailed, match="no account named"):
        admin.update_physician(engine, BOSS, doc, username="ghost")
    admin.update_physician(engine, BOSS, doc, username=None, active=False)
    assert admin.list_physicians(engine)[0] == {"physician_id": doc, "name": "Dr. Chen",
                                                "username": None, "active": False}


def test_adding_a_procedure_type_that_the_service_then_accepts(
    engine: Engine, site: int, service: ProcedureLog
) -> None:
    admin.add_procedure_type(
        engine, BOSS, code="genicular_rfa", name="Genicular nerve RFA", region="other",
        contrast_policy="not_required", min_views=0, typical_dap_gycm2="1.2",
        laterality_required=True)
    [entry] = [e for e in admin.list_procedure_types(engine) if e["code"] == "GENICULAR_RFA"]
    assert entry["laterality_required"] is True and entry["typical_dap_gycm2"] == 1.2
    created = trail(engine, "procedure_type")[-1]
    assert created.action == "create" and created.after["code"] == "GENICULAR_RFA"
    service.refresh()
    assert service.catalog.lookup("GENICULAR_RFA") is not None
    admin.add_room(engine, BOSS, "Riverside", "OR 1")
    admin.add_physician(engine, BOSS, "Dr. Chen")
    auth.add_user(engine, BOSS, "tech1", Role.TECHNOLOGIST, None)
    record = valid_record(procedure_code="GENICULAR_RFA", levels=None,
                          contrast_confirmation="not_required", contrast_agent=None,
                          contrast_volume_ml=None, confirmation_views=None,
                          realtime_contrast=None, dap_value=1.1)
    assert service.log(record, cli_actor()).record_id


def test_catalog_errors_name_each_field(engine: Engine) -> None:
    with pytest.raises(ValidationFailed) as info:
        admin.add_procedure_type(engine, BOSS, code="x y", name="", region="knee",
                                 contrast_policy="sometimes", min_views=9, max_levels=-1)
    errors = fields_of(info)
    assert set(errors) >= {"code", "name", "region", "contrast_policy", "min_views",
                           "max_levels"}
    assert "allowed:" in errors["region"]
    with pytest.raises(ValidationFailed) as info:
        admin.add_procedure_type(engine, BOSS, code="TFESI", name="again", region="other",
                                 contrast_policy="required")
    assert "already in the catalog" in fields_of(info)["code"]
    with pytest.raises(ValidationFailed) as info:
        admin.update_procedure_type(engine, BOSS, "TFESI", level_regions=[],
                                    realtime_contrast_required=True,
                                    contrast_policy="not_required")
    assert set(fields_of(info)) == {"level_regions", "levels_required",
                                    "realtime_contrast_required"}


def test_editing_the_catalog_records_before_and_after(engine: Engine) -> None:
    admin.update_procedure_type(engine, BOSS, "mbb", max_levels=3, level_regions="lumbar; "
                                "cervical")
    [mbb] = [e for e in admin.list_procedure_types(engine) if e["code"] == "MBB"]
    assert mbb["max_levels"] == 3 and mbb["level_regions"] == ["cervical", "lumbar"]
    last = trail(engine, "procedure_type")[-1]
    assert last.before == {"name": "MBB", "max_levels": 2,  # the facet LCDs (migration 0010)
                           "level_regions": "cervical;thoracic;lumbar;sacral"}
    assert last.after == {"name": "MBB", "max_levels": 3, "level_regions": "cervical;lumbar"}
    with pytest.raises(NotFound):
        admin.update_procedure_type(engine, BOSS, "NOPE", max_levels=1)
