"""Keys outside the database: the pseudonym key moves from the setting table to the key directory,
and the trail and signing keys are made.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30

Until now the pseudonym key (the HMAC key of patient_ref) was a row in the setting table, so a
dump of the database alone mapped every patient_ref back to its MRN. The key is written, unchanged,
to the key directory (audit.keys: mode 0600, beside the database) and removed from the database;
every patient keeps the reference it had. If $FLUORO_AUDIT_PSEUDONYM_KEY is set it stays the key
in use, as before. The trail MAC key and the export signing key are made here too: the first
installation is the one moment a new key cannot conflict with existing records.

Refused (nothing changes) when the key directory already holds a different pseudonym key while
this database has patients: using it would give those patients' later records other references.
"""
import os
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from audit.storage.types import UTCDateTime

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_setting = sa.table("setting", sa.column("key", sa.String), sa.column("value", sa.JSON),
                    sa.column("source", sa.Text), sa.column("updated_at", UTCDateTime()),
                    sa.column("updated_by", sa.String))


def upgrade() -> None:
    from audit import keys

    bind = op.get_bind()
    stored = bind.execute(
        sa.select(_setting.c.value).where(_setting.c.key == "pseudonym_secret")
    ).scalar_one_or_none()
    old = str(stored) if stored else None
    path = keys.key_dir(bind.engine) / keys.PSEUDONYM_KEY_FILE
    in_env = bool(os.environ.get(keys.ENV_PSEUDONYM_KEY))
    if old and not in_env and path.exists():
        existing = path.read_text().strip()
        patients = bind.execute(sa.text("SELECT COUNT(*) FROM patient")).scalar_one()
        if existing != old and patients:
            raise RuntimeError(
                f"{path} holds a different pseudonym key than this database, which has "
                f"{patients} patients: move that key directory aside (or set "
                f"${keys.ENV_KEY_DIR} to a new one) and migrate again"
            )
    keys.ensure_keys(bind.engine, pseudonym_key=old)
    bind.execute(sa.delete(_setting).where(_setting.c.key == "pseudonym_secret"))


def downgrade() -> None:
    from datetime import UTC, datetime

    from audit import keys

    bind = op.get_bind()
    secret = keys.load_keys(bind.engine).pseudonym_key
    bind.execute(sa.insert(_setting).values(
        key="pseudonym_secret", value=secret,
        source="generated at installation",
        updated_at=datetime.now(UTC), updated_by="system"))
