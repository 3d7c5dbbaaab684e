"""An index of the record facts on (procedure type, room, KAP) for the local DRLs' room
medians.

Revision ID: 0032
Revises: 0031
Create Date: 2026-12-03

Issue 16: a period change on the Dose page's Physicians tab computes the period's local DRLs
(the levels its share above the level compares with): each procedure's median per room, picked
in the bucket the median falls in by walking that bucket's records in value order to the rank
(audit.analytics.sql.bucket_ranges). Through the (type, KAP) index that walk stepped over every
other room's records of the bucket, about twenty times the room's own: 90 ms of PostgreSQL at
10M records, the tab's costliest statement. Through (type, room, KAP), carrying what the filters
test, it reads the room's records alone: 14 ms. KAP only (also KAP corrected's, read as KAP per
room factor): the levels the scorecards and the Dose page's first tab compare with; the Reference
tab's other quantities keep the type's index.
"""
from collections.abc import Sequence

from alembic import op

revision: str = "0032"
down_revision: str | None = "0031"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_record_fact_room_dap_gycm2", "record_fact",
                    ["procedure_type_id", "room_id", "dap_gycm2"],
                    postgresql_include=["performed_at", "site_id", "physician_id"])


def downgrade() -> None:
    op.drop_index("ix_record_fact_room_dap_gycm2", table_name="record_fact")
