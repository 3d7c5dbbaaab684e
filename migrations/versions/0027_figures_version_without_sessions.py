"""The figures version leaves out the sign-in sessions' events.

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-02

Issue 16: a sign-in stores its session as a `create` event on entity `user_session`, and the
browser collecting its cookie as an `amend`: actions that can change a figure when they are a
record's, so every sign-in moved the figures version, threw away every figure the app
processes shared and had the warmer compute them all again (at 10M records, 20 s of CPU for the
Dose page's first tab alone). `ix_audit_event_figures` is recreated with the new condition: the
figures version's query must state it word for word to read the index. The condition is written
out here: a migration describes the schema of its day.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0027"
down_revision: str | None = "0026"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ACTIONS = "action IN ('create', 'amend', 'void', 'import', 'setting', 'bulk_create', 'deactivate')"
BEFORE = f"{ACTIONS} AND entity <> 'alert'"
AFTER = f"{ACTIONS} AND entity NOT IN ('alert', 'user_session')"


def _index(condition: str) -> None:
    op.create_index("ix_audit_event_figures", "audit_event", ["id"], unique=False,
                    postgresql_where=sa.text(condition), sqlite_where=sa.text(condition))


def upgrade() -> None:
    op.drop_index("ix_audit_event_figures", table_name="audit_event")
    _index(AFTER)


def downgrade() -> None:
    op.drop_index("ix_audit_event_figures", table_name="audit_event")
    _index(BEFORE)
