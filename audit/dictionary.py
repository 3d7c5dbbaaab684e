"""The data dictionary (docs/design.md §2): one list of fields for input, validation, export
and docs.

Why one list: the names, units, bounds and required rules a user reads in the docs must be the
ones the validation enforces and the export writes. The order here is the export's column
order. `data_dictionary.csv` in every export and the dictionary table in docs/ are generated
from this list, and a test fails if the docs drift. Input validation (audit.log.validation)
takes each field's bounds, text length and whether it is always required from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from audit import vocab
from audit.units import MAX_AIR_KERMA_MGY, MAX_DAP_GYCM2, MAX_FLUORO_TIME_S

#: What the `required` column says for a field every record must have.
ALWAYS = "yes"
#: Longest text a text field takes when it names no max_length.
DEFAULT_MAX_LENGTH = 200
#: Longest reason an amend or a void takes (stored in the audit trail and void_reason).
REASON_MAX_LENGTH = 1000


class Io(StrEnum):
    """Whether a field is given on input, produced on output, or both."""

    IN_OUT = "in/out"
    OUT = "out only"


@dataclass(frozen=True)
class Field:
    """One field. `required` is the rule as the docs state it: "yes" (always; validation
    enforces it generically), "no", or a condition validation checks by hand ("per catalog",
    "if contrast", ...). `minimum`/`maximum` bound a number in `unit`; `max_length` a text;
    `max_items` a list. What no field may exceed (finite numbers, no NUL, the date window) is
    in audit.bounds."""

    name: str
    type: str
    unit: str
    required: str
    description: str
    allowed: str = ""
    io: Io = Io.IN_OUT
    minimum: float | None = None
    maximum: float | None = None
    max_length: int | None = None
    max_items: int | None = None

    @property
    def always_required(self) -> bool:
        return self.required == ALWAYS

    @property
    def is_integer(self) -> bool:
        return self.type == "integer"

    @property
    def bound_unit(self) -> str:
        """The unit after a number's bounds in messages; counts have none."""
        return "" if self.is_integer else self.unit

    @property
    def text_limit(self) -> int:
        return self.max_length or DEFAULT_MAX_LENGTH

    def range_text(self) -> str:
        """The accepted range as the docs print it, e.g. "0.3 to 350", "≤ 120 characters"."""
        if self.minimum is not None and self.maximum is not None:
            return f"{self.minimum:g} to {self.maximum:g}"
        if self.type == "text" and self.io is Io.IN_OUT:
            return f"≤ {self.text_limit} characters"
        if self.max_items is not None:
            return f"≤ {self.max_items} items"
        return ""


def _allowed(enum: type[vocab.Vocabulary]) -> str:
    return "; ".join(enum.values())


FIELDS: tuple[Field, ...] = (
    Field("record_id", "integer", "", "out only", "Record number, unique and never reused",
          io=Io.OUT),
    Field("status", "enum", "", "out only", "final, or void (voided records are kept with the "
          "reason)", _allowed(vocab.RecordStatus), Io.OUT),
    Field("version", "integer", "", "out only", "Optimistic lock: an amend names the version it "
          "read", io=Io.OUT),
    Field("performed_at", "datetime", "ISO 8601, UTC", "yes", "When the procedure was performed; "
          "input needs a UTC offset; not in the future"),
    Field("site", "text", "", "yes", "Site name", max_length=120),
    Field("room", "text", "", "yes", "Room or C-arm name; carries the device and its KAP "
          "correction factor", max_length=120),
    Field("physician", "text", "", "yes", "Performing physician", max_length=160),
    Field("technologist", "text", "", "yes", "Username of the technologist who logged it",
          max_length=80),
    Field("patient_id", "text", "", "yes", "Medical record number (PHI: exported only with "
          "permission)", max_length=64),
    Field("patient_ref", "text", "", "out only", "Keyed pseudonym of the patient "
          "(HMAC-SHA-256 with the site's pseudonym key, kept outside the database): stable "
          "across exports, not reversible",
          io=Io.OUT),
    Field("accession_number", "text", "", "no", "Accession number; links the C-arm's dose "
          "report", max_length=64),
    Field("patient_sex", "enum", "", "no", "Patient sex", _allowed(vocab.Sex)),
    Field("patient_weight_kg", "number", "kg", "no", "Patient weight; dose rises with body size",
          minimum=0.3, maximum=350),
    Field("patient_height_cm", "number", "cm", "no", "Patient height; with the weight it gives "
          "the body mass index that dose comparisons are stratified by", minimum=20,
          maximum=272),
    Field("bmi_kg_m2", "number", "kg/m²", "out only", "Body mass index, patient_weight_kg / "
          "(patient_height_cm / 100)², computed when both are recorded", io=Io.OUT),
    Field("pregnancy_status", "enum", "", "yes", "Pregnant patients are flagged for review",
          _allowed(vocab.PregnancyStatus)),
    Field("procedure_code", "text", "", "yes", "Procedure catalog code, e.g. TFESI"),
    Field("levels", "list", "", "per catalog", "Spinal levels, ';'-separated, e.g. L4-L5; L5-S1; "
          "valid for the procedure's region", "C1-C7, T1-T12, L1-L5, S1-S5, segments "
          "(e.g. L5-S1), coccyx, SIJ", max_items=30),
    Field("laterality", "enum", "", "per catalog", "Side treated", _allowed(vocab.Laterality)),
    Field("guidance", "enum", "", "yes", "Imaging guidance; ultrasound uses no radiation, so "
          "its records take no dose fields and stay out of the dose figures",
          _allowed(vocab.Guidance)),
    Field("fluoro_time_s", "number", "s", "unless ultrasound", "Fluoroscopy (beam-on) time; "
          "input also 'm:ss' or minutes with a unit ('1.3 min' = 78 s); 0 for ultrasound",
          minimum=0, maximum=MAX_FLUORO_TIME_S),
    Field("dap_gycm2", "number", "Gy·cm²", "yes*", "Kerma-area product (DAP) in Gy·cm²; *or "
          "dap_missing_reason when the unit shows none; empty for ultrasound", minimum=0,
          maximum=MAX_DAP_GYCM2),
    Field("dap_value", "number", "as entered", "no", "DAP as displayed on the C-arm"),
    Field("dap_unit", "enum", "", "with dap_value", "Unit of dap_value",
          _allowed(vocab.DapUnit)),
    Field("dap_missing_reason", "text", "", "if no DAP", "Why no DAP was recorded",
          max_length=500),
    Field("air_kerma_mgy", "number", "mGy", "no", "Cumulative air kerma at the reference point "
          "(Ka,r)", minimum=0, maximum=MAX_AIR_KERMA_MGY),
    Field("saved_images", "integer", "count", "yes", "Confirmation images saved to PACS",
          minimum=0, maximum=10_000),
    Field("dsa_runs", "integer", "count", "no", "Digital subtraction angiography runs",
          minimum=0, maximum=1000),
    Field("pulsed_fluoro", "boolean", "", "no", "Pulsed fluoroscopy used"),
    Field("pulse_rate_pps", "number", "pulses/s", "no", "Pulse rate", minimum=0.1, maximum=60),
    Field("low_dose_mode", "boolean", "", "no", "Low-dose mode used"),
    Field("contrast_agent", "text", "", "if contrast", "Contrast agent, e.g. iohexol 240",
          max_length=80),
    Field("contrast_class", "enum", "", "no", "Class of the contrast agent; none when no "
          "contrast was injected", _allowed(vocab.ContrastClass)),
    Field("contrast_volume_ml", "number", "mL", "if contrast", "Contrast volume", minimum=0,
          maximum=100),
    Field("contrast_confirmation", "enum", "", "yes", "Needle placement confirmed with contrast",
          _allowed(vocab.ContrastConfirmation)),
    Field("contrast_exception_reason", "enum", "", "if contraindicated", "Why contrast was not "
          "used", _allowed(vocab.ContrastException)),
    Field("contrast_exception_detail", "text", "", "if reason is other", "Free-text detail of the "
          "exception", max_length=500),
    Field("confirmation_views", "list", "", "if confirmed", "Views saved, ';'-separated",
          _allowed(vocab.View), max_items=8),
    Field("realtime_contrast", "boolean", "", "if confirmed", "Contrast injected under live "
          "fluoroscopy or DSA (required for TFESI)"),
    Field("contrast_test_dose", "boolean", "", "ILESI", "ILESI: a contrast test dose was given "
          "before the injectate (Rathmell 2015); empty for other procedures"),
    Field("vascular_uptake", "boolean", "", "no", "Intravascular contrast uptake seen"),
    Field("needle_repositioned", "boolean", "", "no", "Needle repositioned after uptake"),
    Field("injectate", "enum", "", "no", "Medication injected", _allowed(vocab.Injectate)),
    Field("carm_operator", "enum", "", "no", "Who operated the C-arm (pedal and positioning)",
          _allowed(vocab.CarmOperator)),
    Field("trainee_present", "boolean", "", "no", "A trainee (fellow or resident) took part"),
    Field("notes", "text", "", "no", "Free-text notes", max_length=4000),
    Field("dose_source", "enum", "", "out only", "Where the dose figures came from",
          _allowed(vocab.DoseSource), Io.OUT),
    Field("region", "enum", "", "out only", "Anatomical region (from the catalog or the levels)",
          _allowed(vocab.Region), Io.OUT),
    Field("effective_dose_msv", "number", "mSv", "out only", "Patient effective dose estimate "
          "E = KAP x room KAP correction factor x k(region); k is an estimate except lumbar "
          "(ICRP 60 basis)", io=Io.OUT),
    Field("background_days", "number", "days", "out only", "Days of natural background "
          "radiation equal to the effective dose: a population estimate for comparison, not "
          "a measure of the patient's personal risk (NCRP Report 184)", io=Io.OUT),
    Field("warnings", "list", "", "out only", "Plausibility warnings confirmed when saving",
          io=Io.OUT),
    Field("void_reason", "text", "", "out only", "Why the record was voided", io=Io.OUT,
          max_length=REASON_MAX_LENGTH),
    Field("created_at", "datetime", "ISO 8601, UTC", "out only", "When the record was created",
          io=Io.OUT),
    Field("created_by", "text", "", "out only", "Who created it", io=Io.OUT),
    Field("updated_at", "datetime", "ISO 8601, UTC", "out only", "Last change", io=Io.OUT),
    Field("updated_by", "text", "", "out only", "Who made the last change", io=Io.OUT),
)

FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in FIELDS)
INPUT_FIELDS: frozenset[str] = frozenset(f.name for f in FIELDS if f.io is Io.IN_OUT)
BY_NAME: dict[str, Field] = {f.name: f for f in FIELDS}


def to_markdown() -> str:
    """The dictionary as the Markdown table in docs/data-dictionary.md (a test keeps them equal;
    regenerate with `python -m audit.dictionary > docs/data-dictionary.md`)."""
    lines = [
        "# Data dictionary",
        "",
        "One set of field names for JSON input (`fluoro-audit log`), CSV import, CSV export and",
        "the `data_dictionary.csv` every export ships. Generated from `audit/dictionary.py`.",
        "Stored units are canonical; the DAP value and unit as entered are kept too.",
        "",
        "| field | type | unit | required | range | allowed values | description |",
        "|---|---|---|---|---|---|---|",
    ]
    for f in FIELDS:
        cells = (f.name, f.type, f.unit, f.required, f.range_text(), f.allowed, f.description)
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(to_markdown(), end="")
