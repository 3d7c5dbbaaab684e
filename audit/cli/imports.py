"""Bringing data in: `import rdsr` (DICOM dose reports), `import csv` (a legacy log),
`watch` (a drop folder of dose reports) and `reconcile` (link reports logged since).

Each dose report file is imported on its own: a file that is rejected (unreadable, not a
fluoroscopy report, a number outside the data dictionary's bounds, refused by the database, or
an unexpected error) is reported with its reason and the run goes on with the next file. The
exit code is 1 when any file was rejected (invalid input, as for every command), after every
file was tried; only a database that cannot be reached stops the run early.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from audit.auth import cli_actor
from audit.cli.common import (
    EXIT_INVALID,
    EXIT_OK,
    CliError,
    Subcommands,
    add_command,
    bounded,
    print_error,
    print_json,
)
from audit.log.service import ProcedureLog
from audit.storage.engine import make_engine


def _print_result(result: Any, as_json: bool) -> None:
    """One dose report file's outcome: a JSON line, or a readable line."""
    if as_json:
        print_json(result.as_json())
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
        for warning in result.warnings:  # an event figure left out: the report still imported
            line += f"; warning: {warning}"
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


def _exit_code(results: Sequence[Any]) -> int:
    """1 when any file (or report) was rejected, else 0: every file was tried either way."""
    return EXIT_INVALID if any(r.status == "rejected" for r in results) else EXIT_OK


def _import_one(importer: Any, path: Path, dry_run: bool) -> Any:
    """One file's ImportResult, whatever goes wrong with it; raises SQLAlchemyError only when
    the database cannot be reached (every later file would fail the same way)."""
    from sqlalchemy.exc import SQLAlchemyError

    from audit.dose_reports.store import REJECTED, ImportResult, refusal

    try:
        return importer.import_path(path, dry_run=dry_run)
    except SQLAlchemyError as exc:  # the importer raises only "unavailable" errors
        if not importer.database_reachable():
            raise
        return ImportResult(str(path), REJECTED, refusal(exc), dry_run=dry_run)
    except Exception as exc:  # a bug must not stop the files behind this one
        return ImportResult(str(path), REJECTED, "internal error while importing: "
                            f"{type(exc).__name__}: {exc}; nothing of it was written",
                            dry_run=dry_run)


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
                result = _import_one(importer, path, args.dry_run)
            except SQLAlchemyError as exc:
                progress.close()
                print(_rdsr_summary(results, args.dry_run), file=sys.stderr)
                raise CliError(f"the database cannot be reached while importing {path}: "
                               f"{getattr(exc, 'orig', None) or exc}; nothing of this file was "
                               f"written, the {len(results)} files before it were "
                               "processed") from None
            results.append(result)
            progress.clear()
            _print_result(result, args.json)
            sys.stdout.flush()
    summary = _rdsr_summary(results, args.dry_run)
    print(summary, file=sys.stderr if args.json else sys.stdout)
    return _exit_code(results)


def cmd_import_csv(args: argparse.Namespace) -> int:
    from audit.log.csv_import import import_csv

    service = ProcedureLog(make_engine(args.db))
    result = import_csv(service, cli_actor(), args.file, dry_run=args.dry_run,
                        skip_invalid=args.skip_invalid, confirm_warnings=args.confirm_warnings,
                        create_missing=args.create_missing, timezone=args.timezone)
    for outcome in result.rows:
        if args.json:
            print_json(outcome.as_json())
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
    print_error(f"{prefix}{summary['invalid']} of {summary['rows']} rows are invalid; nothing was "
                f"written{hint}")
    return EXIT_INVALID


def cmd_watch(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from audit.dose_reports.store import DoseImporter
    from audit.dose_reports.watch import Watcher

    folder = Path(args.dir)
    if not folder.is_dir():
        raise CliError(f"no such folder: {args.dir}")
    importer = DoseImporter(make_engine(args.db), cli_actor())
    importer.settings()
    watcher = Watcher(importer, folder, settle=args.settle,
                      report=lambda result: (print_json(result.as_json()), sys.stdout.flush()))
    if args.once:
        try:
            results = watcher.run_once()
        except SQLAlchemyError as exc:
            raise CliError(f"the database cannot be reached: {getattr(exc, 'orig', None) or exc}"
                           "; the files not yet moved are left for the next run") from None
        pending = watcher.pending()
        message = _rdsr_summary(results, False)
        if pending:
            message += f"; {len(pending)} files still being written, left for the next run"
        print(message, file=sys.stderr)
        return _exit_code(results)
    print(f"watching {folder} every {args.interval:g} s (Ctrl-C to stop)", file=sys.stderr)
    watcher.run_forever(interval=args.interval,
                        on_error=lambda exc: print_error(f"{type(exc).__name__}: {exc}; retrying"))
    return EXIT_OK


def cmd_reconcile(args: argparse.Namespace) -> int:
    from audit.dose_reports.store import DoseImporter

    importer = DoseImporter(make_engine(args.db), cli_actor())
    results = importer.reconcile_unmatched()
    for result in results:
        _print_result(result, args.json)
    linked = sum(1 for r in results if r.status == "ok")
    message = f"{linked} reports newly linked to the log"
    if linked != len(results):
        message += f"; {len(results) - linked} could not be reconciled (reasons above)"
    print(message, file=sys.stderr)
    return _exit_code(results)


def add_import(sub: Subcommands) -> None:
    """Add `import rdsr|csv` to the command line."""
    imports = sub.add_parser("import", help="import dose reports or a legacy CSV log",
                             description="import dose reports or a legacy CSV log"
                             ).add_subparsers(dest="import_command", required=True,
                                              metavar="KIND")
    p = add_command(imports, "rdsr", cmd_import_rdsr,
                    "import DICOM dose reports (RDSR) from files or folders (recursive); each "
                    "file on its own: a rejected file is reported with its reason and the run "
                    "goes on; exit 1 when any file was rejected")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--dry-run", action="store_true",
                   help="read, match and compare, then roll back: nothing is written")
    p.add_argument("--json", action="store_true", help="one JSON object per file")

    p = add_command(imports, "csv", cmd_import_csv,
                    "import a legacy procedure log (CSV); all rows or none")
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


def add_watch(sub: Subcommands) -> None:
    """Add `watch` to the command line."""
    p = add_command(sub, "watch", cmd_watch,
                    "import each dose report dropped into DIR once; move it to DIR/done/ or "
                    "DIR/rejected/ (with a .reason.txt) and go on with the next file; with "
                    "--once, exit 1 when any file was rejected")
    p.add_argument("dir")
    p.add_argument("--once", action="store_true", help="process what is there now, then exit")
    p.add_argument("--interval", type=bounded(float, 0.1, 86_400), default=2.0,
                   help="seconds between polls")
    p.add_argument("--settle", type=bounded(float, 0, 86_400), default=2.0,
                   help="seconds a file's size must stay unchanged before it is read")


def add_reconcile(sub: Subcommands) -> None:
    """Add `reconcile` to the command line."""
    p = add_command(sub, "reconcile", cmd_reconcile,
                    "link dose reports whose procedure was missing from the log to procedures "
                    "logged since")
    p.add_argument("--json", action="store_true")
