"""The DICOM network side of the schema: what the receiver got and whether it is listening.

Two tables, both written by audit.dicom_net.status (migration 0013):

- ``dicom_receipt``: one row per object received (C-STORE to `fluoro-audit receive`, or
  retrieved by `fluoro-audit fetch`) and per association refused, with the calling AE title,
  the peer's address, the SOP instance UID, the outcome and its reason. Never updated or
  deleted: it is the receiving log the Dose reports page shows, each row audited.
- ``dicom_listener``: one row per start of the receiver. ``heartbeat_at`` is refreshed while it
  listens and ``stopped_at`` set on a clean stop, so the page can say "listening" (a recent
  heartbeat, no stop) without reaching the receiver's port.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from audit.storage.types import Base, UTCDateTime, utcnow


class DicomReceipt(Base):
    """One object received or one association refused, with its outcome.

    ``outcome``: imported, duplicate, rejected (the importer refused the object: ``reason``),
    or refused (the association was refused: not on the allow list). ``dicom_status`` is the
    status answered to the sender (0 success; None for a refused association or a fetch).
    ``via`` is ``receive`` or ``fetch``.
    """

    __tablename__ = "dicom_receipt"
    __table_args__ = (Index(None, "received_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    via: Mapped[str] = mapped_column(String(16))
    calling_ae: Mapped[str | None] = mapped_column(String(16))
    peer_address: Mapped[str | None] = mapped_column(String(64))
    sop_instance_uid: Mapped[str | None] = mapped_column(String(64))
    sop_class_uid: Mapped[str | None] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16))
    dicom_status: Mapped[int | None] = mapped_column(Integer)
    reason: Mapped[str | None] = mapped_column(Text)
    file_name: Mapped[str | None] = mapped_column(String(255))
    dose_report_id: Mapped[int | None] = mapped_column(ForeignKey("dose_report.id"))


class DicomListener(Base):
    """One start of `fluoro-audit receive`: where it listened and its last sign of life."""

    __tablename__ = "dicom_listener"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ae_title: Mapped[str] = mapped_column(String(16))
    port: Mapped[int] = mapped_column(Integer)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    tls: Mapped[bool] = mapped_column(Boolean, default=False)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
