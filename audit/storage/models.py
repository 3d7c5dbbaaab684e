"""The schema, as SQLAlchemy 2 typed ORM classes.

Conventions that matter for audit and for both databases:
- every constraint is named (metadata naming convention), so Alembic migrations are portable;
- enumerations are VARCHAR plus a named CHECK built from audit.vocab, not native enums, so adding
  a value is a plain migration on SQLite and PostgreSQL alike;
- every timestamp goes through UTCDateTime: stored in UTC, always returned timezone-aware
  (SQLite would otherwise hand back naive datetimes);
- nothing is deleted: records are voided, accounts and rooms deactivated.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from audit import vocab

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware datetime stored as UTC on every backend.

    Naive datetimes are refused at bind time: a clinical timestamp without an offset is ambiguous.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: give a timezone-aware value")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def _in(column: str, enum: type[vocab.Vocabulary], nullable: bool = True) -> CheckConstraint:
    values = ", ".join(f"'{v}'" for v in enum.values())
    expr = f"{column} IN ({values})"
    if nullable:
        expr = f"{column} IS NULL OR {expr}"
    return CheckConstraint(expr, name=f"{column}_allowed")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Site(Base):
    __tablename__ = "site"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    rooms: Mapped[list[Room]] = relationship(back_populates="site")


class Room(Base):
    """A fluoroscopy room or mobile C-arm: the device and how it displays dose."""

    __tablename__ = "room"
    __table_args__ = (
        UniqueConstraint("site_id", "name"),
        _in("dap_display_unit", vocab.DapUnit, nullable=False),
        CheckConstraint(
            "kap_correction_factor > 0 AND kap_correction_factor <= 2", name="kap_correction_range"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id"))
    name: Mapped[str] = mapped_column(String(120))
    make: Mapped[str | None] = mapped_column(String(120))
    model: Mapped[str | None] = mapped_column(String(120))
    serial: Mapped[str | None] = mapped_column(String(120))
    dap_display_unit: Mapped[str] = mapped_column(String(16), default=vocab.DapUnit.GY_CM2.value)
    #: Set by the physicist: displayed KAP x factor = patient entrance KAP (table attenuation).
    kap_correction_factor: Mapped[float] = mapped_column(Float, default=1.0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    site: Mapped[Site] = relationship(back_populates="rooms")


class Physician(Base):
    __tablename__ = "physician"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(160), unique=True)
    #: The sign-in account of this physician, for "read own records and scorecard".
    username: Mapped[str | None] = mapped_column(String(80), unique=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class UserAccount(Base):
    __tablename__ = "user_account"
    __table_args__ = (
        _in("role", vocab.Role, nullable=False),
        CheckConstraint("failed_logins >= 0", name="failed_logins_nonnegative"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    display_name: Mapped[str | None] = mapped_column(String(160))
    role: Mapped[str] = mapped_column(String(32))
    #: Argon2id hash; NULL for accounts that cannot sign in (created by an import).
    password_hash: Mapped[str | None] = mapped_column(String(255))
    can_sign_in: Mapped[bool] = mapped_column(Boolean, default=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Remembered choices (last room, last physician) so entry is fast between cases.
    preferences: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Patient(Base):
    """A patient by MRN, with the keyed pseudonym that exports carry instead of the MRN."""

    __tablename__ = "patient"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    mrn: Mapped[str] = mapped_column(String(64), unique=True)
    pseudonym: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ProcedureType(Base):
    """The procedure catalog: what each type requires (DESIGN.md §2, REFERENCE.md §5)."""

    __tablename__ = "procedure_type"
    __table_args__ = (
        _in("region", vocab.CatalogRegion, nullable=False),
        _in("contrast_policy", vocab.ContrastPolicy, nullable=False),
        CheckConstraint("min_views >= 0 AND min_views <= 4", name="min_views_range"),
        CheckConstraint("max_levels IS NULL OR max_levels >= 0", name="max_levels_nonnegative"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(160))
    region: Mapped[str] = mapped_column(String(16))
    #: Regions whose levels are accepted, ";"-separated (e.g. "cervical;thoracic;lumbar").
    level_regions: Mapped[str | None] = mapped_column(String(80))
    levels_required: Mapped[bool] = mapped_column(Boolean, default=False)
    max_levels: Mapped[int | None] = mapped_column(Integer)
    laterality_required: Mapped[bool] = mapped_column(Boolean, default=False)
    contrast_policy: Mapped[str] = mapped_column(String(16))
    realtime_contrast_required: Mapped[bool] = mapped_column(Boolean, default=False)
    min_views: Mapped[int] = mapped_column(Integer, default=2)
    #: Typical values for plausibility warnings while local data is thin; see typical_source.
    typical_time_s: Mapped[float | None] = mapped_column(Float)
    typical_dap_gycm2: Mapped[float | None] = mapped_column(Float)
    max_expected_time_s: Mapped[float | None] = mapped_column(Float)
    typical_source: Mapped[str | None] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class Procedure(Base):
    """One logged procedure. Field names follow the data dictionary (DESIGN.md §2)."""

    __tablename__ = "procedure"
    __table_args__ = (
        _in("status", vocab.RecordStatus, nullable=False),
        _in("patient_sex", vocab.Sex),
        _in("pregnancy_status", vocab.PregnancyStatus, nullable=False),
        _in("laterality", vocab.Laterality),
        _in("guidance", vocab.Guidance, nullable=False),
        _in("dap_unit", vocab.DapUnit),
        _in("contrast_confirmation", vocab.ContrastConfirmation, nullable=False),
        _in("contrast_exception_reason", vocab.ContrastException),
        _in("injectate", vocab.Injectate),
        _in("dose_source", vocab.DoseSource, nullable=False),
        _in("region", vocab.Region, nullable=False),
        CheckConstraint("version >= 1", name="version_positive"),
        CheckConstraint("fluoro_time_s >= 0", name="fluoro_time_nonnegative"),
        CheckConstraint("dap_gycm2 IS NULL OR dap_gycm2 >= 0", name="dap_nonnegative"),
        CheckConstraint(
            "dap_gycm2 IS NOT NULL OR dap_missing_reason IS NOT NULL", name="dap_or_reason"
        ),
        CheckConstraint(
            "air_kerma_mgy IS NULL OR air_kerma_mgy >= 0", name="air_kerma_nonnegative"
        ),
        CheckConstraint("saved_images >= 0", name="saved_images_nonnegative"),
        CheckConstraint("dsa_runs IS NULL OR dsa_runs >= 0", name="dsa_runs_nonnegative"),
        CheckConstraint(
            "patient_weight_kg IS NULL OR (patient_weight_kg > 0 AND patient_weight_kg < 400)",
            name="weight_range",
        ),
        CheckConstraint(
            "pulse_rate_pps IS NULL OR (pulse_rate_pps > 0 AND pulse_rate_pps <= 60)",
            name="pulse_rate_range",
        ),
        CheckConstraint(
            "contrast_volume_ml IS NULL OR contrast_volume_ml >= 0", name="contrast_volume_nonneg"
        ),
        CheckConstraint(
            "status = 'final' OR void_reason IS NOT NULL", name="void_has_reason"
        ),
        Index(None, "performed_at"),
        Index(None, "procedure_type_id", "performed_at"),
        Index(None, "patient_id", "performed_at"),
        Index(None, "physician_id", "performed_at"),
        Index(None, "room_id", "performed_at"),
        Index(None, "accession_number"),
        # The Records page: a technologist's own list, and "void" as an indexed id set.
        Index(None, "technologist_id", "performed_at"),
        Index(None, "status", "performed_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[str] = mapped_column(String(8), default=vocab.RecordStatus.FINAL.value)
    version: Mapped[int] = mapped_column(Integer, default=1)
    performed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id"))
    room_id: Mapped[int] = mapped_column(ForeignKey("room.id"))
    physician_id: Mapped[int] = mapped_column(ForeignKey("physician.id"))
    technologist_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"))
    accession_number: Mapped[str | None] = mapped_column(String(64))
    patient_sex: Mapped[str | None] = mapped_column(String(1))
    patient_weight_kg: Mapped[float | None] = mapped_column(Float)
    pregnancy_status: Mapped[str] = mapped_column(String(16))
    procedure_type_id: Mapped[int] = mapped_column(ForeignKey("procedure_type.id"))
    #: The anatomical region: the catalog's, or derived from the levels for by-level types.
    region: Mapped[str] = mapped_column(String(16))
    laterality: Mapped[str | None] = mapped_column(String(16))
    guidance: Mapped[str] = mapped_column(String(16))
    fluoro_time_s: Mapped[float] = mapped_column(Float)
    fluoro_time_entered: Mapped[str | None] = mapped_column(String(32))
    dap_gycm2: Mapped[float | None] = mapped_column(Float)
    dap_value: Mapped[float | None] = mapped_column(Float)
    dap_unit: Mapped[str | None] = mapped_column(String(16))
    dap_missing_reason: Mapped[str | None] = mapped_column(Text)
    air_kerma_mgy: Mapped[float | None] = mapped_column(Float)
    saved_images: Mapped[int] = mapped_column(Integer)
    dsa_runs: Mapped[int | None] = mapped_column(Integer)
    pulsed_fluoro: Mapped[bool | None] = mapped_column(Boolean)
    pulse_rate_pps: Mapped[float | None] = mapped_column(Float)
    low_dose_mode: Mapped[bool | None] = mapped_column(Boolean)
    contrast_agent: Mapped[str | None] = mapped_column(String(80))
    contrast_volume_ml: Mapped[float | None] = mapped_column(Float)
    contrast_confirmation: Mapped[str] = mapped_column(String(16))
    contrast_exception_reason: Mapped[str | None] = mapped_column(String(20))
    contrast_exception_detail: Mapped[str | None] = mapped_column(Text)
    #: ";"-separated views in canonical order, e.g. "AP;LAT".
    confirmation_views: Mapped[str | None] = mapped_column(String(40))
    realtime_contrast: Mapped[bool | None] = mapped_column(Boolean)
    vascular_uptake: Mapped[bool | None] = mapped_column(Boolean)
    needle_repositioned: Mapped[bool | None] = mapped_column(Boolean)
    injectate: Mapped[str | None] = mapped_column(String(24))
    notes: Mapped[str | None] = mapped_column(Text)
    dose_source: Mapped[str] = mapped_column(String(12), default=vocab.DoseSource.MANUAL.value)
    #: Patient effective dose estimate, E = KAP x k(region), with k in force when written.
    effective_dose_msv: Mapped[float | None] = mapped_column(Float)
    #: Plausibility warnings the user confirmed when saving (JSON list of {field, message}).
    warnings: Mapped[list[dict[str, str]] | None] = mapped_column(JSON)
    void_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(80))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(80))

    levels: Mapped[list[ProcedureLevel]] = relationship(
        order_by="ProcedureLevel.position", cascade="all, delete-orphan"
    )
    procedure_type: Mapped[ProcedureType] = relationship()
    site: Mapped[Site] = relationship()
    room: Mapped[Room] = relationship()
    physician: Mapped[Physician] = relationship()
    technologist: Mapped[UserAccount] = relationship()
    patient: Mapped[Patient] = relationship()


class ProcedureLevel(Base):
    """One row per treated level, so per-level dose and level counts are plain SQL."""

    __tablename__ = "procedure_level"
    __table_args__ = (
        UniqueConstraint("procedure_id", "level"),
        Index(None, "level"),
    )

    procedure_id: Mapped[int] = mapped_column(ForeignKey("procedure.id"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    level: Mapped[str] = mapped_column(String(8))
    region: Mapped[str] = mapped_column(String(16))


class AuditEvent(Base):
    """Append-only trail; database triggers refuse UPDATE and DELETE (see the migrations).

    Each event stores the hash of the previous one (`prev_hash`) and its own (`hash`, over its
    content and prev_hash), so removing or editing any row breaks the chain at that point.
    """

    __tablename__ = "audit_event"
    __table_args__ = (
        _in("action", vocab.AuditAction, nullable=False),
        Index(None, "entity", "entity_id"),
        Index(None, "occurred_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(80))
    action: Mapped[str] = mapped_column(String(16))
    entity: Mapped[str] = mapped_column(String(40))
    entity_id: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(Text)
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class Setting(Base):
    """Thresholds and site configuration, each with its source (shown wherever it is used)."""

    __tablename__ = "setting"

    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON)
    source: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(80), default="system")


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
        _in("status", vocab.DoseReportStatus, nullable=False),
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
        _in("field", vocab.DoseField, nullable=False),
        _in("status", vocab.DiscrepancyStatus, nullable=False),
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

    Published comparison values are seeded (REFERENCE.md §4); local DRLs and achievable doses
    computed by the ICRP 135 method are adopted here with an effective date. The SRDLs and the
    investigation factor are settings (one source of truth for the alerts) and are shown beside
    these rows, not copied into them. Rows are retired (active = false), never deleted.
    """

    __tablename__ = "reference_level"
    __table_args__ = (
        _in("quantity", vocab.DoseQuantity, nullable=False),
        _in("kind", vocab.ReferenceKind, nullable=False),
        _in("statistic", vocab.ReferenceStatistic, nullable=False),
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
        _in("kind", vocab.AlertKind, nullable=False),
        _in("quantity", vocab.DoseQuantity, nullable=False),
        _in("status", vocab.AlertStatus, nullable=False),
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
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"))
    #: The record that crossed the threshold (for cumulative alerts: the first in the episode).
    procedure_id: Mapped[int] = mapped_column(ForeignKey("procedure.id"))
    performed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: The trigger record's site, room, physician and type, copied so that filtering alerts
    #: by them never joins the procedure table (kept current by audit.alerts.store.refresh_alerts).
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id"))
    room_id: Mapped[int] = mapped_column(ForeignKey("room.id"))
    physician_id: Mapped[int] = mapped_column(ForeignKey("physician.id"))
    procedure_type_id: Mapped[int] = mapped_column(ForeignKey("procedure_type.id"))
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
