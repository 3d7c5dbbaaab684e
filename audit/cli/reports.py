"""`report`: the dashboards' figures as a table, CSV or JSON (audit.analytics.reports)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from audit.auth import cli_actor
from audit.cli.common import EXIT_OK, CliError, Subcommands, add_command, print_json
from audit.errors import ValidationFailed
from audit.storage.engine import make_engine


def _day(text: str | None, option: str) -> Any:
    from datetime import date

    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise CliError(f"{option}: {text!r} is not a date; give YYYY-MM-DD") from None


def _progress(done: int, total: int) -> None:
    """The rule report's batches on a terminal's stderr (stdout is the report)."""
    sys.stderr.write(f"\rchecking the rules: batch {done:,} of {total:,}"
                     + ("\n" if done >= total else ""))
    sys.stderr.flush()


def cmd_report(args: argparse.Namespace) -> int:
    from audit.analytics.reports import build, render, write_csv_files
    from audit.analytics.snapshot import load_snapshot
    from audit.filters import Filters

    if args.kind == "committee":
        from audit.cli.documents import cmd_report_committee

        return cmd_report_committee(args)
    if args.pseudonymise:
        raise CliError("--pseudonymise applies to report committee only")
    if args.out is not None and args.format not in (None, "csv"):
        raise CliError(f"--out writes one CSV file per table; --format {args.format} does not "
                       "go with it (leave --format out, or give --format csv)")
    filters = Filters.days(
        _day(args.date_from, "--from"), _day(args.date_to, "--to"),
        sites=tuple(args.site or ()), rooms=tuple(args.room or ()),
        physicians=tuple(args.physician or ()),
        procedures=tuple(p.upper() for p in args.procedure or ()))
    engine = make_engine(args.db)
    snap = load_snapshot(engine)
    try:
        tables = build(args.kind, engine, snap, cli_actor(), filters, args.by,
                       progress=_progress if sys.stderr.isatty() else None)
    except ValidationFailed as exc:  # a report writes nothing: say only what was wrong
        raise CliError("; ".join(str(e) for e in exc.errors)) from None
    if args.out is not None:
        for written in write_csv_files(args.kind, tables, Path(args.out)):
            print_json(written)
        return EXIT_OK
    sys.stdout.write(render(args.kind, tables, args.format or "table", filters, args.by))
    return EXIT_OK


def add_report(sub: Subcommands) -> None:
    """Add `report` to the command line."""
    p = add_command(sub, "report", cmd_report,
                    "compliance, dose, local DRL, alert, complication and practice-rule "
                    "figures, and those from the C-arm's irradiation events (the numbers the "
                    "dashboards show)")
    p.add_argument("kind", choices=("compliance", "dose", "drl", "alerts", "events",
                                    "complications", "rules", "committee"),
                   help="committee: the radiation safety committee's report as a PDF (--out "
                        "FILE.pdf; --from, --to, --site; --pseudonymise); complications: "
                        "complication rates per procedure, physician and month; rules: "
                        "compliance with the practice rule packs, by physician and month, "
                        "with the exceptions")
    p.add_argument("--from", dest="date_from", metavar="DATE",
                   help="first day, YYYY-MM-DD (UTC), inclusive")
    p.add_argument("--to", dest="date_to", metavar="DATE",
                   help="last day, YYYY-MM-DD (UTC), inclusive")
    p.add_argument("--by", choices=("physician", "room", "procedure", "month", "weight_band",
                                    "bmi_band", "operator"),
                   help="also break the figures down by this (weight_band: patient weight "
                        "bands; bmi_band: WHO body-mass-index bands; operator: who drove the "
                        "C-arm; these three for dose and compliance)")
    p.add_argument("--format", choices=("table", "csv", "json"),
                   help="table (default), csv (one table, or each table after a line "
                        "\"# NAME\", a blank line between) or json (missing values null)")
    p.add_argument("--out", metavar="DIR",
                   help="write each table to its own file, DIR/<report>_<table>.csv (CSV); "
                        "prints one JSON line per file (committee: the PDF to write)")
    p.add_argument("--pseudonymise", action="store_true",
                   help="committee: physicians as Physician A, B, ... instead of their names")
    from audit.cli.documents import add_as

    add_as(p)
    for option, noun in (("--site", "site"), ("--room", "room"), ("--physician", "physician"),
                         ("--procedure", "procedure code")):
        p.add_argument(option, action="append", metavar="NAME",
                       help=f"only this {noun} (repeat for several)")
