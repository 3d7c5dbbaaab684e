"""Merging split names (issue 11), on SQLite and PostgreSQL: every record re-pointed through its
own audited amendment, verify-audit intact afterwards, the merged name kept as an alias that
later entries resolve through, the duplicate deactivated (never deleted), and the refusals."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from audit import auth, reference_data
from audit.auth import Actor
from audit.cli import main
from audit.errors import PermissionDenied, ValidationFailed, WarningsNotConfirmed
from audit.log.merge import merge_names
from audit.log.replay import check_procedures
from audit.log.service import ProcedureLog
from audit.storage.models import AuditEvent, NameAlias, Physician, Room, Site
from audit.trail import verify_chain
from audit.vocab import Role
from tests.conftest import valid_record

CHEN = "Dr. Amelia Chen"
RIVERSIDE = "Riverside Spine Center"


def record(n: int, **overrides: Any) -> dict[str, Any]:
    base = {"site": RIVERSIDE, "room": "OR 1", "physician": CHEN, "patient_id": f"MRN{n:04d}"}
    return valid_record(**(base | overrides))


@pytest.fixture
def split(engine: Engine, admin: Actor, service: ProcedureLog) -> dict[str, list[int]]:
    """What issue 11 found: Dr. Amelia Chen's records split across "Chen" and "Dr. Chen", one
    of them amended and one voided since, and a record of another physician."""
    reference_data.add_site(engine, admin, RIVERSIDE)
    reference_data.add_room(engine, admin, RIVERSIDE, "OR 1", dap_display_unit="µGy·m²")
    for name in (CHEN, "Chen", "Dr. Chen"):  # as the form made them before issue 11
        reference_data.add_physician(engine, admin, name)
    kept = [service.log(record(1), admin, create_missing=True).record_id]
    chen = [service.log(record(n, physician="Chen"), admin).record_id for n in (2, 3, 4)]
    dr_chen = [service.log(record(5, physician="Dr. Chen"), admin).record_id]
    other = [service.log(record(6, physician="Dr. Weiss"), admin,
                         create_missing=True).record_id]
    service.amend(chen[0], {"saved_images": 3}, admin, version=1, reason="count again")
    service.void(chen[1], admin, version=1, reason="duplicate entry")
    return {"kept": kept, "chen": chen, "dr_chen": dr_chen, "other": other}


def events_for(engine: Engine, record_id: int) -> list[AuditEvent]:
    with Session(engine) as s:
        return list(s.scalars(select(AuditEvent).where(
            AuditEvent.entity == "procedure", AuditEvent.entity_id == str(record_id))
            .order_by(AuditEvent.id)))


def intact(engine: Engine) -> bool:
    with Session(engine) as s:
        return verify_chain(s).ok and check_procedures(s).found == 0


def test_merge_repoints_every_record_with_one_audited_amendment_each(
    engine: Engine, admin: Actor, service: ProcedureLog, split: dict[str, list[int]],
) -> None:
    before = {i: service.get(i, admin) for ids in split.values() for i in ids}
    result = merge_names(engine, admin, "physician", "Chen", CHEN, "one physician, typed short")
    assert result.record_ids == split["chen"]
    for record_id in split["chen"]:
        now = service.get(record_id, admin)
        assert now["physician"] == CHEN
        assert now["version"] == before[record_id]["version"] + 1
        assert now["updated_by"] == admin.username
        assert {k for k in now if now[k] != before[record_id][k]} <= {
            "physician", "version", "updated_by", "updated_at"}
        last = events_for(engine, record_id)[-1]
        assert (last.action, last.actor) == ("amend", admin.username)
        assert last.before == {"physician": "Chen", "version": before[record_id]["version"]}
        assert last.after == {"physician": CHEN, "version": now["version"]}
        assert last.reason == f"merge of physician 'Chen' into '{CHEN}': one physician, " \
            "typed short"
    assert service.get(split["chen"][1], admin)["status"] == "void"  # stays void, re-pointed
    for record_id in split["kept"] + split["dr_chen"] + split["other"]:
        assert service.get(record_id, admin) == before[record_id]  # untouched, no event
    assert intact(engine)


def test_verify_audit_says_intact_after_merges(
    db_url: str, engine: Engine, admin: Actor, split: dict[str, list[int]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    merge_names(engine, admin, "physician", "Chen", CHEN, "typed short")
    capsys.readouterr()
    code = main(["--db", db_url, "merge", "physician", "Dr. Chen", "into", CHEN,
                 "--reason", "typed short"])
    out = capsys.readouterr().out
    assert code == 0 and '"records": 1' in out
    capsys.readouterr()
    assert main(["--db", db_url, "verify-audit"]) == 0
    printed = capsys.readouterr().out
    assert "procedures intact: 6 records match their audit history" in printed


def test_the_merged_name_is_deactivated_and_kept_as_an_alias_for_later_entries(
    engine: Engine, admin: Actor, service: ProcedureLog, split: dict[str, list[int]],
) -> None:
    merge_names(engine, admin, "physician", "Chen", CHEN, "typed short")
    with Session(engine) as s:
        source = s.scalars(select(Physician).where(Physician.name == "Chen")).one()
        assert source.active is False  # kept, not deleted
        alias = s.scalars(select(NameAlias)).one()
        assert (alias.kind, alias.alias, alias.target_id, alias.source_id) == (
            "physician", "Chen", s.scalar(select(Physician.id).where(Physician.name == CHEN)),
            source.id)
        retired = s.scalars(select(AuditEvent).where(
            AuditEvent.entity == "physician", AuditEvent.entity_id == str(source.id),
            AuditEvent.action == "deactivate")).one()
        assert retired.after["merged_into"] == CHEN and retired.after["records"] == 3
    later = service.log(record(7, physician="Chen"), admin)  # no create_missing needed
    also = service.log(record(8, physician="chen"), admin, create_missing=True)
    assert service.get(later.record_id, admin)["physician"] == CHEN
    assert service.get(also.record_id, admin)["physician"] == CHEN
    assert "Chen" not in [p["name"] for p in reference_data.list_physicians(
        engine, active_only=True)]
    assert intact(engine)


def test_only_administrators_merge(engine: Engine, split: dict[str, list[int]]) -> None:
    for role in (Role.TECHNOLOGIST, Role.QUALITY_OFFICER, Role.RSO, Role.PHYSICIAN):
        with pytest.raises(PermissionDenied):
            merge_names(engine, Actor("someone", role), "physician", "Chen", CHEN, "why")
    with Session(engine) as s:
        assert s.scalar(select(Physician.active).where(Physician.name == "Chen")) is True


def test_a_merge_names_what_is_wrong_and_writes_nothing(
    engine: Engine, admin: Actor, split: dict[str, list[int]]
) -> None:
    with pytest.raises(ValidationFailed) as info:
        merge_names(engine, admin, "doctor", "", CHEN, " ")
    assert {e.field for e in info.value.errors} == {"kind", "source", "reason"}
    with pytest.raises(ValidationFailed, match="no physician named 'Chenn'; did you mean"):
        merge_names(engine, admin, "physician", "Chenn", CHEN, "why")
    with pytest.raises(ValidationFailed, match="is the physician being merged"):
        merge_names(engine, admin, "physician", CHEN, CHEN, "why")
    merge_names(engine, admin, "physician", "Chen", CHEN, "why")
    with pytest.raises(ValidationFailed, match="'Chen' is deactivated"):
        merge_names(engine, admin, "physician", "Dr. Chen", "Chen", "why")


def test_rooms_at_different_sites_are_refused_and_other_display_units_need_confirming(
    engine: Engine, admin: Actor, service: ProcedureLog, split: dict[str, list[int]],
) -> None:
    reference_data.add_site(engine, admin, "Northgate")
    reference_data.add_room(engine, admin, "Northgate", "OR 1")
    with pytest.raises(ValidationFailed, match="rooms at different sites are not merged"):
        merge_names(engine, admin, "room", "OR 1", "OR 1", "why", site="Northgate",
                    target_site=RIVERSIDE)
    wrong = service.log(record(9, room="OR1", dap_value=0.71, dap_unit="Gy·cm²"), admin,
                        create_missing=True, confirm_warnings=True)
    with pytest.raises(WarningsNotConfirmed) as info:
        merge_names(engine, admin, "room", "OR1", "OR 1", "typed without the space",
                    site=RIVERSIDE)
    [warning] = info.value.warnings
    assert warning.field == "room"
    assert "'OR1' displays DAP in Gy·cm² but 'OR 1' in µGy·m²" in warning.message
    assert service.get(wrong.record_id, admin)["room"] == "OR1"
    result = merge_names(engine, admin, "room", "OR1", "OR 1", "typed without the space",
                         site=RIVERSIDE, confirm_warnings=True)
    assert result.record_ids == [wrong.record_id]
    moved = service.get(wrong.record_id, admin)
    assert moved["room"] == "OR 1" and (moved["dap_value"], moved["dap_unit"]) == (0.71,
                                                                                  "Gy·cm²")
    assert intact(engine)


def test_a_room_with_another_kap_factor_gets_its_effective_doses_recomputed(
    engine: Engine, admin: Actor, service: ProcedureLog, split: dict[str, list[int]],
) -> None:
    with Session(engine) as s:
        kept_id = s.scalar(select(Room.id).where(Room.name == "OR 1"))
    reference_data.update_room(engine, admin, kept_id, kap_correction_factor=0.5)
    wrong = service.log(record(10, room="Room One", dap_unit="µGy·m²", dap_value=71), admin,
                        create_missing=True, confirm_warnings=True)
    dose = service.get(wrong.record_id, admin)["effective_dose_msv"]
    merge_names(engine, admin, "room", "Room One", "OR 1", "same C-arm", site=RIVERSIDE,
                confirm_warnings=True)
    now = service.get(wrong.record_id, admin)
    assert now["effective_dose_msv"] == pytest.approx(dose * 0.5)
    last = events_for(engine, wrong.record_id)[-1]
    assert last.before["effective_dose_msv"] == dose and last.after["room"] == "OR 1"
    assert intact(engine)


def test_a_site_merge_moves_its_rooms_or_merges_them_into_the_same_named_ones(
    engine: Engine, admin: Actor, service: ProcedureLog, split: dict[str, list[int]],
) -> None:
    same_room = service.log(record(11, site="River"), admin, create_missing=True,
                            confirm_warnings=True).record_id
    other_room = service.log(record(12, site="River", room="Procedure Room 3",
                                    dap_unit="µGy·m²", dap_value=71),
                             admin, create_missing=True, confirm_warnings=True).record_id
    with Session(engine) as s:
        assert s.scalar(select(Room.dap_display_unit).where(Room.name == "OR 1",
                        Room.site.has(Site.name == "River"))) == "Gy·cm²"
    with pytest.raises(WarningsNotConfirmed, match="displays DAP in Gy·cm²"):
        merge_names(engine, admin, "site", "River", RIVERSIDE, "partial name")
    result = merge_names(engine, admin, "site", "River", RIVERSIDE, "partial name",
                         confirm_warnings=True)
    assert (result.rooms_merged, result.rooms_moved) == (["OR 1"], ["Procedure Room 3"])
    first, second = service.get(same_room, admin), service.get(other_room, admin)
    assert (first["site"], first["room"]) == (RIVERSIDE, "OR 1")
    assert (second["site"], second["room"]) == (RIVERSIDE, "Procedure Room 3")
    assert events_for(engine, same_room)[-1].after == {"site": RIVERSIDE, "room": "OR 1",
                                                       "version": 2}
    rooms = {(r["site"], r["name"]) for r in reference_data.list_rooms(engine,
                                                                        active_only=True)}
    assert rooms == {(RIVERSIDE, "OR 1"), (RIVERSIDE, "Procedure Room 3")}
    later = service.log(record(13, site="River", room="Procedure Room 3"), admin)
    assert service.get(later.record_id, admin)["site"] == RIVERSIDE
    assert intact(engine)


def test_technologists_merge_only_when_the_duplicate_cannot_sign_in(
    engine: Engine, admin: Actor, service: ProcedureLog, split: dict[str, list[int]],
) -> None:
    auth.add_user(engine, admin, "jsmith", Role.TECHNOLOGIST, "correct horse battery")
    typed = service.log(record(14, technologist="j.smith"), admin, create_missing=True,
                        confirm_warnings=True).record_id
    with pytest.raises(ValidationFailed, match="'jsmith' is an active sign-in account"):
        merge_names(engine, admin, "technologist", "jsmith", "j.smith", "why")
    merge_names(engine, admin, "technologist", "j.smith", "jsmith", "import spelling")
    assert service.get(typed, admin)["technologist"] == "jsmith"
    assert service.list(Actor("jsmith", Role.TECHNOLOGIST))[1] == 1  # now in their own list
    assert intact(engine)


def test_a_physicians_account_link_follows_the_merge(
    engine: Engine, admin: Actor, split: dict[str, list[int]]
) -> None:
    auth.add_user(engine, admin, "achen", Role.PHYSICIAN, "correct horse battery")
    with Session(engine) as s:
        chen_id = s.scalar(select(Physician.id).where(Physician.name == "Chen"))
    reference_data.update_physician(engine, admin, chen_id, username="achen")
    merge_names(engine, admin, "physician", "Chen", CHEN, "typed short")
    with Session(engine) as s:
        assert s.scalar(select(Physician.username).where(Physician.name == CHEN)) == "achen"
        assert s.scalar(select(Physician.username).where(Physician.name == "Chen")) is None
    assert intact(engine)
