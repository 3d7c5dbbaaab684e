"""Build small but valid X-Ray Radiation Dose SR files with pydicom, for parser tests.

Why: three real files cannot show every vendor quirk (unit spellings, misspelled meanings,
biplane totals, CT and mammography reports), so tests describe a report as data and write it
to disk with ``dcmwrite``; the parser then reads a real file, exactly as in production.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydicom import dcmwrite
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.tag import BaseTag
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

XRAY_DOSE_SR = "1.2.840.10008.5.1.4.1.1.88.67"
ENHANCED_SR = "1.2.840.10008.5.1.4.1.1.88.22"
COMPREHENSIVE_SR = "1.2.840.10008.5.1.4.1.1.88.33"

#: Standard code meanings, used unless a test overrides them (meanings are never parsed).
MEANINGS: dict[str, str] = {
    "113722": "Dose Area Product Total",
    "113725": "Dose (RP) Total",
    "113726": "Fluoro Dose Area Product Total",
    "113727": "Acquisition Dose Area Product Total",
    "113728": "Fluoro Dose (RP) Total",
    "113729": "Acquisition Dose (RP) Total",
    "113730": "Total Fluoro Time",
    "113731": "Total Number of Radiographic Frames",
    "113855": "Total Acquisition Time",
}

PLANE_A, PLANE_B, SINGLE_PLANE = "113620", "113621", "113622"
FLUOROSCOPY, STATIONARY, ROTATIONAL = "P5-06000", "113611", "113613"
PULSED, CONTINUOUS = "113631", "113630"


def code(value: str, scheme: str = "DCM", meaning: str = "") -> Dataset:
    """One code sequence item."""
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning or value
    return item


def _item(relationship: str, value_type: str, concept: tuple[str, str, str] | Dataset) -> Dataset:
    item = Dataset()
    item.RelationshipType = relationship
    item.ValueType = value_type
    name = concept if isinstance(concept, Dataset) else code(*concept)
    item.ConceptNameCodeSequence = DicomSequence([name])
    return item


def container(concept: str, children: Iterable[Dataset], relationship: str = "CONTAINS") -> Dataset:
    item = _item(relationship, "CONTAINER", (concept, "DCM", concept))
    item.ContinuityOfContent = "SEPARATE"
    item.ContentSequence = DicomSequence(list(children))
    return item


def num(
    concept: str,
    value: float | str,
    unit: str | None,
    meaning: str | None = None,
    scheme: str = "DCM",
) -> Dataset:
    """NUM item; ``unit=None`` writes no Measurement Units Code Sequence."""
    item = _item("CONTAINS", "NUM", (concept, scheme, meaning or MEANINGS.get(concept, concept)))
    measured = Dataset()
    text = value if isinstance(value, str) else repr(float(value))
    try:
        float(text)
    except ValueError:
        # pydicom refuses to hold an invalid DS, so store the encoded bytes as they would be
        # read from a broken vendor file.
        raw = text.encode("ascii")
        raw += b" " * (len(raw) % 2)
        measured[0x0040A30A] = RawDataElement(
            BaseTag(0x0040A30A), "DS", len(raw), raw, 0, False, True
        )
    else:
        measured.NumericValue = text
    if unit is not None:
        measured.MeasurementUnitsCodeSequence = DicomSequence([code(unit, "UCUM", unit)])
    item.MeasuredValueSequence = DicomSequence([measured])
    return item


def coded(
    concept: str, value: str, value_scheme: str = "DCM", relationship: str = "CONTAINS"
) -> Dataset:
    item = _item(relationship, "CODE", (concept, "DCM", concept))
    item.ConceptCodeSequence = DicomSequence([code(value, value_scheme)])
    return item


def text(concept: str, value: str, relationship: str = "HAS OBS CONTEXT") -> Dataset:
    item = _item(relationship, "TEXT", (concept, "DCM", concept))
    item.TextValue = value
    return item


@dataclass
class PlaneSpec:
    """Accumulated X-Ray Dose container: ``totals`` maps concept code to (value, unit)."""

    plane: str | None = SINGLE_PLANE
    totals: dict[str, tuple[float | str, str | None]] = field(default_factory=dict)
    meanings: dict[str, str] = field(default_factory=dict)
    nest_totals: bool = False  # put the totals one container deeper (TID 10004 nesting)


@dataclass
class EventSpec:
    """Irradiation Event X-Ray Data container."""

    event_type: str = FLUOROSCOPY
    event_type_scheme: str = "SRT"
    mode: str | None = PULSED
    pulse_rate: float | None = 7.5
    plane: str = SINGLE_PLANE
    pulse_rate_unit: str | None = "{pulse}/s"
    #: Further content items of the event (num(...) for kVp, tube current, field area...).
    extras: tuple[Dataset, ...] = ()


def fluoro_totals(
    dap: float = 1.5,
    dap_unit: str = "Gy.cm2",
    fluoro_time: float = 60.0,
    dose: float = 12.0,
    dose_unit: str = "mGy",
) -> dict[str, tuple[float | str, str | None]]:
    """A complete set of single-plane totals, acquisition values zero except frames."""
    return {
        "113722": (dap, dap_unit),
        "113726": (dap, dap_unit),
        "113727": (0.0, dap_unit),
        "113730": (fluoro_time, "s"),
        "113855": (0.0, "s"),
        "113725": (dose, dose_unit),
        "113728": (dose, dose_unit),
        "113729": (0.0, dose_unit),
        "113731": (4, "1"),
    }


def _plane_container(spec: PlaneSpec) -> Dataset:
    children: list[Dataset] = []
    if spec.plane is not None:
        children.append(coded("113764", spec.plane, relationship="HAS CONCEPT MOD"))
    totals = [
        num(concept, value, unit, spec.meanings.get(concept))
        for concept, (value, unit) in spec.totals.items()
    ]
    if spec.nest_totals:
        totals = [container("99NEST", totals)]
    return container("113702", [*children, *totals])


def _event_container(spec: EventSpec) -> Dataset:
    children = [
        coded("113764", spec.plane, relationship="HAS CONCEPT MOD"),
        coded("113721", spec.event_type, spec.event_type_scheme),
        num("122130", 1e-6, "Gy.m2", "Dose Area Product"),
    ]
    if spec.mode is not None:
        children.append(coded("113732", spec.mode))
    if spec.pulse_rate is not None:
        children.append(num("113791", spec.pulse_rate, spec.pulse_rate_unit, "Pulse Rate"))
    children.extend(spec.extras)
    return container("113706", children)


def build_rdsr(
    *,
    planes: Sequence[PlaneSpec] = (),
    events: Sequence[EventSpec] = (),
    sop_class: str = XRAY_DOSE_SR,
    title: tuple[str, str, str] = ("113701", "DCM", "X-Ray Radiation Dose Report"),
    template_id: str | None = "10001",
    procedure: tuple[str, str] = ("113704", "DCM"),
    modality: str = "SR",
    study_uid: str | None = None,
    sop_uid: str | None = None,
    manufacturer: str = "Acme Medical",
    model: str = "C-Arm 9000",
    serial: str = "SN-42",
    timezone_offset: str | None = None,
    extra_items: Sequence[Dataset] = (),
) -> Dataset:
    """A minimal X-Ray Radiation Dose SR (TID 10001) with the given planes and events."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"  # UTF-8: unit spellings use µ, μ, ·, ²
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid or generate_uid()
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = modality
    ds.StudyDate = "20240315"
    ds.StudyTime = "093012.5"
    if timezone_offset is not None:
        ds.TimezoneOffsetFromUTC = timezone_offset
    ds.AccessionNumber = "ACC-1"
    ds.PatientID = "MRN-1"
    ds.PatientName = "Test^Patient"
    ds.Manufacturer = manufacturer
    ds.ManufacturerModelName = model
    ds.ValueType = "CONTAINER"
    ds.ContinuityOfContent = "SEPARATE"
    ds.CompletionFlag = "COMPLETE"
    ds.VerificationFlag = "UNVERIFIED"
    ds.ConceptNameCodeSequence = DicomSequence([code(*title)])
    if template_id is not None:
        template = Dataset()
        template.MappingResource = "DCMR"
        template.TemplateIdentifier = template_id
        ds.ContentTemplateSequence = DicomSequence([template])
    content = [
        coded("121058", procedure[0], procedure[1], relationship="HAS CONCEPT MOD"),
        coded("121005", "121007", relationship="HAS OBS CONTEXT"),
        text("121014", manufacturer),
        text("121015", model),
        text("121016", serial),
        *(_plane_container(spec) for spec in planes),
        *(_event_container(spec) for spec in events),
        *extra_items,
    ]
    ds.ContentSequence = DicomSequence(content)
    return ds


def build_ct_report(study_uid: str | None = None) -> Dataset:
    """A CT Radiation Dose report (TID 10011): same SOP class and title, CT content."""
    ds = build_rdsr(procedure=("P5-08000", "SRT"), modality="CT", study_uid=study_uid)
    ct_accumulated = container("113811", [num("113813", 450.0, "mGy.cm", "DLP Total")])
    ct_event = container("113819", [num("113830", 12.0, "mGy", "Mean CTDIvol")])
    ds.ContentSequence.extend([ct_accumulated, ct_event])
    return ds


def build_mammography_report() -> Dataset:
    """A mammography dose report: accumulated average glandular dose, stationary events."""
    ds = build_rdsr(
        procedure=("P5-40010", "SRT"),
        modality="MG",
        events=[EventSpec(STATIONARY, "DCM", None, None)],
    )
    ds.ContentSequence.append(container("113702", [num("111637", 1.2, "mGy", "AGD")]))
    return ds


def write(ds: Dataset, path: Path, transfer_syntax: str = ExplicitVRLittleEndian) -> Path:
    """Write ``ds`` as a DICOM Part 10 file (preamble, DICM, file meta) and return the path."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = transfer_syntax
    ds.file_meta = meta
    path.parent.mkdir(parents=True, exist_ok=True)
    dcmwrite(path, ds, enforce_file_format=True)
    return path


def write_bare(ds: Dataset, path: Path) -> Path:
    """Write only the data set (implicit VR, no preamble, no DICM, no file meta), as some
    old archives export it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    dcmwrite(path, ds, implicit_vr=True, little_endian=True)
    return path
