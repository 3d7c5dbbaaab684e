"""Consistent copies of the database while it is in use.

SQLite: the online backup API copies a consistent snapshot even while others write (a file copy
of a WAL database can be torn). PostgreSQL: pg_dump in custom format, restorable with pg_restore.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

from sqlalchemy.engine import make_url

from audit.errors import AuditError


class BackupFailed(AuditError):
    pass


def backup(url: str, dest: Path) -> Path:
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite_backup(Path(parsed.database or ""), dest)
    if backend == "postgresql":
        return _pg_dump(url, dest)
    raise BackupFailed(f"backup is not supported for {backend}")


def _sqlite_backup(source: Path, dest: Path) -> Path:
    if not source.is_file():
        raise BackupFailed(f"no database file at {source}")
    if dest.is_dir():
        dest = dest / f"{source.stem}-backup.sqlite3"
    if dest.exists():
        raise BackupFailed(f"{dest} exists; choose a new file name (backups never overwrite)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".partial")
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        out = sqlite3.connect(tmp)
        try:
            src.backup(out, pages=4096)
            result = out.execute("PRAGMA integrity_check").fetchone()[0]
            out.execute("PRAGMA journal_mode = DELETE")
        finally:
            out.close()
    finally:
        src.close()
    if result != "ok":
        tmp.unlink(missing_ok=True)
        raise BackupFailed(f"the copy failed its integrity check: {result}")
    tmp.rename(dest)
    return dest


def _pg_dump(url: str, dest: Path) -> Path:
    if shutil.which("pg_dump") is None:
        raise BackupFailed("pg_dump is not installed (Debian: apt-get install postgresql-client)")
    if dest.is_dir():
        dest = dest / "fluoro-audit.pgdump"
    if dest.exists():
        raise BackupFailed(f"{dest} exists; choose a new file name (backups never overwrite)")
    parsed = make_url(url).set(drivername="postgresql")
    # The password goes through the environment, not the command line other users can read.
    env = {**os.environ, "PGPASSWORD": parsed.password or os.environ.get("PGPASSWORD", "")}
    libpq_url = parsed.set(password=None).render_as_string(hide_password=False)
    result = subprocess.run(
        ["pg_dump", "--format=custom", "--no-owner", f"--file={dest}", f"--dbname={libpq_url}"],
        capture_output=True, text=True, env=env,
    )
    if result.returncode != 0:
        dest.unlink(missing_ok=True)
        raise BackupFailed(f"pg_dump failed: {result.stderr.strip()}")
    return dest
