"""The procedure log's tables and what they refer to: sites, rooms, physicians, user accounts,
patients, the procedure catalog, procedures and their levels, the audit trail and the settings.

Nothing is deleted: records are voided, accounts and rooms deactivated. Column conventions
(named constraints, vocabulary CHECKs, UTC timestamps) come from audit.storage.types.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from audit import vocab
from audit.storage.types import Base, UTCDateTime, allowed_values, utcnow


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
        allowed_values("dap_display_unit", vocab.DapUnit, nullable=False),
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


class NameAlias(Base):
    """A site, room, physician or technologist name merged into another (issue 11): entries
    under the merged name resolve to the kept row (audit.log.names), and the merged row stays,
    deactivated. A room's alias is scoped to its site (`scope_id`, 0 for the other kinds);
    `target_id` and `source_id` are ids in the kind's own table."""

    __tablename__ = "name_alias"
    __table_args__ = (
        UniqueConstraint("kind", "scope_id", "alias"),
        CheckConstraint("kind IN ('site', 'room', 'physician', 'technologist')",
                        name="kind_allowed"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    scope_id: Mapped[int] = mapped_column(Integer, default=0)
    alias: Mapped[str] = mapped_column(String(160))
    target_id: Mapped[int] = mapped_column(Integer)
    source_id: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(80))


class UserAccount(Base):
    __tablename__ = "user_account"
    __table_args__ = (
        allowed_values("role", vocab.Role, nullable=False),
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


class UserSession(Base):
    """A signed-in browser session (audit.sessions; migration 0012). Only SHA-256 hashes of its
    secrets are stored: the cookie token (NULL until the browser has collected it) and the
    one-time handoff code that lets the browser collect it. Never deleted: a session ends by
    `revoked_at` (sign-out, idle timeout, deactivation, password reset) or by `expires_at`."""

    __tablename__ = "user_session"
    __table_args__ = (Index(None, "user_id", "revoked_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    handoff_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    handoff_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: last_seen_at + the idle timeout as it was at the last activity (a shorter setting
    #: applies at once: audit.sessions compares last_seen_at with the current one too).
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_reason: Mapped[str | None] = mapped_column(String(80))


class Patient(Base):
    """A patient by MRN, with the keyed pseudonym that exports carry instead of the MRN."""

    __tablename__ = "patient"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    mrn: Mapped[str] = mapped_column(String(64), unique=True)
    pseudonym: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ProcedureType(Base):
    """The procedure catalog: what each type requires (docs/design.md §2, docs/reference.md §5)."""

    __tablename__ = "procedure_type"
    __table_args__ = (
        allowed_values("region", vocab.CatalogRegion, nullable=False),
        allowed_values("contrast_policy", vocab.ContrastPolicy, nullable=False),
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
    """One logged procedure. Field names follow the data dictionary (docs/design.md §2)."""

    __tablename__ = "procedure"
    __table_args__ = (
        allowed_values("status", vocab.RecordStatus, nullable=False),
        allowed_values("patient_sex", vocab.Sex),
        allowed_values("pregnancy_status", vocab.PregnancyStatus, nullable=False),
        allowed_values("laterality", vocab.Laterality),
        allowed_values("guidance", vocab.Guidance, nullable=False),
        allowed_values("dap_unit", vocab.DapUnit),
        allowed_values("contrast_confirmation", vocab.ContrastConfirmation, nullable=False),
        allowed_values("contrast_exception_reason", vocab.ContrastException),
        allowed_values("injectate", vocab.Injectate),
        allowed_values("dose_source", vocab.DoseSource, nullable=False),
        allowed_values("region", vocab.Region, nullable=False),
        allowed_values("carm_operator", vocab.CarmOperator),
        allowed_values("contrast_class", vocab.ContrastClass),
        CheckConstraint("version >= 1", name="version_positive"),
        CheckConstraint("fluoro_time_s >= 0", name="fluoro_time_nonnegative"),
        CheckConstraint("dap_gycm2 IS NULL OR dap_gycm2 >= 0", name="dap_nonnegative"),
        CheckConstraint(
            "dap_gycm2 IS NOT NULL OR dap_missing_reason IS NOT NULL OR guidance = 'ultrasound'",
            name="dap_or_reason",
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
            "patient_height_cm IS NULL OR (patient_height_cm > 0 AND patient_height_cm < 300)",
            name="height_range",
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
    #: Optimistic locking in the database: every UPDATE of a record says WHERE version = <the
    #: version read>, so a writer that read an older version changes no row and gets
    #: StaleDataError instead of silently overwriting (issue 10). The writers still set the
    #: version themselves (generator False): only a real change bumps it.
    __mapper_args__: ClassVar[dict[str, Any]] = {"version_id_col": version,
                                                  "version_id_generator": False}
    performed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id"))
    room_id: Mapped[int] = mapped_column(ForeignKey("room.id"))
    physician_id: Mapped[int] = mapped_column(ForeignKey("physician.id"))
    technologist_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"))
    accession_number: Mapped[str | None] = mapped_column(String(64))
    patient_sex: Mapped[str | None] = mapped_column(String(1))
    patient_weight_kg: Mapped[float | None] = mapped_column(Float)
    patient_height_cm: Mapped[float | None] = mapped_column(Float)
    #: weight / height² (kg/m²), computed on every write from the two (audit.log.case_mix).
    bmi_kg_m2: Mapped[float | None] = mapped_column(Float)
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
    carm_operator: Mapped[str | None] = mapped_column(String(16))
    trainee_present: Mapped[bool | None] = mapped_column(Boolean)
    contrast_class: Mapped[str | None] = mapped_column(String(16))
    #: ILESI only: a contrast test dose was given (Rathmell 2015); NULL for other types.
    contrast_test_dose: Mapped[bool | None] = mapped_column(Boolean)
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


#: The partial index's condition: the events of vocab.FIGURE_ACTIONS, except those of
#: vocab.NOT_FIGURE_ENTITIES (the alert refresh's own and the sign-in sessions').
_FIGURE_EVENTS = "action IN ({}) AND entity NOT IN ({})".format(
    ", ".join(f"'{a}'" for a in vocab.FIGURE_ACTIONS),
    ", ".join(f"'{e}'" for e in vocab.NOT_FIGURE_ENTITIES))


class AuditEvent(Base):
    """Append-only trail; database triggers refuse UPDATE and DELETE (see the migrations).

    Each event stores the hash of the previous one (`prev_hash`) and its own (`hash`, over its
    content and prev_hash), so removing or editing any row breaks the chain at that point.
    """

    __tablename__ = "audit_event"
    __table_args__ = (
        allowed_values("action", vocab.AuditAction, nullable=False),
        Index(None, "entity", "entity_id"),
        Index(None, "occurred_at"),
        # the figures version (audit.analytics.figure_changes): the last event that can change
        # a figure is one index read, however many sign-ins and exports came after it
        Index("ix_audit_event_figures", "id",
              postgresql_where=text(_FIGURE_EVENTS), sqlite_where=text(_FIGURE_EVENTS)),
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
