"""`export log|audit-trail|summary` and `verify-export`: audit exports (audit.export)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from audit.auth import cli_actor
from audit.cli.common import EXIT_INVALID, EXIT_OK, Subcommands, add_command, print_json
from audit.storage.engine import make_engine


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
    from audit.export.registry import KINDS
    from audit.export.runner import export
    from audit.filters import Filters, parse_period, single

    start, before = parse_period(args.date_from, args.date_to)
    filters = Filters(
        start=start, before=before, sites=single(getattr(args, "site", None)),
        rooms=single(getattr(args, "room", None)),
        physicians=single(getattr(args, "physician", None)),
        procedures=single(getattr(args, "procedure", None)),
        include_voided=getattr(args, "include_voided", False),
    )
    sections = (*KINDS[args.kind], *args.extra)
    result = export(make_engine(args.db), cli_actor(), Path(args.out),
                    sections=sections, filters=filters, include_phi=args.include_phi,
                    make_zip=args.zip, progress=_progress_bar(f"export {args.kind}"))
    print_json({"export_id": result.export_id, "path": str(result.path),
                "zip": str(result.zip_path) if result.zip_path else None,
                "include_phi": args.include_phi, "audit_event_id": result.audit_event_id,
                "files": [f.as_dict() for f in result.files]})
    return EXIT_OK


def cmd_verify_export(args: argparse.Namespace) -> int:
    from audit.export.verify import verify_export

    report = verify_export(Path(args.path))
    print(report.message(), file=sys.stdout if report.ok else sys.stderr)
    return EXIT_OK if report.ok else EXIT_INVALID


def add_export(sub: Subcommands) -> None:
    """Add `export log|audit-trail|summary` to the command line."""
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
        p = add_command(exports, kind, cmd_export, help_text)
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


def add_verify_export(sub: Subcommands) -> None:
    """Add `verify-export` to the command line."""
    p = add_command(sub, "verify-export", cmd_verify_export,
            "recheck an export's SHA-256 sums and row counts against its manifest")
    p.add_argument("path", metavar="DIR", help="export folder (or its .zip)")
