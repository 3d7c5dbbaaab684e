"""Checks at entry with hand-built patient histories (issue 15, "What must hold"): the form and
`log` warn, confirmable, and a confirmed warning is kept on the record."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine

from audit.auth import cli_actor
from audit.errors import ValidationFailed
from audit.log.service import ProcedureLog
from audit.rules.follow_up import record_follow_up
from tests.conftest import valid_record
from tests.rules.helpers import any_warning, ilesi, logged, packs_on, rule_warnings, session


def test_the_fifth_esi_session_in_a_region_within_12_months_warns(
        engine: Engine, service: ProcedureLog) -> None:
    packs_on(engine)
    logged(service, [session(d) for d in ("2026-01-10", "2026-03-02", "2026-05-04",
                                          "2026-07-06")])
    found = rule_warnings(service, session("2026-09-07"))
    assert ("5th ESI session in the lumbar region within 12 months (earlier: 2026-01-10, "
            "2026-03-02, 2026-05-04, 2026-07-06); the LCD covers 4") in found
    record = service.log(session("2026-09-07"), cli_actor(), confirm_warnings=True)
    kept = service.get(record.record_id, cli_actor())["warnings"]
    assert any(w["field"] == "practice_rules" and w["message"].startswith("5th ESI session")
               for w in kept)


def test_the_fifth_session_13_months_after_the_first_does_not_warn(
        engine: Engine, service: ProcedureLog) -> None:
    packs_on(engine)
    logged(service, [session(d) for d in ("2025-01-10", "2025-03-02", "2025-05-04",
                                          "2025-07-06")])
    found = [w.message for w in any_warning(service, session("2026-02-10"))]
    assert not [m for m in found if "ESI session" in m], found


def test_a_repeat_without_relief_warns_and_with_60_percent_for_4_months_does_not(
        engine: Engine, service: ProcedureLog) -> None:
    packs_on(engine)
    first, = logged(service, [session("2026-01-10", mrn="MRN0300")])
    found = rule_warnings(service, session("2026-06-10", mrn="MRN0300"))
    assert any(m.startswith("repeat TFESI without documented relief from the previous one")
               for m in found), found
    record_follow_up(engine, cli_actor(), first, "2026-05-12", 60, 120, "4 months, 60%")
    found = [w.message for w in any_warning(service, session("2026-06-10", mrn="MRN0300"))]
    assert not [m for m in found if m.startswith("repeat")], found


def test_rfa_without_two_blocks_with_80_percent_relief_warns(
        engine: Engine, service: ProcedureLog) -> None:
    packs_on(engine)
    block = {"procedure_code": "MBB", "levels": ["L4-L5"], "injectate": "local_anesthetic_only"}
    rfa = {"procedure_code": "RFA", "levels": ["L4-L5"], "injectate": "none"}
    first, = logged(service, [session("2026-02-01", mrn="MRN0400", **block)])
    record_follow_up(engine, cli_actor(), first, "2026-02-01", 90, 0)
    found = rule_warnings(service, session("2026-03-01", mrn="MRN0400", **rfa))
    assert ("RFA without two diagnostic blocks with >= 80% relief in the lumbar region "
            "(found: 1)") in found
    second, = logged(service, [session("2026-02-15", mrn="MRN0400", **block)])
    record_follow_up(engine, cli_actor(), second, "2026-02-15", 85, 0)
    found = [w.message for w in any_warning(service, session("2026-03-01", mrn="MRN0400",
                                                             **rfa))]
    assert not [m for m in found if m.startswith("RFA without")], found


def test_cervical_ilesi_at_c4_c5_warns_and_at_c7_t1_does_not(
        engine: Engine, service: ProcedureLog) -> None:
    packs_on(engine)
    found = rule_warnings(service, ilesi("2026-04-01", ["C4-C5"]))
    assert "cervical ILESI at C4-C5: above C6-C7 (C7-T1 is preferred)" in found
    assert not any_warning(service, ilesi("2026-04-01", ["C7-T1"], mrn="MRN0201"))


def test_ilesi_without_the_test_dose_warns(engine: Engine, service: ProcedureLog) -> None:
    packs_on(engine)
    found = rule_warnings(service, ilesi("2026-04-01", ["L4-L5"], contrast_test_dose=False))
    assert "ILESI without a contrast test dose" in found


def test_triamcinolone_in_the_first_lumbar_tfesi_warns_but_not_in_a_later_one(
        engine: Engine, service: ProcedureLog) -> None:
    """Rathmell 2015: dexamethasone for the initial lumbar TFESI; particulate steroid may be
    considered afterwards (docs/reference.md §19), so a later particulate TFESI does not warn."""
    packs_on(engine)
    found = rule_warnings(service, session("2026-01-10", mrn="MRN0500",
                                           injectate="triamcinolone"))
    assert ("particulate steroid (triamcinolone) in the patient's first lumbar TFESI; "
            "dexamethasone is first-line") in found
    first, = logged(service, [session("2026-01-10", mrn="MRN0500")])
    record_follow_up(engine, cli_actor(), first, "2026-05-01", 70, 100)
    found = [w.message for w in any_warning(service, session("2026-06-10", mrn="MRN0500",
                                                             injectate="triamcinolone"))]
    assert not [m for m in found if "particulate" in m], found


def test_packs_off_warn_nothing_and_csv_imports_are_not_blocked(
        engine: Engine, service: ProcedureLog, tmp_path: Path) -> None:
    """The shared template has the packs off; a CSV file of a sixth session imports without
    being asked to confirm a rule (it is checked in the report instead)."""
    logged(service, [session(d) for d in ("2026-01-10", "2026-03-02", "2026-05-04",
                                          "2026-07-06")])
    assert not any_warning(service, session("2026-09-07"))
    packs_on(engine)
    from audit.log.csv_import import import_csv

    path = tmp_path / "legacy.csv"
    at_csv = "2026-09-08T10:00:00Z"
    row = valid_record(performed_at=at_csv)
    header = ["performed_at", "site", "room", "physician", "technologist", "patient_id",
              "pregnancy_status", "procedure_code", "levels", "laterality", "guidance",
              "fluoro_time_s", "dap_value", "dap_unit", "saved_images", "contrast_agent",
              "contrast_volume_ml", "contrast_confirmation", "confirmation_views",
              "realtime_contrast", "injectate"]
    values = {**row, "patient_id": "MRN0100", "performed_at": at_csv, "levels": "L4;L5",
              "confirmation_views": "AP;LAT", "realtime_contrast": "yes"}
    path.write_text(",".join(header) + "\n" + ",".join(str(values[h]) for h in header) + "\n",
                    encoding="utf-8")
    result = import_csv(service, cli_actor(), path)
    assert [r.record_id is not None for r in result.imported] == [True], result


def test_the_contrast_test_dose_is_for_ilesi_only_and_stored(service: ProcedureLog) -> None:
    with pytest.raises(ValidationFailed) as caught:
        service.log(session("2026-04-01", contrast_test_dose=True), cli_actor(),
                    create_missing=True)
    [error] = caught.value.errors
    assert error.field == "contrast_test_dose" and "ILESI only" in error.message
    rid, = logged(service, [ilesi("2026-04-01", ["L4-L5"])])
    assert service.get(rid, cli_actor())["contrast_test_dose"] is True
