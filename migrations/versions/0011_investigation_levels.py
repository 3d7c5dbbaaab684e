"""Investigation levels a person can act on: the settings of the percentile rule.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30

Until now an investigation alert was any record at or above 3x the local median of its type
(setting investigation_factor). On realistic data that raised about 24 alerts per 100
procedures, too many to review, so alerts were acknowledged unread. The level is now the local 99th
percentile of the type's records (investigation_percentile), never below investigation_factor
x their median, and only from investigation_min_records records with the quantity
(docs/reference.md §10). Both new settings are seeded here with their sources, only where absent;
the source of investigation_factor is reworded to its new role only where it still reads as
seeded (an administrator's own source text is kept). The stored alerts are recomputed at the
next refresh (audit.alerts.detection.RULES_VERSION), which withdraws those no longer met.
"""
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from audit.storage.types import UTCDateTime

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_setting = sa.table("setting", sa.column("key", sa.String), sa.column("value", sa.JSON),
                    sa.column("source", sa.Text), sa.column("updated_at", UTCDateTime()),
                    sa.column("updated_by", sa.String))

SETTINGS = [
    ("investigation_percentile", 99,
     "local QA choice: the investigation level is the local 99th percentile of the procedure "
     "type's records, about 1 record in 100 per quantity (no standard sets a per-case "
     "investigation level; ICRP 135 reference levels compare medians, not single cases)"),
    ("investigation_min_records", 100,
     "local QA choice: no investigation level from local data before 100 records of the type "
     "have the quantity (a 99th percentile of fewer is the largest record or two); the NCRP "
     "Report 168 / SIR 2009 substantial-dose levels apply from the first record"),
]
FACTOR = "investigation_factor"
OLD_FACTOR_SOURCE = "local policy (default 3x the local median)"
NEW_FACTOR_SOURCE = ("local policy: the investigation level is never below this many times the "
                     "local median of the procedure type (floor under investigation_percentile)")


def upgrade() -> None:
    bind = op.get_bind()
    present = set(bind.execute(sa.select(_setting.c.key).where(
        _setting.c.key.in_([key for key, _, _ in SETTINGS]))).scalars())
    now = datetime.now(UTC)
    rows = [{"key": key, "value": value, "source": source, "updated_at": now,
             "updated_by": "system"} for key, value, source in SETTINGS if key not in present]
    if rows:
        op.bulk_insert(_setting, rows)
    bind.execute(sa.update(_setting).where(_setting.c.key == FACTOR,
                                           _setting.c.source == OLD_FACTOR_SOURCE)
                 .values(source=NEW_FACTOR_SOURCE))


def downgrade() -> None:
    bind = op.get_bind()
    bind.execute(sa.delete(_setting).where(_setting.c.key.in_([key for key, _, _ in SETTINGS])))
    bind.execute(sa.update(_setting).where(_setting.c.key == FACTOR,
                                           _setting.c.source == NEW_FACTOR_SOURCE)
                 .values(source=OLD_FACTOR_SOURCE))
