"""`fluoro-audit demo` keeps demo data out of real data: its own database (and keys) unless one
is named, a refusal that writes nothing for a database holding records the loader did not
write, and --force that says what it is about to do before doing it. On both databases where
a database is named; the default file is SQLite by nature."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import func, select

from audit.auth import cli_actor
from audit.keys import ENV_KEY_DIR
from audit.log.service import ProcedureLog
from audit.storage.engine import ENV_DB, make_engine
from audit.storage.models import AuditEvent, Base
from tests.conftest import valid_record

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, cwd: Path, env_db: str | None = None,
        key_dir: bool = True) -> subprocess.CompletedProcess[str]:
    """The command line as a user runs it from `cwd`: FLUORO_AUDIT_DB only when given."""
    env = {k: v for k, v in os.environ.items() if k != ENV_DB}
    if env_db:
        env[ENV_DB] = env_db
    if not key_dir:
        env.pop(ENV_KEY_DIR, None)
    return subprocess.run([sys.executable, "-m", "audit.cli", *args], capture_output=True,
                          text=True, cwd=cwd, env={**env, "PYTHONPATH": str(ROOT)}, timeout=300)


def counts(url: str) -> dict[str, int]:
    """Rows of every table, and the last audit event: what "writes nothing" is checked on."""
    engine = make_engine(url)
    with engine.connect() as conn:
        found = {table.name: conn.scalar(select(func.count()).select_from(table)) or 0
                 for table in Base.metadata.sorted_tables}
        found["last audit event"] = conn.scalar(select(func.max(AuditEvent.id))) or 0
    engine.dispose()
    return found


def test_demo_refuses_a_database_with_a_real_record_and_writes_nothing(
        db_url: str, logged: int, tmp_path: Path) -> None:
    before = counts(db_url)
    for args, env_db in ((("--db", db_url), None), ((), db_url)):  # named either way
        result = run(*args, "demo", "--procedures", "50", cwd=tmp_path, env_db=env_db)
        assert result.returncode == 1, result.stdout + result.stderr
        error = result.stderr
        assert "holds 1 procedure record not written by the demo loader" in error
        assert f"created by {cli_actor().username} (1)" in error
        assert "--force" in error and "Nothing was written." in error
        assert "demo database:" in result.stdout  # which database it looked at
        assert counts(db_url) == before
    assert not (tmp_path / "var").exists()  # nor did it fall back to another database


def test_demo_force_says_what_it_will_do_then_loads(db_url: str, logged: int,
                                                    tmp_path: Path) -> None:
    result = run("--db", db_url, "demo", "--procedures", "300", "--seed", "4", "--force",
                 cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    said = out.index("--force: adding 300 demo records")
    assert "beside 1 record not written by the demo loader" in out
    assert said < out.index("loaded 300 demo records")  # said before it was done
    summary = json.loads(out.splitlines()[-1])
    assert summary["procedures"] == 300 and summary["first_record_id"] == logged + 1
    assert counts(db_url)["procedure"] == 301
    assert run("--db", db_url, "verify-audit", cwd=tmp_path).returncode == 0
    # The site can go on logging (on PostgreSQL the id sequence follows the bulk load).
    engine = make_engine(db_url)
    record_id = ProcedureLog(engine).log(valid_record(patient_id="MRN0002"), cli_actor()).record_id
    engine.dispose()
    assert record_id == 302


def test_demo_uses_the_database_fluoro_audit_db_names(db_url: str, tmp_path: Path) -> None:
    result = run("demo", "--procedures", "100", cwd=tmp_path, env_db=db_url)
    assert result.returncode == 0, result.stderr
    assert "(named by FLUORO_AUDIT_DB)" in result.stdout
    assert counts(db_url)["procedure"] == 100
    assert not (tmp_path / "var").exists()


def test_demo_defaults_to_its_own_database_and_keys(tmp_path: Path) -> None:
    """No --db, no FLUORO_AUDIT_DB: var/fluoro-audit-demo.sqlite3 with its keys beside it, even
    with FLUORO_AUDIT_KEY_DIR set (the tests set it); the real default file is never made."""
    assert os.environ.get(ENV_KEY_DIR)
    first = run("demo", "--procedures", "1000", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "demo database: sqlite:///var/fluoro-audit-demo.sqlite3 (its own" in first.stdout
    assert "planted outliers: 2 at 3-8x the typical dose and 0 above" in first.stdout
    database = tmp_path / "var" / "fluoro-audit-demo.sqlite3"
    assert database.is_file()
    assert (tmp_path / "var" / "fluoro-audit-demo.keys" / "trail.key").is_file()
    assert not (tmp_path / "var" / "fluoro-audit.sqlite3").exists()
    again = run("demo", "--procedures", "200", "--seed", "2", cwd=tmp_path)  # only demo data
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout.splitlines()[-1])["first_record_id"] == 1001
    assert counts(f"sqlite:///{database}")["procedure"] == 1200
    verify = run("--db", str(database), "verify-audit", cwd=tmp_path, key_dir=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr
