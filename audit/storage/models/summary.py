"""The per-day summary of the final records (audit.analytics.daily_summary keeps it current).

A cache derived entirely from audited records, like the analysis frame's file: rebuilt from the
procedure table by SQL, never edited by a person, so it records no audit event of its own;
`daily_summary_state` says which data version (highest audit event id) it reflects.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import JSON, Boolean, Date, Float, Integer, LargeBinary, SmallInteger, String
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from audit.storage.types import Base


class DailySummary(Base):
    """Per UTC day, site, room, procedure type and physician: the final records, the
    contrast-compliance counts (audit.contrast_rule) and dose sums and counts; and the same per
    month (`whole_month`: the month's first day, the sum of its days' rows), so a period of
    whole months reads a few rows per month. KAP is the displayed KAP: the room is part of the
    key, so the room-corrected sum is the sum times the room's factor. Medians cannot be
    summed: quantiles still come from the records."""

    __tablename__ = "daily_summary"

    whole_month: Mapped[bool] = mapped_column(Boolean, primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    site_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    room_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    procedure_type_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    physician_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    procedures: Mapped[int] = mapped_column(Integer)
    eligible: Mapped[int] = mapped_column(Integer)
    compliant: Mapped[int] = mapped_column(Integer)
    excepted: Mapped[int] = mapped_column(Integer)
    kap_sum: Mapped[float | None] = mapped_column(Float)
    kap_n: Mapped[int] = mapped_column(Integer)
    air_kerma_sum: Mapped[float | None] = mapped_column(Float)
    air_kerma_n: Mapped[int] = mapped_column(Integer)
    fluoro_time_sum: Mapped[float | None] = mapped_column(Float)
    fluoro_time_n: Mapped[int] = mapped_column(Integer)


class DailySummaryState(Base):
    """One row: the data version (audit event id) and rules the summary reflects."""

    __tablename__ = "daily_summary_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    data_version: Mapped[int] = mapped_column(Integer)
    rules: Mapped[int] = mapped_column(Integer)


class CountSummary(Base):
    """The Data quality and Complications pages' counts (audit.analytics.sql.count_summary keeps
    it, from the record facts, on PostgreSQL): per UTC day, site, room, procedure type,
    physician and technologist, and the same per month (`whole_month`: the month's first day,
    the sum of its days' rows), so a period of whole months reads a few rows per month. Counts
    only: every figure of those pages is a sum of them."""

    __tablename__ = "count_summary"

    whole_month: Mapped[bool] = mapped_column(Boolean, primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    site_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    room_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    procedure_type_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    physician_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    technologist_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    records: Mapped[int] = mapped_column(Integer)
    # completeness (audit.analytics.data_quality)
    missing_dap: Mapped[int] = mapped_column(Integer)
    missing_dap_documented: Mapped[int] = mapped_column(Integer)
    missing_air_kerma: Mapped[int] = mapped_column(Integer)
    with_warnings: Mapped[int] = mapped_column(Integer)
    from_dose_report: Mapped[int] = mapped_column(Integer)
    # safety flags (audit.analytics.safety.SAFETY_FLAGS)
    particulate_cervical_tfesi: Mapped[int] = mapped_column(Integer)
    uptake_not_repositioned: Mapped[int] = mapped_column(Integer)
    levels_over_limit: Mapped[int] = mapped_column(Integer)
    pregnant: Mapped[int] = mapped_column(Integer)
    srdl_reached: Mapped[int] = mapped_column(Integer)
    # complications (audit.analytics.complications): records with one, final ones, by kind
    with_complication: Mapped[int] = mapped_column(Integer)
    complications: Mapped[int] = mapped_column(Integer)
    severe: Mapped[int] = mapped_column(Integer)
    contrast_reaction: Mapped[int] = mapped_column(Integer)
    vasovagal_reaction: Mapped[int] = mapped_column(Integer)
    dural_puncture: Mapped[int] = mapped_column(Integer)
    nerve_injury: Mapped[int] = mapped_column(Integer)
    hematoma: Mapped[int] = mapped_column(Integer)
    infection: Mapped[int] = mapped_column(Integer)
    other: Mapped[int] = mapped_column(Integer)
    # the Dose page's share of injections done without radiation (migration 0030)
    ultrasound: Mapped[int] = mapped_column(Integer)
    # the Dose page's physician scorecard (migration 0031): contrast compliance and technique
    eligible: Mapped[int] = mapped_column(Integer)
    compliant: Mapped[int] = mapped_column(Integer)
    excepted: Mapped[int] = mapped_column(Integer)
    pulsed_recorded: Mapped[int] = mapped_column(Integer)
    pulsed: Mapped[int] = mapped_column(Integer)
    low_dose_recorded: Mapped[int] = mapped_column(Integer)
    low_dose: Mapped[int] = mapped_column(Integer)


class CountSummaryState(Base):
    """One row: the data version and rules (with the inputs the flags read: SRDL settings,
    room factors, the catalog's codes and maximum of levels) the count summary reflects."""

    __tablename__ = "count_summary_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    data_version: Mapped[int] = mapped_column(Integer)
    rules: Mapped[int] = mapped_column(Integer)


class DoseBucket(Base):
    """How many final records' dose values fall in each value bucket, per month and procedure
    type, and per room or per physician (audit.analytics.sql.dose_buckets keeps it, from the
    record facts, on PostgreSQL): with each bucket's least and greatest value, so the Dose
    page's exact quantiles read a few hundred of these rows and then only the records of the
    buckets they fall in. A row is a cell (month x type x key) with one array per column, so
    a year of a grain is hundreds of rows, not a quarter of a million. `grain` says which key
    is set (0: type only, 1: room and its site, 2: physician); a key it does not hold is 0.
    `dimension` splits a cell by a case-mix column (0: not split; 1 levels, 2 weight band, 3
    BMI band, 4 operator; `part` is its value): the Dose page's Case mix groupings. A split
    cell holds the records only (`low` and `high` empty): the unsplit cell's bounds hold for
    its parts."""

    __tablename__ = "dose_bucket"

    # the key in the order the reads narrow it: a physician's or a room's rows lie together,
    # then by month (a period), then by type
    quantity: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    grain: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    dimension: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    physician_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    room_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    month: Mapped[str] = mapped_column(String(7), primary_key=True)
    procedure_type_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    part: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    # the buckets the cell holds records in (int16, little-endian), ascending; empty: every
    # bucket of the type (0 .. its edges), the dense form of a full cell. Sparse at small
    # sizes: a split cell of a few records would otherwise be 1 KB of zeros
    buckets: Mapped[bytes] = mapped_column(LargeBinary)
    # one value per bucket held, little-endian: the records (int32), the least and the
    # greatest value (float64; +inf and -inf where a bucket is empty)
    records: Mapped[bytes] = mapped_column(LargeBinary)
    # the cell's records without a value of the quantity (their count(*) is the figures'
    # "records")
    missing: Mapped[int] = mapped_column(Integer)
    low: Mapped[bytes] = mapped_column(LargeBinary)
    high: Mapped[bytes] = mapped_column(LargeBinary)


class DoseBucketEdge(Base):
    """A quantity's bucket edges for one procedure type (the lower bounds of buckets 1..n, as
    width_bucket takes them; bucket 0 is below the first): quantiles of the type's values when
    the table was built, so each bucket holds about as many records."""

    __tablename__ = "dose_bucket_edge"

    quantity: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    procedure_type_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    edges: Mapped[list[float]] = mapped_column(ARRAY(Float).with_variant(JSON(), "sqlite"))


class DoseBucketState(Base):
    """One row: the data version and rules (the buckets' count, the rooms' KAP factors) the
    dose buckets reflect, and `base`: the rules without the rooms' factors (migration 0030),
    so that a factor's change rebuilds KAP corrected alone."""

    __tablename__ = "dose_bucket_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    data_version: Mapped[int] = mapped_column(Integer)
    rules: Mapped[int] = mapped_column(Integer)
    base: Mapped[int | None] = mapped_column(Integer)
