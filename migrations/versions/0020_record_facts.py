"""The record facts: one narrow row of derived columns per final record, for the SQL figures.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-01

Issue 16: on PostgreSQL every SQL figure read the wide procedure rows and counted the treated
levels of every record (a hash aggregate over the whole procedure_level table) whatever the
filters. `record_fact` holds each final record's derived columns once (ids, instant, month,
quantities, bands, the count of treated levels, the record's parts of the contrast rule and
safety flags); audit.analytics.sql.facts keeps it at the data version `record_fact_state`
records. Filled here on PostgreSQL (one INSERT ... SELECT), so the first page after the upgrade
does not pay for it; on SQLite the table stays empty (its figures come from the frame).
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from audit.storage.types import UTCDateTime

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "record_fact",
        sa.Column("performed_at", UTCDateTime(), nullable=False),
        *(sa.Column(name, sa.Float(), nullable=True)
          for name in ("fluoro_time_s", "dap_gycm2", "air_kerma_mgy", "weight_kg", "bmi")),
        *(sa.Column(name, sa.Integer(), nullable=False)
          for name in ("procedure_id", "site_id", "room_id", "physician_id", "technologist_id",
                       "patient_id", "procedure_type_id")),
        *(sa.Column(name, sa.SmallInteger(), nullable=False)
          for name in ("n_levels", "weight_band", "bmi_band", "operator", "saved_images",
                       "n_views")),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("contrast_confirmation", sa.String(length=16), nullable=False),
        *(sa.Column(name, sa.Boolean(), nullable=name in ("pulsed_fluoro", "low_dose_mode"))
          for name in ("ultrasound", "exception_documented", "realtime_contrast",
                       "pulsed_fluoro", "low_dose_mode", "dap_missing_documented",
                       "with_warnings", "from_dose_report", "cervical_particulate",
                       "uptake_not_repositioned", "pregnant")),
        sa.PrimaryKeyConstraint("procedure_id", name=op.f("pk_record_fact")),
    )
    op.create_index(op.f("ix_record_fact_performed_at"), "record_fact", ["performed_at"])
    op.create_table(
        "record_fact_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("data_version", sa.Integer(), nullable=False),
        sa.Column("rules", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_record_fact_state")),
    )
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    # the backfill: the same INSERT ... SELECT the refresh runs, at the data version read first
    from audit.analytics.sql.facts import RULES, rebuild

    head = bind.execute(sa.text("SELECT max(id) FROM audit_event")).scalar() or 0
    rebuild(bind)
    bind.execute(sa.text("INSERT INTO record_fact_state (id, data_version, rules) "
                         "VALUES (1, :v, :r)"), {"v": int(head), "r": RULES})


def downgrade() -> None:
    op.drop_table("record_fact_state")
    op.drop_index(op.f("ix_record_fact_performed_at"), table_name="record_fact")
    op.drop_table("record_fact")
