"""Read fluoroscopy dose totals from DICOM X-Ray Radiation Dose SR (RDSR) files.

Why this module exists: the Joint Commission asks for cumulative air kerma / KAP in a retrievable
form, and typing them from the C-arm screen is where 10x-1000x unit errors creep in. An RDSR
carries the same totals in machine-readable form, so the log imports them instead.

Rules (docs/reference.md section 7), each chosen because real files break the naive approach:

* Accepted documents: SOP class X-Ray Radiation Dose SR, Enhanced SR or Comprehensive SR whose
  document title (the root concept name) is 113701 (DCM). Anything else is a
  :class:`RejectedReport`.
* Content items are found by concept code value, and only when the item's coding scheme is DCM
  (or absent). Code meanings are never read: vendors misspell them ("Fluoro Dose(RP) Total") and
  private items may reuse meanings under their own scheme.
* Values are converted to canonical units (Gy·cm², mGy, s, count) through the table in audit.units.
  An unknown or missing unit on a dose total rejects the whole report: a silently wrong factor
  is a 100x dose error in the audit, which is worse than no import. The figures of each
  irradiation event (pulse rate, kVp, tube current, field area, times, angles, the event's
  DAP and Ka,r) are only descriptive: their units are read leniently (UCUM and the spellings
  vendors write, audit.units ``vendor``), and one still not understood leaves that figure out
  of its event with a warning the report keeps (audit.dose_reports.events). It never rejects.
* Other modalities are refused before the fluoroscopy rule, whatever totals they carry: a
  Modality, SOP class, template or content that says CT, mammography, radiography or nuclear
  medicine rejects the report, naming the evidence (audit.dose_reports.kinds).
* Fluoroscopy rule: a report is a fluoroscopy report when it has at least one fluoroscopy
  irradiation event, or a total fluoro time > 0, or a fluoro DAP > 0, or a fluoro dose (RP) > 0.
  CT, mammography and radiography-only reports fail that test and are rejected with a reason
  naming what they are.
* Planes: each Accumulated X-Ray Dose Data container (113702) is one plane, named by its
  Acquisition Plane modifier 113764 (what PS3.16 TID 10002 and all three real files use;
  113705 is Scope of Accumulation and is read as a plane only if its value is a plane code).
  Totals anywhere below a container belong to it, whatever the vendor's nesting. Summed totals
  add the planes; an "All Planes" container is summed only when it is the only one.
* The content tree is walked once (audit.dose_reports.content_tree); each item is dispatched on
  its concept code (audit.dose_reports.codes).
* Truncated or corrupt files are rejected, never half-imported: pydicom silently accepts a file
  cut inside a defined-length element, so audit.dose_reports.dicom_bytes compares declared and
  read lengths of the top-level elements.
* Every number of the result is finite and within the data dictionary's bounds for the field it
  becomes (audit.dose_reports.bounds); a report with one that is not is rejected whole, naming
  the quantity, its value and the allowed range.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any, BinaryIO, Final

from pydicom.dataset import Dataset
from pydicom.uid import UID
from pydicom.valuerep import DA, TM

from audit.dose_reports.bounds import report_problem
from audit.dose_reports.codes import (
    ACCEPTED_SOP_CLASSES,
    ACQUISITION_EVENT_TYPES,
    DCM,
    FLOAT_TOTAL_FIELDS,
    FLUOROSCOPY_EVENT_TYPES,
    PLANE_LABELS,
    Concept,
    FluoroMode,
)
from audit.dose_reports.content_tree import (
    EventAccumulator,
    Findings,
    PlaneAccumulator,
    dicom_text,
    walk,
)
from audit.dose_reports.dicom_bytes import parse_dicom, read_source
from audit.dose_reports.events import build_events
from audit.dose_reports.kinds import (
    not_fluoroscopy_reason,
    other_modality,
    other_modality_reason,
    sop_class_modality,
)
from audit.dose_reports.report import DoseReport, PlaneTotals, RejectedReport


def read_dose_report(source: str | os.PathLike[str] | bytes | BinaryIO) -> DoseReport:
    """Parse one RDSR from a path, bytes or binary file object.

    Raises :class:`RejectedReport` and nothing else: callers import batches of files from
    PACS exports and must be able to log one bad file and carry on.
    """
    try:
        data = read_source(source)
        dataset, forced = parse_dicom(data)
        return _build_report(dataset, forced)
    except RejectedReport:
        raise
    except Exception as exc:  # the contract: RejectedReport or a DoseReport, never a crash
        raise RejectedReport(
            f"unreadable or corrupt dose report: {type(exc).__name__}: {exc}"
        ) from exc


def _check_document(dataset: Dataset, forced: bool) -> None:
    """Reject anything that is not an X-Ray Radiation Dose Report document."""
    sop_class = dicom_text(dataset.get("SOPClassUID"))
    file_meta = getattr(dataset, "file_meta", None)
    if sop_class is None and file_meta is not None:
        sop_class = dicom_text(file_meta.get("MediaStorageSOPClassUID"))
    if forced and (sop_class is None or "ContentSequence" not in dataset):
        raise RejectedReport(
            "unreadable or non-DICOM input: no DICM preamble and no structured report found"
        )
    if sop_class not in ACCEPTED_SOP_CLASSES:
        name = UID(sop_class).name if sop_class else "missing"
        kind = sop_class_modality(sop_class)
        if kind is not None:
            raise RejectedReport(f"not a fluoroscopy dose report: SOP class {sop_class} "
                                 f"({name}) is a {kind} object, not an X-Ray Radiation Dose SR")
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
        dicom_text(item.get("CodeValue")) or "",
        dicom_text(item.get("CodingSchemeDesignator")) or "",
        dicom_text(item.get("CodeMeaning")) or "",
    )



def _build_report(dataset: Dataset, forced: bool) -> DoseReport:
    """Check the document, walk its content once, then summarise and apply the fluoro rule."""
    _check_document(dataset, forced)
    sop_instance_uid = _required_text(dataset, "SOPInstanceUID")
    study_instance_uid = _required_text(dataset, "StudyInstanceUID")
    content = dataset.get("ContentSequence")
    if not content:
        raise RejectedReport("empty dose report: the document has no content items")

    found = Findings()
    walk(content, found, None, None, True)

    planes = _plane_totals(found)
    totals = _sum_planes(planes)
    summary = _event_summary(found.events)
    fluoroscopy = _is_fluoroscopy(totals, summary["fluoro_events"])
    other = other_modality(dataset, found)
    if other is not None:
        raise RejectedReport(other_modality_reason(*other, fluoroscopy))
    if not fluoroscopy:
        raise RejectedReport(not_fluoroscopy_reason(found))
    events = build_events(found, _timezone(dataset))

    report = DoseReport(
        sop_instance_uid=sop_instance_uid,
        sop_class_uid=str(dicom_text(dataset.get("SOPClassUID"))),
        study_instance_uid=study_instance_uid,
        accession_number=dicom_text(dataset.get("AccessionNumber")),
        study_datetime=_study_datetime(dataset),
        patient_id=dicom_text(dataset.get("PatientID")),
        manufacturer=found.device.get("manufacturer") or dicom_text(dataset.get("Manufacturer")),
        model=found.device.get("model") or dicom_text(dataset.get("ManufacturerModelName")),
        serial=found.device.get("serial") or dicom_text(dataset.get("DeviceSerialNumber")),
        planes=tuple(planes),
        **totals,
        **summary,
        irradiation_events=events,
        warnings=found.warning_texts(),
    )
    problem = report_problem(report)
    if problem:
        raise RejectedReport(problem)
    return report


def _required_text(dataset: Dataset, keyword: str) -> str:
    text = dicom_text(dataset.get(keyword))
    if text is None:
        raise RejectedReport(f"invalid dose report: {keyword} is missing or empty")
    return text


def _plane_labels(accumulators: list[PlaneAccumulator]) -> list[str]:
    """Plane names; a lone container without a plane code is a single-plane system."""
    labels = [PLANE_LABELS.get(acc.plane_code or "") for acc in accumulators]
    if len(labels) == 1 and labels[0] is None:
        return ["single"]
    return [label or "unspecified" for label in labels]


def _plane_totals(found: Findings) -> list[PlaneTotals]:
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
    for name in (*FLOAT_TOTAL_FIELDS, "frames"):
        values = [getattr(p, name) for p in per_plane if getattr(p, name) is not None]
        if not values:
            totals[name] = None
        else:
            totals[name] = sum(values) if name == "frames" else _decimal_sum(values)
    return totals


def _decimal_sum(values: list[float]) -> float:
    """Sum in decimal, so 0.1 + 0.2 Gy·cm² reads back as 0.3, like each converted value."""
    return float(sum((Decimal(repr(v)) for v in values), Decimal(0)))


def _event_summary(events: list[EventAccumulator]) -> dict[str, Any]:
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


# --------------------------------------------------------------------------------------------
# Study date and time
# --------------------------------------------------------------------------------------------


_TZ_OFFSET: Final = re.compile(r"([+-])(\d{2})(\d{2})")


def _timezone(dataset: Dataset) -> timezone | None:
    """Timezone from TimezoneOffsetFromUTC ("+0100"); None when absent or malformed."""
    text = dicom_text(dataset.get("TimezoneOffsetFromUTC"))
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
    Dates in the first or last year a datetime can hold (0001, 9999) are malformed too: the
    study day could not be converted to UTC or bounded by the next midnight for matching.
    """
    date_text = dicom_text(dataset.get("StudyDate"))
    if date_text is None:
        return None
    try:
        day = DA(date_text)
        time_text = dicom_text(dataset.get("StudyTime"))
        clock = TM(time_text) if time_text else None
    except (TypeError, ValueError):
        return None
    if day is None or not datetime.min.year < day.year < datetime.max.year:
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
