"""The count summary (the Data quality and Complications pages' counts per day and per month)
and partial indexes of the record facts for the rare safety flags' drill-downs.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-01

Issue 16: at 5M records on PostgreSQL those pages scanned every record fact for their counts
(3.5 s for completeness and the safety flags, 4 s for the complications joined to their
records), after every filter change too. `count_summary` holds the counts per UTC day x site x
room x procedure type x physician x technologist and per month (`whole_month`);
audit.analytics.sql.count_summary keeps it at the data version `count_summary_state` records,
from the record facts. Filled here on PostgreSQL from the facts as they are, at the version
the facts reflect (the first refresh then brings both up to date); on SQLite the tables stay
empty (its figures come from the frame).
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEYS = ("site_id", "room_id", "procedure_type_id", "physician_id", "technologist_id")
COUNTS = ("records", "missing_dap", "missing_dap_documented", "missing_air_kerma",
          "with_warnings", "from_dose_report", "particulate_cervical_tfesi",
          "uptake_not_repositioned", "levels_over_limit", "pregnant", "srdl_reached",
          "with_complication", "complications", "severe", "contrast_reaction",
          "vasovagal_reaction", "dural_puncture", "nerve_injury", "hematoma", "infection",
          "other")


#: Partial indexes of the record facts for the rare safety flags' drill-downs: (name, columns,
#: the flag). At 5M records the newest 40,000 held 36 cervical particulate TFESIs, so the
#: drill read 2M records backwards for its 2,000 (5-8 s).
FLAG_INDEXES = (
    ("ix_record_fact_cervical_particulate", ["procedure_type_id", "performed_at"],
     "cervical_particulate"),
    ("ix_record_fact_uptake_not_repositioned", ["performed_at"], "uptake_not_repositioned"),
    ("ix_record_fact_pregnant", ["performed_at"], "pregnant"),
)


def upgrade() -> None:
    for name, columns, flag in FLAG_INDEXES:
        op.create_index(name, "record_fact", columns, postgresql_where=sa.text(flag))
    op.create_table(
        "count_summary",
        sa.Column("whole_month", sa.Boolean(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        *(sa.Column(name, sa.Integer(), nullable=False) for name in KEYS),
        *(sa.Column(name, sa.Integer(), nullable=False) for name in COUNTS),
        sa.PrimaryKeyConstraint("whole_month", "day", *KEYS, name=op.f("pk_count_summary")),
    )
    op.create_table(
        "count_summary_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("data_version", sa.Integer(), nullable=False),
        sa.Column("rules", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_count_summary_state")),
    )
    # The table is filled by its first refresh (audit.analytics.sql.count_summary). This
    # migration once filled it here with the application's code; that code now writes
    # columns a later migration adds (0030's `ultrasound`), and 0030 empties the state so
    # the next refresh rebuilds it anyway: a migration runs its own SQL, not today's code.


def downgrade() -> None:
    for name, _, _ in FLAG_INDEXES:
        op.drop_index(name, table_name="record_fact")
    op.drop_table("count_summary_state")
    op.drop_table("count_summary")
