"""`figures warm`: compute ahead what the dashboard's next process would otherwise wait for.

Where the figures come from SQL (PostgreSQL, audit.analytics.source.uses_sql), a thin layer over
audit.analytics.sql.warm.warm_figures: after a write moves the figures version, it replays the
figure calls people asked for under the previous versions (most recent first, at most --limit)
and stores the results in the table every app process shares, so the next page view, in any
process, does not wait for the scans. The dashboard does the same in the background when it
sees the version move.

Where they come from the analysis frame (SQLite, or PostgreSQL below the size where SQL takes
over), it brings the frame file up to date (audit.analytics.snapshot.warm_frame_file), so the
dashboard's next process reads the file instead of every record: 0.3-0.9 s against 4.5-6.5 s at
1M records on SQLite. `make run` calls it before starting the dashboard.

For a timer after a bulk import, or right before a restart. Progress on stderr, one summary on
stdout.
"""

from __future__ import annotations

import argparse
import sys

from sqlalchemy import Engine

from audit.cli.common import EXIT_OK, Subcommands, add_command, bounded, print_json
from audit.storage.engine import make_engine


def cmd_figures_warm(args: argparse.Namespace) -> int:
    from audit.analytics.source import uses_sql
    from audit.analytics.sql.warm import warm_figures

    def progress(done: int, total: int, what: str) -> None:
        print(f"[{done}/{total}] {what}", file=sys.stderr, flush=True)

    engine = make_engine(args.db)
    try:
        if not uses_sql(engine):
            return _warm_frame_file(engine, args)
        report = warm_figures(engine, limit=args.limit,
                              progress=None if args.quiet else progress)
    finally:
        engine.dispose()
    if args.json:
        print_json(report.as_dict())
    elif report.busy:
        print("another process is warming the figures now; nothing done")
    else:
        print(f"figures version {report.figures_version}: {report.replayed} of {report.calls} "
              f"calls replayed, {report.computed} figures computed (the others were stored "
              f"already), {report.failed} failed, {report.pruned} old rows pruned, "
              f"{report.seconds:.1f} s")
    return EXIT_OK


def _warm_frame_file(engine: Engine, args: argparse.Namespace) -> int:
    """`figures warm` where the figures come from the analysis frame: the frame file."""
    from audit.analytics._frame_file import store_dir
    from audit.analytics.snapshot import warm_frame_file

    def progress(done: int, total: int) -> None:
        print(f"reading the records: {done:,} of {total:,}", file=sys.stderr, flush=True)

    report = warm_frame_file(engine, store_dir(), None if args.quiet else progress)
    if args.json:
        print_json(report.as_dict())
        return EXIT_OK
    how = "every record read" if report.read_all else "from the file and the events after it"
    where = report.path or ("no file needed yet (no audit event)" if report.token == 0 else
                            "not written (the cache directory is not writable)")
    print(f"frame file current at audit event {report.token}: {report.records:,} records "
          f"({how}), {report.seconds:.1f} s: {where}")
    return EXIT_OK


def add_figures(sub: Subcommands) -> None:
    """Add `figures warm` to the command line."""
    figures = sub.add_parser("figures", help="the dashboards' figures") \
        .add_subparsers(dest="figures_command", required=True, metavar="ACTION")
    p = add_command(figures, "warm", cmd_figures_warm,
                    "compute ahead what the dashboard's next process would wait for: with "
                    "figures from SQL (PostgreSQL, FLUORO_AUDIT_FIGURES), the figures people "
                    "asked for before the last write (most recent first), for every app process, "
                    "under a lock so one process warms at a time, old versions pruned; with the "
                    "analysis frame (SQLite), the frame file (FLUORO_AUDIT_CACHE_DIR) brought "
                    "up to date")
    p.add_argument("--limit", type=bounded(int, 1, 100_000), default=200,
                   help="figures from SQL: at most this many figure calls (default 200)")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.add_argument("--json", action="store_true", help="the summary as one JSON object")
