"""Indexes of the record facts on each dose quantity, for the SRDL drill-down.

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-02

Issue 16: the Data quality page's list of the records that reached a substantial radiation dose
level took 18 s at 10M records on PostgreSQL (28-48 s beside other work): the records are 1 in
700, their thresholds are settings (so no stored flag or partial index can hold them), and
PostgreSQL, which cannot tell how rare a distribution's tail is, walked every record backwards
in time. With an index on each quantity the records at or above each threshold are read by
range (audit.analytics.sql.drill._srdl_hint): 0.43 s. About 215 MB each at 10M records; on
SQLite the record facts stay empty.
"""
from collections.abc import Sequence

from alembic import op

revision: str = "0026"
down_revision: str | None = "0025"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

QUANTITIES = ("air_kerma_mgy", "dap_gycm2", "fluoro_time_s")


def upgrade() -> None:
    for column in QUANTITIES:
        op.create_index(op.f(f"ix_record_fact_{column}"), "record_fact", [column])


def downgrade() -> None:
    for column in QUANTITIES:
        op.drop_index(op.f(f"ix_record_fact_{column}"), table_name="record_fact")
