"""Seed the duplicate_window_minutes setting: how close in time a second record of the same
patient and procedure type asks "duplicate?".

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02

The same patient, procedure and minute was saved twice from the form and twice from the command
line (issue 11). A record of the same patient and procedure type within this many minutes of a
final record is now a warning to confirm, naming the earlier record. 30 minutes is local policy:
longer than the time between entering a case and noticing it was already entered, shorter than
a second procedure of the same type on the same patient the same day (rare, and then it is
confirmed). The row is seeded only if absent, and written out literally so the revision never
changes. No index is added: the check looks up one patient's records in a time range, which the
existing (patient_id, performed_at) index answers.
"""
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from audit.storage.types import UTCDateTime

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DUPLICATE_WINDOW = (
    "duplicate_window_minutes", 30,
    "local policy: a record of the same patient and procedure type within this many minutes of "
    "a final record asks 'duplicate?' before saving (0 turns the check off)",
)


def upgrade() -> None:
    key, value, source = DUPLICATE_WINDOW
    bind = op.get_bind()
    exists = bind.execute(sa.text("SELECT 1 FROM setting WHERE key = :k"), {"k": key}).first()
    if exists:
        return
    setting = sa.table(
        "setting", sa.column("key"), sa.column("value", sa.JSON), sa.column("source"),
        sa.column("updated_at", UTCDateTime()), sa.column("updated_by"),
    )
    op.bulk_insert(setting, [{"key": key, "value": value, "source": source,
                              "updated_at": datetime.now(UTC), "updated_by": "system"}])


def downgrade() -> None:
    op.execute(sa.text("DELETE FROM setting WHERE key = 'duplicate_window_minutes'"))
