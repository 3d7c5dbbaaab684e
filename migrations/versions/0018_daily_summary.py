"""The per-day summary of the final records, backfilled from the records already logged.

Revision ID: 0018
Revises: 0015
Create Date: 2026-12-01

Issue 16: monthly trend charts and the p-chart count records per month; a summary per UTC day,
site, room, procedure type and physician (counts, contrast-compliance numerator and
denominator, dose sums and counts) answers them from a few thousand rows instead of every
record. audit.analytics.daily_summary keeps it current from the data version (the highest
audit event id), which `daily_summary_state` records. The existing records are summarised by
migration 0028 (one INSERT ... SELECT ... GROUP BY), so the first page after the upgrade does
not pay for it.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "daily_summary",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("room_id", sa.Integer(), nullable=False),
        sa.Column("procedure_type_id", sa.Integer(), nullable=False),
        sa.Column("physician_id", sa.Integer(), nullable=False),
        sa.Column("procedures", sa.Integer(), nullable=False),
        sa.Column("eligible", sa.Integer(), nullable=False),
        sa.Column("compliant", sa.Integer(), nullable=False),
        sa.Column("excepted", sa.Integer(), nullable=False),
        sa.Column("kap_sum", sa.Float(), nullable=True),
        sa.Column("kap_n", sa.Integer(), nullable=False),
        sa.Column("air_kerma_sum", sa.Float(), nullable=True),
        sa.Column("air_kerma_n", sa.Integer(), nullable=False),
        sa.Column("fluoro_time_sum", sa.Float(), nullable=True),
        sa.Column("fluoro_time_n", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day", "site_id", "room_id", "procedure_type_id",
                                "physician_id", name=op.f("pk_daily_summary")),
    )
    op.create_table(
        "daily_summary_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("data_version", sa.Integer(), nullable=False),
        sa.Column("rules", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_daily_summary_state")),
    )
    # The backfill is migration 0028's, where the table has its month rows: the summary's
    # code builds the table of the newest revision, not of this one.


def downgrade() -> None:
    op.drop_table("daily_summary_state")
    op.drop_table("daily_summary")
