"""Indexes for the Records page: a technologist's own entries, and void records.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21

A technologist's Records list is scoped to technologist_id and ordered by performed_at; the
status filter reads "void" as an id set from (status, performed_at). Without them, a million
procedures make both a full-table read (see bench/bench_records_page.py).
"""
from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("procedure", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_procedure_status_performed_at"),
                              ["status", "performed_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_procedure_technologist_id_performed_at"),
                              ["technologist_id", "performed_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("procedure", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_procedure_technologist_id_performed_at"))
        batch_op.drop_index(batch_op.f("ix_procedure_status_performed_at"))
