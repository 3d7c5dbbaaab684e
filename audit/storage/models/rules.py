"""Practice rules (issue 15, part B): the rule packs and each procedure's follow-ups.

A rule pack (`rule_pack`) is a set of coverage or safety rules from one source (a Medicare LCD,
the 2015 multisociety safeguards), with its citation, the dates it is in force, whether the
site checks it and its parameters as JSON; an administrator switches it or changes a parameter
(audited; audit.rules.store). A follow-up (`follow_up`) records a procedure's outcome later:
the percent relief and how long it lasted, which the repeat rules read. Never deleted.
The stored findings (`rule_finding`) are a cache of the rules' verdicts on every final record,
kept at the data version like the record facts.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from audit.storage.types import Base, UTCDateTime, utcnow


class FollowUp(Base):
    __tablename__ = "follow_up"
    __table_args__ = (
        CheckConstraint("relief_percent >= 0 AND relief_percent <= 100", name="relief_range"),
        CheckConstraint("relief_days >= 0 AND relief_days <= 3650", name="relief_days_range"),
        Index(None, "procedure_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    procedure_id: Mapped[int] = mapped_column(ForeignKey("procedure.id"))
    #: The day the outcome was asked (a clinic visit or a call), not before the procedure.
    followed_up_on: Mapped[date] = mapped_column(Date)
    #: Pain relief from the procedure, percent (0-100).
    relief_percent: Mapped[int] = mapped_column(Integer)
    #: How long the relief lasted (or has lasted so far), days.
    relief_days: Mapped[int] = mapped_column(Integer)
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(80))


class RulePack(Base):
    __tablename__ = "rule_pack"

    key: Mapped[str] = mapped_column(String(32), primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    #: The citation: LCD and article numbers, or the paper.
    source: Mapped[str] = mapped_column(Text)
    effective_from: Mapped[date | None] = mapped_column(Date)
    effective_to: Mapped[date | None] = mapped_column(Date)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    #: {parameter: value}; the allowed range of each is in audit.rules.packs.
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(80), default="system")


class RuleFinding(Base):
    """One finding of the practice rules: a final record and a rule that applies to it, met or
    not (audit.rules.findings_store keeps it, PostgreSQL only), with the record's keys copied
    so the Coverage page's counts are one GROUP BY of this table (issue 16). Rebuilt, never
    edited by hand: `fluoro-audit db rebuild-facts` recomputes it."""

    __tablename__ = "rule_finding"
    __table_args__ = (
        Index(None, "patient_id"),
        Index(None, "performed_at"),
        # the newest exceptions of a rule (the page lists 1,000 of each), and of a rule for a
        # physician or a room (small: exceptions only; without them a physician's newest read
        # the rule's exceptions of everyone, 1-1.5 s at 5M records)
        Index("ix_rule_finding_exceptions", "rule", "performed_at", "record_id",
              postgresql_where=text("exception")),
        Index("ix_rule_finding_physician_exceptions", "physician_id", "rule", "performed_at",
              postgresql_where=text("exception")),
        Index("ix_rule_finding_room_exceptions", "room_id", "rule", "performed_at",
              postgresql_where=text("exception")),
    )

    record_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rule: Mapped[str] = mapped_column(String(40), primary_key=True)
    #: The record did not meet the rule.
    exception: Mapped[bool] = mapped_column(Boolean)
    message: Mapped[str | None] = mapped_column(Text)
    patient_id: Mapped[int] = mapped_column(Integer)
    performed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: The first day of performed_at's UTC month (the report's by-month key).
    month: Mapped[date] = mapped_column(Date)
    site_id: Mapped[int] = mapped_column(Integer)
    room_id: Mapped[int] = mapped_column(Integer)
    procedure_type_id: Mapped[int] = mapped_column(Integer)
    physician_id: Mapped[int] = mapped_column(Integer)
    technologist_id: Mapped[int] = mapped_column(Integer)


class RuleFindingCount(Base):
    """The stored findings counted per UTC day, site, room, procedure type, physician and rule,
    and the same per month (`whole_month`: the month's first day, the sum of its days), so the
    report of a period of whole days reads a few thousand rows, not every finding. No
    technologist key (ten times the rows): a technologist filter counts `rule_finding`."""

    __tablename__ = "rule_finding_count"

    whole_month: Mapped[bool] = mapped_column(Boolean, primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    site_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    room_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    procedure_type_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    physician_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rule: Mapped[str] = mapped_column(String(40), primary_key=True)
    eligible: Mapped[int] = mapped_column(Integer)
    exceptions: Mapped[int] = mapped_column(Integer)


class RuleFindingState(Base):
    """One row: the data version and the rules (packs, parameters, dates, the catalog's codes
    the rules read) the stored findings reflect."""

    __tablename__ = "rule_finding_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    data_version: Mapped[int] = mapped_column(Integer)
    rules: Mapped[int] = mapped_column(Integer)
