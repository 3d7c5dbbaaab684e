"""The header row of a procedure-log CSV: which field each column feeds, in which unit.

Why its own module: legacy spreadsheets name columns every which way ("MRN", "Fluoro time
(min)", "DAP (mGy·cm²)"). Mapping them is a table of aliases and units plus the checks that
every header is understood, none given twice and a patient_id present, all before a row is
read, so a file is refused whole with every header problem named. The full import rules are
in audit.log.csv_import.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from audit.dictionary import FIELDS, INPUT_FIELDS, Io
from audit.errors import AuditError
from audit.units import HEADER_UNITS, parse_dap_unit
from audit.vocab import DapUnit

#: Legacy header -> dictionary field. Keys are normalised (see :func:`normalise_header`).
ALIASES: Mapping[str, str] = {
    "mrn": "patient_id", "patient": "patient_id", "patient id": "patient_id",
    "patient number": "patient_id", "medical record number": "patient_id",
    "date": "performed_at", "date time": "performed_at", "datetime": "performed_at",
    "performed": "performed_at", "procedure date": "performed_at", "exam date": "performed_at",
    "dap": "dap_value", "kap": "dap_value", "dose area product": "dap_value",
    "kerma area product": "dap_value", "dap value": "dap_value",
    "dap unit": "dap_unit", "dap units": "dap_unit", "kap unit": "dap_unit",
    "fluoro time": "fluoro_time_s", "fluoroscopy time": "fluoro_time_s",
    "fluoro": "fluoro_time_s", "beam on time": "fluoro_time_s", "screening time": "fluoro_time_s",
    "physician": "physician", "doctor": "physician", "performing physician": "physician",
    "proceduralist": "physician",
    "procedure": "procedure_code", "procedure code": "procedure_code", "code": "procedure_code",
    "tech": "technologist", "technologist": "technologist", "radiographer": "technologist",
    "room": "room", "c arm": "room", "device": "room", "site": "site", "facility": "site",
    "location": "site",
    "accession": "accession_number", "accession no": "accession_number", "acc": "accession_number",
    "air kerma": "air_kerma_mgy", "ka r": "air_kerma_mgy", "kar": "air_kerma_mgy",
    "cumulative air kerma": "air_kerma_mgy", "reference air kerma": "air_kerma_mgy",
    "images": "saved_images", "saved images": "saved_images", "frames": "saved_images",
    "level": "levels", "levels": "levels", "side": "laterality", "sex": "patient_sex",
    "weight": "patient_weight_kg", "pregnancy": "pregnancy_status", "pregnant": "pregnancy_status",
    "dsa": "dsa_runs", "pulsed": "pulsed_fluoro", "pulse rate": "pulse_rate_pps",
    "low dose": "low_dose_mode", "contrast": "contrast_agent", "contrast volume":
    "contrast_volume_ml", "views": "confirmation_views", "comments": "notes", "comment": "notes",
    "height": "patient_height_cm", "patient height": "patient_height_cm",
    "c arm operator": "carm_operator", "operator": "carm_operator",
    "trainee": "trainee_present", "fellow present": "trainee_present",
    "contrast type": "contrast_class", "contrast agent class": "contrast_class",
    "test dose": "contrast_test_dose", "contrast test dose": "contrast_test_dose",
}
#: A separate time-of-day column, joined to the date column.
TIME_HEADERS = frozenset({"time", "procedure time", "start time"})
#: The pseudo-field of a time-of-day column, until it is joined to performed_at.
TIME_FIELD = "__time__"
#: Columns an export writes that input does not take: ignored on import.
IGNORED = frozenset(f.name for f in FIELDS if f.io is Io.OUT)

_BARE_NUMBER = re.compile(r"^\s*\d+(?:[.,]\d+)?\s*$")
_HEADER_UNIT = re.compile(r"^(.*?)\s*[(\[]\s*([^)\]]*?)\s*[)\]]\s*$")


class CsvFormatError(AuditError):
    """The file cannot be read as a procedure log (encoding, header); nothing was written."""


class MissingPatientId(CsvFormatError):
    """No patient_id column: no record can be imported without the patient's MRN."""


@dataclass(frozen=True)
class Column:
    """How one CSV column feeds the record: target field, and a unit from its header."""

    index: int
    header: str
    field: str | None  # None: ignored (export-only column)
    unit: str | None = None


def normalise_header(text: str) -> str:
    """'Fluoro-Time', 'fluoro_time' and ' FLUORO  time ' all become 'fluoro time'."""
    return " ".join(re.sub(r"[^0-9a-zµμ]+", " ", text.casefold()).split())


_FIELD_BY_NORMAL = {normalise_header(name): name for name in INPUT_FIELDS | IGNORED
                    | {"fluoro_time"}}


def map_columns(headers: Sequence[str]) -> list[Column]:
    """Each header's field and unit; raise CsvFormatError naming every header problem."""
    columns: list[Column] = []
    problems: list[str] = []
    used: dict[str, str] = {}
    for index, raw in enumerate(headers):
        header = raw.strip()
        if not header:
            problems.append(f"column {index + 1} has no header")
            continue
        name, unit = header, None
        with_unit = _HEADER_UNIT.match(header)
        if with_unit:
            name, unit = with_unit[1], with_unit[2]
        key = normalise_header(name)
        target = _FIELD_BY_NORMAL.get(key) or ALIASES.get(key)
        if target is None and key in TIME_HEADERS:
            target = TIME_FIELD
        if target is None:
            problems.append(f"{header!r} is not a field of the data dictionary or a known "
                            "legacy name; rename or remove the column")
            continue
        if target == "fluoro_time":
            target = "fluoro_time_s"
        if target in IGNORED:
            columns.append(Column(index, header, None))
            continue
        if target in used:
            problems.append(f"{header!r} and {used[target]!r} both give {target}; keep one")
            continue
        used[target] = header
        try:
            columns.append(Column(index, header, target, _column_unit(target, unit)))
        except ValueError as exc:
            problems.append(f"{header!r}: {exc}")
    if TIME_FIELD in used and "performed_at" not in used:
        problems.append(f"{used[TIME_FIELD]!r} needs a date column (performed_at or Date)")
    if problems:
        raise CsvFormatError("header: " + "; ".join(problems))
    return columns


def _column_unit(target: str, unit: str | None) -> str | None:
    """The unit a header states, as the row values will be completed; None if canonical."""
    if unit is None or not unit.strip():
        return None
    if target == "dap_value":
        return parse_dap_unit(unit).value
    if target == "dap_gycm2":
        if parse_dap_unit(unit) is not DapUnit.GY_CM2:
            raise ValueError("dap_gycm2 is always Gy·cm²; name the column 'DAP' or 'dap_value' "
                             "for another unit")
        return None
    allowed = HEADER_UNITS.get(target)
    key = unit.strip().casefold().replace(" ", "")
    if allowed is None or key not in allowed:
        options = ", ".join(sorted(allowed)) if allowed else "none (give the unit in the cell)"
        raise ValueError(f"unit {unit!r} is not allowed for {target}; allowed: {options}")
    return allowed[key]


def require_patient_id(headers: Sequence[str], columns: Sequence[Column]) -> None:
    """Refuse a file without a patient_id column before reading a row (every row would fail)."""
    if any(c.field == "patient_id" for c in columns):
        return
    if any(normalise_header(h) == "patient ref" for h in headers):
        raise MissingPatientId(
            "header: no patient_id column, only patient_ref: this looks like a fluoro-audit "
            "export made without --include-phi. patient_ref is a keyed pseudonym that cannot "
            "be turned back into a medical record number, so these records cannot be "
            "imported; export them again with --include-phi (rso role) to move them to "
            "another database. Nothing was written.")
    raise MissingPatientId(
        "header: no patient_id column (the patient's medical record number; also accepted as "
        "MRN, Patient ID, Medical record number); every procedure needs it. Nothing was "
        "written.")


def with_header_unit(column: Column, value: str) -> str:
    """A bare number in a column whose header states a unit, with that unit appended."""
    if column.unit and column.field in HEADER_UNITS and _BARE_NUMBER.match(value):
        return f"{value} {column.unit}"
    return value
