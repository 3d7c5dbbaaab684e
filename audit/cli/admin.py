"""Running the installation: migrate, serve, demo, backup, verify-audit.

`serve` finds dashboard/launcher.py without importing the dashboard package: the library and its
command line never import Streamlit code; Streamlit runs the app in its own process.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

from audit.cli import network
from audit.cli.common import (
    EXIT_INVALID,
    EXIT_OK,
    CliError,
    Subcommands,
    add_command,
    bounded,
    display_url,
    print_json,
)
from audit.storage.engine import make_engine, migrate, normalise_url, read_session

#: The most demo procedures one run generates (the benchmarks use 1,000,000).
MAX_DEMO_PROCEDURES = 10_000_000


def cmd_migrate(args: argparse.Namespace) -> int:
    migrate(args.db)
    print(f"database at head: {display_url(args.db)}")
    return EXIT_OK


def dashboard_app() -> Path:
    """dashboard/launcher.py (the app with its session-cookie routes), located by the import
    system without executing the dashboard package (find_spec of a top-level package only
    finds it)."""
    spec = importlib.util.find_spec("dashboard")
    locations = list(spec.submodule_search_locations or ()) if spec is not None else []
    if not locations:
        raise CliError("the dashboard package is not installed beside audit; reinstall "
                       "fluoro-audit")
    return Path(locations[0]) / "launcher.py"


def demo_database(args: argparse.Namespace) -> str:
    """The database `demo` and `serve --demo` use, said out loud: the one --db or
    FLUORO_AUDIT_DB names, else the demo's own file with its own keys (audit.demo.guard)."""
    from audit.demo.guard import demo_url, use_own_keys

    url, own = demo_url(args.db if args.db_given else None)
    if own:
        keys = use_own_keys(url)
        print(f"demo database: {display_url(url)} (its own; keys in {keys}; --db or "
              f"FLUORO_AUDIT_DB names another)", flush=True)
    else:
        print(f"demo database: {display_url(url)} (named by "
              f"{'--db' if args.db_given else 'FLUORO_AUDIT_DB'})", flush=True)
    return url


def cmd_serve(args: argparse.Namespace) -> int:
    if args.secrets is not None and not args.secrets.is_file():
        raise CliError(f"--secrets: no file at {args.secrets} (a TOML secrets file; README: "
                       "Single sign-on)")
    if args.demo:
        from audit.demo import generate
        from audit.log.summary import log_summary

        args.db = demo_database(args)
        migrate(args.db)
        engine = make_engine(args.db)
        held = log_summary(engine)["procedures"]
        if held == 0:  # sample data only into an empty log
            summary = generate(engine, procedures=args.demo_procedures, seed=1, progress=True)
            print(demo_line(summary), flush=True)
        else:
            print(f"demo data not loaded: the database already holds {held:,} records",
                  flush=True)
        engine.dispose()
    else:
        migrate(args.db)
        network.start_receiver_beside(args.db)  # when the receiver_enabled setting is on
    app = dashboard_app()
    env = {**os.environ, "FLUORO_AUDIT_DB": normalise_url(args.db)}
    command = [sys.executable, "-m", "streamlit", "run", str(app),
               *streamlit_options(args.address, args.port, args.secrets)]
    print(f"fluoro-audit dashboard on {served_url(args.address, args.port)} "
          f"({display_url(args.db)})", flush=True)
    # Become the Streamlit process, so signals (Ctrl-C, a service manager's TERM) reach it.
    os.execve(sys.executable, command, env)
    return EXIT_OK  # pragma: no cover - execve does not return


def streamlit_options(address: str, port: int, secrets: Path | None = None) -> list[str]:
    """The Streamlit settings `serve` gives on the `streamlit run` command line.

    On the command line because Streamlit reads .streamlit/config.toml only from the working
    directory (and ~/.streamlit), so `serve` started anywhere else, as a service manager does,
    would otherwise listen on every interface, show the Deploy button and offer each table's
    unaudited CSV download. The command line also outranks both files, so no stray config
    undoes them."""
    settings = {
        "server.address": address,  # 127.0.0.1 by default: a TLS reverse proxy faces users
        "server.port": str(port),
        "server.headless": "true",  # a server: no browser opened, no e-mail prompt
        "server.runOnSave": "false",
        "server.fileWatcherType": "none",  # served code does not change under the users
        "browser.gatherUsageStats": "false",  # nothing about the clinic leaves the machine
        "client.toolbarMode": "minimal",  # no Deploy button or developer menu
        # No table offers "Download as CSV" or copies its cells: rows carry MRNs, and the
        # Export page is the way data leaves, audited (dashboard/app.py sets it again).
        "client.disableDataExport": "true",
    }
    if secrets is not None:  # else Streamlit's own places (.streamlit/secrets.toml, ~/.streamlit)
        settings["secrets.files"] = str(secrets.resolve())
    return [part for name, value in settings.items() for part in (f"--{name}", value)]


def served_url(address: str, port: int) -> str:
    """Where the dashboard answers, as people type it: localhost for the loopback address,
    brackets around an IPv6 address, and a warning word for every interface."""
    if address in ("127.0.0.1", "localhost"):
        return f"http://localhost:{port}"
    url = f"http://[{address}]:{port}" if ":" in address else f"http://{address}:{port}"
    return f"{url}, every interface" if address in ("0.0.0.0", "::") else url


def demo_line(summary: dict[str, Any]) -> str:
    """What a demo run loaded, for people (the JSON line after it is for scripts)."""
    return (f"loaded {summary['procedures']:,} demo records (ids {summary['first_record_id']}-"
            f"{summary['last_record_id']}, {summary['from']} to {summary['to']}); planted "
            f"outliers: {summary['planted_outliers']} at 3-8x the typical dose and "
            f"{summary['planted_srdl']} above the substantial radiation dose levels, each noted "
            "\"demo: planted outlier\"")


def cmd_demo(args: argparse.Namespace) -> int:
    """Load demo data, into the demo's own database unless one is named; refuse a database
    holding records the loader did not write unless --force (audit.demo.guard)."""
    from audit.demo.guard import census, forced, refusal

    url = demo_database(args)
    found = census(url)  # reads only: nothing is migrated or created before the decision
    if found.other and not args.force:
        raise CliError(refusal(display_url(url), found))
    if found.other:
        print(forced(display_url(url), found, args.procedures), flush=True)
    from audit.demo import generate

    migrate(url)
    engine = make_engine(url)
    try:
        summary = generate(engine, procedures=args.procedures, seed=args.seed, progress=True)
    finally:
        engine.dispose()
    print(demo_line(summary))
    print_json({"database": display_url(url), **summary})
    return EXIT_OK


def cmd_backup(args: argparse.Namespace) -> int:
    from audit.keys import key_dir
    from audit.storage.backup import backup

    url = normalise_url(args.db)
    dest = backup(url, Path(args.dest))
    keys = key_dir(url).resolve()
    print_json({"backup": str(dest), "bytes": dest.stat().st_size, "keys_not_included": str(keys)})
    # The keys stay out of the backup on purpose (README, Threat model): a copy of the database
    # alone must not reverse a patient_ref or re-sign the trail. Without them the copy cannot be
    # verified or extended, so say where they are every time.
    print(f"note: the keys are not in this backup: back up {keys} too, to another place",
          file=sys.stderr)
    return EXIT_OK


def cmd_verify_audit(args: argparse.Namespace) -> int:
    """The chain (keys, links, recorded heads), then every procedure against its history.

    One snapshot for both: a REPEATABLE READ transaction on PostgreSQL (SQLite's read
    transaction already is one), so a record changed while the check runs is seen with its
    event or without both, never half."""
    from audit.log.replay import check_procedures
    from audit.trail import record_verified_head, verify_chain

    engine = make_engine(args.db)
    with read_session(engine) as session:
        if engine.dialect.name == "postgresql":
            session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        report = verify_chain(session)
        procedures = check_procedures(session, limit=args.max_findings)
    for warning in report.warnings:
        print(f"warning: {warning}")
    print(report.message())
    for line in procedures.lines():
        print(line)
    record_verified_head(report)  # only when intact: a broken chain's head is no checkpoint
    engine.dispose()
    return EXIT_OK if report.ok and not procedures.found else EXIT_INVALID


def add_migrate(sub: Subcommands) -> None:
    """Add `migrate` to the command line."""
    add_command(sub, "migrate", cmd_migrate, "upgrade the schema to head")


def add_serve(sub: Subcommands) -> None:
    """Add `serve` to the command line."""
    p = add_command(sub, "serve", cmd_serve, "migrate, then start the dashboard")
    p.add_argument("--port", type=bounded(int, 1, 65535), default=8501)
    p.add_argument("--address", default="127.0.0.1", metavar="ADDR",
                   help="the address to listen on (default 127.0.0.1: this machine only, "
                        "behind a TLS reverse proxy; 0.0.0.0 listens on every interface)")
    p.add_argument("--secrets", type=Path, metavar="FILE",
                   help="Streamlit secrets file to use (TOML); its [auth] section turns on "
                        "single sign-on through the site's OpenID Connect provider")
    p.add_argument("--demo", action="store_true",
                   help="serve the demo's own database (var/fluoro-audit-demo.sqlite3 unless "
                        "--db or FLUORO_AUDIT_DB names one), loading sample data if it is empty")
    p.add_argument("--demo-procedures", type=bounded(int, 1, MAX_DEMO_PROCEDURES), default=5000,
                   help=argparse.SUPPRESS)


def add_demo(sub: Subcommands) -> None:
    """Add `demo` to the command line."""
    p = add_command(sub, "demo", cmd_demo,
                    "load realistic synthetic data (published distributions) into the demo's "
                    "own database (var/fluoro-audit-demo.sqlite3 unless --db or FLUORO_AUDIT_DB "
                    "names one)")
    p.add_argument("--procedures", type=bounded(int, 1, MAX_DEMO_PROCEDURES), default=5000)
    p.add_argument("--seed", type=bounded(int, 0, 2**63 - 1), default=1)
    p.add_argument("--force", action="store_true",
                   help="load even into a database holding records the demo loader did not "
                        "write (saying first what it will do)")


def add_backup(sub: Subcommands) -> None:
    """Add `backup` to the command line."""
    p = add_command(sub, "backup", cmd_backup, "write a consistent copy of the database")
    p.add_argument("dest", help="file (SQLite) or file/directory (PostgreSQL: pg_dump format)")


def add_verify_audit(sub: Subcommands) -> None:
    """Add `verify-audit` to the command line."""
    p = add_command(sub, "verify-audit", cmd_verify_audit,
                    "check the audit trail (keyed chain, recorded heads) and every procedure "
                    "against its history")
    p.add_argument("--max-findings", type=int, default=20, metavar="N",
                   help="list at most N damaged records (all are counted; default 20)")
