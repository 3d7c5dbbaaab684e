"""Adverse events of a procedure (issue 15): recorded while logging or later, from a
controlled list with a severity. Their own table, so a complication found at follow-up is
added without amending the procedure row; never deleted: a mistaken entry is voided with a
reason and stays visible."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from audit import vocab
from audit.storage.types import Base, UTCDateTime, allowed_values, utcnow


class Complication(Base):
    __tablename__ = "complication"
    __table_args__ = (
        allowed_values("kind", vocab.ComplicationKind, nullable=False),
        allowed_values("severity", vocab.ComplicationSeverity, nullable=False),
        allowed_values("timing", vocab.ComplicationTiming, nullable=False),
        allowed_values("status", vocab.RecordStatus, nullable=False),
        CheckConstraint("kind <> 'other' OR detail IS NOT NULL", name="other_has_detail"),
        CheckConstraint("status = 'final' OR void_reason IS NOT NULL", name="void_has_reason"),
        Index(None, "procedure_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    procedure_id: Mapped[int] = mapped_column(ForeignKey("procedure.id"))
    kind: Mapped[str] = mapped_column(String(24))
    severity: Mapped[str] = mapped_column(String(12))
    detail: Mapped[str | None] = mapped_column(Text)
    timing: Mapped[str] = mapped_column(String(16))
    #: When the event was noticed (a follow-up call's date); NULL: during the procedure.
    noticed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(8), default=vocab.RecordStatus.FINAL.value)
    void_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(80))
