"""Database engine, sessions, schema and backups.

The public names below load lazily (audit/_lazy.py): importing this package imports no
SQLAlchemy until one of them is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from audit._lazy import lazy_names

if TYPE_CHECKING:
    from sqlalchemy import Engine as Engine

    from audit.storage.backup import BackupFailed as BackupFailed
    from audit.storage.backup import backup as backup_database
    from audit.storage.engine import ENV_DB as ENV_DB
    from audit.storage.engine import current_revision as current_revision
    from audit.storage.engine import default_url as default_url
    from audit.storage.engine import head_revision as head_revision
    from audit.storage.engine import make_engine as make_engine
    from audit.storage.engine import migrate as migrate
    from audit.storage.engine import normalise_url as normalise_url
    from audit.storage.engine import read_session as read_session
    from audit.storage.engine import write_session as write_session
    from audit.storage.types import utcnow as utcnow

__all__ = [
    "ENV_DB",
    "BackupFailed",
    "Engine",
    "backup_database",
    "current_revision",
    "default_url",
    "head_revision",
    "make_engine",
    "migrate",
    "normalise_url",
    "read_session",
    "utcnow",
    "write_session",
]

#: Public name -> where it lives ("module:attribute" where the names differ: `backup` is also
#: the name of a submodule).
_PUBLIC = {
    "Engine": "sqlalchemy",
    "ENV_DB": "audit.storage.engine",
    "default_url": "audit.storage.engine",
    "normalise_url": "audit.storage.engine",
    "make_engine": "audit.storage.engine",
    "migrate": "audit.storage.engine",
    "current_revision": "audit.storage.engine",
    "head_revision": "audit.storage.engine",
    "read_session": "audit.storage.engine",
    "write_session": "audit.storage.engine",
    "utcnow": "audit.storage.types",
    "backup_database": "audit.storage.backup:backup",
    "BackupFailed": "audit.storage.backup",
}

__getattr__, __dir__ = lazy_names(__name__, _PUBLIC)
