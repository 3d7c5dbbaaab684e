"""The stored findings of the practice rules (the Coverage page's counts from SQL).

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-01

Issue 16: at 5M records on PostgreSQL the Coverage page re-checked every record of the period
against its patient's history (32 s for a month, 465 s for every record). `rule_finding` holds
one row per (final record, rule that applies to it) with the record's keys, and
`rule_finding_count` their counts per UTC day and per month, kept at the data version
`rule_finding_state` records by audit.rules.findings_store. Created empty: the first
refresh on PostgreSQL (the Coverage page, `report rules`, `db rebuild-facts`) fills it, patient
batch by patient batch; on SQLite it stays empty (the report checks the records directly).
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from audit.storage.types import UTCDateTime

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEYS = ("site_id", "room_id", "procedure_type_id", "physician_id", "technologist_id")
#: Partial indexes of the exceptions: the newest of a rule, of a rule for a physician, a room.
EXCEPTION_INDEXES = (
    ("ix_rule_finding_exceptions", ["rule", "performed_at", "record_id"]),
    ("ix_rule_finding_physician_exceptions", ["physician_id", "rule", "performed_at"]),
    ("ix_rule_finding_room_exceptions", ["room_id", "rule", "performed_at"]),
)


def upgrade() -> None:
    op.create_table(
        "rule_finding",
        sa.Column("record_id", sa.Integer(), nullable=False),
        sa.Column("rule", sa.String(length=40), nullable=False),
        sa.Column("exception", sa.Boolean(), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("performed_at", UTCDateTime(), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        *(sa.Column(name, sa.Integer(), nullable=False) for name in KEYS),
        sa.PrimaryKeyConstraint("record_id", "rule", name=op.f("pk_rule_finding")),
    )
    op.create_index(op.f("ix_rule_finding_patient_id"), "rule_finding", ["patient_id"])
    op.create_index(op.f("ix_rule_finding_performed_at"), "rule_finding", ["performed_at"])
    for name, columns in EXCEPTION_INDEXES:
        op.create_index(name, "rule_finding", columns, postgresql_where=sa.text("exception"))
    op.create_table(
        "rule_finding_count",
        sa.Column("whole_month", sa.Boolean(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        *(sa.Column(name, sa.Integer(), nullable=False) for name in KEYS[:-1]),
        sa.Column("rule", sa.String(length=40), nullable=False),
        sa.Column("eligible", sa.Integer(), nullable=False),
        sa.Column("exceptions", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("whole_month", "day", *KEYS[:-1], "rule",
                                name=op.f("pk_rule_finding_count")),
    )
    op.create_table(
        "rule_finding_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("data_version", sa.Integer(), nullable=False),
        sa.Column("rules", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rule_finding_state")),
    )


def downgrade() -> None:
    op.drop_table("rule_finding_state")
    op.drop_table("rule_finding_count")
    for name, _ in EXCEPTION_INDEXES:
        op.drop_index(name, table_name="rule_finding")
    op.drop_index(op.f("ix_rule_finding_performed_at"), table_name="rule_finding")
    op.drop_index(op.f("ix_rule_finding_patient_id"), table_name="rule_finding")
    op.drop_table("rule_finding")
