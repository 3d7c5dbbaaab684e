"""Irradiation events of each dose report, and the warnings a report was imported with.

Revision ID: 0014
Revises: 0013
Create Date: 2027-03-01

Issue 13: the reader read every irradiation event (type, fluoro mode, pulse rate, kVp, tube
current, field area, DAP, Ka,r, times, angles) and dropped them, so pulsed fluoroscopy use could
only come from what a technologist typed. They are now kept, one row per event
(audit/storage/models/irradiation.py), written with their report in one transaction. The
reader is also lenient now on the units of those figures: one it does not understand is left
out with a warning, kept on the report (dose_report.warnings).

Existing reports get no events: only each file's SHA-256 was stored, not its bytes, so there is
nothing to read again. Events exist for reports imported from this version on; importing the
same files again is refused as a duplicate (same SOP instance UID), so a site that wants the
old ones' events keeps its own copies. No data is changed or seeded.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from audit.storage.types import UTCDateTime

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TYPES = "'fluoroscopy', 'stationary', 'stepping', 'rotational', 'other'"
_MODES = "'pulsed', 'continuous'"


def upgrade() -> None:
    op.add_column("dose_report", sa.Column("warnings", sa.JSON(), nullable=True))
    op.create_table(
        "irradiation_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dose_report_id", sa.Integer(), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("event_uid", sa.String(length=64), nullable=True),
        sa.Column("event_type", sa.String(length=12), nullable=True),
        sa.Column("fluoro_mode", sa.String(length=12), nullable=True),
        sa.Column("plane", sa.String(length=12), nullable=True),
        sa.Column("started_at", UTCDateTime(), nullable=True),
        sa.Column("pulse_rate_pps", sa.Float(), nullable=True),
        sa.Column("kvp", sa.Float(), nullable=True),
        sa.Column("tube_current_ma", sa.Float(), nullable=True),
        sa.Column("field_area_cm2", sa.Float(), nullable=True),
        sa.Column("dap_gycm2", sa.Float(), nullable=True),
        sa.Column("air_kerma_mgy", sa.Float(), nullable=True),
        sa.Column("exposure_time_s", sa.Float(), nullable=True),
        sa.Column("duration_s", sa.Float(), nullable=True),
        sa.Column("primary_angle_deg", sa.Float(), nullable=True),
        sa.Column("secondary_angle_deg", sa.Float(), nullable=True),
        sa.CheckConstraint(f"event_type IS NULL OR event_type IN ({_TYPES})",
                           name=op.f("ck_irradiation_event_event_type_allowed")),
        sa.CheckConstraint(f"fluoro_mode IS NULL OR fluoro_mode IN ({_MODES})",
                           name=op.f("ck_irradiation_event_fluoro_mode_allowed")),
        sa.CheckConstraint("sequence >= 1",
                           name=op.f("ck_irradiation_event_sequence_positive")),
        sa.ForeignKeyConstraint(["dose_report_id"], ["dose_report.id"],
                                name=op.f("fk_irradiation_event_dose_report_id_dose_report")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_irradiation_event")),
    )
    op.create_index(op.f("ix_irradiation_event_dose_report_id_sequence"), "irradiation_event",
                    ["dose_report_id", "sequence"], unique=True)


def downgrade() -> None:
    op.drop_index(op.f("ix_irradiation_event_dose_report_id_sequence"),
                  table_name="irradiation_event")
    op.drop_table("irradiation_event")
    with op.batch_alter_table("dose_report") as batch:
        batch.drop_column("warnings")
