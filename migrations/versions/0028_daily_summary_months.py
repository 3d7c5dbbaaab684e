"""The daily summary keeps month rows too (`whole_month`), as the count summary does.

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-02

Issue 16: the Compliance page reads the daily summary twice after every filter change (the
rates by site x room x procedure x physician, the p-chart by month). At 10M records a year is
146,000 day rows, and the two reads took 60-122 ms each of the 0.3 s the page may take. A month
row per key (the sum of the month's day rows, `whole_month` true, `day` the month's first day)
lets a period read its whole months as a few thousand rows (audit.analytics.daily_summary:
`insert_months`, `period_rows`). The month rows are summed here from the day rows as they are,
at the version the summary reflects; where the summary was never built (no state row), it is
built here, so the first page after the upgrade does not pay for it.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0028"
down_revision: str | None = "0027"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEYS = ["site_id", "room_id", "procedure_type_id", "physician_id"]


def upgrade() -> None:
    with op.batch_alter_table("daily_summary", recreate="auto") as batch:
        batch.add_column(sa.Column("whole_month", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
    with op.batch_alter_table("daily_summary", recreate="always") as batch:
        batch.drop_constraint("pk_daily_summary", type_="primary")
        batch.create_primary_key("pk_daily_summary", ["whole_month", "day", *KEYS])
        batch.alter_column("whole_month", server_default=None, existing_type=sa.Boolean(),
                           existing_nullable=False)
    from audit.analytics.daily_summary import _KEYS, _SUMS, RULES, insert_months, rebuild
    from audit.storage.models import DailySummary

    bind = op.get_bind()
    state = bind.execute(sa.text("SELECT data_version FROM daily_summary_state WHERE id = 1"))
    if state.scalar() is None:  # never built (see 0018): build it at the version read first
        head = bind.execute(sa.text("SELECT max(id) FROM audit_event")).scalar() or 0
        rebuild(bind)
        bind.execute(sa.text("INSERT INTO daily_summary_state (id, data_version, rules) "
                             "VALUES (1, :v, :r)"), {"v": int(head), "r": RULES})
    else:
        insert_months(bind, None, DailySummary, _KEYS, _SUMS)


def downgrade() -> None:
    op.execute(sa.text("DELETE FROM daily_summary WHERE whole_month"))
    with op.batch_alter_table("daily_summary", recreate="always") as batch:
        batch.drop_constraint("pk_daily_summary", type_="primary")
        batch.create_primary_key("pk_daily_summary", ["day", *KEYS])
        batch.drop_column("whole_month")
