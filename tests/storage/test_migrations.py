"""Migrations on both databases: one head, upgrade from empty, down and up with rows kept,
and no drift between the models and the migrations (`alembic check`)."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import func, inspect, select
from sqlalchemy.orm import Session

from audit.auth import cli_actor
from audit.log.service import ProcedureLog
from audit.storage.engine import alembic_config, current_revision, downgrade, make_engine, migrate
from audit.storage.models import Base, ProcedureType, Setting
from tests.conftest import Databases, valid_record

ROOT = Path(__file__).resolve().parents[2]


def revisions() -> list[str]:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    return [r.revision for r in reversed(list(script.walk_revisions()))]


def test_single_head() -> None:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    assert len(script.get_heads()) == 1


def test_upgrade_from_empty_creates_every_table_and_seeds(databases: Databases,
                                                          backend: str) -> None:
    url = databases.empty(backend)
    migrate(url)
    engine = make_engine(url)
    try:
        tables = set(inspect(engine).get_table_names())
        assert set(Base.metadata.tables) <= tables
        with Session(engine) as s:
            codes = set(s.scalars(select(ProcedureType.code)))
            assert {"ILESI", "TFESI", "CAUDAL", "MBB", "RFA", "FACET", "SIJ", "DISCOGRAPHY",
                    "SYMPATHETIC", "OTHER"} <= codes
            assert s.get(Setting, "srdl_air_kerma_mgy").value == 5000
        migrate(url)  # running again at head changes nothing
        assert current_revision(engine) == revisions()[-1]
    finally:
        engine.dispose()


def test_down_and_up_keeps_the_rows(databases: Databases, backend: str) -> None:
    url = databases.empty(backend)
    migrate(url)
    engine = make_engine(url)
    try:
        service = ProcedureLog(engine)
        record_id = service.log(valid_record(), cli_actor(), create_missing=True).record_id
        before = service.get(record_id, cli_actor())
        for revision in revisions()[:-1][::-1]:  # step down to the first revision, then up
            downgrade(url, revision)
            assert current_revision(engine) == revision
        migrate(url)
        assert ProcedureLog(engine).get(record_id, cli_actor()) == before
        with Session(engine) as s:
            assert s.scalar(select(func.count()).select_from(ProcedureType)) == 10
    finally:
        engine.dispose()


def test_alembic_check_reports_no_drift(databases: Databases, backend: str) -> None:
    """`alembic check` exits non-zero if the models and the migrations disagree."""
    url = databases.empty(backend)
    migrate(url)
    result = subprocess.run(
        [sys.executable, "-m", "alembic", "-c", str(ROOT / "alembic.ini"), "check"],
        cwd=ROOT, env={**os.environ, "FLUORO_AUDIT_DB": url}, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No new upgrade operations detected" in result.stdout + result.stderr


def test_an_installed_copy_migrates_without_the_checkout(tmp_path: Path) -> None:
    """The wheel ships migrations/ as audit/_migrations, so `fluoro-audit serve` can upgrade a
    database from an installed package, far from any checkout."""
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--no-build-isolation", "-w", str(wheels), str(ROOT)], check=True)
    site = tmp_path / "site"
    with zipfile.ZipFile(next(wheels.glob("fluoro_audit-*.whl"))) as wheel:
        names = wheel.namelist()
        wheel.extractall(site)
    assert "audit/_migrations/env.py" in names
    assert any(n.startswith("audit/_migrations/versions/0001") for n in names)
    assert "dashboard/app.py" in names
    db = tmp_path / "installed.sqlite3"
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import audit.storage.engine as d; "
            "d.migrate(sys.argv[2]); print(d.migrations_dir())")
    result = subprocess.run([sys.executable, "-c", code, str(site), f"sqlite:///{db}"],
                            cwd=tmp_path, capture_output=True, text=True, check=True,
                            env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert result.stdout.strip() == str(site / "audit" / "_migrations")
    engine = make_engine(f"sqlite:///{db}")
    assert current_revision(engine) == revisions()[-1]
    engine.dispose()


@pytest.mark.parametrize("path", ["migrations/versions"])
def test_every_revision_has_a_downgrade(path: str) -> None:
    for file in (ROOT / path).glob("*.py"):
        text = file.read_text()
        assert "def downgrade()" in text and "pass\n" not in text.split("def downgrade()")[1][:40]
