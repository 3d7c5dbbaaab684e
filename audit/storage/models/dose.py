"""The radiation side of the schema: imported dose reports (RDSR) and their discrepancies
with the log, the reference levels, and the dose alerts with their acknowledgements.

These tables point at the log's tables by foreign key only (no ORM relationship back), so this
module needs nothing from audit.storage.models.log and the log's tables nothing from it.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from audit import vocab
from audit.storage.types import Base, UTCDateTime, allowed_values, utcnow


class DoseReport(Base):
    """One imported RDSR instance (DICOM SOP instance), in canonical units.

    Why a row per SOP instance: the same study can send several reports as it grows; the one
    with the most irradiation events is ``current`` and the others are kept ``superseded``
    (nothing is deleted). ``patient_id`` is the MRN as written in the file (PHI);
    ``patient_ref`` is its keyed pseudonym for roles that may not see PHI. ``procedure_id``
    is the logged procedure the report was reconciled with (NULL: not in the log).
    """

    __tablename__ = "dose_report"
    __table_args__ = (
        UniqueConstraint("sop_instance_uid"),
        allowed_values("status", vocab.DoseReportStatus, nullable=False),
        CheckConstraint("events >= 0", name="events_nonnegative"),
        Index(None, "study_instance_uid"),
        Index(None, "accession_number"),
        Index(None, "procedure_id"),
        Index(None, "status", "study_day"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sop_instance_uid: Mapped[str] = mapped_column(String(64))
    sop_class_uid: Mapped[str] = mapped_column(String(64))
    study_instance_uid: Mapped[str] = mapped_column(String(64))
    accession_number: Mapped[str | None] = mapped_column(String(64))
    patient_id: Mapped[str | None] = mapped_column(String(64))
    patient_ref: Mapped[str | None] = mapped_column(String(64))
    #: Study date/time in UTC (the file's offset, else the site_timezone setting).
    study_datetime: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: The study's calendar day at the site: what matching by day compares.
    study_day: Mapped[date | None] = mapped_column(Date)
    manufacturer: Mapped[str | None] = mapped_column(String(120))
    model: Mapped[str | None] = mapped_column(String(120))
    serial: Mapped[str | None] = mapped_column(String(120))
    #: Per-plane totals as parsed: [{"plane": "A", "dap_total_gycm2": ..., ...}, ...].
    planes: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    dap_total_gycm2: Mapped[float | None] = mapped_column(Float)
    fluoro_dap_gycm2: Mapped[float | None] = mapped_column(Float)
    acquisition_dap_gycm2: Mapped[float | None] = mapped_column(Float)
    fluoro_time_s: Mapped[float | None] = mapped_column(Float)
    acquisition_time_s: Mapped[float | None] = mapped_column(Float)
    air_kerma_total_mgy: Mapped[float | None] = mapped_column(Float)
    fluoro_air_kerma_mgy: Mapped[float | None] = mapped_column(Float)
    acquisition_air_kerma_mgy: Mapped[float | None] = mapped_column(Float)
    frames: Mapped[int | None] = mapped_column(Integer)
    events: Mapped[int] = mapped_column(Integer)
    fluoro_events: Mapped[int] = mapped_column(Integer)
    acquisition_events: Mapped[int] = mapped_column(Integer)
    pulsed_fluoro_share: Mapped[float | None] = mapped_column(Float)
    max_pulse_rate_pps: Mapped[float | None] = mapped_column(Float)
    #: What the reader left out and why (an event figure in a unit it did not understand);
    #: NULL: nothing (and every report imported before migration 0014).
    warnings: Mapped[list[str] | None] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(12), default=vocab.DoseReportStatus.CURRENT.value)
    superseded_by_id: Mapped[int | None] = mapped_column(ForeignKey("dose_report.id"))
    procedure_id: Mapped[int | None] = mapped_column(ForeignKey("procedure.id"))
    #: How the link was found: "accession", "patient_room_day", "patient_day", "superseded".
    match_rule: Mapped[str | None] = mapped_column(String(24))
    #: Procedure dose fields this report filled (the log lacked them), e.g. ["dap_gycm2"].
    filled_fields: Mapped[list[str] | None] = mapped_column(JSON)
    source_file: Mapped[str] = mapped_column(String(255))
    source_sha256: Mapped[str] = mapped_column(String(64))
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    imported_by: Mapped[str] = mapped_column(String(80))


class DoseDiscrepancy(Base):
    """A manual dose value more than the tolerance away from the linked report's, for review.

    Kept forever; a fuller report of the same study marks the earlier report's open
    discrepancies ``superseded`` and compares again.
    """

    __tablename__ = "dose_discrepancy"
    __table_args__ = (
        UniqueConstraint("dose_report_id", "procedure_id", "field"),
        allowed_values("field", vocab.DoseField, nullable=False),
        allowed_values("status", vocab.DiscrepancyStatus, nullable=False),
        Index(None, "status"),
        Index(None, "procedure_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dose_report_id: Mapped[int] = mapped_column(ForeignKey("dose_report.id"))
    procedure_id: Mapped[int] = mapped_column(ForeignKey("procedure.id"))
    field: Mapped[str] = mapped_column(String(16))
    manual_value: Mapped[float] = mapped_column(Float)
    report_value: Mapped[float] = mapped_column(Float)
    #: (manual - report) / report; NULL when the report's value is 0.
    relative_difference: Mapped[float | None] = mapped_column(Float)
    tolerance: Mapped[float] = mapped_column(Float)
    #: A likely explanation when the ratio matches a known entry error (unit, m.ss), else NULL.
    likely_cause: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(12), default=vocab.DiscrepancyStatus.OPEN.value)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reviewed_by: Mapped[str | None] = mapped_column(String(80))
    review_note: Mapped[str | None] = mapped_column(Text)


class ReferenceLevel(Base):
    """A reference value for one procedure type and dose quantity, with where it comes from.

    Published comparison values are seeded (docs/reference.md §4); local DRLs and achievable doses
    computed by the ICRP 135 method are adopted here with an effective date. The SRDLs and the
    investigation factor are settings (one source of truth for the alerts) and are shown beside
    these rows, not copied into them. Rows are retired (active = false), never deleted.
    """

    __tablename__ = "reference_level"
    __table_args__ = (
        allowed_values("quantity", vocab.DoseQuantity, nullable=False),
        allowed_values("kind", vocab.ReferenceKind, nullable=False),
        allowed_values("statistic", vocab.ReferenceStatistic, nullable=False),
        CheckConstraint("value > 0", name="value_positive"),
        CheckConstraint("sample_size IS NULL OR sample_size > 0", name="sample_size_positive"),
        Index(None, "procedure_type_id", "quantity", "kind"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: NULL: applies to every procedure type.
    procedure_type_id: Mapped[int | None] = mapped_column(ForeignKey("procedure_type.id"))
    quantity: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(16))
    statistic: Mapped[str] = mapped_column(String(12))
    #: In the quantity's canonical unit (s, Gy·cm², mGy).
    value: Mapped[float] = mapped_column(Float)
    sample_size: Mapped[int | None] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(Text)
    note: Mapped[str | None] = mapped_column(Text)
    effective_from: Mapped[date] = mapped_column(Date)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(80))
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    retired_by: Mapped[str | None] = mapped_column(String(80))
    retired_reason: Mapped[str | None] = mapped_column(Text)


class Alert(Base):
    """A dose alert and what triggered it: the value, the threshold and its source, and the
    records that contributed.

    Alerts are derived from all final records at once (audit.alerts.detection), so they do not
    depend on the order records arrived in. `key` is the alert's identity across refreshes: the same
    exceedance keeps its row (and its acknowledgement) while its evidence is updated.
    """

    __tablename__ = "alert"
    __table_args__ = (
        allowed_values("kind", vocab.AlertKind, nullable=False),
        allowed_values("quantity", vocab.DoseQuantity, nullable=False),
        allowed_values("status", vocab.AlertStatus, nullable=False),
        Index(None, "status", "performed_at"),
        Index(None, "kind", "status", "performed_at"),  # the newest open alerts of a kind
        Index(None, "kind", "quantity", "status", "performed_at"),  # counts: index-only
        Index(None, "patient_id"),
        Index(None, "procedure_id"),  # filters join alerts to their records
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(120), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    quantity: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default=vocab.AlertStatus.OPEN.value)
    #: The record that crossed the threshold (for cumulative alerts: the first in the episode).
    procedure_id: Mapped[int] = mapped_column(ForeignKey("procedure.id"))
    #: The trigger record's patient, site, room, physician and type, copied so that filtering
    #: alerts by them never joins the procedure table (kept current by
    #: audit.alerts.store.refresh_alerts). Copies, like rule_finding's keys, so no foreign keys
    #: of their own (migration 0025): the record's keys already point at rows that are never
    #: deleted, and checking five keys row by row cost 25 s of a first refresh at 10M records.
    patient_id: Mapped[int] = mapped_column(Integer)
    performed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    site_id: Mapped[int] = mapped_column(Integer)
    room_id: Mapped[int] = mapped_column(Integer)
    physician_id: Mapped[int] = mapped_column(Integer)
    procedure_type_id: Mapped[int] = mapped_column(Integer)
    value: Mapped[float] = mapped_column(Float)
    threshold: Mapped[float] = mapped_column(Float)
    threshold_source: Mapped[str] = mapped_column(Text)
    window_start: Mapped[datetime | None] = mapped_column(UTCDateTime)
    window_end: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Ids of the records that contributed, in time order.
    record_ids: Mapped[list[int]] = mapped_column(JSON)
    #: Digests that let a refresh compare 10^5 alerts without decoding them: of the value and
    #: records (a change reopens an acknowledged alert), and of the threshold, its source and
    #: the record's site, room, physician and type (updated silently).
    evidence: Mapped[str] = mapped_column(String(16))
    context: Mapped[str] = mapped_column(String(16))
    detected_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    withdrawn_reason: Mapped[str | None] = mapped_column(Text)


class AlertAcknowledgement(Base):
    """The RSO's follow-up of an alert. Append-only: a later note adds a row."""

    __tablename__ = "alert_acknowledgement"
    __table_args__ = (Index(None, "alert_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alert.id"))
    acknowledged_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    acknowledged_by: Mapped[str] = mapped_column(String(80))
    note: Mapped[str] = mapped_column(Text)
    patient_informed: Mapped[bool | None] = mapped_column(Boolean)
    skin_check_date: Mapped[date | None] = mapped_column(Date)
