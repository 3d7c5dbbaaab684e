"""The username rule on every path that creates an account (issue 10).

Found: `--create-missing` created technologist accounts named "' OR 1=1 --", with a zero-width
space, or with a newline, although `users add` refuses such names. Every creation path now
applies audit.auth.validate_username: `users add`, the admin page (tests/dashboard), "create
missing" technologists of `fluoro-audit log`, of the log form (the service call it makes) and of
CSV import, and an amend that names a new technologist. The refusal names the field and the rule.
Every database test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from audit.auth import USERNAME_RULE, Actor, add_user, cli_actor, validate_username
from audit.errors import ValidationFailed
from audit.log.csv_import import import_csv
from audit.log.service import ProcedureLog
from audit.storage.models import Procedure, UserAccount
from audit.vocab import Role
from tests.conftest import valid_record
from tests.log.test_csvlog import COLUMNS, write_csv

#: Names that break the rule: SQL-looking text, a zero-width space, a newline inside.
BAD_NAMES = ["' OR 1=1 --", "tech\u200b1", "tech\n1"]
PASSWORD = "correct horse battery"


def usernames(engine: Engine) -> set[str]:
    with Session(engine) as s:
        return set(s.scalars(select(UserAccount.username)))


def procedures(engine: Engine) -> int:
    with Session(engine) as s:
        return s.scalar(select(func.count()).select_from(Procedure)) or 0


def cli(db_url: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "audit.cli", "--db", db_url, *args],
                          input=stdin, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("name", [*BAD_NAMES, "x", "tech1\u00e9", "a" * 81])
def test_the_rule(name: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        validate_username(name, "technologist")
    [error] = caught.value.errors
    assert (error.field, error.message) == ("technologist", USERNAME_RULE)
    assert validate_username("  j.smith@site-2_b ") == "j.smith@site-2_b"


@pytest.mark.parametrize("name", BAD_NAMES)
def test_users_add_refuses_the_name(engine: Engine, name: str) -> None:
    with pytest.raises(ValidationFailed, match="username: must be 2-80 characters"):
        add_user(engine, cli_actor(), name, Role.TECHNOLOGIST, PASSWORD)
    assert usernames(engine) == set()


def test_users_add_on_the_command_line_refuses_the_name(db_url: str, engine: Engine) -> None:
    run = cli(db_url, "users", "add", "tech\u200b1", "--role", "technologist", "--no-password")
    assert run.returncode == 1
    assert f"username: {USERNAME_RULE}" in run.stderr
    assert usernames(engine) == set()


@pytest.mark.parametrize("name", BAD_NAMES)
def test_create_missing_refuses_a_technologist_the_rule_refuses(
        engine: Engine, service: ProcedureLog, admin: Actor, name: str) -> None:
    """service.log(..., create_missing=True): the call of `fluoro-audit log` and of the log
    form when a new site, room or physician is typed."""
    with pytest.raises(ValidationFailed) as caught:
        service.log(valid_record(technologist=name), admin, create_missing=True)
    [error] = caught.value.errors
    assert error.field == "technologist"
    assert f"it cannot be created: a username {USERNAME_RULE}" in error.message
    assert usernames(engine) == set() and procedures(engine) == 0
    # A valid new name is still created, and an existing account is found as before.
    service.log(valid_record(technologist="tech1"), admin, create_missing=True)
    service.log(valid_record(technologist="tech1", patient_id="MRN0002"), admin)
    assert usernames(engine) == {"tech1"}


def test_an_amend_naming_a_new_technologist_follows_the_rule(
        engine: Engine, service: ProcedureLog, admin: Actor, logged: int) -> None:
    with pytest.raises(ValidationFailed, match="technologist: no account named"):
        service.amend(logged, {"technologist": "' OR 1=1 --"}, admin, version=1,
                      reason="wrong technologist", create_missing=True)
    assert usernames(engine) == {"tech1"}


def test_log_on_the_command_line_names_each_refused_technologist(
        db_url: str, engine: Engine) -> None:
    records = [valid_record(technologist=name, patient_id=f"MRN{i}")
               for i, name in enumerate(BAD_NAMES)]
    run = cli(db_url, "log", "--create-missing", stdin=json.dumps(records))
    assert run.returncode == 1
    for index, name in enumerate(BAD_NAMES, start=1):
        assert (f"record {index}: technologist: no account named {name!r}, and it cannot be "
                f"created: a username {USERNAME_RULE}") in run.stderr
    assert usernames(engine) == set() and procedures(engine) == 0


def test_csv_import_with_create_missing_refuses_the_names(
        engine: Engine, service: ProcedureLog, admin: Actor, tmp_path: Path) -> None:
    rows = [valid_record(technologist=name, patient_id=f"MRN{i}")
            for i, name in enumerate([*BAD_NAMES, "tech1"])]
    path = write_csv(tmp_path / "techs.csv", rows, COLUMNS)
    result = import_csv(service, admin, path, create_missing=True)
    assert not result.committed
    assert [r.status for r in result.rows] == ["invalid", "invalid", "invalid", "ok"]
    for outcome in result.rows[:3]:
        [error] = outcome.errors
        assert error.field == "technologist" and USERNAME_RULE in error.message
    assert usernames(engine) == set() and procedures(engine) == 0
    # --skip-invalid writes the valid row, and creates only its technologist.
    result = import_csv(service, admin, path, create_missing=True, skip_invalid=True)
    assert result.committed and len(result.imported) == 1
    assert usernames(engine) == {"tech1"} and procedures(engine) == 1


def test_csv_import_on_the_command_line_names_field_and_rule(
        db_url: str, engine: Engine, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "techs.csv", [valid_record(technologist="' OR 1=1 --")],
                     COLUMNS)
    run = cli(db_url, "import", "csv", str(path), "--create-missing")
    assert run.returncode == 1
    assert "row 2: technologist: no account named \"' OR 1=1 --\"" in run.stderr
    assert USERNAME_RULE in run.stderr
    assert usernames(engine) == set() and procedures(engine) == 0
