"""No traceback, ever (issue 10): every failure of the command line is one `error: ...` line
and exit 1 (argparse's usage errors keep exit 2), and only `migrate`, `serve` and `demo`
create a database.

Most cases call audit.cli.main in-process (fast); one runs the real process to show what a user
sees.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import inspect
from sqlalchemy.exc import OperationalError

from audit.cli import main
from audit.cli import records as records_cli
from audit.storage.engine import make_engine
from tests.conftest import Databases, valid_record
from tests.log.test_input_bounds import write_csv

ROOT = Path(__file__).resolve().parents[2]
#: Commands that open an existing database, with the arguments each needs.
COMMANDS = [["report", "compliance"], ["show", "1"], ["users", "list"], ["log"],
            ["verify-audit"], ["reconcile"], ["import", "csv", "missing.csv"],
            ["export", "log", "--out", "never-written"], ["backup", "never.sqlite3"]]


def run(capsys: pytest.CaptureFixture[str], *argv: str, stdin: str = "") -> tuple[int, str]:
    old = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        code = main(list(argv))
    finally:
        sys.stdin = old
    return code, capsys.readouterr().err


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


def test_a_mistyped_sqlite_path_is_refused_and_nothing_is_created(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    typo = tmp_path / "nonexist" / "typo.sqlite3"
    for command in COMMANDS:
        code, err = run(capsys, "--db", str(typo), *command)
        line = one_error_line(err)
        assert code == 1
        assert f"no fluoro-audit database at {typo}" in line and "fluoro-audit migrate" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no file, no folder


def test_the_real_process_says_so_in_one_line(tmp_path: Path) -> None:
    typo = tmp_path / "nonexist" / "typo.sqlite3"
    result = subprocess.run(
        [sys.executable, "-m", "audit.cli", "--db", str(typo), "report", "compliance"],
        capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith(f"error: no fluoro-audit database at {typo}: run "
                                    "`fluoro-audit migrate` first")
    assert len(result.stderr.splitlines()) == 1
    assert not typo.parent.exists()


def test_an_empty_file_or_a_database_without_the_schema_is_not_migrated(
        databases: Databases, backend: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    url = databases.empty(backend)
    if backend == "sqlite":
        path = Path(url.removeprefix("sqlite:///"))
        path.touch()
    for command in COMMANDS[:4]:
        code, err = run(capsys, "--db", url, *command)
        assert code == 1 and "not migrated" in one_error_line(err)
    if backend == "sqlite":
        assert path.stat().st_size == 0
    engine = make_engine(url)
    assert inspect(engine).get_table_names() == []
    engine.dispose()
    code, err = run(capsys, "--db", url, "migrate")
    assert code == 0, err
    code, err = run(capsys, "--db", url, "users", "list")
    assert code == 0, err


def test_migrate_creates_a_new_sqlite_database(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "new" / "log.sqlite3"
    assert run(capsys, "--db", str(path), "migrate")[0] == 0
    assert path.is_file()


@pytest.mark.parametrize(
    ("url", "message"),
    [("postgresql://:::", "neither a database URL nor a SQLite file"),
     ("mysql://host/db", "SQLite file or a PostgreSQL database")],
)
def test_a_malformed_or_unsupported_url_is_one_line(
        url: str, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run(capsys, "--db", url, "users", "list")
    assert code == 1 and message in one_error_line(err)


def test_csv_import_year_1_and_a_folder_as_timezone(
        db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_csv(tmp_path / "legacy.csv", [
        valid_record(), valid_record(performed_at="0001-01-01T00:00:00+01:00")])
    code, err = run(capsys, "--db", db_url, "import", "csv", str(path), "--create-missing")
    assert code == 1 and "row 3: performed_at: year 1 is outside" in err
    assert "Traceback" not in err
    code, err = run(capsys, "--db", db_url, "import", "csv", str(path), "--create-missing",
                    "--skip-invalid")
    assert code == 0 and "1 rejected rows" in err
    assert "year 1 is outside" in (tmp_path / "legacy.csv.rejected.csv").read_text("utf-8-sig")
    local = write_csv(tmp_path / "local.csv", [  # no offset: read in --timezone
        valid_record(performed_at="0001-01-01T00:00:00"), valid_record(performed_at="9999-12-31")])
    code, err = run(capsys, "--db", db_url, "import", "csv", str(local), "--create-missing",
                    "--timezone", "Asia/Tokyo")
    assert code == 1 and "row 2: performed_at: year 1 is outside" in err
    assert "row 3: performed_at: year 9999 is outside" in err and "Traceback" not in err
    for zone in ("America", "a" * 300, "../../etc"):
        code, err = run(capsys, "--db", db_url, "import", "csv", str(path), "--timezone", zone)
        assert code == 1 and "is not an IANA time zone" in one_error_line(err)


def test_huge_numbers_and_dates_anywhere(db_url: str, capsys: pytest.CaptureFixture[str],
                                         tmp_path: Path) -> None:
    huge = str(10**400)
    code, err = run(capsys, "--db", db_url, "show", huge)
    assert code == 1 and "no record a 401-digit number" in one_error_line(err)
    code, err = run(capsys, "--db", db_url, "log", "--create-missing",
                    stdin='{"saved_images": ' + huge + "}")
    assert code == 1
    assert "saved_images: is 401 characters, too long for a number; allowed: 0 to 10000" in err
    code, err = run(capsys, "--db", db_url, "report", "compliance", "--from", "0001-01-01",
                    "--to", "9999-12-31")
    assert code == 0, err
    code, err = run(capsys, "--db", db_url, "export", "log", "--out", str(tmp_path / "x"),
                    "--from", "0001-01-01T00:00:00+05:00")
    assert code == 1 and "from: " in err and "beyond the dates" in err
    for argv in (["demo", "--procedures", huge], ["watch", str(tmp_path), "--interval", "nan"]):
        with pytest.raises(SystemExit) as usage:  # argparse: usage error, exit 2, no traceback
            run(capsys, "--db", db_url, *argv)
        assert usage.value.code == 2
        assert "out of range" in capsys.readouterr().err


def test_user_arguments_that_are_not_text_are_refused(
        db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    # Bytes that are not UTF-8 arrive in sys.argv as lone surrogates.
    code, err = run(capsys, "--db", db_url, "users", "deactivate", "ab\udcff")
    assert code == 1 and "username contains an invalid character" in one_error_line(err)
    code, err = run(capsys, "--db", db_url, "users", "add", "abc1", "--role", "rso",
                    "--password-stdin", stdin="correct horse\udcff\n")
    assert code == 1 and "password is not valid UTF-8" in one_error_line(err)


def test_json_input_that_is_not_utf8_or_too_large(
        db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "latin1.json"
    path.write_bytes(json.dumps(valid_record(physician="Dr. Müller"), ensure_ascii=False)
                     .encode("latin-1"))
    code, err = run(capsys, "--db", db_url, "log", str(path))
    assert code == 1 and "is not UTF-8 text" in one_error_line(err)


def test_an_unexpected_exception_is_one_line_with_a_hint(
        db_url: str, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(_args: object) -> int:
        raise RuntimeError("first line\nsecond line")

    monkeypatch.setattr(records_cli, "cmd_show", boom)
    monkeypatch.delenv("FLUORO_AUDIT_DEBUG", raising=False)
    code, err = run(capsys, "--db", db_url, "show", "1")
    assert code == 1
    assert one_error_line(err) == ("error: internal error: RuntimeError: first line second line "
                                   "(set FLUORO_AUDIT_DEBUG=1 to see the traceback)")
    monkeypatch.setenv("FLUORO_AUDIT_DEBUG", "1")
    code, err = run(capsys, "--db", db_url, "show", "1")
    assert code == 1 and "Traceback" in err
    assert err.strip().splitlines()[-1] == "error: internal error: RuntimeError: first line " \
        "second line"


def test_a_database_error_is_one_line(db_url: str, capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    def lost(_args: object) -> int:
        raise OperationalError("SELECT 1", {}, Exception("server closed the connection\n"
                                                         "unexpectedly"))

    monkeypatch.setattr(records_cli, "cmd_show", lost)
    code, err = run(capsys, "--db", db_url, "show", "1")
    assert code == 1
    assert one_error_line(err) == ("error: database error: server closed the connection "
                                   "unexpectedly")
