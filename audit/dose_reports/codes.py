"""The DICOM vocabulary of an X-Ray Radiation Dose SR (PS3.16 TID 10001-10004, 10011).

Why a module of its own: the reader finds content items by concept code value and never by code
meaning (vendors misspell meanings), so the codes are the whole contract with the C-arms. They are
kept here as data, in one place, with the totals each accumulated concept fills, so a reader of
the parser sees the rules and a reader of this file sees the standard. Meanings appear only as
documentation and in error messages.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from audit.units import Quantity

DCM: Final = "DCM"


class SopClass(StrEnum):
    """SOP classes that may carry an X-Ray Radiation Dose Report (PS3.4)."""

    XRAY_RADIATION_DOSE_SR = "1.2.840.10008.5.1.4.1.1.88.67"
    ENHANCED_SR = "1.2.840.10008.5.1.4.1.1.88.22"
    #: Some C-arms and PACS send the dose report as a Comprehensive SR; the document title
    #: (113701) still decides whether it is one.
    COMPREHENSIVE_SR = "1.2.840.10008.5.1.4.1.1.88.33"


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
    ACQUISITION_DEVICE_TYPE = "122142"
    # Irradiation event detail (TID 10003, 10003A/B), stored per event.
    IRRADIATION_EVENT_UID = "113769"
    DATETIME_STARTED = "111526"
    KVP = "113733"
    XRAY_TUBE_CURRENT = "113734"
    AVERAGE_XRAY_TUBE_CURRENT = "113767"
    EXPOSURE_TIME = "113824"
    EXPOSURE_TIME_OLD = "113735"
    IRRADIATION_DURATION = "113742"
    COLLIMATED_FIELD_AREA = "113790"
    DOSE_AREA_PRODUCT = "122130"
    DOSE_RP = "113738"
    POSITIONER_PRIMARY_ANGLE = "112011"
    POSITIONER_SECONDARY_ANGLE = "112012"
    DEVICE_OBSERVER_MANUFACTURER = "121014"
    DEVICE_OBSERVER_MODEL_NAME = "121015"
    DEVICE_OBSERVER_SERIAL_NUMBER = "121016"
    # Markers of non-fluoroscopy reports.
    CT_ACCUMULATED_DOSE_DATA = "113811"
    CT_DOSE_LENGTH_PRODUCT_TOTAL = "113813"
    CT_ACQUISITION = "113819"
    ACCUMULATED_AVERAGE_GLANDULAR_DOSE = "111637"
    AVERAGE_GLANDULAR_DOSE = "111631"
    COMPRESSION_THICKNESS = "111633"
    EXPOSURE_INDEX = "113845"
    TARGET_EXPOSURE_INDEX = "113846"
    DEVIATION_INDEX = "113847"


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
MAMMOGRAPHY_MARKERS: Final = frozenset({Concept.ACCUMULATED_AVERAGE_GLANDULAR_DOSE,
                                        Concept.AVERAGE_GLANDULAR_DOSE,
                                        Concept.COMPRESSION_THICKNESS})
#: Detector exposure indices (IEC 62494-1) belong to a radiograph, never to fluoroscopy.
RADIOGRAPHY_MARKERS: Final = frozenset({Concept.EXPOSURE_INDEX, Concept.TARGET_EXPOSURE_INDEX,
                                        Concept.DEVIATION_INDEX})
#: Acquisition Device Type (CID 10032) values that name a radiography room. "Integrated
#: Projection Radiography System" (113958) is not one: a Philips Azurion, an interventional
#: C-arm, writes it.
RADIOGRAPHY_DEVICE_TYPES: Final = frozenset({"113959"})  # Cassette-based Projection Radiography
CT_PROCEDURES: Final = frozenset(
    {ProcedureType.CT_SRT, ProcedureType.CT_SCT, ProcedureType.CONE_BEAM_CT_SCT}
)
MAMMOGRAPHY_PROCEDURES: Final = frozenset(
    {ProcedureType.MAMMOGRAPHY_SRT, ProcedureType.MAMMOGRAPHY_SCT}
)

@dataclass(frozen=True)
class ValueSpec:
    """What a numeric concept means to the audit: field name, quantity, standard meaning.

    The meaning is the standard's, used only in error messages: the reader matches codes, never
    meanings (vendors misspell them).
    """

    code: str
    meaning: str
    quantity: Quantity
    field: str


ACCUMULATED_TOTALS: Final[Mapping[str, ValueSpec]] = {
    spec.code: spec
    for spec in (
        ValueSpec(
            Concept.DOSE_AREA_PRODUCT_TOTAL,
            "Dose Area Product Total",
            Quantity.DAP,
            "dap_total_gycm2",
        ),
        ValueSpec(
            Concept.FLUORO_DOSE_AREA_PRODUCT_TOTAL,
            "Fluoro Dose Area Product Total",
            Quantity.DAP,
            "fluoro_dap_gycm2",
        ),
        ValueSpec(
            Concept.ACQUISITION_DOSE_AREA_PRODUCT_TOTAL,
            "Acquisition Dose Area Product Total",
            Quantity.DAP,
            "acquisition_dap_gycm2",
        ),
        ValueSpec(Concept.TOTAL_FLUORO_TIME, "Total Fluoro Time", Quantity.TIME, "fluoro_time_s"),
        ValueSpec(
            Concept.TOTAL_ACQUISITION_TIME,
            "Total Acquisition Time",
            Quantity.TIME,
            "acquisition_time_s",
        ),
        ValueSpec(
            Concept.DOSE_RP_TOTAL, "Dose (RP) Total", Quantity.AIR_KERMA, "air_kerma_total_mgy"
        ),
        ValueSpec(
            Concept.FLUORO_DOSE_RP_TOTAL,
            "Fluoro Dose (RP) Total",
            Quantity.AIR_KERMA,
            "fluoro_air_kerma_mgy",
        ),
        ValueSpec(
            Concept.ACQUISITION_DOSE_RP_TOTAL,
            "Acquisition Dose (RP) Total",
            Quantity.AIR_KERMA,
            "acquisition_air_kerma_mgy",
        ),
        ValueSpec(
            Concept.TOTAL_NUMBER_OF_RADIOGRAPHIC_FRAMES,
            "Total Number of Radiographic Frames",
            Quantity.COUNT,
            "frames",
        ),
    )
}
PULSE_RATE_SPEC: Final = ValueSpec(
    Concept.PULSE_RATE, "Pulse Rate", Quantity.PULSE_RATE, "pulse_rate_pps"
)
#: Numeric items of an irradiation event that are stored per event, by the event field they
#: fill. The technique figures read their units leniently (audit.units.LENIENT_QUANTITIES);
#: the doses (DAP, Ka,r) only in the strict dose units. Either way a unit still unknown drops
#: the figure with a warning: the report's totals carry the audit, not these.
EVENT_VALUES: Final[Mapping[str, ValueSpec]] = {
    spec.code: spec
    for spec in (
        PULSE_RATE_SPEC,
        ValueSpec(Concept.KVP, "KVP", Quantity.VOLTAGE, "kvp"),
        ValueSpec(Concept.XRAY_TUBE_CURRENT, "X-Ray Tube Current", Quantity.CURRENT,
                  "tube_current_ma"),
        ValueSpec(Concept.AVERAGE_XRAY_TUBE_CURRENT, "Average X-Ray Tube Current",
                  Quantity.CURRENT, "average_tube_current_ma"),
        ValueSpec(Concept.EXPOSURE_TIME, "Exposure Time", Quantity.TIME, "exposure_time_s"),
        ValueSpec(Concept.EXPOSURE_TIME_OLD, "Exposure Time", Quantity.TIME, "exposure_time_s"),
        ValueSpec(Concept.IRRADIATION_DURATION, "Irradiation Duration", Quantity.TIME,
                  "duration_s"),
        ValueSpec(Concept.COLLIMATED_FIELD_AREA, "Collimated Field Area", Quantity.AREA,
                  "field_area_cm2"),
        ValueSpec(Concept.DOSE_AREA_PRODUCT, "Dose Area Product", Quantity.DAP, "dap_gycm2"),
        ValueSpec(Concept.DOSE_RP, "Dose (RP)", Quantity.AIR_KERMA, "air_kerma_mgy"),
        ValueSpec(Concept.POSITIONER_PRIMARY_ANGLE, "Positioner Primary Angle", Quantity.ANGLE,
                  "primary_angle_deg"),
        ValueSpec(Concept.POSITIONER_SECONDARY_ANGLE, "Positioner Secondary Angle",
                  Quantity.ANGLE, "secondary_angle_deg"),
    )
}
#: Event type code -> stored value (audit.vocab.IrradiationEventType).
EVENT_TYPE_NAMES: Final[Mapping[str, str]] = {
    EventType.FLUOROSCOPY_SRT: "fluoroscopy",
    EventType.FLUOROSCOPY_SCT: "fluoroscopy",
    EventType.STATIONARY_ACQUISITION: "stationary",
    EventType.STEPPING_ACQUISITION: "stepping",
    EventType.ROTATIONAL_ACQUISITION: "rotational",
}
FLUORO_MODE_NAMES: Final[Mapping[str, str]] = {
    "113630": "continuous",
    "113631": "pulsed",
}

# --- what a report is, when it is not fluoroscopy -----------------------------------------------

#: Modality (0008,0060) values of reports refused whatever their content, and what they are.
OTHER_MODALITIES: Final[Mapping[str, str]] = {
    "CT": "CT", "MG": "mammography", "DX": "projection radiography",
    "CR": "projection radiography", "NM": "nuclear medicine", "PT": "PET",
}
#: SOP classes of other modalities' images and dose reports, named in the refusal.
OTHER_SOP_CLASSES: Final[Mapping[str, str]] = {
    "1.2.840.10008.5.1.4.1.1.2": "CT", "1.2.840.10008.5.1.4.1.1.2.1": "CT",
    "1.2.840.10008.5.1.4.1.1.2.2": "CT",
    "1.2.840.10008.5.1.4.1.1.1": "projection radiography",
    "1.2.840.10008.5.1.4.1.1.1.1": "projection radiography",
    "1.2.840.10008.5.1.4.1.1.1.1.1": "projection radiography",
    "1.2.840.10008.5.1.4.1.1.1.2": "mammography", "1.2.840.10008.5.1.4.1.1.1.2.1": "mammography",
    "1.2.840.10008.5.1.4.1.1.13.1.3": "mammography",
    "1.2.840.10008.5.1.4.1.1.20": "nuclear medicine",
    "1.2.840.10008.5.1.4.1.1.88.68": "nuclear medicine",  # Radiopharmaceutical Radiation Dose SR
    "1.2.840.10008.5.1.4.1.1.128": "PET",
}
#: Content templates (TID) of other modalities' dose reports.
OTHER_TEMPLATES: Final[Mapping[str, str]] = {"10011": "CT", "10021": "nuclear medicine"}

FLOAT_TOTAL_FIELDS: Final = tuple(
    s.field for s in ACCUMULATED_TOTALS.values() if s.field != "frames"
)
DEVICE_FIELDS: Final[Mapping[str, str]] = {
    Concept.DEVICE_OBSERVER_MANUFACTURER: "manufacturer",
    Concept.DEVICE_OBSERVER_MODEL_NAME: "model",
    Concept.DEVICE_OBSERVER_SERIAL_NUMBER: "serial",
}
