"""Names on the way in (issue 11), on SQLite and PostgreSQL: `--create-missing` (the CLI's
`log`, CSV import) warns of a new name near an existing one until it is confirmed; a name written
another way resolves to the stored one; the log form's "Add new" (add_name) asks the same and
gives a new room the unit its display shows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from audit import reference_data
from audit.auth import Actor
from audit.cli import main
from audit.errors import PermissionDenied, ValidationFailed, WarningsNotConfirmed
from audit.log.csv_import import import_csv
from audit.log.name_entry import add_name
from audit.log.service import ProcedureLog
from audit.storage.models import AuditEvent, Physician, Procedure, Room, Site
from audit.vocab import Role
from tests.conftest import valid_record
from tests.log.test_csvlog import COLUMNS, write_csv

CHEN = "Dr. Amelia Chen"
RIVERSIDE = "Riverside Spine Center"
NEAR_CHEN = ("physician: 'Chen' is new; did you mean 'Dr. Amelia Chen'? (--confirm-warnings "
             "to add it anyway)")


@pytest.fixture
def clinic(engine: Engine, admin: Actor, service: ProcedureLog) -> ProcedureLog:
    """The real names: a site whose C-arm displays µGy·m², Dr. Amelia Chen, and tech1."""
    reference_data.add_site(engine, admin, RIVERSIDE)
    reference_data.add_room(engine, admin, RIVERSIDE, "OR 1", dap_display_unit="µGy·m²")
    reference_data.add_physician(engine, admin, CHEN)
    service.log(record(), admin, create_missing=True)  # creates tech1 and a first record
    return service


def record(**overrides: Any) -> dict[str, Any]:
    return valid_record(**({"site": RIVERSIDE, "room": "OR 1", "physician": CHEN} | overrides))


def count(engine: Engine, model: Any) -> int:
    with Session(engine) as s:
        return s.scalar(select(func.count()).select_from(model)) or 0


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


# --- create-missing warns of near names --------------------------------------------------------

def test_cli_log_create_missing_warns_of_a_near_physician_until_confirmed(
    db_url: str, engine: Engine, clinic: ProcedureLog, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "chen.json"
    path.write_text(json.dumps(record(physician="Chen", patient_id="MRN0002")), "utf-8")
    physicians, procedures = count(engine, Physician), count(engine, Procedure)

    code, out, err = run_cli(capsys, "--db", db_url, "log", str(path), "--create-missing")
    assert code == 1 and out == ""
    assert f"error: record 1: {NEAR_CHEN}" in err.splitlines()
    assert "(confirm with --confirm-warnings)" not in err  # said once, in the warning
    assert (count(engine, Physician), count(engine, Procedure)) == (physicians, procedures)

    code, out, err = run_cli(capsys, "--db", db_url, "log", str(path), "--create-missing",
                             "--confirm-warnings")
    assert code == 0, err
    shown = clinic.get(json.loads(out)["record_id"], Actor("x", Role.ADMIN))
    assert shown["physician"] == "Chen" and shown["warnings"] == []
    with Session(engine) as s:
        created = s.scalars(select(AuditEvent).where(
            AuditEvent.entity == "physician", AuditEvent.action == "create")
            .order_by(AuditEvent.id.desc())).first()
    assert created is not None and created.after["name"] == "Chen"
    assert created.after["near_names_confirmed"] == [CHEN]
    assert "confirmed as different from 'Dr. Amelia Chen'" in (created.reason or "")


def test_each_near_new_name_is_a_warning_naming_its_field(
    clinic: ProcedureLog, admin: Actor, engine: Engine
) -> None:
    with pytest.raises(WarningsNotConfirmed) as info:
        clinic.log(record(site="River", physician="Dr. Chen", patient_id="MRN0003"), admin,
                   create_missing=True)
    messages = {w.field: w.message for w in info.value.warnings}
    assert messages == {
        "site": "'River' is new; did you mean 'Riverside Spine Center'? (--confirm-warnings to "
                "add it anyway)",
        "physician": "'Dr. Chen' is new; did you mean 'Dr. Amelia Chen'? (--confirm-warnings "
                     "to add it anyway)"}
    assert count(engine, Site) == 1 and count(engine, Physician) == 1


def test_new_names_unlike_any_other_are_created_without_a_warning(
    clinic: ProcedureLog, admin: Actor, engine: Engine
) -> None:
    """OR 2 beside OR 1 is another room; Dr. Weiss is nobody's misspelling."""
    result = clinic.log(record(room="OR 2", physician="Dr. Weiss", patient_id="MRN0004"),
                        admin, create_missing=True)
    assert result.warnings == []
    assert count(engine, Room) == 2 and count(engine, Physician) == 2


def test_csv_import_reports_near_names_as_warnings_that_need_confirmation(
    clinic: ProcedureLog, admin: Actor, engine: Engine, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "legacy.csv", [record(physician="Chen", patient_id="MRN0005")],
                     COLUMNS)
    before = count(engine, Procedure)
    refused = import_csv(clinic, admin, path, create_missing=True)
    assert not refused.committed and refused.rows[0].status == "unconfirmed"
    assert refused.rows[0].problems() == [f"warning: {NEAR_CHEN}"]
    assert count(engine, Procedure) == before and count(engine, Physician) == 1
    accepted = import_csv(clinic, admin, path, create_missing=True, confirm_warnings=True)
    assert accepted.committed and count(engine, Physician) == 2


def test_cli_csv_import_prints_the_near_name_warning(
    db_url: str, clinic: ProcedureLog, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    path = write_csv(tmp_path / "legacy.csv", [record(site="River", patient_id="MRN0006")],
                     COLUMNS)
    code, out, err = run_cli(capsys, "--db", db_url, "import", "csv", str(path),
                             "--create-missing")
    assert code == 1
    assert "site: 'River' is new; did you mean 'Riverside Spine Center'?" in out + err


# --- the same name written another way ----------------------------------------------------------

@pytest.mark.parametrize("create_missing", [True, False])
def test_a_name_written_another_way_resolves_to_the_stored_one(
    clinic: ProcedureLog, admin: Actor, engine: Engine, create_missing: bool
) -> None:
    result = clinic.log(record(site="riverside spine center", room="or 1",
                               physician="dr amelia chen", patient_id="MRN0007"), admin,
                        create_missing=create_missing)
    stored = clinic.get(result.record_id, admin)
    assert (stored["site"], stored["room"], stored["physician"]) == (RIVERSIDE, "OR 1", CHEN)
    assert (count(engine, Site), count(engine, Room), count(engine, Physician)) == (1, 1, 1)
    # the room's display unit is found the same way: 125 without a unit is 125 µGy·m²
    unitless = record(site="RIVERSIDE SPINE CENTER", physician="Amelia Chen, M.D.",
                      patient_id="MRN0008", dap_value=125)
    unitless.pop("dap_unit")
    again = clinic.get(clinic.log(unitless, admin).record_id, admin)
    assert again["dap_unit"] == "µGy·m²" and again["physician"] == CHEN


def test_an_unknown_name_without_create_missing_suggests_the_near_one(
    clinic: ProcedureLog, admin: Actor
) -> None:
    with pytest.raises(ValidationFailed) as info:
        clinic.log(record(physician="Chen", patient_id="MRN0009"), admin)
    [error] = info.value.errors
    assert error.field == "physician"
    assert error.message.startswith("no physician named 'Chen'; did you mean 'Dr. Amelia "
                                    "Chen'?; known: 'Dr. Amelia Chen'")


def test_a_room_created_by_create_missing_displays_the_unit_its_record_was_entered_in(
    clinic: ProcedureLog, admin: Actor, engine: Engine
) -> None:
    clinic.log(record(room="Hybrid 3", dap_value=71, dap_unit="cGy·cm²", patient_id="MRN0010"),
               admin, create_missing=True)
    with Session(engine) as s:
        assert s.scalar(select(Room.dap_display_unit).where(Room.name == "Hybrid 3")) \
            == "cGy·cm²"
    # a room named like another site's belongs to its own site
    elsewhere = clinic.log(record(site="Northgate", patient_id="MRN0011"), admin,
                           create_missing=True)
    with Session(engine) as s:
        room = s.get(Room, s.get(Procedure, elsewhere.record_id).room_id)  # type: ignore
        assert room is not None and room.name == "OR 1"
        assert s.get(Site, room.site_id).name == "Northgate"  # type: ignore[union-attr]


# --- the log form's "Add new" --------------------------------------------------------------------

def test_adding_a_near_name_needs_confirmation(clinic: ProcedureLog, engine: Engine) -> None:
    tech = Actor("tech1", Role.TECHNOLOGIST)
    with pytest.raises(WarningsNotConfirmed) as info:
        add_name(engine, tech, "physician", "Chen")
    [warning] = info.value.warnings
    assert warning.field == "physician" and "did you mean 'Dr. Amelia Chen'?" in warning.message
    assert count(engine, Physician) == 1
    added = add_name(engine, tech, "physician", "Chen", confirm=True)
    assert (added.name, added.created) == ("Chen", True)
    with Session(engine) as s:
        event = s.scalars(select(AuditEvent).where(AuditEvent.entity == "physician")
                          .order_by(AuditEvent.id.desc())).first()
    assert event is not None and event.actor == "tech1"
    assert event.reason == "added from the log form; confirmed as different from " \
        "'Dr. Amelia Chen'"


def test_adding_a_name_written_another_way_selects_the_existing_one(
    clinic: ProcedureLog, engine: Engine, admin: Actor
) -> None:
    added = add_name(engine, admin, "physician", "  dr.  amelia CHEN ")
    assert (added.name, added.created) == (CHEN, False)
    site = add_name(engine, admin, "site", "riverside spine center")
    assert (site.name, site.created) == (RIVERSIDE, False)
    assert count(engine, Physician) == 1 and count(engine, Site) == 1


def test_a_new_room_needs_its_site_and_display_unit(clinic: ProcedureLog, engine: Engine,
                                                     admin: Actor) -> None:
    with pytest.raises(ValidationFailed) as info:
        add_name(engine, admin, "room", "OR 2")
    assert {e.field for e in info.value.errors} == {"site", "dap_display_unit"}
    with pytest.raises(ValidationFailed, match="no site named 'Nowhere'"):
        add_name(engine, admin, "room", "OR 2", site="Nowhere", dap_display_unit="Gy·cm²")
    added = add_name(engine, admin, "room", "OR 2", site=RIVERSIDE, dap_display_unit="mGy·cm²")
    assert (added.name, added.site, added.created) == ("OR 2", RIVERSIDE, True)
    with Session(engine) as s:
        room = s.scalars(select(Room).where(Room.name == "OR 2")).one()
        assert room.dap_display_unit == "mGy·cm²"
        assert s.get(Site, room.site_id).name == RIVERSIDE  # type: ignore[union-attr]


def test_only_roles_that_log_may_add_names(clinic: ProcedureLog, engine: Engine) -> None:
    with pytest.raises(PermissionDenied):
        add_name(engine, Actor("quality", Role.QUALITY_OFFICER), "site", "Northgate")
    with pytest.raises(ValidationFailed, match="cannot be added here"):
        add_name(engine, Actor("tech1", Role.TECHNOLOGIST), "technologist", "tech9")
