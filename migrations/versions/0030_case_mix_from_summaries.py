"""The Dose page's Case mix and Over time tabs from the summaries: the dose buckets split by
case mix, with the records without a value; the count summary's radiation-free count.

Revision ID: 0030
Revises: 0029
Create Date: 2026-12-02

Issue 16: the Dose page's Case mix and Over time tabs took 10-11 s after a filter change at 10M
records (a percentile_cont per grouping sorts every selected record), against 0.3 s. They group
by procedure and by month, levels, weight band, BMI band or operator. `dose_bucket` gets
`dimension` and `part` (a cell split by one of those columns, its value), and `missing` (the
cell's records without the quantity's value: the figures' records count them) and `buckets`
(the buckets a sparse cell holds: a split cell of a few records would be 1 KB of zeros); the record
facts' bucket indexes carry those columns too, so phase 2 reads one part's records of a bucket
from the index (audit.analytics.sql.bucket_groups). The rows are rebuilt by the next refresh
(dose_buckets.RULES): the old ones are dropped here. The tab's share of injections done
without radiation (1 s at 10M, a scan) is a count: `count_summary` gets `ultrasound`, filled by
its next refresh (count_summary.RULES). `dose_bucket_state.base` keeps the buckets' rules
without the rooms' KAP factors, so a factor's change rebuilds KAP corrected alone (335 s for
every quantity at 10M).
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0030"
down_revision: str | None = "0029"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

QUANTITIES = ("dap_gycm2", "air_kerma_mgy", "fluoro_time_s")
BEFORE = ["performed_at", "site_id", "room_id", "physician_id"]
AFTER = [*BEFORE, "month", "n_levels", "weight_band", "bmi_band", "operator"]
KEY = ["quantity", "grain", "physician_id", "room_id", "site_id", "month", "procedure_type_id"]


def _indexes(include: list[str]) -> None:
    for column in QUANTITIES:
        op.drop_index(f"ix_record_fact_type_{column}", table_name="record_fact")
        op.create_index(f"ix_record_fact_type_{column}", "record_fact",
                        ["procedure_type_id", column], postgresql_include=include)


def upgrade() -> None:
    # the rows of the old shape mean nothing under the new key: the next refresh builds them
    op.execute("DELETE FROM dose_bucket")
    op.execute("DELETE FROM dose_bucket_state")
    with op.batch_alter_table("dose_bucket") as batch:
        batch.add_column(sa.Column("dimension", sa.SmallInteger(), nullable=False,
                                   server_default="0"))
        batch.add_column(sa.Column("part", sa.SmallInteger(), nullable=False,
                                   server_default="0"))
        batch.add_column(sa.Column("missing", sa.Integer(), nullable=False,
                                   server_default="0"))
        batch.add_column(sa.Column("buckets", sa.LargeBinary(), nullable=False,
                                   server_default=""))
        batch.drop_constraint("pk_dose_bucket", type_="primary")
        batch.create_primary_key("pk_dose_bucket", ["quantity", "grain", "dimension",
                                                    *KEY[2:], "part"])
    with op.batch_alter_table("dose_bucket") as batch:
        for column in ("dimension", "part", "missing", "buckets"):
            batch.alter_column(column, server_default=None)
    _indexes(AFTER)
    with op.batch_alter_table("dose_bucket_state") as batch:
        batch.add_column(sa.Column("base", sa.Integer(), nullable=True))
    op.execute("DELETE FROM count_summary_state")  # the next refresh counts the new column
    with op.batch_alter_table("count_summary") as batch:
        batch.add_column(sa.Column("ultrasound", sa.Integer(), nullable=False,
                                   server_default="0"))
    with op.batch_alter_table("count_summary") as batch:
        batch.alter_column("ultrasound", server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("dose_bucket_state") as batch:
        batch.drop_column("base")
    op.execute("DELETE FROM count_summary_state")
    with op.batch_alter_table("count_summary") as batch:
        batch.drop_column("ultrasound")
    op.execute("DELETE FROM dose_bucket")
    op.execute("DELETE FROM dose_bucket_state")
    with op.batch_alter_table("dose_bucket") as batch:
        batch.drop_constraint("pk_dose_bucket", type_="primary")
        batch.drop_column("buckets")
        batch.drop_column("missing")
        batch.drop_column("part")
        batch.drop_column("dimension")
        batch.create_primary_key("pk_dose_bucket", KEY)
    _indexes(BEFORE)
