"""The DICOM receiver: its receipts, its heartbeat and its four settings.

Revision ID: 0013
Revises: 0012
Create Date: 2027-02-10

Issue 13: `fluoro-audit receive` (a DICOM Storage SCP) and `fluoro-audit fetch` (C-FIND and
C-GET from a PACS) bring dose reports over the network. ``dicom_receipt`` logs each object
received or retrieved and each association refused (calling AE title, peer address, SOP
instance UID, outcome, reason); ``dicom_listener`` holds one row per start of the receiver
with a heartbeat, so the Dose reports page can say whether it listens. The settings
receiver_enabled, receiver_port, receiver_ae_title and receiver_allowed are seeded if absent
(an administrator changes them, audited, like every setting). Rows are never deleted.
"""
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from audit.storage.types import UTCDateTime

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SETTINGS = (
    ("receiver_enabled", False,
     "local choice: `fluoro-audit serve` (make run) starts the DICOM receiver beside the "
     "dashboard"),
    ("receiver_port", 11112, "DICOM's registered port (IANA: 11112, dicom)"),
    ("receiver_ae_title", "FLUORO_AUDIT", "local choice: the receiver's AE title"),
    ("receiver_allowed", "",
     "local choice: calling AE titles allowed to send, as AE_TITLE or AE_TITLE@ADDRESS, "
     "separated by spaces or commas; empty: only this machine (loopback) may send"),
)


def upgrade() -> None:
    op.create_table(
        "dicom_receipt",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("via", sa.String(length=16), nullable=False),
        sa.Column("calling_ae", sa.String(length=16), nullable=True),
        sa.Column("peer_address", sa.String(length=64), nullable=True),
        sa.Column("sop_instance_uid", sa.String(length=64), nullable=True),
        sa.Column("sop_class_uid", sa.String(length=64), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("dicom_status", sa.Integer(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("file_name", sa.String(length=255), nullable=True),
        sa.Column("dose_report_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["dose_report_id"], ["dose_report.id"],
                                name=op.f("fk_dicom_receipt_dose_report_id_dose_report")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dicom_receipt")),
    )
    op.create_index(op.f("ix_dicom_receipt_received_at"), "dicom_receipt", ["received_at"],
                    unique=False)
    op.create_table(
        "dicom_listener",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ae_title", sa.String(length=16), nullable=False),
        sa.Column("port", sa.Integer(), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("tls", sa.Boolean(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("heartbeat_at", UTCDateTime(), nullable=False),
        sa.Column("stopped_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dicom_listener")),
    )
    bind = op.get_bind()
    setting = sa.table(
        "setting", sa.column("key"), sa.column("value", sa.JSON), sa.column("source"),
        sa.column("updated_at", UTCDateTime()), sa.column("updated_by"),
    )
    rows = []
    for key, value, source in SETTINGS:
        if bind.execute(sa.text("SELECT 1 FROM setting WHERE key = :k"), {"k": key}).first():
            continue
        rows.append({"key": key, "value": value, "source": source,
                     "updated_at": datetime.now(UTC), "updated_by": "system"})
    if rows:
        op.bulk_insert(setting, rows)


def downgrade() -> None:
    op.execute(sa.text("DELETE FROM setting WHERE key IN ('receiver_enabled', 'receiver_port', "
                       "'receiver_ae_title', 'receiver_allowed')"))
    op.drop_table("dicom_listener")
    op.drop_index(op.f("ix_dicom_receipt_received_at"), table_name="dicom_receipt")
    op.drop_table("dicom_receipt")
