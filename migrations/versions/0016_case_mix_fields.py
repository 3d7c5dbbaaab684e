"""Case-mix fields, ultrasound guidance and complications (issue 15, part A).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-01

A procedure gains the patient's height (and the BMI computed from weight and height), who drove
the C-arm, whether a trainee was in the room and the contrast agent's class, all nullable so
older records stay valid. Ultrasound becomes a guidance: an ultrasound-guided record has no
DAP (and no reason for its absence), so the DAP-or-reason CHECK allows it. Adverse events get
their own table, never deleted (voided with a reason).
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from audit.storage.types import UTCDateTime

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

GUIDANCE_BEFORE = "'fluoroscopy', 'fluoroscopy_dsa', 'ct_fluoroscopy'"
GUIDANCE_AFTER = GUIDANCE_BEFORE + ", 'ultrasound'"
DAP_BEFORE = "dap_gycm2 IS NOT NULL OR dap_missing_reason IS NOT NULL"
DAP_AFTER = DAP_BEFORE + " OR guidance = 'ultrasound'"


def upgrade() -> None:
    with op.batch_alter_table("procedure") as batch:
        batch.add_column(sa.Column("patient_height_cm", sa.Float(), nullable=True))
        batch.add_column(sa.Column("bmi_kg_m2", sa.Float(), nullable=True))
        batch.add_column(sa.Column("carm_operator", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("trainee_present", sa.Boolean(), nullable=True))
        batch.add_column(sa.Column("contrast_class", sa.String(length=16), nullable=True))
        batch.drop_constraint(op.f("ck_procedure_guidance_allowed"), type_="check")
        batch.drop_constraint(op.f("ck_procedure_dap_or_reason"), type_="check")
        batch.create_check_constraint(op.f("ck_procedure_guidance_allowed"),
                                      f"guidance IN ({GUIDANCE_AFTER})")
        batch.create_check_constraint(op.f("ck_procedure_dap_or_reason"), DAP_AFTER)
        batch.create_check_constraint(
            op.f("ck_procedure_height_range"),
            "patient_height_cm IS NULL OR (patient_height_cm > 0 AND patient_height_cm < 300)")
        batch.create_check_constraint(
            op.f("ck_procedure_carm_operator_allowed"),
            "carm_operator IS NULL OR carm_operator IN ('physician', 'technologist', "
            "'radiographer')")
        batch.create_check_constraint(
            op.f("ck_procedure_contrast_class_allowed"),
            "contrast_class IS NULL OR contrast_class IN ('iodinated', 'gadolinium', 'none')")
    op.create_table(
        "complication",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("procedure_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("severity", sa.String(length=12), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("timing", sa.String(length=16), nullable=False),
        sa.Column("noticed_at", UTCDateTime(), nullable=True),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("void_reason", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=80), nullable=False),
        sa.CheckConstraint(
            "kind IN ('contrast_reaction', 'vasovagal_reaction', 'dural_puncture', "
            "'nerve_injury', 'hematoma', 'infection', 'other')",
            name=op.f("ck_complication_kind_allowed")),
        sa.CheckConstraint("severity IN ('mild', 'moderate', 'severe')",
                           name=op.f("ck_complication_severity_allowed")),
        sa.CheckConstraint("timing IN ('at_procedure', 'follow_up')",
                           name=op.f("ck_complication_timing_allowed")),
        sa.CheckConstraint("status IN ('final', 'void')",
                           name=op.f("ck_complication_status_allowed")),
        sa.CheckConstraint("kind <> 'other' OR detail IS NOT NULL",
                           name=op.f("ck_complication_other_has_detail")),
        sa.CheckConstraint("status = 'final' OR void_reason IS NOT NULL",
                           name=op.f("ck_complication_void_has_reason")),
        sa.ForeignKeyConstraint(["procedure_id"], ["procedure.id"],
                                name=op.f("fk_complication_procedure_id_procedure")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_complication")),
    )
    op.create_index(op.f("ix_complication_procedure_id"), "complication", ["procedure_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_complication_procedure_id"), table_name="complication")
    op.drop_table("complication")
    with op.batch_alter_table("procedure") as batch:
        for name in ("height_range", "carm_operator_allowed", "contrast_class_allowed",
                     "guidance_allowed", "dap_or_reason"):
            batch.drop_constraint(op.f(f"ck_procedure_{name}"), type_="check")
        batch.create_check_constraint(op.f("ck_procedure_guidance_allowed"),
                                      f"guidance IN ({GUIDANCE_BEFORE})")
        batch.create_check_constraint(op.f("ck_procedure_dap_or_reason"), DAP_BEFORE)
        for column in ("contrast_class", "trainee_present", "carm_operator", "bmi_kg_m2",
                       "patient_height_cm"):
            batch.drop_column(column)
