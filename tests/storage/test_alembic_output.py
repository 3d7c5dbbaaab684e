"""`alembic check` prints to the stdout of the call, whatever stdout was when Alembic was first
imported: its Config's default stream is bound at import (a default argument), and an import
under a redirected stdout (a background thread's migrate, a test's capture) left every later
check writing to a closed stream ("I/O operation on closed file")."""

from __future__ import annotations

import importlib
import io
import sys
from pathlib import Path

import alembic.config
import pytest
from alembic import command

from audit.storage.engine import alembic_config, make_engine, migrate


def test_alembic_check_prints_where_stdout_is_now(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'check.sqlite3'}"
    migrate(url)
    gone = io.StringIO()
    saved, sys.stdout = sys.stdout, gone
    try:
        importlib.reload(alembic.config)  # first imported while stdout was `gone`
    finally:
        sys.stdout = saved
    gone.close()
    engine = make_engine(url, foreign_keys=False)
    try:
        config = alembic_config(url)
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.check(config)  # no drift: prints that it found none
        assert "No new upgrade operations detected." in capsys.readouterr().out
    finally:
        engine.dispose()
        importlib.reload(alembic.config)
