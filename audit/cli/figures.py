"""`figures warm`: compute ahead, on PostgreSQL, the dashboard figures people looked at.

A thin layer over audit.analytics.sql.warm.warm_figures: after a write moves the figures
version, it replays the figure calls people asked for under the previous versions (most recent
first, at most --limit) and stores the results in the table every app process shares, so the
next page view, in any process, does not wait for the scans. The dashboard does the same in the
background when it sees the version move; this command is for a timer after a bulk import, or
right after a restart. Progress on stderr, one summary on stdout.
"""

from __future__ import annotations

import argparse
import sys

from audit.cli.common import EXIT_OK, Subcommands, add_command, bounded, print_json
from audit.storage.engine import make_engine


def cmd_figures_warm(args: argparse.Namespace) -> int:
    from audit.analytics.sql.warm import warm_figures

    def progress(done: int, total: int, what: str) -> None:
        print(f"[{done}/{total}] {what}", file=sys.stderr, flush=True)

    engine = make_engine(args.db)
    try:
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


def add_figures(sub: Subcommands) -> None:
    """Add `figures warm` to the command line."""
    figures = sub.add_parser("figures", help="the dashboards' figures (PostgreSQL)") \
        .add_subparsers(dest="figures_command", required=True, metavar="ACTION")
    p = add_command(figures, "warm", cmd_figures_warm,
                    "PostgreSQL with figures from SQL (FLUORO_AUDIT_FIGURES): compute now, for "
                    "every app process, the figures people asked for before the last write "
                    "(most recent first), under a lock so one process warms at a time; prune "
                    "old versions")
    p.add_argument("--limit", type=bounded(int, 1, 100_000), default=200,
                   help="at most this many figure calls (default 200)")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.add_argument("--json", action="store_true", help="the summary as one JSON object")
