"""Figure results shared by every app process (audit.analytics.sql.shared keeps them).

A cache, like the daily summary: each row is a figure computed from audited records at one
figures version (audit.analytics.figure_changes), so it records no audit event of its own, and
rows of older versions are deleted (pruned): "no hard deletes" is about clinical records, and a
deleted row is only computed again. A row is trusted only if its MAC verifies under a key derived
from the site's key ring (kept outside the database), so whoever can write this table cannot
make an app process unpickle a payload of their choosing.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from audit.storage.types import Base, UTCDateTime


class FigureResult(Base):
    """One figure at one figures version: the key's SHA-256, the pickled result and its
    HMAC-SHA-256, the public call that asked for it (the warmer replays it after the version
    moves), when and in how many seconds it was computed, and when a person (not the warmer)
    last asked for it."""

    __tablename__ = "figure_result"

    figures_version: Mapped[int] = mapped_column(Integer, primary_key=True)
    key_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    mac: Mapped[str] = mapped_column(String(64))
    recipe: Mapped[str | None] = mapped_column(Text)  # canonical JSON, under the MAC
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    seconds: Mapped[float] = mapped_column(Float)
    asked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
