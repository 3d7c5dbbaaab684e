"""The command line: a thin layer over the library (DESIGN.md §4).

Exit codes: 0 success; 1 invalid input or a refused operation, with a message naming why;
2 usage errors (argparse). Output meant for scripts is JSON, one object per line.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from audit import __version__
from audit.auth import add_user, cli_actor
from audit.db import default_url, make_engine, migrate, normalise_url, read_session
from audit.errors import AuditError, ValidationFailed, WarningsNotConfirmed
from audit.records import ProcedureLog
from audit.vocab import Role

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2


class CliError(Exception):
    """A refusal to report on stderr with exit code 1."""


def _out(obj: Any, stream: TextIO | None = None) -> None:
    print(json.dumps(obj, ensure_ascii=False, default=str), file=stream or sys.stdout)


def _err(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)


# --- input ------------------------------------------------------------------------------------

def read_records(text: str) -> list[dict[str, Any]]:
    """A JSON object, a JSON array of objects, or JSON lines."""
    stripped = text.strip()
    if not stripped:
        raise CliError("no input: give a JSON object, an array of objects, or JSON lines")
    try:
        value = json.loads(stripped)
    except json.JSONDecodeError:
        value = None
        records = []
        for number, line in enumerate(stripped.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise CliError(f"line {number}: not JSON ({exc.msg} at column {exc.colno})"
                               ) from None
        value = records
    items = value if isinstance(value, list) else [value]
    for index, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            raise CliError(f"record {index}: expected a JSON object of dictionary fields, got "
                           f"{type(item).__name__}")
    return items


# --- commands ---------------------------------------------------------------------------------

def cmd_migrate(args: argparse.Namespace) -> int:
    migrate(args.db)
    print(f"database at head: {_display_url(args.db)}")
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    migrate(args.db)
    if args.demo:
        from audit.demo import generate

        engine = make_engine(args.db)
        with read_session(engine) as session:
            from sqlalchemy import func, select

            from audit.models import Procedure

            empty = not session.scalar(select(func.count()).select_from(Procedure))
        if empty:
            generate(engine, procedures=args.demo_procedures, seed=1, progress=True)
        engine.dispose()
    import dashboard

    app = Path(dashboard.__file__).parent / "app.py"
    env = {**os.environ, "FLUORO_AUDIT_DB": normalise_url(args.db)}
    command = [sys.executable, "-m", "streamlit", "run", str(app),
               "--server.port", str(args.port), "--server.headless", "true",
               "--browser.gatherUsageStats", "false", "--server.address", args.address]
    print(f"fluoro-audit dashboard on http://localhost:{args.port} ({_display_url(args.db)})")
    return subprocess.call(command, env=env)


def cmd_users_add(args: argparse.Namespace) -> int:
    password = None
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty() and not args.no_password:
        password = getpass.getpass(f"password for {args.name}: ")
        if getpass.getpass("again: ") != password:
            raise CliError("the passwords differ")
    engine = make_engine(args.db)
    user = add_user(engine, cli_actor(), args.name, args.role, password, args.display_name)
    _out({"user_id": user.id, "username": user.username, "role": user.role,
          "can_sign_in": user.can_sign_in})
    return EXIT_OK


def _read_new_password(args: argparse.Namespace, name: str) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    password = getpass.getpass(f"new password for {name}: ")
    if getpass.getpass("again: ") != password:
        raise CliError("the passwords differ")
    return password


def cmd_users_list(args: argparse.Namespace) -> int:
    from audit.auth import list_users

    for user in list_users(make_engine(args.db), cli_actor()):
        _out(user)
    return EXIT_OK


def cmd_users_change(args: argparse.Namespace) -> int:
    """deactivate / reactivate / reset-password / role: the admin page's actions, audited with
    the operating-system user as the actor (the way back in when every admin is locked out)."""
    from audit import auth

    engine = make_engine(args.db)
    actor = cli_actor()
    if args.users_command == "deactivate":
        auth.deactivate_user(engine, actor, args.name, reason=args.reason)
    elif args.users_command == "reactivate":
        auth.reactivate_user(engine, actor, args.name)
    elif args.users_command == "reset-password":
        auth.reset_password(engine, actor, args.name, _read_new_password(args, args.name))
    else:
        auth.change_role(engine, actor, args.name, args.role)
    _out({"username": args.name, "done": args.users_command})
    return EXIT_OK


def cmd_log(args: argparse.Namespace) -> int:
    if args.file in (None, "-"):
        text = sys.stdin.read()
    else:
        try:
            text = Path(args.file).read_text(encoding="utf-8-sig")
        except OSError as exc:
            raise CliError(f"cannot read {args.file}: {exc.strerror}") from None
    records = read_records(text)
    service = ProcedureLog(make_engine(args.db))
    try:
        results = service.log_many(records, cli_actor(), confirm_warnings=args.confirm_warnings,
                                   create_missing=args.create_missing)
    except WarningsNotConfirmed as exc:
        for warning in exc.warnings:
            _err(f"{warning} (confirm with --confirm-warnings)")
        _err("nothing was written")
        return EXIT_INVALID
    for result in results:
        _out(result.as_dict())
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    record = ProcedureLog(make_engine(args.db)).get(args.id, cli_actor())
    if args.json:
        _out(record)
        return EXIT_OK
    width = max(len(k) for k in record)
    for key, value in record.items():
        if isinstance(value, list):
            value = "; ".join(v if isinstance(v, str) else
                              f"{v.get('field')}: {v.get('message')}" for v in value)
        print(f"{key:<{width}}  {'' if value is None else value}")
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from audit.demo import generate

    migrate(args.db)
    engine = make_engine(args.db)
    summary = generate(engine, procedures=args.procedures, seed=args.seed, progress=True)
    _out(summary)
    return EXIT_OK


def cmd_backup(args: argparse.Namespace) -> int:
    from audit.backup import backup

    dest = backup(normalise_url(args.db), Path(args.dest))
    _out({"backup": str(dest), "bytes": dest.stat().st_size})
    return EXIT_OK


def cmd_verify_audit(args: argparse.Namespace) -> int:
    from audit.trail import verify_chain

    engine = make_engine(args.db)
    with read_session(engine) as session:
        report = verify_chain(session)
    print(report.message())
    return EXIT_OK if report.ok else EXIT_INVALID


# --- parser -----------------------------------------------------------------------------------

def _display_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(normalise_url(url)).render_as_string(hide_password=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fluoro-audit",
        description="Fluoroscopy procedure log and radiation audit.",
        epilog="Exit codes: 0 success, 1 invalid input or refused operation, 2 usage.",
    )
    parser.add_argument("--db", default=None, metavar="URL",
                        help="database URL or SQLite file (default: $FLUORO_AUDIT_DB, else "
                             "var/fluoro-audit.sqlite3)")
    parser.add_argument("--version", action="version", version=f"fluoro-audit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, handler: Callable[[argparse.Namespace], int], help_text: str,
            parent: Any = sub) -> argparse.ArgumentParser:
        p = parent.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(handler=handler)
        return p

    add("migrate", cmd_migrate, "upgrade the schema to head")

    p = add("serve", cmd_serve, "migrate, then start the dashboard")
    p.add_argument("--port", type=int, default=8501)
    p.add_argument("--address", default="0.0.0.0", help="interface to listen on")
    p.add_argument("--demo", action="store_true", help="load sample data into an empty database")
    p.add_argument("--demo-procedures", type=int, default=5000, help=argparse.SUPPRESS)

    users = sub.add_parser("users", help="manage accounts").add_subparsers(
        dest="users_command", required=True, metavar="ACTION")
    p = add("add", cmd_users_add, "add an account", users)
    p.add_argument("name", help="username")
    p.add_argument("--role", required=True, choices=Role.values())
    p.add_argument("--display-name")
    p.add_argument("--password-stdin", action="store_true",
                   help="read the password from the first line of standard input")
    p.add_argument("--no-password", action="store_true",
                   help="create an account that cannot sign in")
    add("list", cmd_users_list, "list accounts (JSON lines; never the password hash)", users)
    p = add("deactivate", cmd_users_change, "stop an account from signing in", users)
    p.add_argument("name")
    p.add_argument("--reason", default="deactivated from the command line")
    p = add("reactivate", cmd_users_change, "let a deactivated account sign in again", users)
    p.add_argument("name")
    p = add("reset-password", cmd_users_change, "set a new password and unlock", users)
    p.add_argument("name")
    p.add_argument("--password-stdin", action="store_true",
                   help="read the password from the first line of standard input")
    p = add("role", cmd_users_change, "change an account's role", users)
    p.add_argument("name")
    p.add_argument("role", choices=Role.values())

    p = add("log", cmd_log, "log procedures from JSON (object, array or JSON lines)")
    p.add_argument("file", nargs="?", help="JSON file, or - for standard input (default)")
    p.add_argument("--confirm-warnings", action="store_true",
                   help="save records whose plausibility warnings you have checked")
    p.add_argument("--create-missing", action="store_true",
                   help="create unknown sites, rooms, physicians and technologists (audited)")

    p = add("show", cmd_show, "show one record")
    p.add_argument("id", type=int)
    p.add_argument("--json", action="store_true")

    p = add("demo", cmd_demo, "load realistic synthetic data (published distributions)")
    p.add_argument("--procedures", type=int, default=5000)
    p.add_argument("--seed", type=int, default=1)

    p = add("backup", cmd_backup, "write a consistent copy of the database")
    p.add_argument("dest", help="file (SQLite) or file/directory (PostgreSQL: pg_dump format)")

    add("verify-audit", cmd_verify_audit, "walk the audit trail's hash chain")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.db = args.db or default_url()
    try:
        return int(args.handler(args))
    except ValidationFailed as exc:
        for error in exc.errors:
            _err(str(error))
        _err("nothing was written")
        return EXIT_INVALID
    except (AuditError, CliError) as exc:
        _err(str(exc))
        return EXIT_INVALID
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
