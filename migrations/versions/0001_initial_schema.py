"""Initial schema and seed data: the procedure catalog and the default settings.

Revision ID: 0001
Revises:
Create Date: 2026-11-21

The seed rows are written out here, not imported from the application, so this revision means
the same thing forever; later catalog changes get revisions of their own.
"""
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from audit.storage.types import UTCDateTime

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('audit_event',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('occurred_at', UTCDateTime(), nullable=False),
    sa.Column('actor', sa.String(length=80), nullable=False),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('entity', sa.String(length=40), nullable=False),
    sa.Column('entity_id', sa.String(length=64), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('before', sa.JSON(), nullable=True),
    sa.Column('after', sa.JSON(), nullable=True),
    sa.Column('prev_hash', sa.String(length=64), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.CheckConstraint("action IN ('create', 'amend', 'void', 'import', 'export', 'login', 'login_failed', 'logout', 'setting', 'bulk_create', 'deactivate', 'acknowledge')", name=op.f('ck_audit_event_action_allowed')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_event')),
    sa.UniqueConstraint('hash', name=op.f('uq_audit_event_hash'))
    )
    with op.batch_alter_table('audit_event', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_event_entity_entity_id'), ['entity', 'entity_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_event_occurred_at'), ['occurred_at'], unique=False)

    op.create_table('patient',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('mrn', sa.String(length=64), nullable=False),
    sa.Column('pseudonym', sa.String(length=64), nullable=False),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_patient')),
    sa.UniqueConstraint('mrn', name=op.f('uq_patient_mrn')),
    sa.UniqueConstraint('pseudonym', name=op.f('uq_patient_pseudonym'))
    )
    op.create_table('physician',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=160), nullable=False),
    sa.Column('username', sa.String(length=80), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_physician')),
    sa.UniqueConstraint('name', name=op.f('uq_physician_name')),
    sa.UniqueConstraint('username', name=op.f('uq_physician_username'))
    )
    op.create_table('procedure_type',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=160), nullable=False),
    sa.Column('region', sa.String(length=16), nullable=False),
    sa.Column('level_regions', sa.String(length=80), nullable=True),
    sa.Column('levels_required', sa.Boolean(), nullable=False),
    sa.Column('max_levels', sa.Integer(), nullable=True),
    sa.Column('laterality_required', sa.Boolean(), nullable=False),
    sa.Column('contrast_policy', sa.String(length=16), nullable=False),
    sa.Column('realtime_contrast_required', sa.Boolean(), nullable=False),
    sa.Column('min_views', sa.Integer(), nullable=False),
    sa.Column('typical_time_s', sa.Float(), nullable=True),
    sa.Column('typical_dap_gycm2', sa.Float(), nullable=True),
    sa.Column('max_expected_time_s', sa.Float(), nullable=True),
    sa.Column('typical_source', sa.Text(), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.CheckConstraint("contrast_policy IN ('required', 'recommended', 'not_required')", name=op.f('ck_procedure_type_contrast_policy_allowed')),
    sa.CheckConstraint("region IN ('cervical', 'thoracic', 'lumbar', 'sacral', 'other', 'by_level')", name=op.f('ck_procedure_type_region_allowed')),
    sa.CheckConstraint('max_levels IS NULL OR max_levels >= 0', name=op.f('ck_procedure_type_max_levels_nonnegative')),
    sa.CheckConstraint('min_views >= 0 AND min_views <= 4', name=op.f('ck_procedure_type_min_views_range')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_procedure_type')),
    sa.UniqueConstraint('code', name=op.f('uq_procedure_type_code'))
    )
    op.create_table('setting',
    sa.Column('key', sa.String(length=80), nullable=False),
    sa.Column('value', sa.JSON(), nullable=False),
    sa.Column('source', sa.Text(), nullable=True),
    sa.Column('updated_at', UTCDateTime(), nullable=False),
    sa.Column('updated_by', sa.String(length=80), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_setting'))
    )
    op.create_table('site',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_site')),
    sa.UniqueConstraint('name', name=op.f('uq_site_name'))
    )
    op.create_table('user_account',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=80), nullable=False),
    sa.Column('display_name', sa.String(length=160), nullable=True),
    sa.Column('role', sa.String(length=32), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=True),
    sa.Column('can_sign_in', sa.Boolean(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('failed_logins', sa.Integer(), nullable=False),
    sa.Column('locked_until', UTCDateTime(), nullable=True),
    sa.Column('last_login_at', UTCDateTime(), nullable=True),
    sa.Column('preferences', sa.JSON(), nullable=True),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.CheckConstraint("role IN ('technologist', 'physician', 'quality_officer', 'rso', 'admin')", name=op.f('ck_user_account_role_allowed')),
    sa.CheckConstraint('failed_logins >= 0', name=op.f('ck_user_account_failed_logins_nonnegative')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_user_account')),
    sa.UniqueConstraint('username', name=op.f('uq_user_account_username'))
    )
    op.create_table('room',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('make', sa.String(length=120), nullable=True),
    sa.Column('model', sa.String(length=120), nullable=True),
    sa.Column('serial', sa.String(length=120), nullable=True),
    sa.Column('dap_display_unit', sa.String(length=16), nullable=False),
    sa.Column('kap_correction_factor', sa.Float(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.CheckConstraint("dap_display_unit IN ('Gy·cm²', 'dGy·cm²', 'cGy·cm²', 'mGy·cm²', 'µGy·m²', 'Gy·m²')", name=op.f('ck_room_dap_display_unit_allowed')),
    sa.CheckConstraint('kap_correction_factor > 0 AND kap_correction_factor <= 2', name=op.f('ck_room_kap_correction_range')),
    sa.ForeignKeyConstraint(['site_id'], ['site.id'], name=op.f('fk_room_site_id_site')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_room')),
    sa.UniqueConstraint('site_id', 'name', name=op.f('uq_room_site_id_name'))
    )
    op.create_table('procedure',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('performed_at', UTCDateTime(), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('room_id', sa.Integer(), nullable=False),
    sa.Column('physician_id', sa.Integer(), nullable=False),
    sa.Column('technologist_id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('accession_number', sa.String(length=64), nullable=True),
    sa.Column('patient_sex', sa.String(length=1), nullable=True),
    sa.Column('patient_weight_kg', sa.Float(), nullable=True),
    sa.Column('pregnancy_status', sa.String(length=16), nullable=False),
    sa.Column('procedure_type_id', sa.Integer(), nullable=False),
    sa.Column('region', sa.String(length=16), nullable=False),
    sa.Column('laterality', sa.String(length=16), nullable=True),
    sa.Column('guidance', sa.String(length=16), nullable=False),
    sa.Column('fluoro_time_s', sa.Float(), nullable=False),
    sa.Column('fluoro_time_entered', sa.String(length=32), nullable=True),
    sa.Column('dap_gycm2', sa.Float(), nullable=True),
    sa.Column('dap_value', sa.Float(), nullable=True),
    sa.Column('dap_unit', sa.String(length=16), nullable=True),
    sa.Column('dap_missing_reason', sa.Text(), nullable=True),
    sa.Column('air_kerma_mgy', sa.Float(), nullable=True),
    sa.Column('saved_images', sa.Integer(), nullable=False),
    sa.Column('dsa_runs', sa.Integer(), nullable=True),
    sa.Column('pulsed_fluoro', sa.Boolean(), nullable=True),
    sa.Column('pulse_rate_pps', sa.Float(), nullable=True),
    sa.Column('low_dose_mode', sa.Boolean(), nullable=True),
    sa.Column('contrast_agent', sa.String(length=80), nullable=True),
    sa.Column('contrast_volume_ml', sa.Float(), nullable=True),
    sa.Column('contrast_confirmation', sa.String(length=16), nullable=False),
    sa.Column('contrast_exception_reason', sa.String(length=20), nullable=True),
    sa.Column('contrast_exception_detail', sa.Text(), nullable=True),
    sa.Column('confirmation_views', sa.String(length=40), nullable=True),
    sa.Column('realtime_contrast', sa.Boolean(), nullable=True),
    sa.Column('vascular_uptake', sa.Boolean(), nullable=True),
    sa.Column('needle_repositioned', sa.Boolean(), nullable=True),
    sa.Column('injectate', sa.String(length=24), nullable=True),
    sa.Column('notes', sa.Text(), nullable=True),
    sa.Column('dose_source', sa.String(length=12), nullable=False),
    sa.Column('effective_dose_msv', sa.Float(), nullable=True),
    sa.Column('warnings', sa.JSON(), nullable=True),
    sa.Column('void_reason', sa.Text(), nullable=True),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.Column('created_by', sa.String(length=80), nullable=False),
    sa.Column('updated_at', UTCDateTime(), nullable=False),
    sa.Column('updated_by', sa.String(length=80), nullable=False),
    sa.CheckConstraint("contrast_confirmation IN ('confirmed', 'not_confirmed', 'contraindicated', 'not_required')", name=op.f('ck_procedure_contrast_confirmation_allowed')),
    sa.CheckConstraint("contrast_exception_reason IS NULL OR contrast_exception_reason IN ('allergy', 'renal_impairment', 'patient_refused', 'other')", name=op.f('ck_procedure_contrast_exception_reason_allowed')),
    sa.CheckConstraint("dap_unit IS NULL OR dap_unit IN ('Gy·cm²', 'dGy·cm²', 'cGy·cm²', 'mGy·cm²', 'µGy·m²', 'Gy·m²')", name=op.f('ck_procedure_dap_unit_allowed')),
    sa.CheckConstraint("dose_source IN ('manual', 'rdsr', 'manual+rdsr')", name=op.f('ck_procedure_dose_source_allowed')),
    sa.CheckConstraint("guidance IN ('fluoroscopy', 'fluoroscopy_dsa', 'ct_fluoroscopy')", name=op.f('ck_procedure_guidance_allowed')),
    sa.CheckConstraint("injectate IS NULL OR injectate IN ('dexamethasone', 'triamcinolone', 'methylprednisolone', 'betamethasone', 'local_anesthetic_only', 'none', 'other')", name=op.f('ck_procedure_injectate_allowed')),
    sa.CheckConstraint("laterality IS NULL OR laterality IN ('left', 'right', 'bilateral', 'midline')", name=op.f('ck_procedure_laterality_allowed')),
    sa.CheckConstraint("patient_sex IS NULL OR patient_sex IN ('F', 'M', 'O', 'U')", name=op.f('ck_procedure_patient_sex_allowed')),
    sa.CheckConstraint("pregnancy_status IN ('not_applicable', 'not_pregnant', 'pregnant', 'unknown')", name=op.f('ck_procedure_pregnancy_status_allowed')),
    sa.CheckConstraint("region IN ('cervical', 'thoracic', 'lumbar', 'sacral', 'other')", name=op.f('ck_procedure_region_allowed')),
    sa.CheckConstraint("status = 'final' OR void_reason IS NOT NULL", name=op.f('ck_procedure_void_has_reason')),
    sa.CheckConstraint("status IN ('final', 'void')", name=op.f('ck_procedure_status_allowed')),
    sa.CheckConstraint('air_kerma_mgy IS NULL OR air_kerma_mgy >= 0', name=op.f('ck_procedure_air_kerma_nonnegative')),
    sa.CheckConstraint('contrast_volume_ml IS NULL OR contrast_volume_ml >= 0', name=op.f('ck_procedure_contrast_volume_nonneg')),
    sa.CheckConstraint('dap_gycm2 IS NOT NULL OR dap_missing_reason IS NOT NULL', name=op.f('ck_procedure_dap_or_reason')),
    sa.CheckConstraint('dap_gycm2 IS NULL OR dap_gycm2 >= 0', name=op.f('ck_procedure_dap_nonnegative')),
    sa.CheckConstraint('dsa_runs IS NULL OR dsa_runs >= 0', name=op.f('ck_procedure_dsa_runs_nonnegative')),
    sa.CheckConstraint('fluoro_time_s >= 0', name=op.f('ck_procedure_fluoro_time_nonnegative')),
    sa.CheckConstraint('patient_weight_kg IS NULL OR (patient_weight_kg > 0 AND patient_weight_kg < 400)', name=op.f('ck_procedure_weight_range')),
    sa.CheckConstraint('pulse_rate_pps IS NULL OR (pulse_rate_pps > 0 AND pulse_rate_pps <= 60)', name=op.f('ck_procedure_pulse_rate_range')),
    sa.CheckConstraint('saved_images >= 0', name=op.f('ck_procedure_saved_images_nonnegative')),
    sa.CheckConstraint('version >= 1', name=op.f('ck_procedure_version_positive')),
    sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], name=op.f('fk_procedure_patient_id_patient')),
    sa.ForeignKeyConstraint(['physician_id'], ['physician.id'], name=op.f('fk_procedure_physician_id_physician')),
    sa.ForeignKeyConstraint(['procedure_type_id'], ['procedure_type.id'], name=op.f('fk_procedure_procedure_type_id_procedure_type')),
    sa.ForeignKeyConstraint(['room_id'], ['room.id'], name=op.f('fk_procedure_room_id_room')),
    sa.ForeignKeyConstraint(['site_id'], ['site.id'], name=op.f('fk_procedure_site_id_site')),
    sa.ForeignKeyConstraint(['technologist_id'], ['user_account.id'], name=op.f('fk_procedure_technologist_id_user_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_procedure'))
    )
    with op.batch_alter_table('procedure', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_procedure_accession_number'), ['accession_number'], unique=False)
        batch_op.create_index(batch_op.f('ix_procedure_patient_id_performed_at'), ['patient_id', 'performed_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_procedure_performed_at'), ['performed_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_procedure_physician_id_performed_at'), ['physician_id', 'performed_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_procedure_procedure_type_id_performed_at'), ['procedure_type_id', 'performed_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_procedure_room_id_performed_at'), ['room_id', 'performed_at'], unique=False)

    op.create_table('procedure_level',
    sa.Column('procedure_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('level', sa.String(length=8), nullable=False),
    sa.Column('region', sa.String(length=16), nullable=False),
    sa.ForeignKeyConstraint(['procedure_id'], ['procedure.id'], name=op.f('fk_procedure_level_procedure_id_procedure')),
    sa.PrimaryKeyConstraint('procedure_id', 'position', name=op.f('pk_procedure_level')),
    sa.UniqueConstraint('procedure_id', 'level', name=op.f('uq_procedure_level_procedure_id_level'))
    )
    with op.batch_alter_table('procedure_level', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_procedure_level_level'), ['level'], unique=False)


    _seed()


# Procedure catalog (docs/design.md §5). Typical time and KAP feed plausibility warnings until local
# data exists; they come from the published series in docs/reference.md §4 where one exists and are
# otherwise estimates, as typical_source says. Admins can edit every value.
_PUBLISHED = "Kim SJ, J Spinal Disord Tech 2014 (median of 181 lumbosacral TFESI / 47 caudal)"
_CATALOG = [
    # code, name, region, level_regions, levels_required, max_levels, laterality_required,
    # contrast_policy, realtime_required, min_views, typical_time_s, typical_dap, max_time_s, source
    ("ILESI", "Interlaminar epidural steroid injection", "by_level", "cervical;thoracic;lumbar",
     True, 1, False, "required", False, 2, 25.0, 0.6, 600.0,
     "time: McCormick, Pain Med 2016 (cervical ILESI mean 18 s); KAP estimated"),
    ("TFESI", "Transforaminal epidural steroid injection", "by_level",
     "cervical;thoracic;lumbar;sacral", True, 2, True, "required", True, 2, 29.0, 0.68, 600.0,
     _PUBLISHED),
    ("CAUDAL", "Caudal epidural steroid injection", "sacral", "sacral", False, 1, False,
     "required", False, 2, 13.0, 0.55, 600.0, _PUBLISHED),
    ("MBB", "Medial branch block", "by_level", "cervical;thoracic;lumbar;sacral", True, 4, True,
     "recommended", False, 2, 40.0, 0.9, 600.0,
     "Choi, JKMS 2016 (lumbar root, MBB, facet blocks; physician-operated C-arm); estimated"),
    ("RFA", "Radiofrequency ablation (medial branch)", "by_level",
     "cervical;thoracic;lumbar;sacral", True, 4, True, "not_required", False, 2, 90.0, 2.0,
     900.0, "estimated from Zhou, Pain Physician 2005 (facet procedures)"),
    ("FACET", "Facet (zygapophyseal) joint injection", "by_level", "cervical;thoracic;lumbar",
     True, 4, True, "required", False, 2, 81.5, 1.5, 900.0,
     "time: Zhou, Pain Physician 2005 (mean); KAP estimated"),
    ("SIJ", "Sacroiliac joint injection", "sacral", "sacral", False, 2, True, "required", False,
     2, 50.6, 1.67, 600.0, "KAP: Cushman, PM&R 2016 (median, middle BMI); time: Zhou 2005"),
    ("DISCOGRAPHY", "Provocation discography", "by_level", "cervical;thoracic;lumbar", True, 4,
     False, "required", False, 2, 146.8, 3.0, 1200.0,
     "time: Zhou, Pain Physician 2005 (mean); KAP estimated"),
    ("SYMPATHETIC", "Sympathetic block (stellate, lumbar, hypogastric, impar)", "by_level",
     "cervical;thoracic;lumbar;sacral", False, 2, False, "required", False, 2, 64.4, 1.5, 900.0,
     "time: Zhou, Pain Physician 2005 (mean); KAP estimated"),
    ("OTHER", "Other fluoroscopically guided procedure", "other", None, False, None, False,
     "not_required", False, 0, 120.0, 10.0, None,
     "estimated; non-spine work varies widely"),
]

_SETTINGS = [
    ("srdl_air_kerma_mgy", 5000, "NCRP Report 168; AAPM MPPG 12.a"),
    ("srdl_kap_gycm2", 500, "NCRP Report 168 / SIR 2009 (assumes a 100 cm² field)"),
    ("srdl_fluoro_time_s", 3600, "NCRP Report 168 / SIR 2009 (60 min)"),
    ("investigation_factor", 3, "local policy (default 3x the local median)"),
    ("cumulative_window_days", 84, "OpenREM default (12 weeks)"),
    ("cumulative_kap_gycm2", 200, "OpenREM default"),
    ("cumulative_air_kerma_mgy", 2000, "OpenREM default (2 Gy)"),
    ("effective_dose_k", {"cervical": 0.08, "thoracic": 0.20, "lumbar": 0.33, "sacral": 0.26,
                          "other": 0.26},
     "mSv per Gy·cm²; lumbar: Kim S, AJR 2009 (mobile C-arm phantom); others unverified"),
    ("annual_background_msv", 3.1, "NCRP Report 160 (US); 2.4 worldwide (UNSCEAR)"),
    ("warning_kap_ratio", 40, "plausibility: KAP this many times the usual asks for confirmation"),
    ("session_idle_minutes", 30, "local policy"),
    ("discrepancy_tolerance", 0.10, "manual vs dose report: differences over 10% are flagged"),
]


def _seed() -> None:
    catalog = sa.table(
        "procedure_type",
        *(sa.column(c) for c in (
            "code", "name", "region", "level_regions", "levels_required", "max_levels",
            "laterality_required", "contrast_policy", "realtime_contrast_required", "min_views",
            "typical_time_s", "typical_dap_gycm2", "max_expected_time_s", "typical_source",
            "active")),
    )
    names = [c.name for c in catalog.columns]
    op.bulk_insert(catalog, [dict(zip(names, (*row, True), strict=True)) for row in _CATALOG])
    setting = sa.table(
        "setting", sa.column("key"), sa.column("value", sa.JSON), sa.column("source"),
        sa.column("updated_at", UTCDateTime()), sa.column("updated_by"),
    )
    now = datetime.now(UTC)
    rows = [{"key": k, "value": v, "source": s, "updated_at": now, "updated_by": "system"}
            for k, v, s in _SETTINGS]
    # The key of the patient pseudonyms (HMAC-SHA-256). Never exported, never shown.
    rows.append({"key": "pseudonym_secret", "value": secrets.token_hex(32),
                 "source": "generated at installation", "updated_at": now,
                 "updated_by": "system"})
    op.bulk_insert(setting, rows)


def downgrade() -> None:
    with op.batch_alter_table('procedure_level', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_procedure_level_level'))

    op.drop_table('procedure_level')
    with op.batch_alter_table('procedure', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_procedure_room_id_performed_at'))
        batch_op.drop_index(batch_op.f('ix_procedure_procedure_type_id_performed_at'))
        batch_op.drop_index(batch_op.f('ix_procedure_physician_id_performed_at'))
        batch_op.drop_index(batch_op.f('ix_procedure_performed_at'))
        batch_op.drop_index(batch_op.f('ix_procedure_patient_id_performed_at'))
        batch_op.drop_index(batch_op.f('ix_procedure_accession_number'))

    op.drop_table('procedure')
    op.drop_table('room')
    op.drop_table('user_account')
    op.drop_table('site')
    op.drop_table('setting')
    op.drop_table('procedure_type')
    op.drop_table('physician')
    op.drop_table('patient')
    with op.batch_alter_table('audit_event', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_event_occurred_at'))
        batch_op.drop_index(batch_op.f('ix_audit_event_entity_entity_id'))

    op.drop_table('audit_event')
