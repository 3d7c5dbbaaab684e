"""A stored procedure as data-dictionary fields, and back to input for re-validation.

Why: the same dict is what `show --json` prints, what the audit trail stores before and after
a change, and (with changes merged in) what an amend validates again. Building it in one place
keeps those three identical, so a history entry shows exactly what a reader saw.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from audit.dictionary import FIELD_NAMES, INPUT_FIELDS
from audit.storage.models import Procedure, ProcedureLevel
from audit.vocab import level_region

#: Name fields a record's dict takes from the resolved names, not from the procedure row.
NAME_FIELDS = ("site", "room", "physician", "technologist", "patient_id", "patient_ref",
               "procedure_code")


def snapshot(procedure: Procedure, names: Mapping[str, Any]) -> dict[str, Any]:
    """The record in dictionary field names and order (what `show --json` prints)."""
    p = procedure
    values: dict[str, Any] = {
        "record_id": p.id,
        "levels": [lv.level for lv in p.levels],
        "confirmation_views": p.confirmation_views.split(";") if p.confirmation_views else [],
        "warnings": p.warnings or [],
        "background_days": None,
        **{k: names[k] for k in NAME_FIELDS},
    }
    record: dict[str, Any] = {}
    for name in FIELD_NAMES:
        value = values[name] if name in values else getattr(p, name)
        record[name] = value.isoformat() if isinstance(value, datetime) else value
    return record


def input_view(record: Mapping[str, Any]) -> dict[str, Any]:
    """A stored record as input for re-validation (amend = old input + changes)."""
    data = {k: v for k, v in record.items() if k in INPUT_FIELDS}
    if data.get("dap_value") is not None:
        data.pop("dap_gycm2", None)  # the displayed value and unit are what was entered
    return data


def level_rows(levels: Iterable[str]) -> list[ProcedureLevel]:
    """The procedure_level rows of a record's levels, numbered in the given order."""
    return [ProcedureLevel(position=i, level=lv, region=level_region(lv).value)
            for i, lv in enumerate(levels, start=1)]
