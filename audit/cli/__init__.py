"""The command line: a thin layer over the library (DESIGN.md §4).

Exit codes: 0 success; 1 invalid input or a refused operation, with a message naming why;
2 usage errors (argparse). Output meant for scripts is JSON, one object per line.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from audit import __version__
from audit.auth import add_user, cli_actor
from audit.errors import AuditError, ValidationFailed, WarningsNotConfirmed
from audit.log.service import ProcedureLog
from audit.storage.engine import default_url, make_engine, migrate, normalise_url, read_session
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
        from audit.log.summary import log_summary

        engine = make_engine(args.db)
        if log_summary(engine)["procedures"] == 0:  # sample data only into an empty log
            generate(engine, procedures=args.demo_procedures, seed=1, progress=True)
        engine.dispose()
    import dashboard

    app = Path(dashboard.__file__).parent / "app.py"
    env = {**os.environ, "FLUORO_AUDIT_DB": normalise_url(args.db)}
    command = [sys.executable, "-m", "streamlit", "run", str(app),
               "--server.port", str(args.port), "--server.headless", "true",
               "--browser.gatherUsageStats", "false", "--server.address", args.address]
    print(f"fluoro-audit dashboard on http://localhost:{args.port} ({_display_url(args.db)})",
          flush=True)
    # Become the Streamlit process, so signals (Ctrl-C, a service manager's TERM) reach it.
    os.execve(sys.executable, command, env)
    return EXIT_OK  # pragma: no cover - execve does not return


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


def _day(text: str | None, option: str) -> Any:
    from datetime import date

    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise CliError(f"{option}: {text!r} is not a date; give YYYY-MM-DD") from None


def cmd_report(args: argparse.Namespace) -> int:
    from audit.analytics.reports import build, render
    from audit.analytics.snapshot import Filters, load_snapshot

    filters = Filters(
        start=_day(args.date_from, "--from"), end=_day(args.date_to, "--to"),
        sites=tuple(args.site or ()), rooms=tuple(args.room or ()),
        physicians=tuple(args.physician or ()),
        procedures=tuple(p.upper() for p in args.procedure or ()))
    engine = make_engine(args.db)
    snap = load_snapshot(engine)
    try:
        tables = build(args.kind, engine, snap, cli_actor(), filters, args.by)
    except ValidationFailed as exc:  # a report writes nothing: say only what was wrong
        raise CliError("; ".join(str(e) for e in exc.errors)) from None
    sys.stdout.write(render(args.kind, tables, args.format, filters, args.by))
    return EXIT_OK


def cmd_backup(args: argparse.Namespace) -> int:
    from audit.storage.backup import backup

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


def _print_result(result: Any, as_json: bool) -> None:
    """One dose report file's outcome: a JSON line, or a readable line."""
    if as_json:
        _out(result.as_json())
        return
    line = f"{result.status:<9} {result.file}"
    if result.reason:
        line += f": {result.reason}"
    elif result.status == "ok":
        dap = result.totals.get("dap_total_gycm2")
        line += (f": {result.events} events, DAP {dap:.4g} Gy·cm²" if dap is not None
                 else f": {result.events} events")
        if result.record_id is not None:
            line += f", record {result.record_id} ({result.match or 'same study'})"
        if result.filled:
            line += f", filled {', '.join(result.filled)}"
        if result.discrepancies:
            line += f", {len(result.discrepancies)} discrepancies"
        if result.note:
            line += f"; {result.note}"
    print(line)


def _rdsr_summary(results: Sequence[Any], dry_run: bool) -> str:
    from collections import Counter

    counts = Counter(r.status for r in results)
    ok = [r for r in results if r.status == "ok"]
    linked = sum(1 for r in ok if r.record_id is not None and r.superseded_by is None)
    missing = sum(1 for r in ok if r.record_id is None)
    discrepancies = sum(len(r.discrepancies) for r in ok)
    text = (f"{len(results)} files: {counts['ok']} imported, {counts['duplicate']} duplicate, "
            f"{counts['rejected']} rejected; {linked} linked to the log, {missing} procedure "
            f"missing from the log, {discrepancies} discrepancies")
    if results and counts["duplicate"] == len(results):
        text += "; nothing new: every file was already imported"
    if dry_run:
        text = "dry run, nothing written: " + text
    return text


def cmd_import_rdsr(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError
    from tqdm import tqdm

    from audit.dose_reports.store import DoseImporter
    from audit.dose_reports.watch import PathsMissing, expand_paths

    try:
        files = expand_paths(args.paths)
    except PathsMissing as exc:
        raise CliError(f"{exc}; nothing was imported") from None
    importer = DoseImporter(make_engine(args.db), cli_actor())
    importer.settings()  # a broken setting stops the run before the first file
    results = []
    with tqdm(files, desc="dose reports", unit="file", file=sys.stderr, disable=None,
              dynamic_ncols=True) as progress:
        for path in progress:
            try:
                result = importer.import_path(path, dry_run=args.dry_run)
            except SQLAlchemyError as exc:
                progress.close()
                print(_rdsr_summary(results, args.dry_run), file=sys.stderr)
                raise CliError(f"database error while importing {path}: "
                               f"{getattr(exc, 'orig', None) or exc}; nothing of this file was "
                               f"written, the {len(results)} files before it were "
                               "processed") from None
            results.append(result)
            progress.clear()
            _print_result(result, args.json)
            sys.stdout.flush()
    summary = _rdsr_summary(results, args.dry_run)
    print(summary, file=sys.stderr if args.json else sys.stdout)
    return EXIT_OK


def cmd_import_csv(args: argparse.Namespace) -> int:
    from audit.log.csv_import import import_csv

    service = ProcedureLog(make_engine(args.db))
    result = import_csv(service, cli_actor(), args.file, dry_run=args.dry_run,
                        skip_invalid=args.skip_invalid, confirm_warnings=args.confirm_warnings,
                        create_missing=args.create_missing, timezone=args.timezone)
    for outcome in result.rows:
        if args.json:
            _out(outcome.as_json())
        elif outcome.status != "ok":
            for problem in outcome.problems() or [outcome.skipped or ""]:
                print(f"row {outcome.row}: {problem}", file=sys.stderr)
    summary = result.summary()
    if result.export_recognised:
        print(f"{args.file} is a fluoro-audit export ({result.export_recognised}): the "
              "exporter's formula guard (one leading apostrophe) was removed from text cells",
              file=sys.stderr)
    if result.committed:
        message = f"imported {summary['imported']} of {summary['rows']} rows from {args.file}"
        if result.rejected_file:
            message += (f"; {summary['invalid']} rejected rows with their reasons in "
                        f"{result.rejected_file}")
        if summary["skipped"]:
            message += f"; {summary['skipped']} void rows skipped"
        print(message, file=sys.stderr)
        return EXIT_OK
    if args.dry_run and not result.failed:
        print(f"dry run: all {summary['valid']} rows valid ({summary['skipped']} skipped); "
              "nothing written", file=sys.stderr)
        return EXIT_OK
    hint = "" if args.skip_invalid else " (or --skip-invalid to import the valid rows)"
    prefix = "dry run: " if args.dry_run else ""
    _err(f"{prefix}{summary['invalid']} of {summary['rows']} rows are invalid; nothing was "
         f"written{hint}")
    return EXIT_INVALID


def cmd_watch(args: argparse.Namespace) -> int:
    from audit.dose_reports.store import DoseImporter
    from audit.dose_reports.watch import Watcher

    folder = Path(args.dir)
    if not folder.is_dir():
        raise CliError(f"no such folder: {args.dir}")
    importer = DoseImporter(make_engine(args.db), cli_actor())
    importer.settings()
    watcher = Watcher(importer, folder, settle=args.settle,
                      report=lambda result: (_out(result.as_json()), sys.stdout.flush()))
    if args.once:
        results = watcher.run_once()
        pending = watcher.pending()
        message = _rdsr_summary(results, False)
        if pending:
            message += f"; {len(pending)} files still being written, left for the next run"
        print(message, file=sys.stderr)
        return EXIT_OK
    print(f"watching {folder} every {args.interval:g} s (Ctrl-C to stop)", file=sys.stderr)
    watcher.run_forever(interval=args.interval,
                        on_error=lambda exc: _err(f"{type(exc).__name__}: {exc}; retrying"))
    return EXIT_OK


def cmd_reconcile(args: argparse.Namespace) -> int:
    from audit.dose_reports.store import DoseImporter

    importer = DoseImporter(make_engine(args.db), cli_actor())
    results = importer.reconcile_unmatched()
    for result in results:
        _print_result(result, args.json)
    print(f"{len(results)} reports newly linked to the log", file=sys.stderr)
    return EXIT_OK


def _progress_bar(description: str) -> Callable[[int, int], None]:
    """A tqdm bar on stderr (shown on a terminal only), created once the total is known."""
    from tqdm import tqdm

    bar: list[Any] = []

    def tick(done: int, total: int) -> None:
        if not bar:
            bar.append(tqdm(total=total, unit="rows", desc=description, disable=None,
                            file=sys.stderr, leave=True))
        current = bar[0]
        if total != current.total:
            current.total = total
        current.update(done - current.n)
        if done >= total:
            current.close()

    return tick


def cmd_export(args: argparse.Namespace) -> int:
    from audit.export.filters import ExportFilters, parse_period
    from audit.export.registry import KINDS
    from audit.export.runner import export

    start, stop = parse_period(args.date_from, args.date_to)
    filters = ExportFilters(
        date_from=start, date_to=stop, site=getattr(args, "site", None),
        room=getattr(args, "room", None), physician=getattr(args, "physician", None),
        procedure_code=getattr(args, "procedure", None),
        include_voided=getattr(args, "include_voided", False),
    )
    sections = (*KINDS[args.kind], *args.extra)
    result = export(make_engine(args.db), cli_actor(), Path(args.out),
                    sections=sections, filters=filters, include_phi=args.include_phi,
                    make_zip=args.zip, progress=_progress_bar(f"export {args.kind}"))
    _out({"export_id": result.export_id, "path": str(result.path),
          "zip": str(result.zip_path) if result.zip_path else None,
          "include_phi": args.include_phi, "audit_event_id": result.audit_event_id,
          "files": [f.as_dict() for f in result.files]})
    return EXIT_OK


def cmd_verify_export(args: argparse.Namespace) -> int:
    from audit.export.verify import verify_export

    report = verify_export(Path(args.path))
    print(report.message(), file=sys.stdout if report.ok else sys.stderr)
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

    p = add("report", cmd_report, "compliance, dose, local DRL and alert figures (the numbers "
            "the dashboards show)")
    p.add_argument("kind", choices=("compliance", "dose", "drl", "alerts"))
    p.add_argument("--from", dest="date_from", metavar="DATE",
                   help="first day, YYYY-MM-DD (UTC), inclusive")
    p.add_argument("--to", dest="date_to", metavar="DATE",
                   help="last day, YYYY-MM-DD (UTC), inclusive")
    p.add_argument("--by", choices=("physician", "room", "procedure", "month"),
                   help="also break the figures down by this")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")
    for option, noun in (("--site", "site"), ("--room", "room"), ("--physician", "physician"),
                         ("--procedure", "procedure code")):
        p.add_argument(option, action="append", metavar="NAME",
                       help=f"only this {noun} (repeat for several)")

    p = add("backup", cmd_backup, "write a consistent copy of the database")
    p.add_argument("dest", help="file (SQLite) or file/directory (PostgreSQL: pg_dump format)")

    imports = sub.add_parser("import", help="import dose reports or a legacy CSV log",
                             description="import dose reports or a legacy CSV log"
                             ).add_subparsers(dest="import_command", required=True,
                                              metavar="KIND")
    p = add("rdsr", cmd_import_rdsr, "import DICOM dose reports (RDSR) from files or folders "
            "(recursive); rejected files are reported, not fatal: exit 0 when the run "
            "completes", imports)
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--dry-run", action="store_true",
                   help="read, match and compare, then roll back: nothing is written")
    p.add_argument("--json", action="store_true", help="one JSON object per file")

    p = add("csv", cmd_import_csv, "import a legacy procedure log (CSV); all rows or none",
            imports)
    p.add_argument("file")
    p.add_argument("--dry-run", action="store_true",
                   help="check every row and list its errors; nothing is written")
    p.add_argument("--json", action="store_true", help="one JSON object per row, then a summary")
    p.add_argument("--create-missing", action="store_true",
                   help="create unknown sites, rooms, physicians and technologists (audited)")
    p.add_argument("--skip-invalid", action="store_true",
                   help="import the valid rows; write the others with their reasons to "
                        "FILE.rejected.csv")
    p.add_argument("--confirm-warnings", action="store_true",
                   help="save rows whose plausibility warnings you have checked")
    p.add_argument("--timezone", metavar="ZONE",
                   help="IANA time zone of date-times without a UTC offset (America/New_York)")

    p = add("watch", cmd_watch, "import each dose report dropped into DIR once; move it to "
            "DIR/done/ or DIR/rejected/ (with a .reason.txt)")
    p.add_argument("dir")
    p.add_argument("--once", action="store_true", help="process what is there now, then exit")
    p.add_argument("--interval", type=float, default=2.0, help="seconds between polls")
    p.add_argument("--settle", type=float, default=2.0,
                   help="seconds a file's size must stay unchanged before it is read")

    p = add("reconcile", cmd_reconcile, "link dose reports whose procedure was missing from "
            "the log to procedures logged since")
    p.add_argument("--json", action="store_true")

    add("verify-audit", cmd_verify_audit, "walk the audit trail's hash chain")

    from audit.export.registry import KINDS, SECTIONS

    exports = sub.add_parser("export", help="write an audit export (CSV, dictionary, manifest, "
                             "SHA256SUMS)").add_subparsers(dest="kind", required=True,
                                                            metavar="KIND")
    period = ("a date is a whole UTC day (--to includes it); a date-time needs an offset")
    for kind, help_text in (("log", "the procedure log, one row per procedure"),
                            ("audit-trail", "the audit trail of a period"),
                            ("summary", "the dashboards' figures: compliance by group, dose "
                             "statistics and reference levels by procedure, alerts with their "
                             "acknowledgement (whole UTC days)")):
        p = add(kind, cmd_export, help_text, exports)
        p.add_argument("--out", required=True, metavar="DIR",
                       help="new folder to write (never overwritten)")
        p.add_argument("--from", dest="date_from", metavar="DATE", help=f"start; {period}")
        p.add_argument("--to", dest="date_to", metavar="DATE", help=f"end; {period}")
        if kind in ("log", "summary"):
            p.add_argument("--site", help="site name")
            p.add_argument("--room", help="room name")
            p.add_argument("--physician", help="performing physician's name")
            p.add_argument("--procedure", metavar="CODE", help="procedure catalog code")
        if kind == "log":
            p.add_argument("--include-voided", action="store_true",
                           help="include voided records (with status and void_reason)")
        p.add_argument("--include-phi", action="store_true",
                       help="include patient_id (MRN); the app offers this to the rso only")
        p.add_argument("--zip", action="store_true", help="also write DIR.zip")
        p.add_argument("--with", dest="extra", action="append", default=[],
                       metavar="SECTION", help="add a section to the same export (repeatable): "
                       + ", ".join(n for n in SECTIONS if n not in KINDS[kind]))

    p = add("verify-export", cmd_verify_export,
            "recheck an export's SHA-256 sums and row counts against its manifest")
    p.add_argument("path", metavar="DIR", help="export folder (or its .zip)")
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
