"""`fluoro-audit users ...`: the account actions of the admin page on the command line."""

from __future__ import annotations

import json
import subprocess
import sys

from sqlalchemy import Engine

from audit import auth
from audit.auth import cli_actor
from audit.vocab import Role

PASSWORD = "correct horse battery"


def cli(db_url: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "audit.cli", "--db", db_url, *args],
                          input=stdin, capture_output=True, text=True, check=False)


def test_users_list_role_deactivate_reactivate_and_reset(db_url: str, engine: Engine) -> None:
    auth.add_user(engine, cli_actor(), "boss", Role.ADMIN, PASSWORD)
    auth.add_user(engine, cli_actor(), "tech1", Role.TECHNOLOGIST, PASSWORD)
    listed = cli(db_url, "users", "list")
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [r["username"] for r in rows] == ["boss", "tech1"]
    assert all("hash" not in key for r in rows for key in r)

    assert cli(db_url, "users", "role", "tech1", "rso").returncode == 0
    assert auth.authenticate(engine, "tech1", PASSWORD).role is Role.RSO
    assert cli(db_url, "users", "deactivate", "tech1").returncode == 0
    assert auth.current_actor_state(engine, auth.Actor("tech1", Role.RSO)) is None
    assert cli(db_url, "users", "reactivate", "tech1").returncode == 0
    reset = cli(db_url, "users", "reset-password", "boss", "--password-stdin",
                stdin="another long password\n")
    assert reset.returncode == 0, reset.stderr
    assert auth.authenticate(engine, "boss", "another long password").username == "boss"


def test_refusals_exit_1_with_the_reason(db_url: str, engine: Engine) -> None:
    auth.add_user(engine, cli_actor(), "boss", Role.ADMIN, PASSWORD)
    last = cli(db_url, "users", "deactivate", "boss")
    assert last.returncode == 1 and "last active administrator" in last.stderr
    short = cli(db_url, "users", "reset-password", "boss", "--password-stdin", stdin="short\n")
    assert short.returncode == 1 and "password: must be at least 10" in short.stderr
    missing = cli(db_url, "users", "reactivate", "ghost")
    assert missing.returncode == 1 and "no account named 'ghost'" in missing.stderr
