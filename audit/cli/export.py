"""`export log|audit-trail|summary` and `verify-export`: audit exports (audit.export)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

from audit.auth import cli_actor
from audit.cli.common import (
    EXIT_INVALID,
    EXIT_OK,
    CliError,
    Subcommands,
    add_command,
    print_json,
)
from audit.storage.engine import default_url, make_engine

#: The exit status of a process stopped by SIGTERM (128 + 15), as a shell reports it.
EXIT_TERMINATED = 128 + signal.SIGTERM


@contextmanager
def sigterm_stops_cleanly() -> Iterator[None]:
    """While the export runs, SIGTERM raises SystemExit(143) instead of ending the process on
    the spot, so the runner's cleanup runs: the partial folder (maybe holding MRNs) is removed
    and a PHI export's failure event written. A second SIGTERM during that cleanup is ignored
    (it would cut the cleanup short); SIGKILL still ends the process, and the next export
    removes what it left. The previous handler is restored afterwards. Signal handlers can only
    be set in the main thread; elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired: list[int] = []

    def stop(signum: int, frame: FrameType | None) -> None:
        if fired:
            return
        fired.append(signum)
        raise SystemExit(EXIT_TERMINATED)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


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
    with sigterm_stops_cleanly():
        result = export(make_engine(args.db), cli_actor(), Path(args.out),
                        sections=sections, filters=filters, include_phi=args.include_phi,
                        make_zip=args.zip, progress=_progress_bar(f"export {args.kind}"))
    print_json({"export_id": result.export_id, "path": str(result.path),
                "zip": str(result.zip_path) if result.zip_path else None,
                "include_phi": args.include_phi, "audit_event_id": result.audit_event_id,
                "started_event_id": result.started_event_id,
                "signed_by": result.fingerprint,
                "files": [f.as_dict() for f in result.files]})
    return EXIT_OK


def _database_at_hand(args: argparse.Namespace) -> tuple[str | None, bool]:
    """(URL, given): the database named with --db (before or after the command), else the
    default one when it exists (FLUORO_AUDIT_DB set, or the default SQLite file present)."""
    url = args.verify_db or (args.db if getattr(args, "db_given", False) else None)
    if url:
        return url, True
    import os

    from audit.storage.engine import DEFAULT_SQLITE_PATH, ENV_DB

    if os.environ.get(ENV_DB) or Path(DEFAULT_SQLITE_PATH).is_file():
        return default_url(), False
    return None, False


def cmd_verify_export(args: argparse.Namespace) -> int:
    """Which key to trust and whether to compare with the database are decided here:
    --public-key first, else the key of the database at hand; the database's audit event is
    compared when --db was given, or when the default database's key is the one trusted
    (an export from another site is not looked up in this site's trail)."""
    from audit.export.signing import TrustedKey, read_public_key
    from audit.export.verify import verify_export
    from audit.keys import KeyMissing, KeyUnreadable, load_keys

    trusted: TrustedKey | None = None
    if args.public_key:
        try:
            trusted = TrustedKey(read_public_key(args.public_key), "the key given with "
                                 "--public-key")
        except ValueError as exc:
            raise CliError(str(exc)) from None
    url, given = _database_at_hand(args)
    engine = None
    if url is not None:
        try:
            keyring = load_keys(url)
        except (KeyMissing, KeyUnreadable) as exc:
            if given:
                raise CliError(f"this database's signing key: {exc}") from None
            keyring = None
        if keyring is not None:
            site = TrustedKey(keyring.public_key_b64(),
                              f"this site's key (key directory {keyring.directory})",
                              local=True)
            if trusted is None:
                trusted = site
            if given or trusted.b64 == site.b64:
                engine = make_engine(url)
    try:
        report = verify_export(Path(args.path), trusted=trusted, engine=engine)
    finally:
        if engine is not None:
            engine.dispose()
    print(report.message(), file=sys.stdout if report.ok else sys.stderr)
    return EXIT_OK if report.ok else EXIT_INVALID


def add_export(sub: Subcommands) -> Subcommands:
    """Add `export log|audit-trail|summary` to the command line; returns the `export` group
    (audit.cli.documents adds `export surveyor` to it)."""
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
    return exports


def add_verify_export(sub: Subcommands) -> None:
    """Add `verify-export` to the command line."""
    p = add_command(sub, "verify-export", cmd_verify_export,
                    "recheck an export: SHA-256 sums, row counts, the manifest's signature "
                    "and, at the site, the export's audit event")
    p.add_argument("path", metavar="DIR|ZIP", help="export folder (or its .zip)")
    p.add_argument("--public-key", metavar="B64|FILE",
                   help="the site's public key (base64, or a file holding it: "
                        "signing_public_key.txt, PEM); default: the key of the database at "
                        "hand, else the key shipped in the export (the output then says what "
                        "that does not prove)")
    p.add_argument("--db", dest="verify_db", metavar="URL",
                   help="the site's database: trust its key and compare the files with the "
                        "export's audit event (default: the default database, if it exists)")
