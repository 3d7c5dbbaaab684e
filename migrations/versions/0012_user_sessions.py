"""Sign-in sessions that survive a reload: one row per signed-in browser session.

Revision ID: 0012
Revises: 0011
Create Date: 2027-02-02

Issue 12: a reload of the browser tab started a new Streamlit session, which had to sign in
again. A session now lives in this table (audit/sessions.py) and in an HttpOnly cookie holding a
random token; the table keeps only the token's SHA-256 (and that of the one-time code the browser
exchanges for the cookie), never the token itself, so a copy of the database signs nobody in.
Sign-out, the idle timeout, deactivation and a password reset set revoked_at: the cookie is then
useless. Rows are never deleted (the application role has no DELETE here). No data is seeded.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from audit.storage.types import UTCDateTime

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "user_session",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=True),
        sa.Column("handoff_hash", sa.String(length=64), nullable=True),
        sa.Column("handoff_expires_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("last_seen_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.Column("revoked_reason", sa.String(length=80), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["user_account.id"],
                                name=op.f("fk_user_session_user_id_user_account")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_session")),
        sa.UniqueConstraint("handoff_hash", name=op.f("uq_user_session_handoff_hash")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_user_session_token_hash")),
    )
    op.create_index(op.f("ix_user_session_user_id_revoked_at"), "user_session",
                    ["user_id", "revoked_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_user_session_user_id_revoked_at"), table_name="user_session")
    op.drop_table("user_session")
