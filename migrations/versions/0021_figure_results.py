"""Figure results shared by every app process, and the figures version's partial index.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-01

Issue 16: on PostgreSQL each dashboard figure is a scan and a sort of the filtered records.
`figure_result` keeps each figure once per figures version (the last audit event that can
change a figure) for every app process, with its MAC under a key derived from the site's key
ring, the public call that asked for it (the warmer replays it when the version moves) and how
long it took (audit.analytics.sql.shared). `ix_audit_event_figures` is a partial index on
audit_event.id over the actions that can change a figure, so the figures version is one index
read however many sign-ins, exports and acknowledgements follow the last write. The action list
is written out here: a migration describes the schema of its day.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from audit.storage.types import UTCDateTime

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FIGURE_EVENTS = ("action IN ('create', 'amend', 'void', 'import', 'setting', 'bulk_create', "
                 "'deactivate') AND entity <> 'alert'")


def upgrade() -> None:
    op.create_table(
        "figure_result",
        sa.Column("figures_version", sa.Integer(), nullable=False),
        sa.Column("key_sha256", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("mac", sa.String(length=64), nullable=False),
        sa.Column("recipe", sa.Text(), nullable=True),
        sa.Column("computed_at", UTCDateTime(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("asked_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("figures_version", "key_sha256", name=op.f("pk_figure_result")),
    )
    op.create_index("ix_audit_event_figures", "audit_event", ["id"], unique=False,
                    postgresql_where=sa.text(FIGURE_EVENTS), sqlite_where=sa.text(FIGURE_EVENTS))


def downgrade() -> None:
    op.drop_index("ix_audit_event_figures", table_name="audit_event",
                  postgresql_where=sa.text(FIGURE_EVENTS), sqlite_where=sa.text(FIGURE_EVENTS))
    op.drop_table("figure_result")
