"""Dose reports over the DICOM network: `receive` (a Storage SCP) and `fetch` (C-FIND and
C-GET from a PACS). The work is in audit.dicom_net; this module parses, logs and exits.

`receive` starts even when the database cannot be reached (a migrated database that is down):
objects are then kept in the inbox and imported when it returns. A database that answers but
is not migrated is refused, as for every command.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from datetime import date
from pathlib import Path

from audit.auth import cli_actor
from audit.cli.common import EXIT_INVALID, EXIT_OK, CliError, Subcommands, add_command, bounded
from audit.storage.engine import make_engine

#: Where received objects wait (default var/dicom-inbox, beside the default database).
ENV_INBOX = "FLUORO_AUDIT_INBOX"
DEFAULT_INBOX = Path("var") / "dicom-inbox"


def _inbox(args: argparse.Namespace) -> Path:
    return Path(args.inbox or os.environ.get(ENV_INBOX) or DEFAULT_INBOX)


def _logging() -> None:
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a date (YYYY-MM-DD)") from None


def _rule(text: str) -> object:
    from audit.dicom_net.access import parse_rule
    from audit.errors import ValidationFailed

    try:
        return parse_rule(text)
    except ValidationFailed as exc:
        raise argparse.ArgumentTypeError(str(exc.errors[0])) from None


def _server_unreachable(url: str) -> str | None:
    """Why a database server cannot be reached now (connection refused, no such database
    yet), or None when it answers or the database is a SQLite file (checked as usual)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import OperationalError
    from sqlalchemy.pool import NullPool

    from audit.storage.engine import normalise_url

    parsed = make_url(normalise_url(url))
    if parsed.get_backend_name() == "sqlite":
        return None
    engine = create_engine(parsed, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except OperationalError as exc:
        return str(exc.orig or exc).strip().splitlines()[0]
    finally:
        engine.dispose()
    return None


def cmd_receive(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from audit.dicom_net.scp import Receiver, tls_context
    from audit.storage.engine import require_migrated

    _logging()
    reason = _server_unreachable(args.db)
    if reason is None:
        require_migrated(args.db)  # a mistyped --db is an error, as for every command
    else:
        logging.getLogger("fluoro_audit.receiver").warning(
            "the database cannot be reached (%s): receiving into %s until it returns", reason,
            _inbox(args))
    try:
        context = tls_context(args.tls_cert, args.tls_key, args.tls_ca)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    engine = make_engine(args.db)
    ae_title, port = args.ae_title, args.port
    if ae_title is None or port is None:  # the administrator's settings, else the defaults
        from audit.dicom_net.status import receiver_settings

        try:
            settings = receiver_settings(engine)
            ae_title = ae_title or str(settings.receiver_ae_title)
            port = port if port is not None else int(settings.receiver_port)
        except SQLAlchemyError:
            ae_title, port = ae_title or "FLUORO_AUDIT", 11112 if port is None else port
    receiver = Receiver(engine, cli_actor(), _inbox(args), ae_title=ae_title, port=port,
                        address=args.address, allow=args.allow or (), ssl_context=context)
    # A plain flag, not a threading.Event: the handler runs in the main thread between two
    # bytecodes, possibly inside Event.wait holding the Event's lock, and Event.set would
    # wait for that lock forever (an orphaned receiver was found hung so, after `serve`
    # ended). time.sleep is interrupted by the signal and takes no lock.
    stopping: list[int] = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda signum, _frame: stopping.append(signum))
    try:
        receiver.start()
    except OSError as exc:
        raise CliError(f"cannot listen on {args.address}:{port}: {exc.strerror or exc}") from None
    print(f"receiving as {ae_title} on port {receiver.port}, inbox {_inbox(args)} "
          "(SIGTERM or Ctrl-C to stop)", file=sys.stderr, flush=True)
    while not stopping:
        time.sleep(0.5)
    receiver.stop()
    engine.dispose()
    return EXIT_OK


def cmd_fetch(args: argparse.Namespace) -> int:
    from audit.dicom_net.fetch import Source, fetch_reports

    source = Source.parse(args.source)
    if args.since and args.until and args.since > args.until:
        raise CliError(f"--since {args.since} is after --until {args.until}")
    _logging()
    logging.getLogger("fluoro_audit.receiver").setLevel(logging.WARNING)
    print(f"fetching dose reports from {source}", file=sys.stderr, flush=True)
    summary = fetch_reports(make_engine(args.db), cli_actor(), source, _inbox(args),
                            ae_title=args.ae_title, since=args.since, until=args.until,
                            progress=lambda line: print(line, file=sys.stderr, flush=True))
    for failure in summary.failures:
        print(f"failed: {failure}", file=sys.stderr)
    print(summary.line(), flush=True)
    return EXIT_INVALID if summary.failed else EXIT_OK


def _add_inbox(p: argparse.ArgumentParser) -> None:
    p.add_argument("--inbox", metavar="DIR",
                   help=f"where objects are kept before import (default: ${ENV_INBOX}, else "
                        f"{DEFAULT_INBOX})")


def add_receive(sub: Subcommands) -> None:
    """Add `receive` to the command line."""
    p = add_command(sub, "receive", cmd_receive,
                    "receive dose reports over DICOM (a Storage SCP: C-ECHO, and C-STORE of "
                    "X-Ray Radiation Dose, Enhanced and Comprehensive SR); each object is kept "
                    "in the inbox before success is answered, then imported; runs until "
                    "SIGTERM or Ctrl-C")
    p.add_argument("--port", type=bounded(int, 0, 65535), default=None,
                   help="port to listen on (default: the receiver_port setting, 11112)")
    p.add_argument("--ae-title", default=None, metavar="AE",
                   help="our AE title (default: the receiver_ae_title setting, FLUORO_AUDIT)")
    p.add_argument("--address", default="0.0.0.0", metavar="ADDR",
                   help="address to listen on (default 0.0.0.0; who may send is --allow's)")
    p.add_argument("--allow", action="append", type=_rule, metavar="AE_TITLE[@ADDRESS]",
                   help="a sender allowed besides the receiver_allowed setting (repeatable); "
                        "with neither, only this machine (loopback) may send")
    _add_inbox(p)
    p.add_argument("--tls-cert", metavar="PEM", help="serve DICOM over TLS with this certificate")
    p.add_argument("--tls-key", metavar="PEM", help="the certificate's private key")
    p.add_argument("--tls-ca", metavar="PEM",
                   help="require senders' certificates signed by this CA (mutual TLS)")


def add_fetch(sub: Subcommands) -> None:
    """Add `fetch` to the command line."""
    p = add_command(sub, "fetch", cmd_fetch,
                    "query a PACS (C-FIND) for studies with dose reports and retrieve (C-GET) "
                    "those not imported yet; already imported ones are skipped; progress on "
                    "stderr; exit 1 when anything failed")
    p.add_argument("--from", dest="source", required=True, metavar="AE@HOST:PORT")
    p.add_argument("--since", type=_day, metavar="YYYY-MM-DD", help="first study date")
    p.add_argument("--until", type=_day, metavar="YYYY-MM-DD", help="last study date")
    p.add_argument("--ae-title", default="FLUORO_AUDIT", metavar="AE",
                   help="our AE title, as the PACS knows it (default FLUORO_AUDIT)")
    _add_inbox(p)


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: SIGTERM this child when the process that started it ends (prctl
    PR_SET_PDEATHSIG), so the receiver stops with the dashboard however it ends."""
    import contextlib
    import ctypes

    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


def start_receiver_beside(db_url: str) -> int | None:
    """For `serve`: start `receive` as a child process when the receiver_enabled setting is
    on; returns its pid (None when off). The child gets SIGTERM when `serve` (then the
    dashboard, which `serve` becomes) ends, and takes its port and AE title from the
    settings."""
    import subprocess

    from audit.dicom_net.status import receiver_settings

    engine = make_engine(db_url)
    try:
        enabled = receiver_settings(engine).receiver_enabled is True
    finally:
        engine.dispose()
    if not enabled:
        return None
    child = subprocess.Popen([sys.executable, "-m", "audit.cli", "--db", db_url, "receive"],
                             preexec_fn=_die_with_parent, stdin=subprocess.DEVNULL)
    print(f"DICOM receiver started beside the dashboard (pid {child.pid}; setting "
          "receiver_enabled)", flush=True)
    return child.pid
