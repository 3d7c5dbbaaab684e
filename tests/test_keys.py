"""The site's keys live outside the database (audit.keys, migration 0006)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from sqlalchemy import select, text

from audit import keys as keys_module
from audit.keys import (
    ENV_KEY_DIR,
    KeyMissing,
    KeyUnreadable,
    ensure_keys,
    key_dir,
    load_keys,
)
from audit.log.pseudonym import pseudonym
from audit.storage.engine import make_engine, migrate, read_session
from audit.storage.models import Setting
from tests.conftest import Databases


@pytest.fixture
def own_key_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keys where a site would have them: beside the SQLite file, not in the tests' directory."""
    monkeypatch.delenv(ENV_KEY_DIR, raising=False)


def test_a_new_sqlite_database_gets_its_keys_beside_it_readable_by_its_owner_only(
    own_key_dir: None, tmp_path: Path
) -> None:
    db = tmp_path / "site" / "fluoro-audit.sqlite3"
    migrate(f"sqlite:///{db}")
    folder = tmp_path / "site" / "fluoro-audit.keys"
    assert key_dir(str(db)) == folder
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for name in ("trail.key", "pseudonym.key", "signing.key"):
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600, name
    engine = make_engine(str(db))
    with read_session(engine) as s:  # the database alone holds no key
        assert s.scalar(select(Setting.key).where(Setting.key == "pseudonym_secret")) is None
        dumped = "\n".join(str(r) for r in s.execute(text("SELECT * FROM setting")))
    keys = load_keys(engine)
    assert keys.pseudonym_key not in dumped
    assert len(keys.trail_key) == 64
    engine.dispose()


def test_an_older_installation_keeps_every_patient_ref_when_its_key_moves_out(
    own_key_dir: None, databases: Databases, backend: str
) -> None:
    url = databases.empty(backend)
    if backend == "postgresql":
        os.environ[ENV_KEY_DIR] = str(Path(databases.tmp) / ("keys-" + url.rsplit("/", 1)[1]))
    try:
        migrate(url, "0005")
        engine = make_engine(url)
        with engine.begin() as conn:
            old = conn.execute(
                select(Setting.value).where(Setting.key == "pseudonym_secret")).scalar_one()
            conn.execute(text("INSERT INTO patient (mrn, pseudonym, created_at) "
                              "VALUES ('MRN77', :p, CURRENT_TIMESTAMP)"),
                         {"p": pseudonym(str(old), "MRN77")})
        migrate(url)
        assert load_keys(engine).pseudonym_key == str(old)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT COUNT(*) FROM setting WHERE key = "
                                     "'pseudonym_secret'")).scalar_one() == 0
        engine.dispose()
    finally:
        os.environ.pop(ENV_KEY_DIR, None)


def test_a_lost_key_is_an_error_naming_where_it_was_looked_for_never_a_new_key(
    own_key_dir: None, tmp_path: Path
) -> None:
    db = tmp_path / "a.sqlite3"
    migrate(str(db))
    (tmp_path / "a.keys" / "trail.key").unlink()
    migrate(str(db))  # a later migrate must not make a new one silently
    assert not (tmp_path / "a.keys" / "trail.key").exists()
    # The next process to start: keys are loaded once per process, and this one loaded them
    # while migrating (migration 0007 re-keys the trail with the trail key).
    keys_module._load.cache_clear()
    with pytest.raises(KeyMissing, match=r"a\.keys/trail\.key .*FLUORO_AUDIT_TRAIL_KEY"):
        load_keys(str(db))


def test_a_key_others_can_read_is_refused_with_the_command_that_fixes_it(
    own_key_dir: None, tmp_path: Path
) -> None:
    db = tmp_path / "b.sqlite3"
    ensure_keys(str(db))
    (tmp_path / "b.keys" / "pseudonym.key").chmod(0o644)
    with pytest.raises(KeyUnreadable, match="chmod 600"):
        load_keys(str(db))


def test_a_different_pseudonym_key_beside_a_database_with_patients_stops_the_migration(
    own_key_dir: None, tmp_path: Path
) -> None:
    db = tmp_path / "c.sqlite3"
    migrate(str(db), "0005")
    engine = make_engine(str(db))
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO patient (mrn, pseudonym, created_at) "
                          "VALUES ('MRN1', 'PX', CURRENT_TIMESTAMP)"))
    engine.dispose()
    folder = tmp_path / "c.keys"
    folder.mkdir(mode=0o700)
    (folder / "pseudonym.key").write_text("someone else's key")
    (folder / "pseudonym.key").chmod(0o600)
    with pytest.raises(RuntimeError, match="different pseudonym key"):
        migrate(str(db))
    engine = make_engine(str(db))
    with engine.connect() as conn:  # nothing changed: the key is still in the database
        assert conn.execute(text("SELECT COUNT(*) FROM setting WHERE key = "
                                 "'pseudonym_secret'")).scalar_one() == 1
    engine.dispose()
