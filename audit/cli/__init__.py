"""The command line: a thin layer over the library (docs/design.md §4).

Exit codes: 0 success; 1 invalid input or a refused operation, with a message naming why;
2 usage errors (argparse). Output meant for scripts is JSON, one object per line. No failure
ends in a traceback: main() turns each into one `error: ...` line and exit 1 (an unforeseen
one as "internal error", with its traceback only under FLUORO_AUDIT_DEBUG=1).

Only `migrate`, `serve` and `demo` (which migrate first) may create a database; every other
command that opens one checks it exists and is migrated before anything else, so a mistyped
--db is an error, not a new empty file.

This module assembles the parser from the command modules (admin, users, records, names,
complications, rules, reports, figures, alerts, imports, network, settings, documents, export, keys,
database: one per group of commands) in the order `--help` lists them, and turns the library's
refusals into exit codes and messages; audit.cli.common holds what they share.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence

from sqlalchemy.exc import SQLAlchemyError

from audit import __version__
from audit.cli import (
    admin,
    alerts,
    complications,
    database,
    documents,
    export,
    figures,
    imports,
    keys,
    names,
    network,
    records,
    reports,
    rules,
    settings,
    users,
)
from audit.cli.common import EXIT_INVALID, EXIT_OK, EXIT_USAGE, CliError, print_error
from audit.errors import AuditError, ValidationFailed
from audit.storage.engine import default_url, require_migrated

#: Set to 1 to see the traceback of an internal error.
ENV_DEBUG = "FLUORO_AUDIT_DEBUG"
#: Commands that create (and migrate) the database they are given.
CREATES_DATABASE = frozenset({"migrate", "serve", "demo"})
#: Commands that open no database.
NO_DATABASE = frozenset({"verify-export", "keys"})
#: Commands that check their database themselves: `receive` starts while it is unreachable.
OWN_CHECK = frozenset({"receive"})

__all__ = ["EXIT_INVALID", "EXIT_OK", "EXIT_USAGE", "build_parser", "main"]


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
    admin.add_migrate(sub)
    admin.add_serve(sub)
    users.add_users(sub)
    records.add_log(sub)
    records.add_show(sub)
    names.add_merge(sub)
    complications.add_complication(sub)
    rules.add_followup(sub)
    admin.add_demo(sub)
    reports.add_report(sub)
    figures.add_figures(sub)
    alerts.add_alerts(sub)
    documents.add_patient(sub)
    settings.add_settings(sub)
    rules.add_rules(sub)
    admin.add_backup(sub)
    imports.add_import(sub)
    imports.add_watch(sub)
    imports.add_reconcile(sub)
    network.add_receive(sub)
    network.add_fetch(sub)
    admin.add_verify_audit(sub)
    database.add_db(sub)
    documents.add_surveyor(export.add_export(sub))
    export.add_verify_export(sub)
    keys.add_keys(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        args.db_given = args.db is not None  # verify-export trusts a named database's key
        args.db = args.db or default_url()
        if args.command not in CREATES_DATABASE | NO_DATABASE | OWN_CHECK:
            require_migrated(args.db)
        return int(args.handler(args))
    except ValidationFailed as exc:
        for error in exc.errors:
            print_error(one_line(str(error)))
        print_error("nothing was written")
        return EXIT_INVALID
    except (AuditError, CliError) as exc:
        print_error(one_line(str(exc)))
        return EXIT_INVALID
    except KeyboardInterrupt:
        return 130
    except OSError as exc:  # a file or folder the command cannot read or write
        where = f": {exc.filename}" if exc.filename else ""
        print_error(f"{exc.strerror or one_line(str(exc))}{where}")
        return EXIT_INVALID
    except SQLAlchemyError as exc:
        print_error(f"database error: {one_line(str(getattr(exc, 'orig', None) or exc))}")
        return EXIT_INVALID
    except Exception as exc:  # the last resort: a bug, but still no traceback
        return internal_error(exc)


def one_line(message: str) -> str:
    """A message as one line (a database's error text spans several)."""
    return " ".join(message.split())


def internal_error(exc: Exception) -> int:
    """Report an unforeseen failure in one line; the traceback only when asked for."""
    if os.environ.get(ENV_DEBUG, "") not in ("", "0"):
        traceback.print_exception(exc, file=sys.stderr)
        hint = ""
    else:
        hint = f" (set {ENV_DEBUG}=1 to see the traceback)"
    try:
        text = one_line(str(exc))[:500]
    except Exception:  # str() of a broken exception must not raise from here
        text = ""
    print_error(f"internal error: {type(exc).__name__}: {text}{hint}")
    return EXIT_INVALID
