"""Dose reports from the C-arm (RDSR) and their reconciliation with the log.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21

dose_report holds one row per imported SOP instance; dose_discrepancy the manual values that
disagree with a linked report. The site_timezone setting is seeded here (only if absent): a
dose report without a UTC offset is read in it, and matching a report to the log by day uses
the site's calendar day. Seed rows are written out literally so the revision never changes.
"""
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from audit.storage.types import UTCDateTime

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('dose_report',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('sop_instance_uid', sa.String(length=64), nullable=False),
    sa.Column('sop_class_uid', sa.String(length=64), nullable=False),
    sa.Column('study_instance_uid', sa.String(length=64), nullable=False),
    sa.Column('accession_number', sa.String(length=64), nullable=True),
    sa.Column('patient_id', sa.String(length=64), nullable=True),
    sa.Column('patient_ref', sa.String(length=64), nullable=True),
    sa.Column('study_datetime', UTCDateTime(), nullable=True),
    sa.Column('study_day', sa.Date(), nullable=True),
    sa.Column('manufacturer', sa.String(length=120), nullable=True),
    sa.Column('model', sa.String(length=120), nullable=True),
    sa.Column('serial', sa.String(length=120), nullable=True),
    sa.Column('planes', sa.JSON(), nullable=False),
    sa.Column('dap_total_gycm2', sa.Float(), nullable=True),
    sa.Column('fluoro_dap_gycm2', sa.Float(), nullable=True),
    sa.Column('acquisition_dap_gycm2', sa.Float(), nullable=True),
    sa.Column('fluoro_time_s', sa.Float(), nullable=True),
    sa.Column('acquisition_time_s', sa.Float(), nullable=True),
    sa.Column('air_kerma_total_mgy', sa.Float(), nullable=True),
    sa.Column('fluoro_air_kerma_mgy', sa.Float(), nullable=True),
    sa.Column('acquisition_air_kerma_mgy', sa.Float(), nullable=True),
    sa.Column('frames', sa.Integer(), nullable=True),
    sa.Column('events', sa.Integer(), nullable=False),
    sa.Column('fluoro_events', sa.Integer(), nullable=False),
    sa.Column('acquisition_events', sa.Integer(), nullable=False),
    sa.Column('pulsed_fluoro_share', sa.Float(), nullable=True),
    sa.Column('max_pulse_rate_pps', sa.Float(), nullable=True),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('superseded_by_id', sa.Integer(), nullable=True),
    sa.Column('procedure_id', sa.Integer(), nullable=True),
    sa.Column('match_rule', sa.String(length=24), nullable=True),
    sa.Column('filled_fields', sa.JSON(), nullable=True),
    sa.Column('source_file', sa.String(length=255), nullable=False),
    sa.Column('source_sha256', sa.String(length=64), nullable=False),
    sa.Column('imported_at', UTCDateTime(), nullable=False),
    sa.Column('imported_by', sa.String(length=80), nullable=False),
    sa.CheckConstraint("status IN ('current', 'superseded')", name=op.f('ck_dose_report_status_allowed')),
    sa.CheckConstraint('events >= 0', name=op.f('ck_dose_report_events_nonnegative')),
    sa.ForeignKeyConstraint(['procedure_id'], ['procedure.id'], name=op.f('fk_dose_report_procedure_id_procedure')),
    sa.ForeignKeyConstraint(['superseded_by_id'], ['dose_report.id'], name=op.f('fk_dose_report_superseded_by_id_dose_report')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dose_report')),
    sa.UniqueConstraint('sop_instance_uid', name=op.f('uq_dose_report_sop_instance_uid'))
    )
    with op.batch_alter_table('dose_report', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dose_report_accession_number'), ['accession_number'], unique=False)
        batch_op.create_index(batch_op.f('ix_dose_report_procedure_id'), ['procedure_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_dose_report_status_study_day'), ['status', 'study_day'], unique=False)
        batch_op.create_index(batch_op.f('ix_dose_report_study_instance_uid'), ['study_instance_uid'], unique=False)

    op.create_table('dose_discrepancy',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('dose_report_id', sa.Integer(), nullable=False),
    sa.Column('procedure_id', sa.Integer(), nullable=False),
    sa.Column('field', sa.String(length=16), nullable=False),
    sa.Column('manual_value', sa.Float(), nullable=False),
    sa.Column('report_value', sa.Float(), nullable=False),
    sa.Column('relative_difference', sa.Float(), nullable=True),
    sa.Column('tolerance', sa.Float(), nullable=False),
    sa.Column('likely_cause', sa.Text(), nullable=True),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.Column('reviewed_at', UTCDateTime(), nullable=True),
    sa.Column('reviewed_by', sa.String(length=80), nullable=True),
    sa.Column('review_note', sa.Text(), nullable=True),
    sa.CheckConstraint("field IN ('dap_gycm2', 'air_kerma_mgy', 'fluoro_time_s')", name=op.f('ck_dose_discrepancy_field_allowed')),
    sa.CheckConstraint("status IN ('open', 'reviewed', 'superseded')", name=op.f('ck_dose_discrepancy_status_allowed')),
    sa.ForeignKeyConstraint(['dose_report_id'], ['dose_report.id'], name=op.f('fk_dose_discrepancy_dose_report_id_dose_report')),
    sa.ForeignKeyConstraint(['procedure_id'], ['procedure.id'], name=op.f('fk_dose_discrepancy_procedure_id_procedure')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dose_discrepancy')),
    sa.UniqueConstraint('dose_report_id', 'procedure_id', 'field', name=op.f('uq_dose_discrepancy_dose_report_id_procedure_id_field'))
    )
    with op.batch_alter_table('dose_discrepancy', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dose_discrepancy_procedure_id'), ['procedure_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_dose_discrepancy_status'), ['status'], unique=False)

    _seed_setting()


SITE_TIMEZONE = (
    "site_timezone", "UTC",
    "IANA time zone of the site and its C-arm clocks (e.g. America/New_York): dose reports "
    "without a UTC offset are read in it, and reports match the log by the site's calendar day",
)


def _seed_setting() -> None:
    key, value, source = SITE_TIMEZONE
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
    op.execute(sa.text("DELETE FROM setting WHERE key = 'site_timezone'"))
    with op.batch_alter_table('dose_discrepancy', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dose_discrepancy_status'))
        batch_op.drop_index(batch_op.f('ix_dose_discrepancy_procedure_id'))

    op.drop_table('dose_discrepancy')
    with op.batch_alter_table('dose_report', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dose_report_study_instance_uid'))
        batch_op.drop_index(batch_op.f('ix_dose_report_status_study_day'))
        batch_op.drop_index(batch_op.f('ix_dose_report_procedure_id'))
        batch_op.drop_index(batch_op.f('ix_dose_report_accession_number'))

    op.drop_table('dose_report')
