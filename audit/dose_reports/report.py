"""What reading a dose report produces: frozen totals in canonical units, or a rejection.

These types are the reader's whole public result, shared by the importer (audit.dose_reports.store)
and the parsing modules, so they live apart from the parse itself.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any


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
class IrradiationEvent:
    """One irradiation event of a report (TID 10003), canonical units, ``None`` where the file
    does not say (or said it in a unit not understood: the report's ``warnings`` tell).

    ``sequence`` is the event's place in the document (1-based); ``event_type`` is fluoroscopy,
    stationary, stepping, rotational, or other (a code outside CID 10002); ``fluoro_mode``
    pulsed or continuous; ``started_at`` as the file writes it (aware when it gives an offset).
    """

    sequence: int
    uid: str | None = None
    event_type: str | None = None
    fluoro_mode: str | None = None
    plane: str | None = None
    started_at: datetime | None = None
    pulse_rate_pps: float | None = None
    kvp: float | None = None
    tube_current_ma: float | None = None
    field_area_cm2: float | None = None
    dap_gycm2: float | None = None
    air_kerma_mgy: float | None = None
    exposure_time_s: float | None = None
    duration_s: float | None = None
    primary_angle_deg: float | None = None
    secondary_angle_deg: float | None = None


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
    #: Every irradiation event, in document order.
    irradiation_events: tuple[IrradiationEvent, ...] = ()
    #: What was left out and why (an event figure in a unit not understood); never a total.
    warnings: tuple[str, ...] = ()

    def to_json_dict(self) -> dict[str, Any]:
        """Return a ``json.dumps``-safe dict: canonical units, datetime as ISO 8601."""
        data = asdict(self)
        data["planes"] = [asdict(plane) for plane in self.planes]
        data["study_datetime"] = (
            self.study_datetime.isoformat() if self.study_datetime is not None else None
        )
        data["irradiation_events"] = [
            {**asdict(e), "started_at": e.started_at.isoformat() if e.started_at else None}
            for e in self.irradiation_events]
        data["warnings"] = list(self.warnings)
        return data
