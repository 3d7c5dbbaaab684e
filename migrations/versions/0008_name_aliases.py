"""Name aliases: a merged site, room, physician or technologist name and the row it now means.

Revision ID: 0008
Revises: 0007
Create Date: 2027-01-12

Issue 11: partial names typed into the log form created second sites and physicians ("Chen"
beside "Dr. Amelia Chen"). An administrator merges such a duplicate into the kept row
(audit/log/merge.py); its records are re-pointed, the duplicate is deactivated, and its name is
kept here so that later entries under it resolve to the kept row. A room's alias is scoped to its
site (scope_id; 0 for the other kinds). No data is seeded.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from audit.storage.types import UTCDateTime

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "name_alias",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("scope_id", sa.Integer(), nullable=False),
        sa.Column("alias", sa.String(length=160), nullable=False),
        sa.Column("target_id", sa.Integer(), nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=80), nullable=False),
        sa.CheckConstraint("kind IN ('site', 'room', 'physician', 'technologist')",
                           name=op.f("ck_name_alias_kind_allowed")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_name_alias")),
        sa.UniqueConstraint("kind", "scope_id", "alias",
                            name=op.f("uq_name_alias_kind_scope_id_alias")),
    )


def downgrade() -> None:
    op.drop_table("name_alias")
