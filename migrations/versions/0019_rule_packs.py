"""Practice rules: rule packs, follow-ups and the ILESI contrast test dose (issue 15, part B).

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-01

A procedure gains `contrast_test_dose` (ILESI; NULL elsewhere and on older records). A
follow-up records a procedure's outcome later (percent relief and for how many days), which
the repeat rules read. `rule_pack` holds the coverage and safety rule packs with their source,
dates, on/off switch and parameters; it is seeded here from audit.rules.packs, every pack on
(docs/design.md §16 says why).
"""
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from audit.storage.types import UTCDateTime

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("procedure") as batch:
        batch.add_column(sa.Column("contrast_test_dose", sa.Boolean(), nullable=True))
    op.create_table(
        "follow_up",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("procedure_id", sa.Integer(), nullable=False),
        sa.Column("followed_up_on", sa.Date(), nullable=False),
        sa.Column("relief_percent", sa.Integer(), nullable=False),
        sa.Column("relief_days", sa.Integer(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=80), nullable=False),
        sa.CheckConstraint("relief_percent >= 0 AND relief_percent <= 100",
                           name=op.f("ck_follow_up_relief_range")),
        sa.CheckConstraint("relief_days >= 0 AND relief_days <= 3650",
                           name=op.f("ck_follow_up_relief_days_range")),
        sa.ForeignKeyConstraint(["procedure_id"], ["procedure.id"],
                                name=op.f("fk_follow_up_procedure_id_procedure")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_follow_up")),
    )
    op.create_index(op.f("ix_follow_up_procedure_id"), "follow_up", ["procedure_id"])
    packs = op.create_table(
        "rule_pack",
        sa.Column("key", sa.String(length=32), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("effective_from", sa.Date(), nullable=True),
        sa.Column("effective_to", sa.Date(), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("updated_by", sa.String(length=80), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_rule_pack")),
    )
    from audit.rules.packs import PACKS

    now = datetime.now(UTC)
    op.bulk_insert(packs, [
        {"key": p.key, "title": p.title, "source": p.source, "effective_from": p.effective_from,
         "effective_to": p.effective_to, "enabled": p.enabled, "parameters": p.defaults(),
         "updated_at": now, "updated_by": "system"} for p in PACKS])


def downgrade() -> None:
    op.drop_table("rule_pack")
    op.drop_index(op.f("ix_follow_up_procedure_id"), table_name="follow_up")
    op.drop_table("follow_up")
    with op.batch_alter_table("procedure") as batch:
        batch.drop_column("contrast_test_dose")
