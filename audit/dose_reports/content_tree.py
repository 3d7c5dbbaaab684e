"""One walk over the content tree of a dose SR, collecting totals, events and context.

Why one walk with context passed down: vendors nest TID 10004 totals, plane containers and
private containers differently, so a total belongs to whatever Accumulated X-Ray Dose container
encloses it, however deep; and walking the tree once keeps large reports (thousands of events)
fast. Numeric values are converted here to canonical units through audit.units, so nothing
downstream ever sees a vendor's unit.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from audit.dose_reports.bounds import QUANTITIES
from audit.dose_reports.codes import (
    ACCUMULATED_TOTALS,
    CT_MARKERS,
    DCM,
    DEVICE_FIELDS,
    EVENT_VALUES,
    MAMMOGRAPHY_MARKERS,
    PLANE_LABELS,
    RADIOGRAPHY_MARKERS,
    Concept,
    ValueSpec,
)
from audit.dose_reports.dicom_bytes import CONCEPT_NAME_CODE_SEQUENCE, scan_code_item
from audit.dose_reports.report import RejectedReport
from audit.units import Quantity, rdsr_lenient_unit_factor, rdsr_unit_factor


@dataclass
class PlaneAccumulator:
    """Totals of one Accumulated X-Ray Dose container, keyed by PlaneTotals field name."""

    plane_code: str | None = None
    values: dict[str, float] = field(default_factory=dict)


@dataclass
class EventAccumulator:
    """One irradiation event as read: codes, texts, and numbers in canonical units
    (``values``, keyed by the event field of codes.EVENT_VALUES)."""

    event_type: str | None = None
    fluoro_mode: str | None = None
    pulse_rate_pps: float | None = None
    plane_code: str | None = None
    uid: str | None = None
    started: str | None = None
    values: dict[str, float] = field(default_factory=dict)
    #: Fields already warned about in this event: a warning counts events, not items.
    warned: set[str] = field(default_factory=set)


@dataclass
class Findings:
    """Everything the walk collects; the report is assembled from it afterwards.

    ``warnings`` counts what was left out of events and why, keyed by (meaning, code,
    problem), so a report of 500 events with one odd unit says it once, with the count.
    """

    planes: list[PlaneAccumulator] = field(default_factory=list)
    loose: PlaneAccumulator = field(default_factory=PlaneAccumulator)
    events: list[EventAccumulator] = field(default_factory=list)
    device: dict[str, str] = field(default_factory=dict)
    procedures: list[str] = field(default_factory=list)
    device_types: list[str] = field(default_factory=list)
    markers: set[str] = field(default_factory=set)
    warnings: dict[tuple[str, str, str], int] = field(default_factory=dict)

    def warn(self, meaning: str, code: str, problem: str) -> None:
        key = (meaning, code, problem)
        self.warnings[key] = self.warnings.get(key, 0) + 1

    def warning_texts(self) -> tuple[str, ...]:
        """ "Pulse Rate (113791) left out of 24 irradiation events: unit 'p/m' is not ..."."""
        return tuple(
            f"{meaning} ({code}) left out of {count} irradiation event"
            f"{'' if count == 1 else 's'}: {problem}"
            for (meaning, code, problem), count in self.warnings.items())


def walk(
    items: Iterable[Dataset],
    found: Findings,
    plane: PlaneAccumulator | None,
    event: EventAccumulator | None,
    at_root: bool,
) -> None:
    """Visit each content item once, dispatching on its DCM concept code.

    ``plane`` is the enclosing Accumulated X-Ray Dose container and ``event`` the enclosing
    irradiation event; their children inherit that context however deep they are nested
    (vendors nest TID 10004 totals and private containers differently).
    """
    for item in items:
        code = _concept_code(item)
        if code is not None:
            if event is not None:
                _read_event_item(item, code, event, found)
            elif code in ACCUMULATED_TOTALS:
                _store_total(item, ACCUMULATED_TOTALS[code], plane or found.loose)
            elif plane is not None and code in (
                Concept.ACQUISITION_PLANE,
                Concept.SCOPE_OF_ACCUMULATION,
            ):
                _read_plane_code(item, plane)
            elif at_root:
                _read_root_item(item, code, found)
            if code in CT_MARKERS or code in MAMMOGRAPHY_MARKERS or code in RADIOGRAPHY_MARKERS:
                found.markers.add(code)
        children = item.get("ContentSequence")
        if not children:
            continue
        if code == Concept.ACCUMULATED_XRAY_DOSE_DATA:
            accumulator = PlaneAccumulator()
            found.planes.append(accumulator)
            walk(children, found, accumulator, None, False)
        elif code == Concept.IRRADIATION_EVENT_XRAY_DATA:
            irradiation = EventAccumulator()
            found.events.append(irradiation)
            walk(children, found, None, irradiation, False)
        else:
            walk(children, found, plane, event, False)


def _concept_code(item: Dataset) -> str | None:
    """Concept name code value of a content item, or None unless its scheme is DCM or absent.

    Reading it through pydicom builds a Dataset per item and doubles the cost of a walk, so
    the still-raw Concept Name Code Sequence is scanned directly; anything unusual falls back
    to pydicom.
    """
    element = item.get_item(CONCEPT_NAME_CODE_SEQUENCE)
    if element is None:
        return None
    parsed = None
    if isinstance(element, RawDataElement) and isinstance(element.value, bytes):
        parsed = scan_code_item(element.value, element.is_implicit_VR, element.is_little_endian)
    if parsed is None:
        names = item.get("ConceptNameCodeSequence")
        if not names:
            return None
        first = names[0]
        parsed = dicom_text(first.get("CodeValue")), dicom_text(first.get("CodingSchemeDesignator"))
    code, scheme = parsed
    if scheme and scheme != DCM:
        return None
    return code



def coded_value(item: Dataset) -> str | None:
    """Code value of a CODE content item (ConceptCodeSequence)."""
    codes = item.get("ConceptCodeSequence")
    return dicom_text(codes[0].get("CodeValue")) if codes else None


def _read_event_item(item: Dataset, code: str, event: EventAccumulator,
                     found: Findings) -> None:
    """Keep the irradiation event's fields; the first occurrence of each wins."""
    spec = EVENT_VALUES.get(code)
    if spec is not None:
        if spec.field not in event.values and spec.field not in event.warned:
            before = len(found.warnings), sum(found.warnings.values())
            value = _event_value(item, spec, found)
            if (len(found.warnings), sum(found.warnings.values())) != before:
                event.warned.add(spec.field)
            if value is not None:
                event.values[spec.field] = value
                if code == Concept.PULSE_RATE:
                    event.pulse_rate_pps = value
    elif code == Concept.IRRADIATION_EVENT_TYPE and event.event_type is None:
        event.event_type = coded_value(item)
    elif code == Concept.FLUORO_MODE and event.fluoro_mode is None:
        event.fluoro_mode = coded_value(item)
    elif code == Concept.ACQUISITION_PLANE and event.plane_code is None:
        event.plane_code = coded_value(item)
    elif code == Concept.IRRADIATION_EVENT_UID and event.uid is None:
        event.uid = dicom_text(item.get("UID"))
    elif code == Concept.DATETIME_STARTED and event.started is None:
        event.started = dicom_text(item.get("DateTime"))


def _event_value(item: Dataset, spec: ValueSpec, found: Findings) -> float | None:
    """An event figure in its canonical unit, or None with a warning kept on the report.

    A unit still unknown after the lenient table (or missing), or a number that cannot be
    read, drops the figure and never rejects the report. The pulse rate's number alone stays
    strict, as before: it becomes the report's maximum pulse rate, a stored figure held to the
    data dictionary's bounds (a non-finite or negative rate rejects the report).
    """
    measured = item.get("MeasuredValueSequence")
    if not measured:
        return None
    strict_number = spec.code == Concept.PULSE_RATE
    try:
        number = _number(measured[0], spec)
    except RejectedReport:
        if strict_number:
            raise
        found.warn(spec.meaning, spec.code, "its value is not a number")
        return None
    if number is None:
        return None
    units = measured[0].get("MeasurementUnitsCodeSequence")
    unit = dicom_text(units[0].get("CodeValue")) if units else None
    if unit is None:
        found.warn(spec.meaning, spec.code, f"no unit given (expected {spec.quantity.value})")
        return None
    factor = rdsr_lenient_unit_factor(spec.quantity, unit)
    if factor is None:
        found.warn(spec.meaning, spec.code,
                   f"unit {unit[:40]!r} is not a known {spec.quantity.value} unit")
        return None
    if strict_number:
        return _measured_value(item, spec)
    value = _scale(number, factor)
    if not math.isfinite(value) or (value < 0 and spec.quantity is not Quantity.ANGLE):
        found.warn(spec.meaning, spec.code, f"value {number!r} is not a finite number"
                   + ("" if spec.quantity is Quantity.ANGLE else " >= 0"))
        return None
    return value


def _store_total(item: Dataset, spec: ValueSpec, plane: PlaneAccumulator) -> None:
    """Store an accumulated total; a repeated concept in one container keeps the first."""
    if spec.field in plane.values:
        return
    value = _measured_value(item, spec)
    if value is not None:
        plane.values[spec.field] = value


def _read_plane_code(item: Dataset, plane: PlaneAccumulator) -> None:
    """Record the container's plane (113764; 113705 tolerated when it holds a plane code)."""
    value = coded_value(item)
    if value in PLANE_LABELS and plane.plane_code is None:
        plane.plane_code = value


def _read_root_item(item: Dataset, code: str, found: Findings) -> None:
    """Root-level context: device observer identity and the procedure reported."""
    if code in DEVICE_FIELDS:
        text = dicom_text(item.get("TextValue"))
        if text is not None:
            found.device.setdefault(DEVICE_FIELDS[code], text)
    elif code == Concept.PROCEDURE_REPORTED:
        value = coded_value(item)
        if value is not None:
            found.procedures.append(value)
    elif code == Concept.ACQUISITION_DEVICE_TYPE:
        value = coded_value(item)
        if value is not None:
            found.device_types.append(value)


# --------------------------------------------------------------------------------------------
# Numeric values and units
# --------------------------------------------------------------------------------------------


def _measured_value(item: Dataset, spec: ValueSpec) -> float | None:
    """Value of a NUM item in the canonical unit of ``spec``; None when no value is given."""
    measured = item.get("MeasuredValueSequence")
    if not measured:
        return None
    number = _number(measured[0], spec)
    if number is None:
        return None
    value = _scale(number, _unit_factor(measured[0], spec))
    if not math.isfinite(value) or value < 0:
        quantity = QUANTITIES.get(spec.field)
        allowed = f"; {quantity.allowed()}" if quantity else ""
        raise RejectedReport(
            f"invalid value {number!r} for {spec.meaning} ({spec.code}): "
            f"must be a finite number >= 0 ({value:g} {spec.quantity.value}){allowed}"
        )
    return value


def _number(measured: Dataset, spec: ValueSpec) -> float | None:
    """Numeric Value (DS), preferring the exact Floating Point Value (FD) when present."""
    try:
        raw = measured.get("FloatingPointValue")
        if raw is None or raw == "" or raw == []:
            raw = measured.get("NumericValue")
        if isinstance(raw, list | tuple | MultiValue):
            raw = raw[0] if len(raw) else None
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            return None
        return float(raw)
    except (TypeError, ValueError, OverflowError) as exc:
        raise RejectedReport(
            f"invalid numeric value for {spec.meaning} ({spec.code}): {exc}"
        ) from exc


def _scale(number: float, factor: float) -> float:
    """number x factor in decimal, so 0.01406 Gy reads back as 14.06 mGy, not 14.059999..."""
    if not math.isfinite(number):
        return number
    return float(Decimal(repr(number)) * Decimal(repr(factor)))


def _unit_factor(measured: Dataset, spec: ValueSpec) -> float:
    """Factor from the item's unit into the canonical unit; unknown units reject the report."""
    units = measured.get("MeasurementUnitsCodeSequence")
    unit = dicom_text(units[0].get("CodeValue")) if units else None
    if unit is None:
        if spec.quantity is Quantity.COUNT:
            return 1.0
        raise RejectedReport(f"missing unit for {spec.meaning} ({spec.code})")
    factor = (rdsr_lenient_unit_factor if spec.code in EVENT_VALUES else rdsr_unit_factor)(
        spec.quantity, unit)
    if factor is None:
        raise RejectedReport(
            f"unknown unit {unit!r} for {spec.meaning} ({spec.code}): a dose total's unit "
            f"must be a known {spec.quantity.value} unit; nothing of the report was imported")
    return factor


def dicom_text(value: Any) -> str | None:
    """Stripped text of a DICOM value (first value if multi-valued); None when empty."""
    if isinstance(value, MultiValue | list | tuple):
        value = value[0] if value else None
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    text = str(value).strip(" \x00\t\r\n")
    return text or None
