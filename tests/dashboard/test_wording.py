"""dashboard.wording: the library's messages as a form shows them (issue 12). Each names its
field as the form labels it and says what to do; no dictionary field name (contrast_confirmation)
or stored value (not_pregnant) is left in it. Pure: no database, no Streamlit run."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest

from audit.catalog import Catalog, CatalogEntry
from audit.dictionary import FIELDS
from audit.log import layout_for
from audit.log.compliance_check import compliance_warnings
from audit.log.validation import validate
from audit.vocab import CatalogRegion, ContrastPolicy, Region
from dashboard.wording import (
    AMEND_FORM_LABELS,
    LOG_FORM_LABELS,
    VALUE_LABELS,
    label,
    say,
    shown_value,
    value_label,
)
from tests.conftest import valid_record

#: A snake_case word: how a dictionary field name or a stored value looks.
SNAKE = re.compile(r"\b[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b")
NOW = datetime(2026, 6, 1, tzinfo=UTC)


def entry(**overrides: Any) -> CatalogEntry:
    values: dict[str, Any] = dict(
        id=1, code="TFESI", name="Transforaminal", region=CatalogRegion.BY_LEVEL,
        level_regions=frozenset({Region.LUMBAR, Region.SACRAL}), levels_required=True,
        max_levels=2, laterality_required=True, contrast_policy=ContrastPolicy.REQUIRED,
        realtime_contrast_required=True, min_views=2, typical_time_s=29.0,
        typical_dap_gycm2=0.68, max_expected_time_s=600.0, typical_source="x", active=True)
    values.update(overrides)
    return CatalogEntry(**values)


TFESI = entry()
LAYOUT = layout_for(TFESI)

#: Records that break the log form's rules, each a few at once.
BROKEN: dict[str, dict[str, Any]] = {
    "confirmed, details missing": {"contrast_agent": None, "contrast_volume_ml": None,
                                   "confirmation_views": None, "realtime_contrast": None},
    "nothing typed": {"patient_id": None, "pregnancy_status": None, "guidance": None,
                      "fluoro_time_s": None, "dap_value": None, "dap_unit": None,
                      "saved_images": None, "levels": None, "laterality": None},
    "contradictions": {"pregnancy_status": "pregnant", "patient_sex": "M",
                       "pulse_rate_pps": 8, "pulsed_fluoro": False, "dsa_runs": 2,
                       "dap_missing_reason": "display broken"},
    "not required": {"contrast_confirmation": "not_required",
                     "contrast_exception_reason": "allergy"},
    "contraindicated": {"contrast_confirmation": "contraindicated", "contrast_agent": None,
                        "contrast_volume_ml": None, "confirmation_views": None,
                        "realtime_contrast": None},
    "other reason": {"contrast_confirmation": "contraindicated", "contrast_agent": None,
                     "contrast_volume_ml": None, "confirmation_views": None,
                     "realtime_contrast": None, "contrast_exception_reason": "other"},
    "unit without value": {"dap_value": None, "dap_unit": "cGy·cm²"},
    "wrong values": {"pregnancy_status": "maybe", "injectate": "my_drug", "levels": ["C5"]},
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_no_message_names_a_dictionary_field_or_a_stored_value(case: str) -> None:
    _, errors = validate(valid_record(**BROKEN[case]), Catalog({"TFESI": TFESI}), now=NOW)
    assert errors
    for error in errors:
        text = say(error.field, error.message, LOG_FORM_LABELS, LAYOUT)
        assert text.startswith(label(error.field, LOG_FORM_LABELS) + ": "), text
        unquoted = re.sub(r"'[^']*'", "", text)  # a value as typed is quoted as typed
        assert not SNAKE.search(unquoted), text


def test_compliance_warnings_name_the_form_choices() -> None:
    values = {"contrast_confirmation": "not_confirmed", "saved_images": 0,
              "confirmation_views": "AP", "realtime_contrast": None,
              "contrast_exception_reason": None}
    shown = [say(w.field, w.message, LOG_FORM_LABELS, LAYOUT)
             for w in compliance_warnings(values, TFESI)]
    assert shown[0].startswith("Contrast confirmation: “Contrast used, placement not "
                               "confirmed” for TFESI, whose policy requires contrast "
                               "confirmation: it will count as non-compliant")
    assert shown[0].endswith("To count as compliant: “Confirmed with contrast”, or "
                             "“Contraindicated (give the reason)” with the reason")
    assert not any(SNAKE.search(text) for text in shown), shown


@pytest.mark.parametrize(("field", "message", "shown"), [
    ("confirmation_views", "required when contrast_confirmation is confirmed; allowed: AP, "
     "LAT, CLO, OBL", "Views saved: pick at least 2 views for TFESI (AP, LAT, CLO or OBL)"),
    ("realtime_contrast", "required when contrast_confirmation is confirmed (was contrast "
     "injected under live fluoroscopy or DSA?)", "Real-time fluoro / DSA during contrast: "
     "answer Yes or No: was contrast injected under live fluoroscopy or DSA?"),
    ("pregnancy_status", "pregnant, but patient_sex is M: correct one of them",
     "Pregnancy status: “Pregnant”, but Sex is “Male”: correct one of them"),
    ("dsa_runs", "2 DSA runs recorded but guidance is fluoroscopy; set guidance to "
     "fluoroscopy_dsa", "DSA runs: 2 DSA runs recorded, but Guidance is “Fluoroscopy”: set "
     "Guidance to “Fluoroscopy + DSA”"),
    ("dap_gycm2", "required: give dap_gycm2, or dap_value with dap_unit, or dap_missing_reason "
     "if the unit displays no DAP", "DAP (KAP): required: type the DAP the C-arm shows and "
     "pick its unit; if it shows none, say why in “No DAP on the display? Say why”"),
    ("levels", "required for TFESI: give at least one level, e.g. L4-L5",
     "Levels: pick at least one level for TFESI (e.g. L4 or L5-S1)"),
    ("injectate", "'my_drug' is not allowed; allowed: dexamethasone, local_anesthetic_only",
     "Injectate: 'my_drug' is not one of the choices: Dexamethasone or Local anesthetic only"),
])
def test_the_log_form_words_a_message_as_a_person_would(field: str, message: str,
                                                        shown: str) -> None:
    assert say(field, message, LOG_FORM_LABELS, LAYOUT) == shown


def test_each_form_names_a_field_as_it_labels_it() -> None:
    assert say("fluoro_time_s", "required") == "Fluoro time (s): required"
    assert say("fluoro_time_s", "required", LOG_FORM_LABELS) == "Fluoro time: required"
    assert say("performed_at", "in the future", AMEND_FORM_LABELS) == \
        "Date and time performed: in the future"
    assert say("record", "the database is busy") == "The database is busy"


def test_every_stored_value_of_a_choice_field_has_a_label() -> None:
    for spec in FIELDS:
        if spec.type == "enum" and spec.name != "dap_unit":  # units read as they are
            assert set(spec.allowed.split("; ")) <= set(VALUE_LABELS[spec.name]), spec.name
    assert value_label("pregnancy_status", "not_pregnant") == "Not pregnant"
    assert value_label("realtime_contrast", True) == "Yes"
    assert value_label("needle_repositioned", "no") == "No"
    assert value_label("patient_sex", None) == ""
    assert shown_value("confirmation_views", ["AP", "LAT"]) == "AP; LAT"
    assert shown_value("contrast_confirmation", "not_confirmed") == \
        "Contrast used, placement not confirmed"
