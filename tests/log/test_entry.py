"""audit.log.entry_form: what the entry form shows per procedure type, and how form values become
the same input the command line takes (pure functions, no database)."""

from __future__ import annotations

from datetime import date, time
from zoneinfo import ZoneInfo

import pytest

from audit.catalog import CatalogEntry
from audit.log.entry_form import (
    AMENDABLE,
    amend_changes,
    as_text,
    build_record,
    dose_in_words,
    layout_for,
    performed_at_iso,
    tri_state,
    zone,
)
from audit.vocab import CatalogRegion, ContrastConfirmation, ContrastPolicy, Region

CC = ContrastConfirmation


def entry(**overrides: object) -> CatalogEntry:
    values: dict[str, object] = dict(
        id=1, code="TFESI", name="Transforaminal", region=CatalogRegion.BY_LEVEL,
        level_regions=frozenset({Region.LUMBAR, Region.SACRAL}), levels_required=True,
        max_levels=2, laterality_required=True, contrast_policy=ContrastPolicy.REQUIRED,
        realtime_contrast_required=True, min_views=2, typical_time_s=29.0,
        typical_dap_gycm2=0.68, max_expected_time_s=600.0, typical_source="x", active=True)
    values.update(overrides)
    return CatalogEntry(**values)  # type: ignore[arg-type]


def test_levels_offered_are_those_of_the_types_regions_top_to_bottom() -> None:
    layout = layout_for(entry())
    assert layout.levels[:3] == ("L1", "L1-L2", "L2")
    assert "L5-S1" in layout.levels and "SIJ" in layout.levels
    assert not any(lv.startswith(("C", "T")) for lv in layout.levels)
    assert layout_for(entry(level_regions=frozenset())).levels == ()


@pytest.mark.parametrize(("policy", "choices", "default"), [
    (ContrastPolicy.REQUIRED, (CC.CONFIRMED, CC.NOT_CONFIRMED, CC.CONTRAINDICATED),
     CC.CONFIRMED),
    (ContrastPolicy.RECOMMENDED, (CC.CONFIRMED, CC.NOT_CONFIRMED, CC.CONTRAINDICATED,
                                  CC.NOT_REQUIRED), CC.CONFIRMED),
    (ContrastPolicy.NOT_REQUIRED, (CC.NOT_REQUIRED, CC.CONFIRMED, CC.NOT_CONFIRMED,
                                   CC.CONTRAINDICATED), CC.NOT_REQUIRED),
])
def test_contrast_choices_follow_the_policy(policy: ContrastPolicy,
                                            choices: tuple[CC, ...], default: CC) -> None:
    layout = layout_for(entry(contrast_policy=policy))
    assert layout.contrast_choices == choices and layout.contrast_default is default


def test_the_contrast_section_depends_on_the_status() -> None:
    layout = layout_for(entry())
    assert "confirmation_views" in layout.contrast_fields(CC.CONFIRMED)
    assert layout.contrast_fields(CC.CONTRAINDICATED) == ("contrast_exception_reason",
                                                          "contrast_exception_detail")
    assert layout.contrast_fields(CC.NOT_REQUIRED) == ()


def test_build_record_leaves_out_hidden_fields_and_blanks() -> None:
    layout = layout_for(entry(laterality_required=False))
    record = build_record({
        "patient_id": "  MRN1 ", "notes": "", "levels": [], "laterality": "left",
        "contrast_confirmation": "contraindicated", "contrast_agent": "iohexol 240",
        "contrast_exception_reason": "allergy", "saved_images": 0, "pulsed_fluoro": False,
    }, layout)
    assert record == {"patient_id": "MRN1", "contrast_confirmation": "contraindicated",
                      "contrast_exception_reason": "allergy", "saved_images": 0,
                      "pulsed_fluoro": False}


def test_the_time_typed_gets_the_users_utc_offset() -> None:
    chicago = ZoneInfo("America/Chicago")
    assert performed_at_iso(date(2026, 3, 14), time(9, 30), chicago) == \
        "2026-03-14T09:30:00-05:00"
    assert performed_at_iso(date(2026, 1, 14), time(9, 30, 42), chicago) == \
        "2026-01-14T09:30:00-06:00"
    assert "+" in performed_at_iso(date(2026, 1, 14), time(9, 30), None) or \
        "-" in performed_at_iso(date(2026, 1, 14), time(9, 30), None)[10:]
    assert zone("Not/AZone") is None and zone(None) is None


def test_tri_state_pickers() -> None:
    assert (tri_state("yes"), tri_state("no"), tri_state(""), tri_state(None)) == \
        (True, False, None, None)


@pytest.mark.parametrize(("msv", "days", "words"), [
    (0.234, 27.6, "Estimated effective dose 0.23 mSv: about 28 days of natural background"),
    (0.005, 0.6, "less than one day"),
    (0.01, 1.2, "about 1 day"),
    (12.0, 1412.9, "about 1,413 days"),
    (None, None, "No DAP was recorded"),
])
def test_the_dose_in_plain_words(msv: float | None, days: float | None, words: str) -> None:
    assert words in dose_in_words(msv, days)


def test_amend_changes_only_what_differs() -> None:
    record = {"fluoro_time_s": 32.0, "levels": ["L4", "L5"], "realtime_contrast": True,
              "dap_value": 71.0, "dap_unit": "cGy·cm²", "dap_missing_reason": None,
              "notes": None, "patient_id": "MRN1"}
    edited = {name: as_text(record.get(name)) for name in AMENDABLE}
    assert amend_changes(record, edited) == {}
    edited.update(fluoro_time_s="1:05", levels="L5; S1", realtime_contrast="no", notes="x")
    assert amend_changes(record, edited) == {
        "fluoro_time_s": "1:05", "levels": ["L5", "S1"], "realtime_contrast": False,
        "notes": "x"}


def test_a_dap_change_sends_value_and_unit_together() -> None:
    record = {"dap_value": 71.0, "dap_unit": "cGy·cm²", "dap_missing_reason": None}
    edited = {name: as_text(record.get(name)) for name in AMENDABLE}
    edited["dap_unit"] = "mGy·cm²"
    assert amend_changes(record, edited) == {"dap_value": "71", "dap_unit": "mGy·cm²",
                                             "dap_missing_reason": None}


def test_the_same_moment_in_another_zone_is_no_change() -> None:
    record = {"performed_at": "2026-03-14T14:30:00+00:00"}
    assert amend_changes(record, {"performed_at": "2026-03-14T09:30:00-05:00"}) == {}
    assert amend_changes(record, {"performed_at": "2026-03-14T09:45:00-05:00"}) == {
        "performed_at": "2026-03-14T09:45:00-05:00"}


def test_the_levels_hint_says_what_the_type_takes() -> None:
    """Issue 12: a caudal epidural offered only sacral levels, under "Type e.g. L4 or L5-S1"."""
    caudal = layout_for(entry(code="CAUDAL", level_regions=frozenset({Region.SACRAL})))
    assert caudal.levels_allowed == "S1 to S5, coccyx or SIJ"
    assert caudal.levels_hint == "Type a level: S1 to S5, coccyx or SIJ"
    lumbar = layout_for(entry())
    assert lumbar.levels_allowed == "L1 to L5, S1 to S5, segments L1-L2 to L5-S1, coccyx or SIJ"
    assert lumbar.levels_hint == "Type e.g. L4 or L5-S1"
    assert layout_for(entry(level_regions=frozenset())).levels_allowed == ""
