"""`patient history|letter`, `report committee` and `export surveyor`: the documents people
print (audit.documents, issue 14).

`--as USER` acts as that account (its role decides what is allowed, and the audit event names
it): a technologist is refused the patient history here as in the app. Without it the command
line acts with full rights, as every other command does (audit.auth.cli_actor).
"""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path
from typing import Any

from audit.auth import Actor, cli_actor
from audit.cli.common import EXIT_OK, CliError, Subcommands, add_command, print_json
from audit.storage.engine import make_engine


def actor_of(args: argparse.Namespace, engine: Any) -> Actor:
    """The account named by --as, or the command line's own actor."""
    from audit.documents import account_actor

    name = getattr(args, "as_user", None)
    return account_actor(engine, name) if name else cli_actor()


def _day(text: str | None, option: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise CliError(f"{option}: {text!r} is not a date; give YYYY-MM-DD") from None


def _stderr_progress(step: str, done: int, total: int) -> None:
    print(f"[{done}/{total}] {step}", file=sys.stderr, flush=True)


def cmd_patient_history(args: argparse.Namespace) -> int:
    from audit.documents import patient_dose_history, render_history

    engine = make_engine(args.db)
    history = patient_dose_history(engine, actor_of(args, engine), args.mrn,
                              access=args.format or "table")
    sys.stdout.write(render_history(history, args.format or "table"))
    return EXIT_OK


def cmd_patient_letter(args: argparse.Namespace) -> int:
    from audit.documents import write_letter

    engine = make_engine(args.db)
    result = write_letter(engine, actor_of(args, engine), args.mrn, Path(args.out),
                          first=_day(args.date_from, "--from"), last=_day(args.date_to, "--to"))
    print_json(result)
    return EXIT_OK


def cmd_report_committee(args: argparse.Namespace) -> int:
    """`report committee`: called by `report` when its kind is committee."""
    from audit.analytics import FrameCache, frame_store_dir
    from audit.documents import write_committee_report

    if not args.out:
        raise CliError("report committee writes a PDF: give --out FILE.pdf")
    engine = make_engine(args.db)
    # the frame file the app keeps (FLUORO_AUDIT_CACHE_DIR, default var/cache): a report
    # then reads only what changed since, not every record
    frames = FrameCache(engine, store=frame_store_dir())
    result = write_committee_report(
        engine, actor_of(args, engine), Path(args.out),
        first=_day(args.date_from, "--from"), last=_day(args.date_to, "--to"),
        sites=tuple(args.site or ()), pseudonymise=args.pseudonymise,
        progress=_stderr_progress, frames=frames)
    print_json(result)
    return EXIT_OK


def cmd_export_surveyor(args: argparse.Namespace) -> int:
    from audit.cli.export import sigterm_stops_cleanly
    from audit.documents import export_surveyor_packet

    engine = make_engine(args.db)
    with sigterm_stops_cleanly():
        result = export_surveyor_packet(engine, actor_of(args, engine), args.mrn,
                                        Path(args.out), make_zip=args.zip)
    print_json({"export_id": result.export_id, "path": str(result.path),
                "zip": str(result.zip_path) if result.zip_path else None,
                "include_phi": True, "audit_event_id": result.audit_event_id,
                "started_event_id": result.started_event_id,
                "signed_by": result.fingerprint,
                "files": [f.as_dict() for f in result.files]})
    return EXIT_OK


def add_as(p: argparse.ArgumentParser) -> None:
    p.add_argument("--as", dest="as_user", metavar="USER",
                   help="act as this account: its role decides what is allowed and the audit "
                        "trail names it (default: the command line, with full rights)")


def add_patient(sub: Subcommands) -> None:
    """Add `patient history|letter` to the command line."""
    group = sub.add_parser("patient", help="one patient's dose history and letter (rso, admin; "
                           "every use audited)").add_subparsers(dest="what", required=True,
                                                                metavar="WHAT")
    p = add_command(group, "history", cmd_patient_history,
                    "every procedure of one patient, cumulative dose (12 months, all time), "
                    "alerts and their follow-up")
    p.add_argument("mrn", metavar="MRN", help="the patient's medical record number")
    p.add_argument("--format", choices=("table", "json", "csv"),
                   help="table (default), json (missing values null) or csv (the procedures)")
    add_as(p)
    p = add_command(group, "letter", cmd_patient_letter,
                    "a letter to the patient (PDF): procedures in plain words, estimated dose "
                    "and days of natural background, contrast, where the images are kept")
    p.add_argument("mrn", metavar="MRN", help="the patient's medical record number")
    p.add_argument("--from", dest="date_from", metavar="DATE",
                   help="first day of procedures to include, YYYY-MM-DD (UTC)")
    p.add_argument("--to", dest="date_to", metavar="DATE",
                   help="last day of procedures to include, YYYY-MM-DD (UTC)")
    p.add_argument("--out", required=True, metavar="FILE.pdf", help="the PDF to write")
    add_as(p)


def add_surveyor(exports: Subcommands) -> None:
    """Add `export surveyor` under `export`."""
    p = add_command(exports, "surveyor", cmd_export_surveyor,
                    "the dose histories of named patients for a surveyor (CSV and PDF, signed "
                    "and hashed like every export; PHI, rso only)")
    p.add_argument("--mrn", required=True, nargs="+", metavar="MRN",
                   help="the patients' medical record numbers")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="new folder to write (never overwritten)")
    p.add_argument("--zip", action="store_true", help="also write DIR.zip")
    add_as(p)
