"""Validation of the case-mix fields, radiation-free guidance and complications noted while
logging (issue 15).

Why a module of its own: these rules are new, self-contained and shared by every door in (the
form, `fluoro-audit log`, CSV import, amend all end in audit.log.validation.validate, which
calls these). Each problem is an error naming the field and what is allowed, collected with the
others, as everywhere in validation. `collector` is validation's _Collector.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from audit import bounds
from audit.dictionary import DEFAULT_MAX_LENGTH
from audit.vocab import (
    CarmOperator,
    ComplicationKind,
    ComplicationSeverity,
    ContrastClass,
    ContrastConfirmation,
    Guidance,
)

#: Adult heights (cm) outside this range suggest inches, metres or a typo (a warning).
ADULT_CM_RANGE = (120, 220)
#: Body mass indexes outside this range mean weight or height is in the wrong unit (a warning).
BMI_RANGE = (12.0, 80.0)
#: Fields an ultrasound-guided record leaves empty: it uses no radiation.
DOSE_FIELDS = ("dap_gycm2", "dap_value", "dap_unit", "dap_missing_reason", "air_kerma_mgy",
               "pulse_rate_pps", "dsa_runs")
#: The input key for complications noted while logging (not a procedure column).
COMPLICATIONS = "complications"
MAX_COMPLICATIONS = 7


def bmi(weight_kg: float | None, height_cm: float | None) -> float | None:
    """Body mass index (kg/m²), rounded to 0.1 as it is reported; None without both."""
    if weight_kg is None or height_cm is None or height_cm <= 0:
        return None
    return round(weight_kg / (height_cm / 100) ** 2, 1)


def is_radiation_free(guidance: str | None) -> bool:
    return guidance == Guidance.ULTRASOUND.value


def case_mix_fields(c: Any, values: dict[str, Any]) -> None:
    """Height (and BMI), C-arm operator, trainee and contrast class into `values`."""
    height = c.number("patient_height_cm")
    values["patient_height_cm"] = height
    values["bmi_kg_m2"] = bmi(values.get("patient_weight_kg"), height)
    operator = c.enum("carm_operator", CarmOperator)
    values["carm_operator"] = None if operator is None else operator.value
    values["trainee_present"] = c.boolean("trainee_present")
    klass = c.enum("contrast_class", ContrastClass)
    values["contrast_class"] = None if klass is None else klass.value
    if height is not None and not ADULT_CM_RANGE[0] <= height <= ADULT_CM_RANGE[1]:
        c.warn("patient_height_cm", f"{height:g} cm is unusual for an adult: is it in cm "
               "(not inches or metres)?")
    found = values["bmi_kg_m2"]
    if found is not None and not BMI_RANGE[0] <= found <= BMI_RANGE[1]:
        c.warn("patient_height_cm", f"weight and height give a body mass index of {found:g} "
               "kg/m²: check that weight is in kg and height in cm")
    if operator is not None and is_radiation_free(values.get("guidance")):
        c.error("carm_operator", "given, but guidance is ultrasound (no C-arm was used); "
                "leave it empty")


def contrast_class_check(c: Any, values: Mapping[str, Any]) -> None:
    """The contrast class agrees with whether contrast was used."""
    klass, status = values.get("contrast_class"), values.get("contrast_confirmation")
    used = status in (ContrastConfirmation.CONFIRMED.value,
                      ContrastConfirmation.NOT_CONFIRMED.value)
    if klass == ContrastClass.NONE.value and status == ContrastConfirmation.CONFIRMED.value:
        c.error("contrast_class", "none, but contrast_confirmation is confirmed; allowed: "
                "iodinated, gadolinium")
    if klass in (ContrastClass.IODINATED.value, ContrastClass.GADOLINIUM.value) and not used \
            and status is not None:
        c.error("contrast_class", f"{klass}, but contrast_confirmation is {status} (no contrast "
                "was used); allowed: none, or leave it empty")


def test_dose_check(c: Any, values: dict[str, Any], code: str) -> None:
    """The ILESI contrast test dose (issue 15, part B): yes or no for an ILESI, nothing for the
    other procedures (where the 2015 safeguards ask no test dose)."""
    values["contrast_test_dose"] = c.boolean("contrast_test_dose")
    if values["contrast_test_dose"] is not None and code != "ILESI":
        c.error("contrast_test_dose", f"given, but the procedure is {code}; it is recorded for "
                "ILESI only: leave it empty")


def radiation_free(c: Any, values: dict[str, Any]) -> None:
    """An ultrasound-guided record: no dose fields asked; fluoroscopy time is stored as 0
    (no beam), KAP and Ka,r as empty. A dose figure given anyway is an error, since it says
    the record is not what its guidance says (0 s of fluoroscopy is accepted: the export
    writes it, and an export imports back)."""
    values.update(fluoro_time_s=0.0, fluoro_time_entered=None, dap_gycm2=None, dap_value=None,
                  dap_unit=None, dap_missing_reason=None)
    why = "given, but guidance is ultrasound (no radiation); leave it empty"
    for name in ("fluoro_time_s", "fluoro_time"):
        raw = c.raw(name)
        if raw is not None and str(raw).strip() not in ("0", "0.0", "0:00"):
            c.error("fluoro_time_s", why)
    for name in DOSE_FIELDS:
        if c.raw(name) is not None:
            c.error(name, why)
    for name in ("pulsed_fluoro", "low_dose_mode"):
        if c.raw(name) is not None and c.boolean(name):
            c.error(name, why)


def complications_noted(c: Any) -> list[dict[str, str | None]]:
    """Complications noted while logging: a list of {"kind", "severity", "detail"} (or one
    such object). Each checked as audit.log.complications.record_complication checks them."""
    raw = c.data.get(COMPLICATIONS)
    if raw is None or raw == "" or raw == []:
        return []
    items = [raw] if isinstance(raw, Mapping) else raw
    if not isinstance(items, list | tuple) or len(items) > MAX_COMPLICATIONS:
        c.error(COMPLICATIONS, f"expected a list of at most {MAX_COMPLICATIONS} objects with "
                f"kind ({ComplicationKind.allowed()}), severity "
                f"({ComplicationSeverity.allowed()}) and detail")
        return []
    found = []
    for item in items:
        if not isinstance(item, Mapping):
            c.error(COMPLICATIONS, "each complication is an object with kind, severity and "
                    "detail")
            continue
        try:
            found.append(check_complication(item.get("kind"), item.get("severity"),
                                            item.get("detail")))
        except ValueError as exc:
            c.error(COMPLICATIONS, str(exc))
    return found


def check_complication(kind: Any, severity: Any, detail: Any) -> dict[str, str | None]:
    """One complication's canonical values, or ValueError naming what is allowed."""
    if kind is None or str(kind).strip() == "":
        raise ValueError(f"kind required; allowed: {ComplicationKind.allowed()}")
    try:
        parsed = ComplicationKind.parse(kind)
    except ValueError as exc:
        raise ValueError(f"kind: {exc}") from None
    if severity is None or str(severity).strip() == "":
        raise ValueError(f"severity required; allowed: {ComplicationSeverity.allowed()} (ACR "
                         "grades for contrast reactions)")
    try:
        grade = ComplicationSeverity.parse(severity)
    except ValueError as exc:
        raise ValueError(f"severity: {exc}") from None
    text = str(detail).strip() if detail is not None else ""
    if text:
        problem = bounds.text_problem(text, DEFAULT_MAX_LENGTH * 5)
        if problem:
            raise ValueError(f"detail {problem}")
    if parsed is ComplicationKind.OTHER and not text:
        raise ValueError("detail required when the kind is other: say what happened")
    return {"kind": parsed.value, "severity": grade.value, "detail": text or None}
