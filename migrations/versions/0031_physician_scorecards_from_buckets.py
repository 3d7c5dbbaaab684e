"""The Dose page's Physicians tab from the dose buckets: cells per physician and case-mix
stratum, and an index per quantity that reads one stratum's records of a physician.

Revision ID: 0031
Revises: 0030
Create Date: 2026-12-03

Issue 16: the Physicians tab took 18 s cold and 9 s after a filter change at 10M records, the
one Dose page tab still sorting every selected record. Its figures are medians of mixtures: KAP
and time per level treated (each levels count's values divided by it), a physician's median
over every procedure, and the case-mix-adjusted ratio (each record's value over its stratum's
median; stratum: procedure x levels x BMI band). They are picked exactly from the counts of a
physician's records per bucket and stratum (`dose_bucket.dimension` 5, rebuilt by the next
refresh: dose_buckets.RULES) and a read of the few buckets around each median through these
indexes (audit.analytics.sql.bucket_mixtures). The tab's counts per physician (contrast
compliance, pulsed and low-dose use) come from `count_summary`'s new columns, filled by its next
refresh (count_summary.RULES).
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0031"
down_revision: str | None = "0030"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

QUANTITIES = ("dap_gycm2", "air_kerma_mgy", "fluoro_time_s")
KEY = ["procedure_type_id", "physician_id", "n_levels", "bmi_band"]
COUNTS = ("eligible", "compliant", "excepted", "pulsed_recorded", "pulsed",
          "low_dose_recorded", "low_dose")


def upgrade() -> None:
    op.execute("DELETE FROM dose_bucket")  # rebuilt with the strata by the next refresh
    op.execute("DELETE FROM dose_bucket_state")
    for column in QUANTITIES:
        op.create_index(f"ix_record_fact_stratum_{column}", "record_fact", [*KEY, column],
                        postgresql_include=["performed_at", "site_id", "room_id"])
    op.execute("DELETE FROM count_summary_state")  # the next refresh counts the new columns
    with op.batch_alter_table("count_summary") as batch:
        for column in COUNTS:
            batch.add_column(sa.Column(column, sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("count_summary") as batch:
        for column in COUNTS:
            batch.alter_column(column, server_default=None)


def downgrade() -> None:
    op.execute("DELETE FROM count_summary_state")
    with op.batch_alter_table("count_summary") as batch:
        for column in COUNTS:
            batch.drop_column(column)
    for column in QUANTITIES:
        op.drop_index(f"ix_record_fact_stratum_{column}", table_name="record_fact")
    op.execute("DELETE FROM dose_bucket")
    op.execute("DELETE FROM dose_bucket_state")
