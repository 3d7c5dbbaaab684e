"""The command line as a script would use it: JSON in, JSON out, exit codes 0/1/2."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from audit.storage.engine import make_engine
from audit.storage.models import AuditEvent, Procedure, UserAccount
from tests.conftest import valid_record

ROOT = Path(__file__).resolve().parents[2]


def cli(db_url: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "audit.cli", "--db", db_url, *args], input=stdin,
        capture_output=True, text=True, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300,
    )


def rows(db_url: str, model: Any = Procedure) -> int:
    engine = make_engine(db_url)
    with Session(engine) as s:
        n = s.scalar(select(func.count()).select_from(model)) or 0
    engine.dispose()
    return n


def test_log_stores_dap_in_gycm2_and_keeps_what_was_entered(db_url: str) -> None:
    record = valid_record(dap_value=125, dap_unit="µGy·m²")
    result = cli(db_url, "log", "--create-missing", stdin=json.dumps(record))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"record_id": 1, "warnings": []}
    shown = cli(db_url, "show", "1", "--json")
    assert shown.returncode == 0
    stored = json.loads(shown.stdout)
    assert stored["dap_gycm2"] == pytest.approx(1.25)
    assert (stored["dap_value"], stored["dap_unit"]) == (125, "µGy·m²")
    table = cli(db_url, "show", "1")
    assert "dap_unit" in table.stdout and "µGy·m²" in table.stdout


@pytest.mark.parametrize(
    ("override", "field"),
    [({"dap_unit": "mGy"}, "dap_unit"), ({"levels": ["L9-L10"]}, "levels"),
     ({"fluoro_time_s": -3}, "fluoro_time_s"), ({"procedure_code": "XYZ"}, "procedure_code")],
)
def test_invalid_input_exits_1_naming_the_field_and_writes_nothing(
    db_url: str, override: dict[str, Any], field: str
) -> None:
    before = rows(db_url), rows(db_url, AuditEvent)
    result = cli(db_url, "log", "--create-missing", stdin=json.dumps(valid_record(**override)))
    assert result.returncode == 1
    assert f"error: record 1: {field}:" in result.stderr
    assert "nothing was written" in result.stderr
    assert result.stdout == ""
    assert (rows(db_url), rows(db_url, AuditEvent)) == before


def test_arrays_and_json_lines_are_all_or_nothing(db_url: str) -> None:
    good, other = valid_record(), valid_record(patient_id="MRN0002")
    bad = valid_record(levels=["L9-L10"], patient_id="MRN0003")
    lines = "\n".join(json.dumps(r) for r in (good, other, bad))
    result = cli(db_url, "log", "--create-missing", stdin=lines)
    assert result.returncode == 1 and "record 3: levels" in result.stderr
    assert rows(db_url) == 0
    result = cli(db_url, "log", "--create-missing", stdin=json.dumps([good, other]))
    assert result.returncode == 0
    ids = [json.loads(line)["record_id"] for line in result.stdout.splitlines()]
    assert len(ids) == 2 and ids[0] < ids[1]  # PostgreSQL never reuses a sequence value
    assert rows(db_url) == 2


def test_warnings_need_confirm_warnings(db_url: str, tmp_path: Path) -> None:
    path = tmp_path / "slip.json"
    path.write_text(json.dumps(valid_record(dap_value=71)), encoding="utf-8")
    refused = cli(db_url, "log", str(path), "--create-missing")
    assert refused.returncode == 1
    assert "dap_value" in refused.stderr and "--confirm-warnings" in refused.stderr
    assert rows(db_url) == 0
    saved = cli(db_url, "log", str(path), "--create-missing", "--confirm-warnings")
    assert saved.returncode == 0
    assert json.loads(saved.stdout)["warnings"][0]["field"] == "dap_value"


def test_unknown_names_need_create_missing(db_url: str) -> None:
    result = cli(db_url, "log", stdin=json.dumps(valid_record()))
    assert result.returncode == 1
    assert "physician: no physician named 'Dr. Chen'" in result.stderr


def test_bad_json_and_usage_errors(db_url: str) -> None:
    result = cli(db_url, "log", stdin="{not json")
    assert result.returncode == 1 and "line 1: not JSON" in result.stderr
    assert cli(db_url, "log", stdin="[1, 2]").returncode == 1
    assert cli(db_url, "frobnicate").returncode == 2
    assert cli(db_url, "show", "999").returncode == 1


def test_users_add(db_url: str) -> None:
    result = cli(db_url, "users", "add", "rso1", "--role", "rso", "--password-stdin",
                 stdin="correct horse battery\n")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["can_sign_in"] is True
    engine = make_engine(db_url)
    with Session(engine) as s:
        user = s.scalar(select(UserAccount).where(UserAccount.username == "rso1"))
        assert user.password_hash.startswith("$argon2id$")
    engine.dispose()
    again = cli(db_url, "users", "add", "rso1", "--role", "rso", "--password-stdin",
                stdin="correct horse battery\n")
    assert again.returncode == 1 and "username: 'rso1' already exists" in again.stderr
    short = cli(db_url, "users", "add", "x2", "--role", "rso", "--password-stdin", stdin="abc\n")
    assert short.returncode == 1 and "password: must be at least" in short.stderr
    assert cli(db_url, "users", "add", "x3", "--role", "wizard").returncode == 2


def test_verify_audit(db_url: str) -> None:
    cli(db_url, "log", "--create-missing", stdin=json.dumps(valid_record()))
    result = cli(db_url, "verify-audit")
    assert result.returncode == 0
    assert "hash chain verified" in result.stdout


def test_backup_is_a_consistent_restorable_copy(db_url: str, backend: str,
                                                tmp_path: Path) -> None:
    cli(db_url, "log", "--create-missing", stdin=json.dumps(valid_record()))
    dest = tmp_path / ("copy.sqlite3" if backend == "sqlite" else "copy.pgdump")
    result = cli(db_url, "backup", str(dest))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["bytes"] > 0
    keys = json.loads(result.stdout)["keys_not_included"]
    assert (Path(keys) / "trail.key").is_file()
    assert f"the keys are not in this backup: back up {keys} too" in result.stderr
    if backend == "sqlite":
        with sqlite3.connect(dest) as copy:
            assert copy.execute("SELECT count(*) FROM procedure").fetchone() == (1,)
    else:
        listing = subprocess.run(["pg_restore", "--list", str(dest)], capture_output=True,
                                 text=True, check=True)
        assert "TABLE DATA public procedure" in listing.stdout
    again = cli(db_url, "backup", str(dest))
    assert again.returncode == 1 and "never overwrite" in again.stderr


def test_migrate_and_demo(db_url: str) -> None:
    assert "database at head" in cli(db_url, "migrate").stdout
    result = cli(db_url, "demo", "--procedures", "300", "--seed", "5")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1])["procedures"] == 300
    assert rows(db_url) == 300
    assert cli(db_url, "verify-audit").returncode == 0
