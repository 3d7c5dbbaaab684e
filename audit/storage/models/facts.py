"""One narrow row per final record: what the SQL figures derive from the procedure row and its
treated levels (audit.analytics.sql.facts keeps it current, on PostgreSQL).

A cache derived entirely from audited records, like the daily summary: rebuilt from the
procedure and procedure_level tables by SQL, never edited by a person, so it records no audit
event of its own, and its rows are deleted and inserted again freely ("no hard deletes" is about
clinical records, not caches). Nothing here depends on a lookup table that can change (a room's
KAP correction factor, the catalog's contrast policy or minimum of views): the figures join
those small tables at query time. `record_fact_state` says which data version (highest audit
event id) the rows reflect.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Float, Index, Integer, SmallInteger, String, text
from sqlalchemy.orm import Mapped, mapped_column

from audit.storage.types import Base, UTCDateTime

#: What the dose-bucket indexes carry beside the value: what a Dose page filter tests, and
#: the columns its groupings split by (migration 0030).
BUCKET_INCLUDE = ("performed_at", "site_id", "room_id", "physician_id", "month", "n_levels",
                  "weight_band", "bmi_band", "operator")

#: What the stratum indexes lead with, before the value.
STRATUM_KEY = ("procedure_type_id", "physician_id", "n_levels", "bmi_band")


class RecordFact(Base):
    """A final record's derived columns (audit.analytics.sql.facts says each one's rule).
    Compact: ids as integers, bands and counts as small integers, flags as booleans; the 8-byte
    columns first so PostgreSQL pads nothing."""

    __tablename__ = "record_fact"
    __table_args__ = (
        Index(None, "performed_at"),
        # a drill-down under one physician, room or procedure: newest first, stops at its LIMIT
        Index(None, "physician_id", "performed_at"),
        Index(None, "room_id", "performed_at"),
        Index(None, "procedure_type_id", "performed_at"),
        # the drill-downs of the rare safety flags (migration 0023): newest first among the
        # flagged records alone (a few in a thousand; the cervical particulate steroid per type,
        # as the flag is the TFESI's)
        Index("ix_record_fact_cervical_particulate", "procedure_type_id", "performed_at",
              postgresql_where=text("cervical_particulate")),
        Index("ix_record_fact_uptake_not_repositioned", "performed_at",
              postgresql_where=text("uptake_not_repositioned")),
        Index("ix_record_fact_pregnant", "performed_at", postgresql_where=text("pregnant")),
        # the drill-down of the SRDL flag (migration 0026): its thresholds are settings, so
        # the records at or above each are read by range (audit.analytics.sql.drill._srdl_hint)
        Index(None, "air_kerma_mgy"),
        Index(None, "dap_gycm2"),
        Index(None, "fluoro_time_s"),
        # the exact quantiles from the dose buckets (migration 0029): one bucket's records of
        # a procedure type, read by value range with what the filters test, from the index
        *(Index(f"ix_record_fact_type_{column}", "procedure_type_id", column,
                postgresql_include=list(BUCKET_INCLUDE))
          for column in ("dap_gycm2", "air_kerma_mgy", "fluoro_time_s")),
        # the physician scorecards' medians from the dose buckets (migration 0031): one
        # physician's records of one case-mix stratum in a bucket's value range, read from
        # the index alone (audit.analytics.sql.bucket_mixtures)
        *(Index(f"ix_record_fact_stratum_{column}", *STRATUM_KEY, column,
                postgresql_include=["performed_at", "site_id", "room_id"])
          for column in ("dap_gycm2", "air_kerma_mgy", "fluoro_time_s")),
        # the local DRLs' room medians (migration 0032): a room's records of a procedure in
        # value order, without stepping over every other room's (bucket_ranges)
        Index("ix_record_fact_room_dap_gycm2", "procedure_type_id", "room_id", "dap_gycm2",
              postgresql_include=["performed_at", "site_id", "physician_id"]),
    )

    performed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    fluoro_time_s: Mapped[float | None] = mapped_column(Float)  # NULL under ultrasound
    dap_gycm2: Mapped[float | None] = mapped_column(Float)
    air_kerma_mgy: Mapped[float | None] = mapped_column(Float)
    weight_kg: Mapped[float | None] = mapped_column(Float)
    bmi: Mapped[float | None] = mapped_column(Float)
    procedure_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site_id: Mapped[int] = mapped_column(Integer)
    room_id: Mapped[int] = mapped_column(Integer)
    physician_id: Mapped[int] = mapped_column(Integer)
    technologist_id: Mapped[int] = mapped_column(Integer)
    patient_id: Mapped[int] = mapped_column(Integer)
    procedure_type_id: Mapped[int] = mapped_column(Integer)
    n_levels: Mapped[int] = mapped_column(SmallInteger)
    weight_band: Mapped[int] = mapped_column(SmallInteger)
    bmi_band: Mapped[int] = mapped_column(SmallInteger)
    operator: Mapped[int] = mapped_column(SmallInteger)
    saved_images: Mapped[int] = mapped_column(SmallInteger)  # up to 255
    n_views: Mapped[int] = mapped_column(SmallInteger)  # up to 7
    month: Mapped[str] = mapped_column(String(7))  # "YYYY-MM" of the rounded UTC instant
    contrast_confirmation: Mapped[str] = mapped_column(String(16))
    ultrasound: Mapped[bool] = mapped_column(Boolean)
    exception_documented: Mapped[bool] = mapped_column(Boolean)
    realtime_contrast: Mapped[bool] = mapped_column(Boolean)
    pulsed_fluoro: Mapped[bool | None] = mapped_column(Boolean)  # NULL: not recorded
    low_dose_mode: Mapped[bool | None] = mapped_column(Boolean)  # NULL: not recorded
    dap_missing_documented: Mapped[bool] = mapped_column(Boolean)
    with_warnings: Mapped[bool] = mapped_column(Boolean)
    from_dose_report: Mapped[bool] = mapped_column(Boolean)
    cervical_particulate: Mapped[bool] = mapped_column(Boolean)
    uptake_not_repositioned: Mapped[bool] = mapped_column(Boolean)
    pregnant: Mapped[bool] = mapped_column(Boolean)


class RecordFactState(Base):
    """One row: the data version (audit event id) and rules the record facts reflect."""

    __tablename__ = "record_fact_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    data_version: Mapped[int] = mapped_column(Integer)
    rules: Mapped[int] = mapped_column(Integer)
