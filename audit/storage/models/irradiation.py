"""One row per irradiation event of a stored dose report (TID 10003), in canonical units.

Why a table and not the report's JSON: the C-arm, not the form, knows whether fluoroscopy was
pulsed, at what rate, kVp, tube current and field size, event by event; the dashboards
aggregate these across thousands of reports in SQL (audit.analytics.events), which a JSON
column would not allow on both SQLite and PostgreSQL. Rows are written with their report, in
the same transaction, by the importer (audit.dose_reports.store), and never changed; a
superseded report keeps its events. Reports imported before migration 0014 have none: the
files were not kept, only their SHA-256, so there is nothing to read them from again.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, Float, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from audit import vocab
from audit.storage.types import Base, UTCDateTime, allowed_values


class IrradiationEvent(Base):
    """One irradiation event: type, fluoro mode, technique, dose and geometry.

    NULL where the report does not say, or said it in a unit the reader did not understand
    (the report's ``warnings`` then say which). DAP in Gy·cm² like the report totals, Ka,r in
    mGy, times in seconds, field area in cm², angles in degrees.
    """

    __tablename__ = "irradiation_event"
    __table_args__ = (
        allowed_values("event_type", vocab.IrradiationEventType),
        allowed_values("fluoro_mode", vocab.FluoroMode),
        CheckConstraint("sequence >= 1", name="sequence_positive"),
        Index(None, "dose_report_id", "sequence", unique=True),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dose_report_id: Mapped[int] = mapped_column(ForeignKey("dose_report.id"))
    #: The event's place in the report (1-based, document order).
    sequence: Mapped[int] = mapped_column(Integer)
    event_uid: Mapped[str | None] = mapped_column(String(64))
    event_type: Mapped[str | None] = mapped_column(String(12))
    fluoro_mode: Mapped[str | None] = mapped_column(String(12))
    #: "A", "B", "single" (as the report's planes are named); NULL when not stated.
    plane: Mapped[str | None] = mapped_column(String(12))
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    pulse_rate_pps: Mapped[float | None] = mapped_column(Float)
    kvp: Mapped[float | None] = mapped_column(Float)
    tube_current_ma: Mapped[float | None] = mapped_column(Float)
    field_area_cm2: Mapped[float | None] = mapped_column(Float)
    dap_gycm2: Mapped[float | None] = mapped_column(Float)
    air_kerma_mgy: Mapped[float | None] = mapped_column(Float)
    #: Exposure Time (beam on: the sum of the pulse widths), and Irradiation Duration (first
    #: pulse to last): a vendor writes one, the other or both.
    exposure_time_s: Mapped[float | None] = mapped_column(Float)
    duration_s: Mapped[float | None] = mapped_column(Float)
    primary_angle_deg: Mapped[float | None] = mapped_column(Float)
    secondary_angle_deg: Mapped[float | None] = mapped_column(Float)
