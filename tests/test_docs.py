"""Docs that drift from the code are wrong docs: these tests fail when they do."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from audit import dictionary
from audit.cli import build_parser
from audit.log.validation import EXTRA_INPUT, OUTPUT_ONLY

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")

# The contract's field names, which exports and outside scripts depend on.
DESIGN_FIELDS = """record_id status version performed_at site room physician technologist patient_id
patient_ref accession_number patient_sex patient_weight_kg pregnancy_status procedure_code levels
laterality guidance fluoro_time_s dap_gycm2 dap_value dap_unit air_kerma_mgy saved_images dsa_runs
pulsed_fluoro pulse_rate_pps low_dose_mode contrast_agent contrast_volume_ml contrast_confirmation
contrast_exception_reason confirmation_views realtime_contrast vascular_uptake needle_repositioned
injectate notes dose_source effective_dose_msv background_days created_at created_by updated_at
updated_by""".split()


def test_data_dictionary_doc_is_generated_from_the_code() -> None:
    doc = (ROOT / "docs" / "data-dictionary.md").read_text(encoding="utf-8")
    assert doc == dictionary.to_markdown(), (
        "docs/data-dictionary.md is stale: python -m audit.dictionary > docs/data-dictionary.md")


def test_dictionary_keeps_every_design_field_in_design_order() -> None:
    names = list(dictionary.FIELD_NAMES)
    assert set(DESIGN_FIELDS) <= set(names)
    positions = [names.index(f) for f in DESIGN_FIELDS]
    assert positions == sorted(positions)


def test_validation_accepts_exactly_the_dictionary() -> None:
    assert dictionary.INPUT_FIELDS.isdisjoint(OUTPUT_ONLY)
    assert OUTPUT_ONLY | dictionary.INPUT_FIELDS == set(dictionary.FIELD_NAMES)
    # complications: noted while logging, stored in their own table (not a procedure field;
    # README, "Complications")
    assert EXTRA_INPUT - dictionary.INPUT_FIELDS == {"fluoro_time", "complications"}


def _commands(parser: argparse.ArgumentParser, prefix: str = "") -> list[str]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                deeper = _commands(sub, f"{prefix}{name} ")
                found.extend(deeper or [f"{prefix}{name}"])
    return found


def test_readme_documents_every_command() -> None:
    commands = _commands(build_parser())
    assert "log" in commands and "users add" in commands
    for command in commands:
        assert re.search(rf"`fluoro-audit {re.escape(command)}\b", README), command


def test_readme_gives_the_two_commands() -> None:
    assert "make run" in README and "make test" in README
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^run:", makefile, re.M) and re.search(r"^test:", makefile, re.M)
    assert re.search(r"^bench:", makefile, re.M)
