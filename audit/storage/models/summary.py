"""The per-day summary of the final records (audit.analytics.daily_summary keeps it current).

A cache derived entirely from audited records, like the analysis frame's file: rebuilt from the
procedure table by SQL, never edited by a person, so it records no audit event of its own;
`daily_summary_state` says which data version (highest audit event id) it reflects.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import Date, Float, Integer
from sqlalchemy.orm import Mapped, mapped_column

from audit.storage.types import Base


class DailySummary(Base):
    """Per UTC day, site, room, procedure type and physician: the final records, the
    contrast-compliance counts (audit.contrast_rule) and dose sums and counts. KAP is the
    displayed KAP: the room is part of the key, so the room-corrected sum is the sum times the
    room's factor. Medians cannot be summed: quantiles still come from the records."""

    __tablename__ = "daily_summary"

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
