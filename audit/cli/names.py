"""Names from the command line: `merge`, a duplicate site, room, physician or technologist into
the one kept (issue 11; the rules are in audit/log/merge.py)."""

from __future__ import annotations

import argparse

from audit.auth import cli_actor
from audit.cli.common import (
    EXIT_INVALID,
    EXIT_OK,
    Subcommands,
    add_command,
    print_error,
    print_json,
)
from audit.errors import WarningsNotConfirmed
from audit.log.merge import COLUMNS, merge_names
from audit.storage.engine import make_engine


def cmd_merge(args: argparse.Namespace) -> int:
    engine = make_engine(args.db)
    try:
        result = merge_names(engine, cli_actor(), args.kind, args.source, args.target,
                             args.reason, site=args.site, target_site=args.target_site,
                             confirm_warnings=args.confirm_warnings)
    except WarningsNotConfirmed as exc:
        for warning in exc.warnings:
            print_error(f"{warning} (--confirm-warnings to merge anyway)")
        print_error("nothing was written")
        return EXIT_INVALID
    finally:
        engine.dispose()
    print_json(result.as_dict())
    return EXIT_OK


def add_merge(sub: Subcommands) -> None:
    """Add `merge` to the command line."""
    p = add_command(sub, "merge", cmd_merge,
                    "merge a duplicate site, room, physician or technologist into the one "
                    "kept: its records are re-pointed (one audited amendment each), it is "
                    "deactivated, and its name resolves to the kept one from now on")
    p.add_argument("kind", choices=list(COLUMNS), help="what the two names are")
    p.add_argument("source", metavar="SOURCE", help="the duplicate's exact name")
    p.add_argument("into", choices=["into", "INTO"], metavar="into")
    p.add_argument("target", metavar="TARGET", help="the exact name to keep")
    p.add_argument("--reason", required=True, help="why the two names are one (audited)")
    p.add_argument("--site", help="rooms: the site both rooms are at")
    p.add_argument("--target-site", help=argparse.SUPPRESS)
    p.add_argument("--confirm-warnings", action="store_true",
                   help="merge rooms whose DAP display unit or KAP correction factor differ")
