"""The practice's name, contact and where images are kept: the patient letter's settings.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-01

The patient letter (issue 14) names the practice, how to reach it, and where the patient's
images are kept and how to ask for them. Those are site facts, not figures, so they are seeded
empty with a source saying who sets them; the letter uses general words while they are empty.
Seeded only where absent (an upgrade keeps what a site set by hand).
"""
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from audit.storage.types import UTCDateTime

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_setting = sa.table("setting", sa.column("key", sa.String), sa.column("value", sa.JSON),
                    sa.column("source", sa.Text), sa.column("updated_at", UTCDateTime()),
                    sa.column("updated_by", sa.String))

SETTINGS = [
    ("practice_name", "",
     "local: the practice's name as patients know it, printed at the top of the patient letter"),
    ("practice_contact", "",
     "local: the practice's address, telephone and e-mail for patients, printed on the letter"),
    ("images_held_at", "",
     "local: where the patient's images are kept and how to ask for a copy, in words for the "
     "patient letter"),
]


def upgrade() -> None:
    bind = op.get_bind()
    present = set(bind.execute(sa.select(_setting.c.key).where(
        _setting.c.key.in_([key for key, _, _ in SETTINGS]))).scalars())
    now = datetime.now(UTC)
    rows = [{"key": key, "value": value, "source": source, "updated_at": now,
             "updated_by": "system"} for key, value, source in SETTINGS if key not in present]
    if rows:
        op.bulk_insert(_setting, rows)


def downgrade() -> None:
    op.get_bind().execute(sa.delete(_setting).where(
        _setting.c.key.in_([key for key, _, _ in SETTINGS])))
