"""Physical bounds of what a dose report may store: finite, and within the data dictionary's range.

Why: the reader converts what a file says exactly, so a crafted or broken RDSR (a DS of
"1.5e308", an FD of infinity, a Gy·m² unit on a value meant in Gy·cm², two planes that each
hold 1e308) would otherwise reach the log as 1e308 Gy·cm² or ``inf``: it would fill a
procedure, skew every dose statistic, export as "Inf", and make PostgreSQL refuse the JSON of
the audit event. A value a person could not type at the entry form is not a dose either, so
each RDSR quantity is held to the bounds of the dictionary field it becomes (or is compared
with), and a report with any value outside them is rejected whole, naming the quantity, its
value and the allowed range.

The numbers are never written here: they come from audit.dictionary (the field's
``minimum``/``maximum``). Where the dictionary does not state a field's range yet, the manual
entry parser's limit in audit.units is used (what a person typing the value is held to).

:func:`json_safe` is the last line of defence for JSON columns (plane totals, audit events):
JSON has no NaN or Infinity, SQLite would store the non-standard token and PostgreSQL refuses it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Final

from audit import units
from audit.dictionary import BY_NAME
from audit.dose_reports.report import DoseReport, PlaneTotals

#: Manual entry's limits for dictionary fields that state no range (yet): the parsers in
#: audit.units refuse values above these and below 0 ("must be zero or more").
_MANUAL_ENTRY_MAXIMUM: Final[Mapping[str, float]] = {
    "fluoro_time_s": units.MAX_FLUORO_TIME_S,
    "air_kerma_mgy": units.MAX_AIR_KERMA_MGY,
}
#: The largest value of an INTEGER column on PostgreSQL (int4), where counts are stored.
_INTEGER_COLUMN_MAX: Final = 2**31 - 1


@dataclass(frozen=True)
class Quantity:
    """One stored RDSR number: how messages name it and the dictionary field that bounds it."""

    label: str
    field: str

    @property
    def unit(self) -> str:
        return BY_NAME[self.field].bound_unit

    def bounds(self) -> tuple[float, float]:
        """(minimum, maximum) from the data dictionary, else from manual entry's parser."""
        spec = BY_NAME[self.field]
        low = 0.0 if spec.minimum is None else spec.minimum
        high = spec.maximum if spec.maximum is not None else _MANUAL_ENTRY_MAXIMUM[self.field]
        return low, high

    def allowed(self) -> str:
        """The range as messages state it: "allowed: 0 to 25000 Gy·cm², as for dap_gycm2"."""
        low, high = self.bounds()
        unit = f" {self.unit}" if self.unit else ""
        return f"allowed: {low:g} to {high:g}{unit}, as for {self.field}"


#: Every number a report stores in a column, a plane's JSON or an audit event, by attribute of
#: audit.dose_reports.report.DoseReport (and PlaneTotals). Acquisition totals share the bounds
#: of the fluoroscopy figure of the same kind; the frame count those of saved images.
QUANTITIES: Final[Mapping[str, Quantity]] = {
    "dap_total_gycm2": Quantity("DAP total", "dap_gycm2"),
    "fluoro_dap_gycm2": Quantity("fluoro DAP", "dap_gycm2"),
    "acquisition_dap_gycm2": Quantity("acquisition DAP", "dap_gycm2"),
    "fluoro_time_s": Quantity("fluoro time", "fluoro_time_s"),
    "acquisition_time_s": Quantity("acquisition time", "fluoro_time_s"),
    "air_kerma_total_mgy": Quantity("Ka,r total", "air_kerma_mgy"),
    "fluoro_air_kerma_mgy": Quantity("fluoro Ka,r", "air_kerma_mgy"),
    "acquisition_air_kerma_mgy": Quantity("acquisition Ka,r", "air_kerma_mgy"),
    "frames": Quantity("radiographic frames", "saved_images"),
    "max_pulse_rate_pps": Quantity("maximum fluoro pulse rate", "pulse_rate_pps"),
}


#: Bounds of the figures stored per irradiation event. Doses, times and the pulse rate take
#: their dictionary field's range (an event holds no more than its report may); the technique
#: figures a physical range no X-ray tube leaves (diagnostic tubes are rated to 150 kV; the
#: largest flat detectors cover about 2,000 cm²). A figure outside is left out of its event
#: with a warning, like a unit not understood: it never rejects the report.
EVENT_QUANTITIES: Final[Mapping[str, Quantity]] = {
    "dap_gycm2": Quantity("event DAP", "dap_gycm2"),
    "air_kerma_mgy": Quantity("event Ka,r", "air_kerma_mgy"),
    "exposure_time_s": Quantity("exposure time", "fluoro_time_s"),
    "duration_s": Quantity("irradiation duration", "fluoro_time_s"),
}
#: (minimum, maximum, unit) of the technique figures the dictionary has no field for. An
#: event's pulse rate may be 0 or below the form's 0.1 (vendors write 0 or 0.01 for a single
#: exposure); its maximum is the dictionary's.
EVENT_RANGES: Final[Mapping[str, tuple[float, float, str]]] = {
    "pulse_rate_pps": (0.0, float(BY_NAME["pulse_rate_pps"].maximum or 60), "pulses/s"),
    "kvp": (0.0, 200.0, "kV"),
    "tube_current_ma": (0.0, 5000.0, "mA"),
    "average_tube_current_ma": (0.0, 5000.0, "mA"),
    "field_area_cm2": (0.0, 10_000.0, "cm²"),
    "primary_angle_deg": (-360.0, 360.0, "deg"),
    "secondary_angle_deg": (-360.0, 360.0, "deg"),
}


def event_value_problem(name: str, value: float) -> str | None:
    """Why an event figure cannot be stored (its range, stated), or None."""
    quantity = EVENT_QUANTITIES.get(name)
    if quantity is not None:
        low, high = quantity.bounds()
        allowed = quantity.allowed()
        unit = f" {quantity.unit}" if quantity.unit else ""
    elif name in EVENT_RANGES:
        low, high, unit_text = EVENT_RANGES[name]
        allowed = f"allowed: {low:g} to {high:g} {unit_text}"
        unit = f" {unit_text}"
    else:
        return None
    if not math.isfinite(value) or not low <= value <= high:
        return f"value {_format(value)}{unit} is out of range; {allowed}"
    return None


def _format(number: float) -> str:
    return f"{number:g}" if isinstance(number, float) else str(number)


def value_problem(name: str, value: Any, where: str = "") -> str | None:
    """Why ``value`` of report attribute ``name`` cannot be stored, or None.

    Attributes with no entry in :data:`QUANTITIES` (counts of events, the pulsed share) are
    computed by the reader from the file's structure; they are only required to be finite
    numbers, and counts to fit the INTEGER column they are stored in, which they always do
    unless a bug says otherwise.
    """
    if value is None:
        return None
    quantity = QUANTITIES.get(name)
    label = f"{where}{quantity.label if quantity else name.replace('_', ' ')} ({name})"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"{label} is not a number: {value!r}"
    if quantity is None:
        if not math.isfinite(value):
            return f"{label} is not a finite number: {_format(value)}"
        if isinstance(value, int) and not 0 <= value <= _INTEGER_COLUMN_MAX:
            return f"{label} {value} is out of range; allowed: 0 to {_INTEGER_COLUMN_MAX}"
        return None
    low, high = quantity.bounds()
    if not math.isfinite(value):
        return f"{label} is not a finite number: {_format(value)}; {quantity.allowed()}"
    if not low <= value <= high:
        unit = f" {quantity.unit}" if quantity.unit else ""
        return f"{label} {_format(value)}{unit} is out of range; {quantity.allowed()}"
    return None


def report_problem(report: DoseReport) -> str | None:
    """Why a parsed report cannot be stored because of a number, or None when all are sound.

    Every numeric attribute is checked, then each plane's totals (an "All Planes" container is
    stored in the plane list even when the planes beside it are what is summed). A bad plane
    value usually makes its total bad too; the totals are named then, not both.
    """
    found = [problem for spec in fields(report)
             if isinstance(value := getattr(report, spec.name), int | float)
             and not isinstance(value, bool)
             and (problem := value_problem(spec.name, value))]
    if not found:
        found = [problem for plane in report.planes for problem in _plane_problems(plane)]
    if not found:
        return None
    return "implausible dose report: " + "; ".join(found)


def _plane_problems(plane: PlaneTotals) -> list[str]:
    where = f"plane {plane.plane}: "
    return [problem for spec in fields(plane) if spec.name != "plane"
            and (problem := value_problem(spec.name, getattr(plane, spec.name), where))]


def json_safe(value: Any) -> Any:
    """``value`` with every NaN or infinite float replaced by None, for a JSON column.

    Reports are checked with :func:`report_problem` before anything is stored, so this only
    matters if a non-finite number slips through another way (an old row, a future field):
    null is stored instead of a token JSON does not have.
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    return value


__all__ = ["EVENT_QUANTITIES", "EVENT_RANGES", "QUANTITIES", "Quantity", "event_value_problem",
           "json_safe", "report_problem", "value_problem"]
