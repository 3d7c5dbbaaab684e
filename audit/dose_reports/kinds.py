"""What a dose report is when it is not a fluoroscopy report, said in the rejection.

Why a rule of its own, before the fluoroscopy test: a CT, mammography, radiography or nuclear
medicine report can carry numbers that look like fluoroscopy totals (a CT planning radiograph's
DAP, a radiography room's "fluoro" totals of zero, a hybrid system's report), and imported as
fluoroscopy it would fill a spine injection's dose from another modality. So whatever the
header (Modality), the SOP class, the content template (TID 10011 is CT's) or the content
(CT accumulated dose data, glandular dose, detector exposure indices, a cassette-based
radiography device) says another modality, the report is refused, naming each piece of
evidence, even when fluoroscopy totals are present.

"Integrated Projection Radiography System" is not evidence: a Philips Azurion, an
interventional C-arm, writes it as its Acquisition Device Type.
"""

from __future__ import annotations

from pydicom.dataset import Dataset
from pydicom.uid import UID

from audit.dose_reports.codes import (
    CT_MARKERS,
    CT_PROCEDURES,
    MAMMOGRAPHY_MARKERS,
    MAMMOGRAPHY_PROCEDURES,
    OTHER_MODALITIES,
    OTHER_SOP_CLASSES,
    OTHER_TEMPLATES,
    RADIOGRAPHY_DEVICE_TYPES,
    RADIOGRAPHY_MARKERS,
)
from audit.dose_reports.content_tree import Findings, dicom_text

_NO_FLUORO = "no fluoroscopy events, no fluoro time and no fluoro DAP or dose"


def sop_class_modality(sop_class: str | None) -> str | None:
    """The other modality an (image or dose report) SOP class belongs to, or None."""
    return OTHER_SOP_CLASSES.get(sop_class or "")


def other_modality(dataset: Dataset, found: Findings) -> tuple[str, list[str]] | None:
    """(modality, evidence) when anything in the report says CT, mammography, radiography or
    nuclear medicine; None for a report with no such sign. CT evidence wins: a CT report
    says so most plainly."""
    evidence: dict[str, list[str]] = {}

    def add(kind: str, text: str) -> None:
        evidence.setdefault(kind, []).append(text)

    modality = (dicom_text(dataset.get("Modality")) or "").upper()
    if modality in OTHER_MODALITIES:
        add(OTHER_MODALITIES[modality], f"Modality {modality}")
    sop_class = dicom_text(dataset.get("SOPClassUID"))
    if sop_class_modality(sop_class):
        add(OTHER_SOP_CLASSES[sop_class or ""], f"SOP class {sop_class} ({UID(sop_class).name})")
    for template in dataset.get("ContentTemplateSequence") or []:
        tid = dicom_text(template.get("TemplateIdentifier"))
        if tid in OTHER_TEMPLATES:
            add(OTHER_TEMPLATES[tid], f"template TID {tid}")
    for code in sorted(found.markers & CT_MARKERS):
        add("CT", f"{code} present")
    if CT_PROCEDURES.intersection(found.procedures):
        add("CT", "procedure reported CT")
    for code in sorted(found.markers & MAMMOGRAPHY_MARKERS):
        add("mammography", f"{code} present")
    if MAMMOGRAPHY_PROCEDURES.intersection(found.procedures):
        add("mammography", "procedure reported Mammography")
    for code in sorted(found.markers & RADIOGRAPHY_MARKERS):
        add("projection radiography", f"{code} (detector exposure index) present")
    for device in sorted(RADIOGRAPHY_DEVICE_TYPES.intersection(found.device_types)):
        add("projection radiography", f"acquisition device type {device}")
    for kind in ("CT", "mammography", "nuclear medicine", "PET", "projection radiography"):
        if kind in evidence:
            return kind, evidence[kind]
    return None


def other_modality_reason(kind: str, evidence: list[str], fluoroscopy: bool) -> str:
    """The rejection: what the report is, why we think so, and that totals do not save it."""
    what = "CT Radiation Dose report" if kind == "CT" else f"{kind} dose report"
    tail = ("; refused even though it carries fluoroscopy totals or events" if fluoroscopy
            else f"; {_NO_FLUORO}")
    return f"not a fluoroscopy dose report: {what} ({', '.join(evidence)}){tail}"


def not_fluoroscopy_reason(found: Findings) -> str:
    """Why a report with no sign of another modality is still not fluoroscopy."""
    if not found.planes and not found.loose.values and not found.events:
        return ("not a fluoroscopy dose report: no accumulated dose data and no events; "
                f"{_NO_FLUORO}")
    return (
        f"not a fluoroscopy dose report: projection radiography only "
        f"({len(found.events)} irradiation events); {_NO_FLUORO}"
    )


__all__ = ["not_fluoroscopy_reason", "other_modality", "other_modality_reason",
           "sop_class_modality"]
