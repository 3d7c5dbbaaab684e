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
    MAMMOGRAPHY_MARKERS,
    PLANE_LABELS,
    PULSE_RATE_SPEC,
    Concept,
    ValueSpec,
)
from audit.dose_reports.dicom_bytes import CONCEPT_NAME_CODE_SEQUENCE, scan_code_item
from audit.dose_reports.report import RejectedReport
from audit.units import Quantity, rdsr_unit_factor


@dataclass
class PlaneAccumulator:
    """Totals of one Accumulated X-Ray Dose container, keyed by PlaneTotals field name."""

    plane_code: str | None = None
    values: dict[str, float] = field(default_factory=dict)


@dataclass
class EventAccumulator:
    """The fields of one irradiation event the summary needs."""

    event_type: str | None = None
    fluoro_mode: str | None = None
    pulse_rate_pps: float | None = None


@dataclass
class Findings:
    """Everything the walk collects; the report is assembled from it afterwards."""

    planes: list[PlaneAccumulator] = field(default_factory=list)
    loose: PlaneAccumulator = field(default_factory=PlaneAccumulator)
    events: list[EventAccumulator] = field(default_factory=list)
    device: dict[str, str] = field(default_factory=dict)
    procedures: list[str] = field(default_factory=list)
    markers: set[str] = field(default_factory=set)


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
                _read_event_item(item, code, event)
            elif code in ACCUMULATED_TOTALS:
                _store_total(item, ACCUMULATED_TOTALS[code], plane or found.loose)
            elif plane is not None and code in (
                Concept.ACQUISITION_PLANE,
                Concept.SCOPE_OF_ACCUMULATION,
            ):
                _read_plane_code(item, plane)
            elif at_root:
                _read_root_item(item, code, found)
            if code in CT_MARKERS or code in MAMMOGRAPHY_MARKERS:
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


def _read_event_item(item: Dataset, code: str, event: EventAccumulator) -> None:
    """Keep the irradiation event fields the summary needs; the first occurrence wins."""
    if code == Concept.IRRADIATION_EVENT_TYPE and event.event_type is None:
        event.event_type = coded_value(item)
    elif code == Concept.FLUORO_MODE and event.fluoro_mode is None:
        event.fluoro_mode = coded_value(item)
    elif code == Concept.PULSE_RATE and event.pulse_rate_pps is None:
        event.pulse_rate_pps = _measured_value(item, PULSE_RATE_SPEC)


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
    factor = rdsr_unit_factor(spec.quantity, unit)
    if factor is None:
        raise RejectedReport(f"unknown unit {unit!r} for {spec.meaning} ({spec.code})")
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
