"""How fields, stored values and the library's messages read on screen (issue 12).

The library speaks the data dictionary: field names such as `contrast_confirmation`, stored
values such as `not_pregnant`. The command line, JSON and exports keep them (they are the
contract, docs/design.md §5). A person at a form sees the form's labels instead, so the
translation happens here, at the dashboard layer: a field's label (`label`), a stored value's
label (`value_label`, `shown_value`) and each message reworded to name its field as the form
labels it and to say what to do (`say`). No rule lives here: what is wrong is decided in
audit/, only the words change.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from audit.log import CONTRAST_LABELS, FormLayout, as_text
from audit.vocab import ContrastConfirmation

#: How the record's fields are named on screen (the dictionary names stay in exports and CLI).
FIELD_LABELS: dict[str, str] = {
    "record_id": "Record", "status": "Status", "version": "Version",
    "performed_at": "Performed at", "site": "Site", "room": "Room", "physician": "Physician",
    "technologist": "Technologist", "patient_id": "Patient ID (MRN)",
    "patient_ref": "Patient reference", "accession_number": "Accession number",
    "patient_sex": "Sex", "patient_weight_kg": "Weight (kg)",
    "patient_height_cm": "Height (cm)", "bmi_kg_m2": "BMI (kg/m²)",
    "carm_operator": "C-arm operated by", "trainee_present": "Trainee present",
    "contrast_test_dose": "Contrast test dose", "practice_rules": "Practice rules",
    "contrast_class": "Contrast class", "complications": "Complication",
    "pregnancy_status": "Pregnancy status", "procedure_code": "Procedure",
    "region": "Region", "levels": "Levels", "laterality": "Laterality",
    "guidance": "Guidance", "fluoro_time_s": "Fluoro time (s)", "fluoro_time": "Fluoro time",
    "dap_gycm2": "DAP (Gy·cm²)", "dap_value": "DAP as displayed", "dap_unit": "DAP unit",
    "dap_missing_reason": "Why no DAP", "air_kerma_mgy": "Ka,r (mGy)",
    "saved_images": "Saved images", "dsa_runs": "DSA runs", "pulsed_fluoro": "Pulsed fluoro",
    "pulse_rate_pps": "Pulse rate (pulses/s)", "low_dose_mode": "Low-dose mode",
    "contrast_agent": "Contrast agent", "contrast_volume_ml": "Contrast volume (mL)",
    "contrast_confirmation": "Contrast confirmation",
    "contrast_exception_reason": "Why no contrast",
    "contrast_exception_detail": "Detail of why no contrast",
    "confirmation_views": "Views saved",
    "realtime_contrast": "Real-time contrast", "vascular_uptake": "Vascular uptake",
    "needle_repositioned": "Needle repositioned", "injectate": "Injectate", "notes": "Notes",
    "dose_source": "Dose source", "effective_dose_msv": "Effective dose (mSv)",
    "background_days": "Days of background", "warnings": "Confirmed warnings",
    "void_reason": "Void reason", "created_at": "Created", "created_by": "Created by",
    "updated_at": "Last changed", "updated_by": "Changed by",
    "duplicate?": "Possible duplicate", "reason": "Reason",
}

#: Where the "Log procedure" form labels a field otherwise (its messages name it so).
LOG_FORM_LABELS: dict[str, str] = {
    "performed_at": "Date and time", "room": "Room / C-arm", "fluoro_time_s": "Fluoro time",
    "dap_value": "DAP (KAP)", "dap_gycm2": "DAP (KAP)",
    "dap_missing_reason": "No DAP on the display? Say why",
    "realtime_contrast": "Real-time fluoro / DSA during contrast",
}
#: Where the amend form labels a field otherwise.
AMEND_FORM_LABELS: dict[str, str] = {
    "performed_at": "Date and time performed", "fluoro_time_s": "Fluoro time",
    "dap_gycm2": "DAP as displayed",
}

_YES_NO = {True: "Yes", False: "No", "yes": "Yes", "no": "No"}
#: Stored values as a person reads them, per field (values not listed show as stored).
VALUE_LABELS: dict[str, dict[str, str]] = {
    "patient_sex": {"F": "Female", "M": "Male", "O": "Other", "U": "Unknown"},
    "pregnancy_status": {"not_applicable": "Not applicable", "not_pregnant": "Not pregnant",
                         "pregnant": "Pregnant", "unknown": "Unknown"},
    "laterality": {"left": "Left", "right": "Right", "bilateral": "Bilateral",
                   "midline": "Midline"},
    "guidance": {"fluoroscopy": "Fluoroscopy", "fluoroscopy_dsa": "Fluoroscopy + DSA",
                 "ct_fluoroscopy": "CT fluoroscopy", "ultrasound": "Ultrasound (no radiation)"},
    "carm_operator": {"physician": "Physician", "technologist": "Technologist",
                      "radiographer": "Radiographer"},
    "contrast_class": {"iodinated": "Iodinated", "gadolinium": "Gadolinium", "none": "None"},
    "complication_kind": {"contrast_reaction": "Contrast reaction",
                          "vasovagal_reaction": "Vasovagal reaction",
                          "dural_puncture": "Dural puncture", "nerve_injury": "Nerve injury",
                          "hematoma": "Hematoma", "infection": "Infection", "other": "Other"},
    "complication_severity": {"mild": "Mild", "moderate": "Moderate", "severe": "Severe"},
    "complication_timing": {"at_procedure": "During the procedure",
                            "follow_up": "At follow-up"},
    "contrast_confirmation": {"confirmed": "Confirmed with contrast",
                              "not_confirmed": "Contrast used, placement not confirmed",
                              "contraindicated": "Contraindicated",
                              "not_required": "Not required"},
    "contrast_exception_reason": {"allergy": "Allergy", "renal_impairment": "Renal impairment",
                                  "patient_refused": "Patient refused", "other": "Other"},
    "injectate": {"dexamethasone": "Dexamethasone", "triamcinolone": "Triamcinolone",
                  "methylprednisolone": "Methylprednisolone",
                  "betamethasone": "Betamethasone",
                  "local_anesthetic_only": "Local anesthetic only", "none": "None",
                  "other": "Other"},
    "status": {"final": "Final", "void": "Void"},
    "region": {"cervical": "Cervical", "thoracic": "Thoracic", "lumbar": "Lumbar",
               "sacral": "Sacral", "other": "Other"},
    "dose_source": {"manual": "Typed in", "rdsr": "C-arm dose report",
                    "manual+rdsr": "Typed in, checked against the C-arm dose report"},
    "role": {"technologist": "Technologist", "physician": "Physician",
             "quality_officer": "Quality officer", "rso": "Radiation safety officer (RSO)",
             "admin": "Administrator"},
}
#: Fields stored as yes/no.
BOOLEAN_FIELDS = frozenset({"pulsed_fluoro", "low_dose_mode", "realtime_contrast",
                            "vascular_uptake", "needle_repositioned", "trainee_present",
                            "contrast_test_dose"})
#: Every stored value written with an underscore, to its label (for messages quoting one).
_SNAKE_VALUES = {value: text for labels in VALUE_LABELS.values()
                 for value, text in labels.items() if "_" in value}


def label(name: str, labels: Mapping[str, str] | None = None) -> str:
    """A field's name on screen: the form's own label first, then the shared one."""
    if labels and name in labels:
        return labels[name]
    if name in FIELD_LABELS:
        return FIELD_LABELS[name]
    text = name.replace("_", " ").strip()
    return text[:1].upper() + text[1:]


def value_label(field: str, value: Any) -> str:
    """One stored value as a person reads it ("not_pregnant" -> "Not pregnant")."""
    if value is None or value == "":
        return ""
    if field in BOOLEAN_FIELDS or isinstance(value, bool):
        return _YES_NO.get(value, as_text(value))
    return VALUE_LABELS.get(field, {}).get(str(value), as_text(value))


def shown_value(field: str, value: Any) -> str:
    """A stored value, lists included, as the record's detail shows it."""
    if isinstance(value, list | tuple):
        return "; ".join(value_label(field, v) for v in value)
    return value_label(field, value)


def choose_from(field: str, values: list[str]) -> str:
    """ "Allergy, Renal impairment or Other": the choices as the form shows them."""
    shown = [value_label(field, v) for v in values]
    return shown[0] if len(shown) == 1 else f"{', '.join(shown[:-1])} or {shown[-1]}"


# --- messages -----------------------------------------------------------------------------------

def _q(text: str) -> str:
    return f"“{text}”"


def _contrast(value: str) -> str:
    """A contrast status as the form's radio button says it."""
    try:
        return _q(CONTRAST_LABELS[ContrastConfirmation(value)])
    except ValueError:
        return _q(value)


CC = ContrastConfirmation
#: Messages given when contrast confirmed the placement but a field was left empty: what to do.
_WHEN_CONFIRMED = {
    "contrast_agent": "choose or type the agent that confirmed the needle placement "
                      "(e.g. iohexol 240)",
    "contrast_volume_ml": "type the volume injected, in mL",
    "realtime_contrast": "answer Yes or No: was contrast injected under live fluoroscopy "
                         "or DSA?",
}


def _reword(field: str, message: str, labels: Mapping[str, str] | None,
            layout: FormLayout | None) -> str:
    """The library's message for `field` in words that say what to do, where it names a
    dictionary field or a stored value (the rest is already plain)."""
    code = layout.code if layout else None
    if message.startswith("required when contrast_confirmation is confirmed"):
        if field == "confirmation_views":
            least = max(1, layout.min_views) if layout else 1
            views = "view" if least == 1 else "views"
            what = f" for {code}" if code else ""
            return f"pick at least {least} {views}{what} (AP, LAT, CLO or OBL)"
        if field in _WHEN_CONFIRMED:
            return _WHEN_CONFIRMED[field]
    if field == "contrast_exception_reason" and message.startswith(
            "required when contrast is contraindicated"):
        return ("choose why contrast was not used (Allergy, Renal impairment, Patient refused "
                "or Other)")
    if message == "required when the reason is other":
        return "say why contrast was not used (required when the reason is “Other”)"
    if match := re.fullmatch(r"not_required is not allowed: (\S+) requires contrast;.*",
                             message):
        return (f"“Not required” is not possible: {match[1]} requires contrast. Choose "
                f"{_contrast(CC.CONFIRMED)}, {_contrast(CC.NOT_CONFIRMED)}, or "
                f"{_contrast(CC.CONTRAINDICATED)} and give the reason")
    if match := re.match(r"contrast confirmation '(\w+)' for a procedure whose policy is "
                         r"required \((\S+)\); allowed without this warning: [^:]*(.*)$",
                         message, re.S):
        return (f"{_contrast(match[1])} for {match[2]}, whose policy requires contrast "
                f"confirmation{match[3]}. To count as compliant: {_contrast(CC.CONFIRMED)}, or "
                f"{_contrast(CC.CONTRAINDICATED)} with the reason")
    if match := re.fullmatch(r"pregnant, but patient_sex is (\w+): correct one of them",
                             message):
        return (f"“Pregnant”, but {label('patient_sex', labels)} is "
                f"{_q(value_label('patient_sex', match[1]))}: correct one of them")
    if message.startswith("given, but pulsed_fluoro is false"):
        pulsed = label("pulsed_fluoro", labels)
        return f"given, but {pulsed} is “No”: leave it empty, or set {pulsed} to “Yes”"
    if match := re.fullmatch(r"(\d+) DSA runs recorded but guidance is (\w+); .*", message):
        guidance = label("guidance", labels)
        return (f"{match[1]} DSA runs recorded, but {guidance} is "
                f"{_q(value_label('guidance', match[2]))}: set {guidance} to "
                "“Fluoroscopy + DSA”")
    if message.startswith("required: give dap_gycm2"):
        return ("required: type the DAP the C-arm shows and pick its unit; if it shows none, "
                f"say why in {_q(label('dap_missing_reason', labels))}")
    if match := re.fullmatch(r"required with dap_unit (.+)", message):
        return f"type the DAP the C-arm shows (in {match[1]})"
    if match := re.fullmatch(r"required for (\S+): give at least one level, e\.g\. .*",
                             message):
        example = f" (e.g. {layout.levels_example})" if layout and layout.levels else ""
        return f"pick at least one level for {match[1]}{example}"
    if field == "laterality" and (match := re.fullmatch(r"required for (\S+); allowed: .*",
                                                        message)):
        return f"choose the side treated (required for {match[1]})"
    if match := re.fullmatch(r"required; allowed: (.+)", message):
        return f"required: choose {choose_from(field, match[1].split(', '))}"
    if match := re.fullmatch(r"(.+) is not allowed; allowed: (.+)", message, re.S):
        return f"{match[1]} is not one of the choices: {choose_from(field, match[2].split(', '))}"
    message = re.sub(r"contrast_confirmation is (\w+)",
                     lambda m: f"{label('contrast_confirmation', labels)} is "
                               f"{_contrast(m[1])}", message)
    return message.replace("it is only for contraindicated",
                           "it is only for a contraindication")


_SNAKE = re.compile(r"\b[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b")
#: Quoted text (a value a person typed, quoted by the message): left exactly as it is.
_QUOTED = re.compile(r"('[^']*'|\"[^\"]*\"|“[^”]*”)")


def _no_field_names(message: str, labels: Mapping[str, str] | None) -> str:
    """Any dictionary field name or stored value still in the message, as its label."""
    def word(match: re.Match[str]) -> str:
        token = match[0]
        if token in FIELD_LABELS or (labels and token in labels):
            return label(token, labels)
        if token in _SNAKE_VALUES:
            return _q(_SNAKE_VALUES[token])
        return token.replace("_", " ")

    parts = _QUOTED.split(message)
    return "".join(part if index % 2 else _SNAKE.sub(word, part)
                   for index, part in enumerate(parts))


#: What a message may be about that is no field: the record, the change, the action as a whole.
GENERAL = frozenset({"record", "changes", "stale", "action", "setup"})


def named(field: str, message: str, labels: Mapping[str, str] | None = None) -> str:
    """A message led by its field's label ("Saved images: required"); one about no field in
    particular (GENERAL) as a sentence of its own."""
    if field in GENERAL:
        return message[:1].upper() + message[1:]
    return f"{label(field, labels)}: {message}"


def say(field: str, message: str, labels: Mapping[str, str] | None = None,
        layout: FormLayout | None = None) -> str:
    """One error or warning as the form shows it: the field as the form labels it, then what
    is wrong and what to do, with no dictionary field name or stored value left in it
    ("Views saved: pick at least 2 views for TFESI (AP, LAT, CLO or OBL)")."""
    return named(field, _no_field_names(_reword(field, message, labels, layout), labels),
                 labels)


def say_with(labels: Mapping[str, str] | None = None, layout: FormLayout | None = None) -> Any:
    """`say` for one form (its labels, its procedure type), as FieldErrors' wording."""
    return lambda field, message: say(field, message, labels, layout)
