"""The alert's copies of its record's keys lose their foreign keys.

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-02

Issue 16: the first alert refresh at 10M records took 73 s against 60. Its one INSERT of
309,364 alerts took 38 s, 25 s of it in six foreign-key checks per row. An alert's patient,
site, room, physician and type are copies of its trigger record's (kept current by the
refresh, so that filtering alerts never joins the procedure table): the record's own foreign
keys already point them at rows that are never deleted, and a key that exists is no proof
that the copy is right. Like rule_finding's keys, they keep no foreign keys of their own; the
alert keeps the one to its record. Nothing is dropped but the constraints.
"""
from collections.abc import Sequence

from alembic import op

revision: str = "0025"
down_revision: str | None = "0024"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: (column, referred table) of the copied keys.
COPIES = (("patient_id", "patient"), ("site_id", "site"), ("room_id", "room"),
          ("physician_id", "physician"), ("procedure_type_id", "procedure_type"))


def upgrade() -> None:
    with op.batch_alter_table("alert") as batch:
        for column, table in COPIES:
            batch.drop_constraint(op.f(f"fk_alert_{column}_{table}"), type_="foreignkey")


def downgrade() -> None:
    with op.batch_alter_table("alert") as batch:
        for column, table in COPIES:
            batch.create_foreign_key(op.f(f"fk_alert_{column}_{table}"), table, [column], ["id"])
