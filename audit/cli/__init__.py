"""The command line: a thin layer over the library (docs/design.md §4).

Exit codes: 0 success; 1 invalid input or a refused operation, with a message naming why;
2 usage errors (argparse). Output meant for scripts is JSON, one object per line.

This module assembles the parser from the command modules (admin, users, records, names,
reports, imports, export, keys, database: one per group of commands) in the order `--help` lists
them, and turns the library's refusals into exit codes and messages; audit.cli.common holds what
they share.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from audit import __version__
from audit.cli import admin, database, export, imports, keys, names, records, reports, users
from audit.cli.common import EXIT_INVALID, EXIT_OK, EXIT_USAGE, CliError, print_error
from audit.errors import AuditError, ValidationFailed
from audit.storage.engine import default_url

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
    admin.add_demo(sub)
    reports.add_report(sub)
    admin.add_backup(sub)
    imports.add_import(sub)
    imports.add_watch(sub)
    imports.add_reconcile(sub)
    admin.add_verify_audit(sub)
    database.add_db(sub)
    export.add_export(sub)
    export.add_verify_export(sub)
    keys.add_keys(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.db_given = args.db is not None  # verify-export trusts a named database's key
    args.db = args.db or default_url()
    try:
        return int(args.handler(args))
    except ValidationFailed as exc:
        for error in exc.errors:
            print_error(str(error))
        print_error("nothing was written")
        return EXIT_INVALID
    except (AuditError, CliError) as exc:
        print_error(str(exc))
        return EXIT_INVALID
    except KeyboardInterrupt:
        return 130
