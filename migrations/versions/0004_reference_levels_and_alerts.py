"""Reference levels, dose alerts and their acknowledgements; published comparison values.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21

The seeded values are written out here (docs/reference.md §4), each with its source, so this revision
means the same thing forever. The substantial radiation dose levels (docs/reference.md §9) are not
copied into reference_level: they are already settings (srdl_*, seeded by 0001 with their
sources) and the alerts read them there, so there is one value to change, not two.
"""
from collections.abc import Sequence
from datetime import UTC, date, datetime

import sqlalchemy as sa
from alembic import op

from audit.storage.types import UTCDateTime

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('reference_level',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('procedure_type_id', sa.Integer(), nullable=True),
    sa.Column('quantity', sa.String(length=16), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('statistic', sa.String(length=12), nullable=False),
    sa.Column('value', sa.Float(), nullable=False),
    sa.Column('sample_size', sa.Integer(), nullable=True),
    sa.Column('source', sa.Text(), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('effective_from', sa.Date(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.Column('created_by', sa.String(length=80), nullable=False),
    sa.Column('retired_at', UTCDateTime(), nullable=True),
    sa.Column('retired_by', sa.String(length=80), nullable=True),
    sa.Column('retired_reason', sa.Text(), nullable=True),
    sa.CheckConstraint("kind IN ('drl', 'achievable', 'typical', 'investigation', 'srdl', 'published')", name=op.f('ck_reference_level_kind_allowed')),
    sa.CheckConstraint("quantity IN ('fluoro_time_s', 'dap_gycm2', 'air_kerma_mgy')", name=op.f('ck_reference_level_quantity_allowed')),
    sa.CheckConstraint("statistic IN ('median', 'mean', 'p75', 'threshold', 'unstated')", name=op.f('ck_reference_level_statistic_allowed')),
    sa.CheckConstraint('sample_size IS NULL OR sample_size > 0', name=op.f('ck_reference_level_sample_size_positive')),
    sa.CheckConstraint('value > 0', name=op.f('ck_reference_level_value_positive')),
    sa.ForeignKeyConstraint(['procedure_type_id'], ['procedure_type.id'], name=op.f('fk_reference_level_procedure_type_id_procedure_type')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reference_level'))
    )
    with op.batch_alter_table('reference_level', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_reference_level_procedure_type_id_quantity_kind'), ['procedure_type_id', 'quantity', 'kind'], unique=False)

    op.create_table('alert',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=120), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('quantity', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('procedure_id', sa.Integer(), nullable=False),
    sa.Column('performed_at', UTCDateTime(), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('room_id', sa.Integer(), nullable=False),
    sa.Column('physician_id', sa.Integer(), nullable=False),
    sa.Column('procedure_type_id', sa.Integer(), nullable=False),
    sa.Column('value', sa.Float(), nullable=False),
    sa.Column('threshold', sa.Float(), nullable=False),
    sa.Column('threshold_source', sa.Text(), nullable=False),
    sa.Column('window_start', UTCDateTime(), nullable=True),
    sa.Column('window_end', UTCDateTime(), nullable=True),
    sa.Column('record_ids', sa.JSON(), nullable=False),
    sa.Column('evidence', sa.String(length=16), nullable=False),
    sa.Column('context', sa.String(length=16), nullable=False),
    sa.Column('detected_at', UTCDateTime(), nullable=False),
    sa.Column('updated_at', UTCDateTime(), nullable=False),
    sa.Column('withdrawn_reason', sa.Text(), nullable=True),
    sa.CheckConstraint("kind IN ('srdl', 'investigation', 'cumulative')", name=op.f('ck_alert_kind_allowed')),
    sa.CheckConstraint("quantity IN ('fluoro_time_s', 'dap_gycm2', 'air_kerma_mgy')", name=op.f('ck_alert_quantity_allowed')),
    sa.CheckConstraint("status IN ('open', 'acknowledged', 'withdrawn')", name=op.f('ck_alert_status_allowed')),
    sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], name=op.f('fk_alert_patient_id_patient')),
    sa.ForeignKeyConstraint(['procedure_id'], ['procedure.id'], name=op.f('fk_alert_procedure_id_procedure')),
    sa.ForeignKeyConstraint(['site_id'], ['site.id'], name=op.f('fk_alert_site_id_site')),
    sa.ForeignKeyConstraint(['room_id'], ['room.id'], name=op.f('fk_alert_room_id_room')),
    sa.ForeignKeyConstraint(['physician_id'], ['physician.id'], name=op.f('fk_alert_physician_id_physician')),
    sa.ForeignKeyConstraint(['procedure_type_id'], ['procedure_type.id'], name=op.f('fk_alert_procedure_type_id_procedure_type')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alert')),
    sa.UniqueConstraint('key', name=op.f('uq_alert_key'))
    )
    with op.batch_alter_table('alert', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_alert_kind_status_performed_at'), ['kind', 'status', 'performed_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_alert_kind_quantity_status_performed_at'), ['kind', 'quantity', 'status', 'performed_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_alert_patient_id'), ['patient_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_alert_procedure_id'), ['procedure_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_alert_status_performed_at'), ['status', 'performed_at'], unique=False)

    op.create_table('alert_acknowledgement',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('alert_id', sa.Integer(), nullable=False),
    sa.Column('acknowledged_at', UTCDateTime(), nullable=False),
    sa.Column('acknowledged_by', sa.String(length=80), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('patient_informed', sa.Boolean(), nullable=True),
    sa.Column('skin_check_date', sa.Date(), nullable=True),
    sa.ForeignKeyConstraint(['alert_id'], ['alert.id'], name=op.f('fk_alert_acknowledgement_alert_id_alert')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alert_acknowledgement'))
    )
    with op.batch_alter_table('alert_acknowledgement', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_alert_acknowledgement_alert_id'), ['alert_id'], unique=False)

    _seed()


_KIM = "Kim SJ, J Spinal Disord Tech 2014"
_CUSHMAN = "Cushman, Spine J 2016"
_CUSHMAN_SIJ = "Cushman, PM&R 2016"
_MCCORMICK = "McCormick, Pain Med 2016"
_CHOI = "Choi, JKMS 2016"
_ZHOU = "Zhou, Pain Physician 2005"
_T, _KAP = "fluoro_time_s", "dap_gycm2"
# Published comparison values (docs/reference.md §4): KAP in Gy·cm², time in s. kind "published":
# for comparison on the dose page, never a threshold.
# (procedure code, quantity, statistic, value, sample size, source, note, effective from)
_PUBLISHED = [
    ("TFESI", _T, "median", 29.0, 181, _KIM, "lumbosacral TFESI; range 11-161 s",
     date(2014, 1, 1)),
    ("TFESI", _KAP, "median", 0.68, 181, _KIM, "lumbosacral TFESI; range 0.03-10.5 Gy·cm²",
     date(2014, 1, 1)),
    ("CAUDAL", _T, "median", 13.0, 47, _KIM, "caudal ESI; range 4-78 s", date(2014, 1, 1)),
    ("CAUDAL", _KAP, "median", 0.55, 47, _KIM, "caudal ESI", date(2014, 1, 1)),
    ("TFESI", _T, "mean", 30.0, 1548, _CUSHMAN,
     "lumbar TFESI, 2443 injections in 1548 patients; SD 17.5 s", date(2016, 1, 1)),
    ("TFESI", _KAP, "mean", 2.16, 1548, _CUSHMAN,
     "lumbar TFESI; by BMI category 1.38 / 1.91 / 3.03 Gy·cm²", date(2016, 1, 1)),
    ("SIJ", _KAP, "median", 1.67, 453, _CUSHMAN_SIJ,
     "middle BMI category; 1.21 / 1.67 / 2.09 Gy·cm² by BMI", date(2016, 1, 1)),
    ("ILESI", _T, "mean", 18.0, 366, _MCCORMICK, "cervical ILESI; SD 10 s", date(2016, 1, 1)),
    ("MBB", _T, "unstated", 6.0, 268, _CHOI,
     "lumbar root, MBB and facet blocks, physician operating the C-arm", date(2016, 1, 1)),
    ("MBB", _KAP, "unstated", 0.59, 268, _CHOI,
     "lumbar root, MBB and facet blocks, physician operating the C-arm", date(2016, 1, 1)),
    ("MBB", _T, "unstated", 72.0, 268, _CHOI,
     "lumbar root, MBB and facet blocks, radiographer operating the C-arm", date(2016, 1, 1)),
    ("MBB", _KAP, "unstated", 5.31, 268, _CHOI,
     "lumbar root, MBB and facet blocks, radiographer operating the C-arm", date(2016, 1, 1)),
    ("FACET", _T, "unstated", 6.0, 268, _CHOI,
     "lumbar root, MBB and facet blocks, physician operating the C-arm", date(2016, 1, 1)),
    ("FACET", _KAP, "unstated", 0.59, 268, _CHOI,
     "lumbar root, MBB and facet blocks, physician operating the C-arm", date(2016, 1, 1)),
    ("FACET", _T, "unstated", 72.0, 268, _CHOI,
     "lumbar root, MBB and facet blocks, radiographer operating the C-arm", date(2016, 1, 1)),
    ("FACET", _KAP, "unstated", 5.31, 268, _CHOI,
     "lumbar root, MBB and facet blocks, radiographer operating the C-arm", date(2016, 1, 1)),
    ("TFESI", _T, "mean", 46.6, None, _ZHOU, "epidural steroid injections (all approaches)",
     date(2005, 1, 1)),
    ("ILESI", _T, "mean", 46.6, None, _ZHOU, "epidural steroid injections (all approaches)",
     date(2005, 1, 1)),
    ("CAUDAL", _T, "mean", 46.6, None, _ZHOU, "epidural steroid injections (all approaches)",
     date(2005, 1, 1)),
    ("FACET", _T, "mean", 81.5, None, _ZHOU, "facet injections", date(2005, 1, 1)),
    ("SYMPATHETIC", _T, "mean", 64.4, None, _ZHOU, "sympathetic blocks", date(2005, 1, 1)),
    ("SIJ", _T, "mean", 50.6, None, _ZHOU, "sacroiliac joint injections", date(2005, 1, 1)),
    ("DISCOGRAPHY", _T, "mean", 146.8, None, _ZHOU, "discography", date(2005, 1, 1)),
]


def _seed() -> None:
    procedure_type = sa.table("procedure_type", sa.column("id"), sa.column("code"))
    reference_level = sa.table(
        "reference_level",
        *(sa.column(c) for c in ("procedure_type_id", "quantity", "kind", "statistic", "value",
                                 "sample_size", "source", "note", "active", "created_by")),
        sa.column("effective_from", sa.Date()),
        sa.column("created_at", UTCDateTime()),
    )
    now = datetime.now(UTC)
    for code, quantity, statistic, value, n, source, note, effective in _PUBLISHED:
        type_id = (sa.select(procedure_type.c.id).where(procedure_type.c.code == code)
                   .scalar_subquery())
        op.execute(reference_level.insert().values(
            procedure_type_id=type_id, quantity=quantity, kind="published", statistic=statistic,
            value=value, sample_size=n, source=source, note=note, effective_from=effective,
            active=True, created_at=now, created_by="system"))



def downgrade() -> None:
    with op.batch_alter_table('alert_acknowledgement', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_alert_acknowledgement_alert_id'))

    op.drop_table('alert_acknowledgement')
    with op.batch_alter_table('alert', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_alert_status_performed_at'))
        batch_op.drop_index(batch_op.f('ix_alert_procedure_id'))
        batch_op.drop_index(batch_op.f('ix_alert_patient_id'))
        batch_op.drop_index(batch_op.f('ix_alert_kind_status_performed_at'))
        batch_op.drop_index(batch_op.f('ix_alert_kind_quantity_status_performed_at'))

    op.drop_table('alert')
    with op.batch_alter_table('reference_level', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_reference_level_procedure_type_id_quantity_kind'))

    op.drop_table('reference_level')
