"""Read fluoroscopy dose totals from DICOM X-Ray Radiation Dose SR (RDSR) files.

Why this module exists: the Joint Commission asks for cumulative air kerma / KAP in a retrievable
form, and typing them from the C-arm screen is where 10x-1000x unit errors creep in. An RDSR
carries the same totals in machine-readable form, so the log imports them instead.

Rules (REFERENCE.md section 7), each chosen because real files break the naive approach:

* Accepted documents: SOP class X-Ray Radiation Dose SR or Enhanced SR whose document title (the
  root concept name) is 113701 (DCM). Anything else is a :class:`RejectedReport`.
* Content items are found by concept code value, and only when the item's coding scheme is DCM
  (or absent). Code meanings are never read: vendors misspell them ("Fluoro Dose(RP) Total") and
  private items may reuse meanings under their own scheme.
* Values are converted to canonical units (Gy·cm², mGy, s, count) through the unit tables below.
  An unknown or missing unit rejects the whole report: a silently wrong factor is a 100x dose
  error in the audit, which is worse than no import.
* Fluoroscopy rule: a report is a fluoroscopy report when it has at least one fluoroscopy
  irradiation event, or a total fluoro time > 0, or a fluoro DAP > 0, or a fluoro dose (RP) > 0.
  CT, mammography and radiography-only reports fail that test and are rejected with a reason
  naming what they are.
* Planes: each Accumulated X-Ray Dose Data container (113702) is one plane, named by its
  Acquisition Plane modifier 113764 (what PS3.16 TID 10002 and all three real files use;
  113705 is Scope of Accumulation and is read as a plane only if its value is a plane code).
  Totals anywhere below a container belong to it, whatever the vendor's nesting. Summed totals
  add the planes; an "All Planes" container is summed only when it is the only one.
* The content tree is walked once; each item is dispatched on its concept code.
* Truncated or corrupt files are rejected, never half-imported: pydicom silently accepts a file
  cut inside a defined-length element, so :func:`_check_not_truncated` compares declared and
  read lengths of the top-level elements.
"""

from __future__ import annotations

import io
import math
import os
import re
import struct
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, time, timedelta, timezone
from decimal import Decimal
from enum import StrEnum
from typing import Any, BinaryIO, Final

import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.uid import UID
from pydicom.valuerep import DA, TM

__all__ = [
    "ACCEPTED_SOP_CLASSES",
    "UNIT_FACTORS",
    "Concept",
    "DoseReport",
    "EventType",
    "FluoroMode",
    "Plane",
    "PlaneTotals",
    "Quantity",
    "RdsrError",
    "RejectedReport",
    "SopClass",
    "read_dose_report",
]

# --------------------------------------------------------------------------------------------
# Vocabulary from the DICOM standard (PS3.16): code values only, meanings are documentation.
# --------------------------------------------------------------------------------------------

DCM: Final = "DCM"


class SopClass(StrEnum):
    """SOP classes that may carry an X-Ray Radiation Dose Report (PS3.4)."""

    XRAY_RADIATION_DOSE_SR = "1.2.840.10008.5.1.4.1.1.88.67"
    ENHANCED_SR = "1.2.840.10008.5.1.4.1.1.88.22"


ACCEPTED_SOP_CLASSES: Final = frozenset(SopClass)


class Concept(StrEnum):
    """DCM concept names read by this module (TID 10001-10004, 10011, 10005 markers)."""

    XRAY_RADIATION_DOSE_REPORT = "113701"
    ACCUMULATED_XRAY_DOSE_DATA = "113702"
    SCOPE_OF_ACCUMULATION = "113705"
    IRRADIATION_EVENT_XRAY_DATA = "113706"
    IRRADIATION_EVENT_TYPE = "113721"
    DOSE_AREA_PRODUCT_TOTAL = "113722"
    DOSE_RP_TOTAL = "113725"
    FLUORO_DOSE_AREA_PRODUCT_TOTAL = "113726"
    ACQUISITION_DOSE_AREA_PRODUCT_TOTAL = "113727"
    FLUORO_DOSE_RP_TOTAL = "113728"
    ACQUISITION_DOSE_RP_TOTAL = "113729"
    TOTAL_FLUORO_TIME = "113730"
    TOTAL_NUMBER_OF_RADIOGRAPHIC_FRAMES = "113731"
    FLUORO_MODE = "113732"
    ACQUISITION_PLANE = "113764"
    PULSE_RATE = "113791"
    TOTAL_ACQUISITION_TIME = "113855"
    PROCEDURE_REPORTED = "121058"
    DEVICE_OBSERVER_MANUFACTURER = "121014"
    DEVICE_OBSERVER_MODEL_NAME = "121015"
    DEVICE_OBSERVER_SERIAL_NUMBER = "121016"
    # Markers of non-fluoroscopy reports.
    CT_ACCUMULATED_DOSE_DATA = "113811"
    CT_DOSE_LENGTH_PRODUCT_TOTAL = "113813"
    CT_ACQUISITION = "113819"
    ACCUMULATED_AVERAGE_GLANDULAR_DOSE = "111637"


class Plane(StrEnum):
    """Equipment plane identification (CID 10003), value of Acquisition Plane (113764)."""

    PLANE_A = "113620"
    PLANE_B = "113621"
    SINGLE_PLANE = "113622"
    ALL_PLANES = "113890"


PLANE_LABELS: Final[Mapping[str, str]] = {
    Plane.PLANE_A: "A",
    Plane.PLANE_B: "B",
    Plane.SINGLE_PLANE: "single",
    Plane.ALL_PLANES: "all",
}


class EventType(StrEnum):
    """Irradiation event type (CID 10002); fluoroscopy has an SRT and a newer SCT code."""

    STATIONARY_ACQUISITION = "113611"
    STEPPING_ACQUISITION = "113612"
    ROTATIONAL_ACQUISITION = "113613"
    FLUOROSCOPY_SRT = "P5-06000"
    FLUOROSCOPY_SCT = "44491008"


FLUOROSCOPY_EVENT_TYPES: Final = frozenset({EventType.FLUOROSCOPY_SRT, EventType.FLUOROSCOPY_SCT})
ACQUISITION_EVENT_TYPES: Final = frozenset(
    {
        EventType.STATIONARY_ACQUISITION,
        EventType.STEPPING_ACQUISITION,
        EventType.ROTATIONAL_ACQUISITION,
    }
)


class FluoroMode(StrEnum):
    """Fluoro mode (CID 10004)."""

    CONTINUOUS = "113630"
    PULSED = "113631"


class ProcedureType(StrEnum):
    """Values of Procedure reported (121058, CID 10005) that name a non-fluoroscopy report."""

    CT_SRT = "P5-08000"
    CT_SCT = "77477000"
    CONE_BEAM_CT_SCT = "717193008"
    MAMMOGRAPHY_SRT = "P5-40010"
    MAMMOGRAPHY_SCT = "71651007"


CT_MARKERS: Final = frozenset(
    {Concept.CT_ACCUMULATED_DOSE_DATA, Concept.CT_DOSE_LENGTH_PRODUCT_TOTAL, Concept.CT_ACQUISITION}
)
MAMMOGRAPHY_MARKERS: Final = frozenset({Concept.ACCUMULATED_AVERAGE_GLANDULAR_DOSE})
CT_PROCEDURES: Final = frozenset(
    {ProcedureType.CT_SRT, ProcedureType.CT_SCT, ProcedureType.CONE_BEAM_CT_SCT}
)
MAMMOGRAPHY_PROCEDURES: Final = frozenset(
    {ProcedureType.MAMMOGRAPHY_SRT, ProcedureType.MAMMOGRAPHY_SCT}
)

# --------------------------------------------------------------------------------------------
# Units: data, not code. Keys are normalised spellings (see _normalise_unit); values are the
# factor into the canonical unit of the quantity.
# --------------------------------------------------------------------------------------------


class Quantity(StrEnum):
    """Kinds of numeric content item read, each with one canonical unit."""

    DAP = "Gy·cm²"
    AIR_KERMA = "mGy"
    TIME = "s"
    COUNT = "count"
    PULSE_RATE = "pulse/s"


UNIT_FACTORS: Final[Mapping[Quantity, Mapping[str, float]]] = {
    # REFERENCE.md section 2: Gy·m² x10000; dGy·cm² x0.1; cGy·cm² x0.01; µGy·m² x0.01;
    # mGy·cm² x0.001. "Gym2" is how Siemens writes Gy·m².
    Quantity.DAP: {
        "Gy.m2": 1e4,
        "Gym2": 1e4,
        "mGy.m2": 10.0,
        "uGy.m2": 0.01,
        "Gy.cm2": 1.0,
        "Gycm2": 1.0,
        "dGy.cm2": 0.1,
        "cGy.cm2": 0.01,
        "mGy.cm2": 1e-3,
        "uGy.cm2": 1e-6,
    },
    Quantity.AIR_KERMA: {"Gy": 1e3, "dGy": 100.0, "cGy": 10.0, "mGy": 1.0, "uGy": 1e-3},
    Quantity.TIME: {"s": 1.0, "ms": 1e-3, "min": 60.0, "h": 3600.0},
    # A frame count is dimensionless: UCUM "1", an annotation, or no unit at all.
    Quantity.COUNT: {"1": 1.0, "{frames}": 1.0, "{frame}": 1.0, "{images}": 1.0, "{count}": 1.0},
    Quantity.PULSE_RATE: {
        "{pulse}/s": 1.0,
        "{pulses}/s": 1.0,
        "{frame}/s": 1.0,
        "{frames}/s": 1.0,
        "/s": 1.0,
        "1/s": 1.0,
        "Hz": 1.0,
    },
}

# Vendors write the same UCUM unit with typographic variants; fold them before lookup.
_UNIT_FOLDS: Final = str.maketrans({"·": ".", "⋅": ".", "*": ".", "²": "2", "µ": "u", "μ": "u"})


@dataclass(frozen=True)
class _ValueSpec:
    """What a numeric concept means to the audit: field name, quantity, standard meaning."""

    code: str
    meaning: str
    quantity: Quantity
    field: str


ACCUMULATED_TOTALS: Final[Mapping[str, _ValueSpec]] = {
    spec.code: spec
    for spec in (
        _ValueSpec(
            Concept.DOSE_AREA_PRODUCT_TOTAL,
            "Dose Area Product Total",
            Quantity.DAP,
            "dap_total_gycm2",
        ),
        _ValueSpec(
            Concept.FLUORO_DOSE_AREA_PRODUCT_TOTAL,
            "Fluoro Dose Area Product Total",
            Quantity.DAP,
            "fluoro_dap_gycm2",
        ),
        _ValueSpec(
            Concept.ACQUISITION_DOSE_AREA_PRODUCT_TOTAL,
            "Acquisition Dose Area Product Total",
            Quantity.DAP,
            "acquisition_dap_gycm2",
        ),
        _ValueSpec(Concept.TOTAL_FLUORO_TIME, "Total Fluoro Time", Quantity.TIME, "fluoro_time_s"),
        _ValueSpec(
            Concept.TOTAL_ACQUISITION_TIME,
            "Total Acquisition Time",
            Quantity.TIME,
            "acquisition_time_s",
        ),
        _ValueSpec(
            Concept.DOSE_RP_TOTAL, "Dose (RP) Total", Quantity.AIR_KERMA, "air_kerma_total_mgy"
        ),
        _ValueSpec(
            Concept.FLUORO_DOSE_RP_TOTAL,
            "Fluoro Dose (RP) Total",
            Quantity.AIR_KERMA,
            "fluoro_air_kerma_mgy",
        ),
        _ValueSpec(
            Concept.ACQUISITION_DOSE_RP_TOTAL,
            "Acquisition Dose (RP) Total",
            Quantity.AIR_KERMA,
            "acquisition_air_kerma_mgy",
        ),
        _ValueSpec(
            Concept.TOTAL_NUMBER_OF_RADIOGRAPHIC_FRAMES,
            "Total Number of Radiographic Frames",
            Quantity.COUNT,
            "frames",
        ),
    )
}
PULSE_RATE_SPEC: Final = _ValueSpec(
    Concept.PULSE_RATE, "Pulse Rate", Quantity.PULSE_RATE, "pulse_rate"
)

_FLOAT_TOTAL_FIELDS: Final = tuple(
    s.field for s in ACCUMULATED_TOTALS.values() if s.field != "frames"
)
_DEVICE_FIELDS: Final[Mapping[str, str]] = {
    Concept.DEVICE_OBSERVER_MANUFACTURER: "manufacturer",
    Concept.DEVICE_OBSERVER_MODEL_NAME: "model",
    Concept.DEVICE_OBSERVER_SERIAL_NUMBER: "serial",
}

# RDSRs are kilobytes to a few megabytes; a huge input is an image or an attack, not a report.
MAX_INPUT_BYTES: Final = 64 * 1024 * 1024
_UNDEFINED_LENGTH: Final = 0xFFFFFFFF
_CONCEPT_NAME_CODE_SEQUENCE: Final = 0x0040A043
_CODE_VALUE: Final = 0x00080100
_CODING_SCHEME_DESIGNATOR: Final = 0x00080102
_CODE_TAGS: Final = frozenset({_CODE_VALUE, _CODING_SCHEME_DESIGNATOR})
# Explicit VRs with a 2-byte reserved field and a 4-byte length (PS3.5 7.1.2).
_LONG_LENGTH_VRS: Final = frozenset(
    {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
)

# --------------------------------------------------------------------------------------------
# Public types
# --------------------------------------------------------------------------------------------


class RdsrError(Exception):
    """Base class of every error this module raises."""


class RejectedReport(RdsrError):
    """The input is not an importable fluoroscopy dose report; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class PlaneTotals:
    """Accumulated totals of one acquisition plane ("A", "B", "single"), canonical units.

    ``None`` means the file does not report the quantity, which is different from 0.
    """

    plane: str
    dap_total_gycm2: float | None = None
    fluoro_dap_gycm2: float | None = None
    acquisition_dap_gycm2: float | None = None
    fluoro_time_s: float | None = None
    acquisition_time_s: float | None = None
    air_kerma_total_mgy: float | None = None
    fluoro_air_kerma_mgy: float | None = None
    acquisition_air_kerma_mgy: float | None = None
    frames: int | None = None


@dataclass(frozen=True)
class DoseReport:
    """One RDSR instance reduced to what the fluoroscopy log and audit need.

    Totals are summed over planes in canonical units (Gy·cm², s, mGy, count); ``None`` where no
    plane reports the quantity. Event counts come from the irradiation event containers.
    """

    sop_instance_uid: str
    sop_class_uid: str
    study_instance_uid: str
    accession_number: str | None
    study_datetime: datetime | None
    patient_id: str | None
    manufacturer: str | None
    model: str | None
    serial: str | None
    planes: tuple[PlaneTotals, ...]
    dap_total_gycm2: float | None
    fluoro_dap_gycm2: float | None
    acquisition_dap_gycm2: float | None
    fluoro_time_s: float | None
    acquisition_time_s: float | None
    air_kerma_total_mgy: float | None
    fluoro_air_kerma_mgy: float | None
    acquisition_air_kerma_mgy: float | None
    frames: int | None
    events: int
    fluoro_events: int
    acquisition_events: int
    pulsed_fluoro_share: float | None
    max_pulse_rate_pps: float | None

    def to_json_dict(self) -> dict[str, Any]:
        """Return a ``json.dumps``-safe dict: canonical units, datetime as ISO 8601."""
        data = asdict(self)
        data["planes"] = [asdict(plane) for plane in self.planes]
        data["study_datetime"] = (
            self.study_datetime.isoformat() if self.study_datetime is not None else None
        )
        return data


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------


def read_dose_report(source: str | os.PathLike[str] | bytes | BinaryIO) -> DoseReport:
    """Parse one RDSR from a path, bytes or binary file object.

    Raises :class:`RejectedReport` and nothing else: callers import batches of files from
    PACS exports and must be able to log one bad file and carry on.
    """
    try:
        data = _read_source(source)
        dataset, forced = _parse_dicom(data)
        return _build_report(dataset, forced)
    except RejectedReport:
        raise
    except Exception as exc:  # the contract: RejectedReport or a DoseReport, never a crash
        raise RejectedReport(
            f"unreadable or corrupt dose report: {type(exc).__name__}: {exc}"
        ) from exc


# --------------------------------------------------------------------------------------------
# Reading bytes and DICOM
# --------------------------------------------------------------------------------------------


def _read_source(source: str | os.PathLike[str] | bytes | BinaryIO) -> bytes:
    """Return the input's bytes; read once so every later step works on memory."""
    if isinstance(source, bytes | bytearray | memoryview):
        data: object = bytes(source)
    elif isinstance(source, str | os.PathLike):
        try:
            with open(source, "rb") as handle:
                data = handle.read(MAX_INPUT_BYTES + 1)
        except OSError as exc:
            raise RejectedReport(f"unreadable file {os.fspath(source)!r}: {exc}") from exc
    elif hasattr(source, "read"):
        data = source.read(MAX_INPUT_BYTES + 1)
    else:
        raise RejectedReport(f"unreadable input: unsupported source type {type(source).__name__}")
    if not isinstance(data, bytes):
        raise RejectedReport("unreadable input: file object is not opened in binary mode")
    if len(data) > MAX_INPUT_BYTES:
        raise RejectedReport(
            f"unreadable input: larger than {MAX_INPUT_BYTES} bytes, not a dose report"
        )
    return data


def _parse_dicom(data: bytes) -> tuple[Dataset, bool]:
    """Read a DICOM dataset; retry with ``force`` only for files without the DICM preamble.

    Returns the dataset and whether ``force`` was needed (such a dataset must still prove it is
    an SR before anything is trusted).
    """
    if not data:
        raise RejectedReport("unreadable or truncated DICOM file: empty input (0 bytes)")
    forced = False
    try:
        try:
            dataset = pydicom.dcmread(io.BytesIO(data), force=False)
        except InvalidDicomError:
            forced = True
            dataset = pydicom.dcmread(io.BytesIO(data), force=True)
    except Exception as exc:
        raise RejectedReport(
            f"unreadable or truncated DICOM file: {type(exc).__name__}: {exc}"
        ) from exc
    try:
        _check_not_truncated(dataset)
    except RejectedReport as exc:
        if not forced:
            raise
        # Without the DICM preamble, random bytes (a text file) "declare" absurd lengths:
        # saying "not DICOM" is more useful than "truncated".
        raise RejectedReport(
            f"unreadable or non-DICOM input: no DICM preamble, and the bytes do not parse as "
            f"a DICOM data set ({exc.reason.removeprefix('unreadable or truncated DICOM file: ')})"
        ) from exc
    return dataset, forced


def _check_not_truncated(dataset: Dataset) -> None:
    """Reject a dataset whose top-level elements hold fewer bytes than they declare.

    pydicom reads a defined-length element at end of file without complaint and parses the
    short value as far as it goes, so a file cut in half would import half its events.
    Undefined-length sequences already raise at end of file, so checking the declared length
    of each (still raw) top-level element is enough.
    """
    for element in dataset.elements():
        if not isinstance(element, RawDataElement):
            continue
        value, length = element.value, element.length
        if length in (0, _UNDEFINED_LENGTH) or not isinstance(value, bytes):
            continue
        if len(value) < length:
            raise RejectedReport(
                f"unreadable or truncated DICOM file: element {element.tag} declares "
                f"{length} bytes but only {len(value)} remain"
            )


# --------------------------------------------------------------------------------------------
# Document checks
# --------------------------------------------------------------------------------------------


def _check_document(dataset: Dataset, forced: bool) -> None:
    """Reject anything that is not an X-Ray Radiation Dose Report document."""
    sop_class = _text(dataset.get("SOPClassUID"))
    file_meta = getattr(dataset, "file_meta", None)
    if sop_class is None and file_meta is not None:
        sop_class = _text(file_meta.get("MediaStorageSOPClassUID"))
    if forced and (sop_class is None or "ContentSequence" not in dataset):
        raise RejectedReport(
            "unreadable or non-DICOM input: no DICM preamble and no structured report found"
        )
    if sop_class not in ACCEPTED_SOP_CLASSES:
        name = UID(sop_class).name if sop_class else "missing"
        raise RejectedReport(
            f"not an X-Ray Radiation Dose SR: SOP class {sop_class or '(none)'} ({name})"
        )
    title = _code_triplet(dataset.get("ConceptNameCodeSequence"))
    if title is None or title[0] != Concept.XRAY_RADIATION_DOSE_REPORT or title[1] not in ("", DCM):
        shown = f"{title[0]} ({title[1]}) {title[2]!r}" if title else "missing"
        raise RejectedReport(
            f"not an X-Ray Radiation Dose Report: document title {shown}, "
            f"expected {Concept.XRAY_RADIATION_DOSE_REPORT} ({DCM})"
        )


def _code_triplet(sequence: Any) -> tuple[str, str, str] | None:
    """(code value, scheme, meaning) of the first item of a code sequence, for messages."""
    if not sequence:
        return None
    item = sequence[0]
    return (
        _text(item.get("CodeValue")) or "",
        _text(item.get("CodingSchemeDesignator")) or "",
        _text(item.get("CodeMeaning")) or "",
    )


# --------------------------------------------------------------------------------------------
# One-pass content tree walk
# --------------------------------------------------------------------------------------------


@dataclass
class _PlaneAccumulator:
    plane_code: str | None = None
    values: dict[str, float] = field(default_factory=dict)


@dataclass
class _EventAccumulator:
    event_type: str | None = None
    fluoro_mode: str | None = None
    pulse_rate_pps: float | None = None


@dataclass
class _Findings:
    """Everything the walk collects; the report is assembled from it afterwards."""

    planes: list[_PlaneAccumulator] = field(default_factory=list)
    loose: _PlaneAccumulator = field(default_factory=_PlaneAccumulator)
    events: list[_EventAccumulator] = field(default_factory=list)
    device: dict[str, str] = field(default_factory=dict)
    procedures: list[str] = field(default_factory=list)
    markers: set[str] = field(default_factory=set)


def _walk(
    items: Iterable[Dataset],
    found: _Findings,
    plane: _PlaneAccumulator | None,
    event: _EventAccumulator | None,
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
            accumulator = _PlaneAccumulator()
            found.planes.append(accumulator)
            _walk(children, found, accumulator, None, False)
        elif code == Concept.IRRADIATION_EVENT_XRAY_DATA:
            irradiation = _EventAccumulator()
            found.events.append(irradiation)
            _walk(children, found, None, irradiation, False)
        else:
            _walk(children, found, plane, event, False)


def _concept_code(item: Dataset) -> str | None:
    """Concept name code value of a content item, or None unless its scheme is DCM or absent.

    Reading it through pydicom builds a Dataset per item and doubles the cost of a walk, so
    the still-raw Concept Name Code Sequence is scanned directly; anything unusual falls back
    to pydicom.
    """
    element = item.get_item(_CONCEPT_NAME_CODE_SEQUENCE)
    if element is None:
        return None
    parsed = None
    if isinstance(element, RawDataElement) and isinstance(element.value, bytes):
        parsed = _scan_code_item(element.value, element.is_implicit_VR, element.is_little_endian)
    if parsed is None:
        names = item.get("ConceptNameCodeSequence")
        if not names:
            return None
        parsed = _text(names[0].get("CodeValue")), _text(names[0].get("CodingSchemeDesignator"))
    code, scheme = parsed
    if scheme and scheme != DCM:
        return None
    return code


def _scan_code_item(
    raw: bytes, implicit_vr: bool, little_endian: bool
) -> tuple[str | None, str | None] | None:
    """(CodeValue, CodingSchemeDesignator) from the raw value of a code sequence.

    Only the first item is read. Returns None (use pydicom) for anything but a plain item of
    defined-length elements, including an explicit-VR file that switches to implicit VR.
    """
    order = "<" if little_endian else ">"
    if len(raw) < 8:
        return None
    group, element, length = struct.unpack_from(order + "HHL", raw, 0)
    if (group, element) != (0xFFFE, 0xE000):
        return None
    stop = len(raw) if length == _UNDEFINED_LENGTH else min(len(raw), 8 + length)
    found: dict[int, str] = {}
    position = 8
    while position + 8 <= stop:
        group, element = struct.unpack_from(order + "HH", raw, position)
        if group == 0xFFFE:  # item delimiter: end of the first item
            break
        if implicit_vr:
            (value_length,) = struct.unpack_from(order + "L", raw, position + 4)
            position += 8
        else:
            vr = raw[position + 4 : position + 6]
            if not vr.isalpha() or not vr.isupper():
                return None
            if vr in _LONG_LENGTH_VRS:
                if position + 12 > stop:
                    return None
                (value_length,) = struct.unpack_from(order + "L", raw, position + 8)
                position += 12
            else:
                (value_length,) = struct.unpack_from(order + "H", raw, position + 6)
                position += 8
        if value_length == _UNDEFINED_LENGTH or position + value_length > stop:
            return None
        tag = group << 16 | element
        if tag in _CODE_TAGS:
            text = raw[position : position + value_length].decode("latin-1")
            found[tag] = text.strip(" \x00")
        position += value_length
    return found.get(_CODE_VALUE) or None, found.get(_CODING_SCHEME_DESIGNATOR) or None


def _coded_value(item: Dataset) -> str | None:
    """Code value of a CODE content item (ConceptCodeSequence)."""
    codes = item.get("ConceptCodeSequence")
    return _text(codes[0].get("CodeValue")) if codes else None


def _read_event_item(item: Dataset, code: str, event: _EventAccumulator) -> None:
    """Keep the irradiation event fields the summary needs; the first occurrence wins."""
    if code == Concept.IRRADIATION_EVENT_TYPE and event.event_type is None:
        event.event_type = _coded_value(item)
    elif code == Concept.FLUORO_MODE and event.fluoro_mode is None:
        event.fluoro_mode = _coded_value(item)
    elif code == Concept.PULSE_RATE and event.pulse_rate_pps is None:
        event.pulse_rate_pps = _measured_value(item, PULSE_RATE_SPEC)


def _store_total(item: Dataset, spec: _ValueSpec, plane: _PlaneAccumulator) -> None:
    """Store an accumulated total; a repeated concept in one container keeps the first."""
    if spec.field in plane.values:
        return
    value = _measured_value(item, spec)
    if value is not None:
        plane.values[spec.field] = value


def _read_plane_code(item: Dataset, plane: _PlaneAccumulator) -> None:
    """Record the container's plane (113764; 113705 tolerated when it holds a plane code)."""
    value = _coded_value(item)
    if value in PLANE_LABELS and plane.plane_code is None:
        plane.plane_code = value


def _read_root_item(item: Dataset, code: str, found: _Findings) -> None:
    """Root-level context: device observer identity and the procedure reported."""
    if code in _DEVICE_FIELDS:
        text = _text(item.get("TextValue"))
        if text is not None:
            found.device.setdefault(_DEVICE_FIELDS[code], text)
    elif code == Concept.PROCEDURE_REPORTED:
        value = _coded_value(item)
        if value is not None:
            found.procedures.append(value)


# --------------------------------------------------------------------------------------------
# Numeric values and units
# --------------------------------------------------------------------------------------------


def _measured_value(item: Dataset, spec: _ValueSpec) -> float | None:
    """Value of a NUM item in the canonical unit of ``spec``; None when no value is given."""
    measured = item.get("MeasuredValueSequence")
    if not measured:
        return None
    number = _number(measured[0], spec)
    if number is None:
        return None
    value = _scale(number, _unit_factor(measured[0], spec))
    if not math.isfinite(value) or value < 0:
        raise RejectedReport(
            f"invalid value {number!r} for {spec.meaning} ({spec.code}): "
            "must be a finite number >= 0"
        )
    return value


def _number(measured: Dataset, spec: _ValueSpec) -> float | None:
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


def _decimal_sum(values: list[float]) -> float:
    """Sum in decimal for the same reason as :func:`_scale`."""
    return float(sum((Decimal(repr(v)) for v in values), Decimal(0)))


def _normalise_unit(unit: str) -> str:
    """Fold typographic variants (·, ², µ/μ, spaces) so one table entry covers them."""
    return "".join(unit.translate(_UNIT_FOLDS).split())


def _unit_factor(measured: Dataset, spec: _ValueSpec) -> float:
    """Factor from the item's unit into the canonical unit; unknown units reject the report."""
    units = measured.get("MeasurementUnitsCodeSequence")
    unit = _text(units[0].get("CodeValue")) if units else None
    if unit is None:
        if spec.quantity is Quantity.COUNT:
            return 1.0
        raise RejectedReport(f"missing unit for {spec.meaning} ({spec.code})")
    factor = UNIT_FACTORS[spec.quantity].get(_normalise_unit(unit))
    if factor is None:
        raise RejectedReport(f"unknown unit {unit!r} for {spec.meaning} ({spec.code})")
    return factor


# --------------------------------------------------------------------------------------------
# Assembling the report
# --------------------------------------------------------------------------------------------


def _build_report(dataset: Dataset, forced: bool) -> DoseReport:
    """Check the document, walk its content once, then summarise and apply the fluoro rule."""
    _check_document(dataset, forced)
    sop_instance_uid = _required_text(dataset, "SOPInstanceUID")
    study_instance_uid = _required_text(dataset, "StudyInstanceUID")
    content = dataset.get("ContentSequence")
    if not content:
        raise RejectedReport("empty dose report: the document has no content items")

    found = _Findings()
    _walk(content, found, None, None, True)

    planes = _plane_totals(found)
    totals = _sum_planes(planes)
    summary = _event_summary(found.events)
    if not _is_fluoroscopy(totals, summary["fluoro_events"]):
        raise RejectedReport(_not_fluoroscopy_reason(dataset, found))

    return DoseReport(
        sop_instance_uid=sop_instance_uid,
        sop_class_uid=str(_text(dataset.get("SOPClassUID"))),
        study_instance_uid=study_instance_uid,
        accession_number=_text(dataset.get("AccessionNumber")),
        study_datetime=_study_datetime(dataset),
        patient_id=_text(dataset.get("PatientID")),
        manufacturer=found.device.get("manufacturer") or _text(dataset.get("Manufacturer")),
        model=found.device.get("model") or _text(dataset.get("ManufacturerModelName")),
        serial=found.device.get("serial") or _text(dataset.get("DeviceSerialNumber")),
        planes=tuple(planes),
        **totals,
        **summary,
    )


def _required_text(dataset: Dataset, keyword: str) -> str:
    text = _text(dataset.get(keyword))
    if text is None:
        raise RejectedReport(f"invalid dose report: {keyword} is missing or empty")
    return text


def _plane_labels(accumulators: list[_PlaneAccumulator]) -> list[str]:
    """Plane names; a lone container without a plane code is a single-plane system."""
    labels = [PLANE_LABELS.get(acc.plane_code or "") for acc in accumulators]
    if len(labels) == 1 and labels[0] is None:
        return ["single"]
    return [label or "unspecified" for label in labels]


def _plane_totals(found: _Findings) -> list[PlaneTotals]:
    """PlaneTotals per accumulated container; loose totals count only when there is none."""
    accumulators = found.planes or ([found.loose] if found.loose.values else [])
    planes = []
    for label, acc in zip(_plane_labels(accumulators), accumulators, strict=True):
        values = dict(acc.values)
        frames = values.pop("frames", None)
        planes.append(
            PlaneTotals(plane=label, frames=None if frames is None else round(frames), **values)
        )
    return planes


def _sum_planes(planes: list[PlaneTotals]) -> dict[str, Any]:
    """Sum per-plane totals; an "All Planes" container is used only when it is alone.

    Summing it together with plane A and B containers would count the same dose twice.
    """
    per_plane = [p for p in planes if p.plane != "all"] or planes
    totals: dict[str, Any] = {}
    for name in (*_FLOAT_TOTAL_FIELDS, "frames"):
        values = [getattr(p, name) for p in per_plane if getattr(p, name) is not None]
        if not values:
            totals[name] = None
        else:
            totals[name] = sum(values) if name == "frames" else _decimal_sum(values)
    return totals


def _event_summary(events: list[_EventAccumulator]) -> dict[str, Any]:
    """Counts by event type, pulsed share and maximum pulse rate of fluoroscopy events.

    Pulse rate is summarised over fluoroscopy events only: lowering the fluoro pulse rate is
    the dose-saving setting the audit asks about; acquisition frame rates are a protocol choice.
    """
    fluoro = [e for e in events if e.event_type in FLUOROSCOPY_EVENT_TYPES]
    pulsed = sum(1 for e in fluoro if e.fluoro_mode == FluoroMode.PULSED)
    rates = [e.pulse_rate_pps for e in fluoro if e.pulse_rate_pps is not None]
    return {
        "events": len(events),
        "fluoro_events": len(fluoro),
        "acquisition_events": sum(1 for e in events if e.event_type in ACQUISITION_EVENT_TYPES),
        "pulsed_fluoro_share": pulsed / len(fluoro) if fluoro else None,
        "max_pulse_rate_pps": max(rates) if rates else None,
    }


def _is_fluoroscopy(totals: Mapping[str, Any], fluoro_events: int) -> bool:
    """The documented fluoroscopy rule (module docstring)."""
    if fluoro_events > 0:
        return True
    fluoro_fields = ("fluoro_time_s", "fluoro_dap_gycm2", "fluoro_air_kerma_mgy")
    return any((totals[name] or 0) > 0 for name in fluoro_fields)


def _not_fluoroscopy_reason(dataset: Dataset, found: _Findings) -> str:
    """Name what the report is instead, so the user knows the rejection is not a parse bug."""
    modality = _text(dataset.get("Modality")) or ""
    sop_class = _text(dataset.get("SOPClassUID"))
    ct_markers = sorted(found.markers & CT_MARKERS)
    evidence = "no fluoroscopy events, no fluoro time and no fluoro DAP or dose"
    if ct_markers or CT_PROCEDURES.intersection(found.procedures) or modality == "CT":
        shown = ", ".join(ct_markers) or "procedure reported CT"
        return (
            f"not a fluoroscopy dose report: CT Radiation Dose report ({shown} present; "
            f"SOP class {sop_class}); {evidence}"
        )
    mammo = sorted(found.markers & MAMMOGRAPHY_MARKERS)
    if mammo or MAMMOGRAPHY_PROCEDURES.intersection(found.procedures) or modality == "MG":
        shown = ", ".join([*mammo, *(["Modality MG"] if modality == "MG" else [])])
        return (
            f"not a fluoroscopy dose report: mammography dose report "
            f"({shown or 'procedure reported Mammography'}); {evidence}"
        )
    if not found.planes and not found.loose.values and not found.events:
        return f"not a fluoroscopy dose report: no accumulated dose data and no events; {evidence}"
    return (
        f"not a fluoroscopy dose report: projection radiography only "
        f"({len(found.events)} irradiation events); {evidence}"
    )


# --------------------------------------------------------------------------------------------
# Small value helpers
# --------------------------------------------------------------------------------------------


def _text(value: Any) -> str | None:
    """Stripped text of a DICOM value (first value if multi-valued); None when empty."""
    if isinstance(value, MultiValue | list | tuple):
        value = value[0] if value else None
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    text = str(value).strip(" \x00\t\r\n")
    return text or None


_TZ_OFFSET: Final = re.compile(r"([+-])(\d{2})(\d{2})")


def _timezone(dataset: Dataset) -> timezone | None:
    """Timezone from TimezoneOffsetFromUTC ("+0100"); None when absent or malformed."""
    text = _text(dataset.get("TimezoneOffsetFromUTC"))
    match = _TZ_OFFSET.fullmatch(text or "")
    if match is None:
        return None
    sign, hours, minutes = match.groups()
    offset = timedelta(hours=int(hours), minutes=int(minutes))
    if offset > timedelta(hours=14) or int(minutes) >= 60:
        return None
    return timezone(-offset if sign == "-" else offset)


def _study_datetime(dataset: Dataset) -> datetime | None:
    """StudyDate + StudyTime, aware when the file states its UTC offset.

    A missing time gives midnight of the study date (the date is what audits group by); a
    missing or malformed date gives None rather than a rejection: dose data is still valid.
    """
    date_text = _text(dataset.get("StudyDate"))
    if date_text is None:
        return None
    try:
        day = DA(date_text)
        time_text = _text(dataset.get("StudyTime"))
        clock = TM(time_text) if time_text else None
    except (TypeError, ValueError):
        return None
    if day is None:
        return None
    moment = clock if clock is not None else time()
    return datetime(
        day.year,
        day.month,
        day.day,
        moment.hour,
        moment.minute,
        moment.second,
        moment.microsecond,
        tzinfo=_timezone(dataset),
    )
