"""Turn one input record (dictionary field names, any JSON/CSV-ish types) into canonical values.

Pure: no database. The service resolves names (site, room, ...) and supplies what needs data
(the procedure's usual KAP). All problems are collected, not just the first, so a technologist
fixes a form in one pass. Errors block; warnings (implausible but possible, see
audit.log.plausibility) need confirmation. Bounds, text lengths and "always required" come from
the data dictionary (audit.dictionary), so the documented rules are the enforced ones; the
conditional rules (contrast, DAP, levels) are written out below.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from audit import bounds, units
from audit.bounds import CLOCK_SKEW, EARLIEST
from audit.catalog import Catalog, CatalogEntry
from audit.dictionary import BY_NAME, INPUT_FIELDS, Io
from audit.dictionary import FIELDS as DICTIONARY
from audit.errors import FieldError
from audit.log import case_mix
from audit.log.plausibility import Usual, plausibility_warnings
from audit.log.screening import screen_all
from audit.settings import Settings
from audit.vocab import (
    CatalogRegion,
    ContrastConfirmation,
    ContrastException,
    DapUnit,
    Guidance,
    Injectate,
    Laterality,
    PregnancyStatus,
    Region,
    Sex,
    View,
    Vocabulary,
    level_order,
    level_region,
    parse_level,
)

OUTPUT_ONLY = frozenset(f.name for f in DICTIONARY if f.io is Io.OUT)
#: Fields accepted on input beyond the dictionary's (alternatives the dictionary documents).
EXTRA_INPUT = frozenset({"fluoro_time", "contrast_exception_detail", case_mix.COMPLICATIONS})
__all__ = ["CLOCK_SKEW", "EARLIEST", "Validated", "parse_datetime", "validate"]

E = TypeVar("E", bound=Vocabulary)


@dataclass
class Validated:
    """Canonical values of one record; names still to be resolved by the service."""

    names: dict[str, str]  # site, room, physician, technologist, patient_id
    entry: CatalogEntry
    values: dict[str, Any]  # Procedure column values
    levels: list[str]
    warnings: list[FieldError] = field(default_factory=list)
    #: Complications noted while logging (audit.log.case_mix), written beside the record.
    complications: list[dict[str, str | None]] = field(default_factory=list)


class _Collector:
    """Accumulates errors while parsing each field; a field that fails yields None. A field
    the dictionary marks always required is an error when missing."""

    def __init__(self, data: Mapping[str, Any]):
        self.data = data
        self.errors: list[FieldError] = []
        self.warnings: list[FieldError] = []
        #: Fields whose raw value has the wrong shape (audit.log.screening), reported once:
        #: they read as absent, and no further error names them.
        self.bad: set[str] = set()
        for name, problem in screen_all(data).items():
            self.error(name, problem)
            self.bad.add(name)

    def raw(self, name: str) -> Any:
        if name in self.bad:
            return None
        value = self.data.get(name)
        if isinstance(value, str):
            value = value.strip()
            if value == "":
                return None
        return value

    def error(self, name: str, message: str) -> None:
        if name not in self.bad:
            self.errors.append(FieldError(name, message))

    def warn(self, name: str, message: str) -> None:
        self.warnings.append(FieldError(name, message))

    def text(self, name: str) -> str | None:
        value = self.raw(name)
        if value is None:
            if BY_NAME[name].always_required:
                self.error(name, "required")
            return None
        if not isinstance(value, str | int):
            self.error(name, f"expected text, got {type(value).__name__}")
            return None
        text = str(value)
        problem = bounds.text_problem(text, BY_NAME[name].text_limit)
        if problem:
            self.error(name, problem)
            return None
        return text

    def enum(self, name: str, enum: type[E]) -> E | None:
        value = self.raw(name)
        if value is None:
            if BY_NAME[name].always_required:
                self.error(name, f"required; allowed: {enum.allowed()}")
            return None
        try:
            return enum.parse(value)  # type: ignore[return-value]
        except ValueError as exc:
            self.error(name, str(exc))
            return None

    def boolean(self, name: str) -> bool | None:
        value = self.raw(name)
        if value is None:
            return None
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        text = str(value).strip().lower()
        if text in {"true", "yes", "y", "1", "t"}:
            return True
        if text in {"false", "no", "n", "0", "f"}:
            return False
        self.error(name, f"{value!r} is not a yes/no value; allowed: true, false")
        return None

    def number(self, name: str) -> float | None:
        """A finite number within the dictionary's bounds (a whole one for integer fields)."""
        spec = BY_NAME[name]
        assert spec.minimum is not None and spec.maximum is not None, name
        value = self.raw(name)
        if value is None:
            if spec.always_required:
                self.error(name, "required")
            return None
        try:
            return bounds.bounded_number(value, spec.minimum, spec.maximum,
                                         unit=spec.bound_unit, integer=spec.is_integer)
        except ValueError as exc:
            self.error(name, str(exc))
            return None

    def convert(self, name: str, parser: Any, *args: Any) -> Any:
        value = self.raw(name)
        if value is None:
            if BY_NAME[name].always_required:
                self.error(name, "required")
            return None
        try:
            return parser(value, *args)
        except ValueError as exc:
            self.error(name, str(exc))
            return None

    def listing(self, name: str) -> list[str]:
        value = self.raw(name)
        if value is None:
            return []
        items = value if isinstance(value, list | tuple) else re.split(r"[;,]", str(value))
        found = [str(i).strip() for i in items if str(i).strip()]
        limit = BY_NAME[name].max_items
        if limit is not None and len(found) > limit:
            self.error(name, f"has {len(found)} items; at most {limit} allowed")
            return []
        return found


def parse_datetime(raw: Any, now: datetime) -> datetime:
    """An ISO 8601 date-time with a UTC offset, in UTC, within audit.bounds' window (EARLIEST
    to now + CLOCK_SKEW) and with a real time zone's offset."""
    if isinstance(raw, datetime):
        moment = raw
    else:
        text = str(raw).strip()
        try:
            moment = datetime.fromisoformat(text.replace("z", "Z"))
        except ValueError:
            raise ValueError(
                f"{bounds.shown(text)} is not an ISO 8601 date-time; use e.g. "
                "2026-03-14T09:30:00-05:00"
            ) from None
    return bounds.check_moment(moment, now)


def validate(
    data: Mapping[str, Any],
    catalog: Catalog,
    *,
    now: datetime,
    default_dap_unit: DapUnit | None = None,
    usual: Usual | None = None,
    warning_kap_ratio: float = Settings.warning_kap_ratio,
) -> tuple[Validated | None, list[FieldError]]:
    """Return (validated record, errors). With errors, the record is None."""
    if not isinstance(data, Mapping):
        return None, [FieldError("record", "expected a JSON object of dictionary fields")]
    c = _Collector(data)
    for name in data:
        if name not in INPUT_FIELDS and name not in OUTPUT_ONLY and name not in EXTRA_INPUT:
            label = str(name)
            if len(label) > 64 or bounds.text_problem(label, 64):
                label = bounds.shown(label)
            c.error(label, "unknown field; see the data dictionary for the field names")

    performed_at = c.convert("performed_at", parse_datetime, now)
    names = {n: c.text(n) for n in ("site", "room", "physician", "technologist", "patient_id")}
    code = c.text("procedure_code")
    entry = catalog.lookup(code) if code else None
    if code and (entry is None or not entry.active):
        c.error("procedure_code", f"{code!r} is not in the procedure catalog; allowed: "
                f"{', '.join(catalog.active_codes())}")
        entry = None

    values: dict[str, Any] = {
        "performed_at": performed_at,
        "accession_number": c.text("accession_number"),
        "patient_sex": _value(c.enum("patient_sex", Sex)),
        "patient_weight_kg": c.number("patient_weight_kg"),
        "pregnancy_status": _value(c.enum("pregnancy_status", PregnancyStatus)),
        "guidance": _value(c.enum("guidance", Guidance)),
        "air_kerma_mgy": c.convert("air_kerma_mgy", units.parse_air_kerma),
        "saved_images": c.number("saved_images"),
        "dsa_runs": c.number("dsa_runs"),
        "pulsed_fluoro": c.boolean("pulsed_fluoro"),
        "pulse_rate_pps": c.number("pulse_rate_pps"),
        "low_dose_mode": c.boolean("low_dose_mode"),
        "injectate": _value(c.enum("injectate", Injectate)),
        "notes": c.text("notes"),
    }
    if (values["pregnancy_status"] == PregnancyStatus.PREGNANT.value
            and values["patient_sex"] == Sex.M.value):
        c.error("pregnancy_status", "pregnant, but patient_sex is M: correct one of them")
    laterality = c.enum("laterality", Laterality)
    values["laterality"] = _value(laterality)
    case_mix.case_mix_fields(c, values)
    if case_mix.is_radiation_free(values["guidance"]):
        case_mix.radiation_free(c, values)
    else:
        _fluoro_time(c, values)
        _dap(c, values, default_dap_unit)
    _pulses(c, values)
    levels = _levels(c, entry)
    region = _region(c, entry, levels)
    values["region"] = region.value if region else None
    if entry is not None:
        if entry.laterality_required and laterality is None:
            c.error("laterality", f"required for {entry.code}; allowed: {Laterality.allowed()}")
        _contrast(c, values, entry)
        case_mix.contrast_class_check(c, values)
        case_mix.test_dose_check(c, values, entry.code)
    complications = case_mix.complications_noted(c)

    if c.errors:
        return None, c.errors
    assert entry is not None and region is not None
    c.warnings += plausibility_warnings(values, entry, region, levels, usual, warning_kap_ratio)
    return Validated(
        names={k: v for k, v in names.items() if v is not None},
        entry=entry, values=values, levels=levels, warnings=c.warnings,
        complications=complications,
    ), []


def _value(member: Vocabulary | None) -> str | None:
    return None if member is None else member.value


def _fluoro_time(c: _Collector, values: dict[str, Any]) -> None:
    name = "fluoro_time_s"
    raw = c.raw(name)
    if raw is None and c.raw("fluoro_time") is not None:
        raw = c.raw("fluoro_time")
    if raw is None:
        if "fluoro_time" not in c.bad:  # its alias was given, and reported
            c.error(name, f"required; give {units.FLUORO_TIME_FORMS}")
        values[name] = None
        return
    try:
        values[name] = units.parse_fluoro_time(raw)
    except ValueError as exc:
        c.error(name, str(exc))
        values[name] = None
        return
    values["fluoro_time_entered"] = str(raw)[:32]
    is_decimal_text = isinstance(raw, str) and re.fullmatch(r"\d+\.\d+", raw.strip())
    if values[name] and values[name] < 10 and (is_decimal_text or isinstance(raw, float)):
        c.warn(name, f"{values[name]:g} s is very short; if the C-arm showed minutes, enter "
               f"'{raw} min' (= {float(raw) * 60:g} s) or m:ss")


def _dap(c: _Collector, values: dict[str, Any], default_unit: DapUnit | None) -> None:
    gycm2_raw, value_raw, unit_raw = c.raw("dap_gycm2"), c.raw("dap_value"), c.raw("dap_unit")
    reason = c.text("dap_missing_reason")
    values.update(dap_gycm2=None, dap_value=None, dap_unit=None, dap_missing_reason=reason)
    unit: DapUnit | None = None
    if unit_raw is not None:
        try:
            unit = units.parse_dap_unit(unit_raw)
        except ValueError as exc:
            c.error("dap_unit", str(exc))
            return
    if value_raw is not None:
        try:
            dap = units.parse_dap(value_raw, unit or default_unit)
        except ValueError as exc:
            c.error("dap_value", str(exc))
            return
        values.update(dap_gycm2=dap.gycm2, dap_value=dap.value, dap_unit=dap.unit.value)
        if gycm2_raw is not None:
            stated = c.number("dap_gycm2")
            if stated is not None and abs(stated - dap.gycm2) > max(1e-9, 0.005 * dap.gycm2):
                c.error("dap_gycm2", f"{stated:g} Gy·cm² disagrees with dap_value {dap.value:g} "
                        f"{dap.unit.value} (= {dap.gycm2:g} Gy·cm²); give one or make them agree")
    elif gycm2_raw is not None:
        if unit is not None and unit is not DapUnit.GY_CM2:
            c.error("dap_unit", f"{unit.value} given with dap_gycm2, which is always Gy·cm²; put "
                    "the displayed number in dap_value instead")
            return
        stated = c.number("dap_gycm2")
        if stated is not None:
            values.update(dap_gycm2=stated, dap_value=stated, dap_unit=DapUnit.GY_CM2.value)
    elif unit is not None:
        c.error("dap_value", f"required with dap_unit {unit.value}")
    if values["dap_gycm2"] is None and reason is None and not any(
        e.field.startswith("dap") for e in c.errors
    ):
        c.error("dap_gycm2", "required: give dap_gycm2, or dap_value with dap_unit, or "
                "dap_missing_reason if the unit displays no DAP")
    if values["dap_gycm2"] is not None and reason is not None:
        c.error("dap_missing_reason", "given, but a DAP was recorded; leave it empty")


def _pulses(c: _Collector, values: dict[str, Any]) -> None:
    if values["pulse_rate_pps"] is not None and values["pulsed_fluoro"] is False:
        c.error("pulse_rate_pps", "given, but pulsed_fluoro is false; leave it empty or set "
                "pulsed_fluoro to true")
    if values["pulse_rate_pps"] is not None and values["pulsed_fluoro"] is None:
        values["pulsed_fluoro"] = True
    runs = values["dsa_runs"]
    if runs and values["guidance"] and values["guidance"] != Guidance.FLUOROSCOPY_DSA.value:
        c.error("dsa_runs", f"{runs} DSA runs recorded but guidance is {values['guidance']}; "
                "set guidance to fluoroscopy_dsa")


def _levels(c: _Collector, entry: CatalogEntry | None) -> list[str]:
    parsed: list[str] = []
    for item in c.listing("levels"):
        try:
            level = parse_level(item)
        except ValueError as exc:
            c.error("levels", str(exc))
            continue
        if level in parsed:
            c.error("levels", f"{level} is listed twice")
            continue
        parsed.append(level)
    parsed.sort(key=level_order)
    if entry is None:
        return parsed
    if entry.levels_required and not parsed and not any(e.field == "levels" for e in c.errors):
        c.error("levels", f"required for {entry.code}: give at least one level, e.g. L4-L5")
    if entry.level_regions:
        allowed = ", ".join(sorted(r.value for r in entry.level_regions))
        for level in parsed:
            if level_region(level) not in entry.level_regions:
                c.error("levels", f"{level} is {level_region(level).value}; {entry.code} allows "
                        f"levels in: {allowed}")
    return parsed


def _region(c: _Collector, entry: CatalogEntry | None, levels: list[str]) -> Region | None:
    if entry is None:
        return None
    if entry.region is not CatalogRegion.BY_LEVEL:
        return Region(entry.region.value)
    regions = {level_region(level) for level in levels}
    if len(regions) > 1:
        c.error("levels", f"levels span {', '.join(sorted(r.value for r in regions))}; log "
                "each region as its own procedure")
        return None
    if not regions:
        return Region.OTHER if not entry.levels_required else None
    return regions.pop()


def _contrast(c: _Collector, values: dict[str, Any], entry: CatalogEntry) -> None:
    status = c.enum("contrast_confirmation", ContrastConfirmation)
    values["contrast_confirmation"] = _value(status)
    agent = c.text("contrast_agent")
    volume = c.number("contrast_volume_ml")
    reason = c.enum("contrast_exception_reason", ContrastException)
    detail = c.text("contrast_exception_detail")
    realtime = c.boolean("realtime_contrast")
    uptake = c.boolean("vascular_uptake")
    repositioned = c.boolean("needle_repositioned")
    views: list[str] = []
    for item in c.listing("confirmation_views"):
        try:
            view = View.parse(item).value
        except ValueError as exc:
            c.error("confirmation_views", str(exc))
            continue
        if view not in views:
            views.append(view)
    views.sort(key=View.values().index)
    values.update(
        contrast_agent=agent, contrast_volume_ml=volume, realtime_contrast=realtime,
        contrast_exception_reason=_value(reason), contrast_exception_detail=detail,
        confirmation_views=";".join(views) or None, vascular_uptake=uptake,
        needle_repositioned=repositioned,
    )
    if status is None:
        return
    used = status in (ContrastConfirmation.CONFIRMED, ContrastConfirmation.NOT_CONFIRMED)
    if status is ContrastConfirmation.CONFIRMED:
        if agent is None:
            c.error("contrast_agent", "required when contrast_confirmation is confirmed "
                    "(e.g. iohexol 240)")
        if volume is None:
            c.error("contrast_volume_ml", "required when contrast_confirmation is confirmed")
        if not views and not any(e.field == "confirmation_views" for e in c.errors):
            c.error("confirmation_views", f"required when contrast_confirmation is confirmed; "
                    f"allowed: {View.allowed()}")
        if realtime is None:
            c.error("realtime_contrast", "required when contrast_confirmation is confirmed "
                    "(was contrast injected under live fluoroscopy or DSA?)")
    if status is ContrastConfirmation.CONTRAINDICATED:
        if reason is None and not any(e.field == "contrast_exception_reason" for e in c.errors):
            c.error("contrast_exception_reason", "required when contrast is contraindicated; "
                    f"allowed: {ContrastException.allowed()}")
        if reason is ContrastException.OTHER and detail is None:
            c.error("contrast_exception_detail", "required when the reason is other")
    elif reason is not None:
        c.error("contrast_exception_reason", "given, but contrast_confirmation is "
                f"{status.value}; it is only for contraindicated")
    if not used:
        for name, value in (("contrast_agent", agent), ("contrast_volume_ml", volume),
                            ("confirmation_views", views or None),
                            ("realtime_contrast", realtime)):
            if value not in (None, False):
                c.error(name, f"given, but contrast_confirmation is {status.value} (no contrast "
                        "was used); leave it empty")
    # Under ultrasound the spread is watched directly: contrast may be not_required, except
    # where real-time contrast under fluoroscopy is the safeguard (TFESI; docs/design.md).
    ultrasound_ok = (case_mix.is_radiation_free(values["guidance"])
                     and not entry.realtime_contrast_required)
    if (status is ContrastConfirmation.NOT_REQUIRED and entry.contrast_required
            and not ultrasound_ok):
        c.error("contrast_confirmation", f"not_required is not allowed: {entry.code} requires "
                "contrast; allowed: confirmed, not_confirmed, or contraindicated with a reason")
    if uptake and not used:
        c.error("vascular_uptake", "vascular uptake is seen with contrast, but no contrast was "
                "used")
    # Whether the record will count as non-compliant (not confirmed where required, too few
    # views, ...) is warned by the service with the compliance rule itself
    # (audit.log.compliance_check), not restated here.
