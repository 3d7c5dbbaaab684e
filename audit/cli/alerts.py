"""`alerts levels` and `alerts review-levels`: the investigation levels in force, and a review.

A thin layer over audit.alerts (levels_in_force, review_levels). The levels are set at a review
and kept until the next (audit.alerts.level_review says when one happens by itself); the RSO
reviews them by hand after a change of technique or equipment the automatic reviews would catch
only later. The review reads every final record: the analysis frame on SQLite, PostgreSQL's own
figures where the site chose them (FLUORO_AUDIT_FIGURES).
"""

from __future__ import annotations

import argparse

from audit.cli.common import EXIT_OK, Subcommands, add_command, print_json
from audit.cli.documents import actor_of, add_as
from audit.storage.engine import make_engine


def _show(engine: object, as_json: bool) -> None:
    from audit.alerts import levels_in_force

    in_force = levels_in_force(engine)
    if in_force is None:
        print("no investigation levels in force yet: they are set at the first alert refresh")
        return
    table = in_force.table
    if as_json:
        from audit.alerts.level_review import table_to_json
        print_json({"set_at": in_force.set_at.isoformat(), "reason": in_force.reason,
                    "event_id": in_force.event_id, "data_version": in_force.data_version,
                    "changed_since": {str(k): v for k, v in in_force.changed.items()},
                    "levels": table_to_json(table)})
        return
    print(f"in force since {in_force.set_at:%Y-%m-%d %H:%M} UTC (audit event "
          f"{in_force.event_id}): {in_force.reason}")
    for row in table.itertuples():
        level = "no level" if row.level != row.level else f"{row.level:g}"
        print(f"  {row.procedure:<12} {row.quantity:<14} {level:>10}  from {row.records:,} "
              f"records (median {row.median:.4g}, percentile {row.percentile:.4g})")
    if in_force.changed:
        codes = dict(zip(table["type_id"], table["procedure"], strict=True))
        print("records changed since: " + ", ".join(
            f"{codes.get(t, f'type {t}')} {n:,}" for t, n in in_force.changed.items()))


def cmd_alerts_levels(args: argparse.Namespace) -> int:
    engine = make_engine(args.db)
    try:
        _show(engine, args.json)
    finally:
        engine.dispose()
    return EXIT_OK


def cmd_alerts_review(args: argparse.Namespace) -> int:
    from audit.alerts import review_levels
    from audit.analytics.source import figure_source
    from audit.auth import Permission, require

    engine = make_engine(args.db)
    try:
        actor = actor_of(args, engine)
        require(actor, Permission.MANAGE_ALERTS)  # refused before the records are read
        result = review_levels(engine, actor, figure_source(engine))
        if not args.json:
            print(f"investigation levels reviewed: {result.opened} alerts opened, "
                  f"{result.updated} updated, {result.reopened} reopened, "
                  f"{result.withdrawn} withdrawn")
        _show(engine, args.json)
    finally:
        engine.dispose()
    return EXIT_OK


def add_alerts(sub: Subcommands) -> None:
    """Add `alerts levels` and `alerts review-levels` to the command line."""
    alerts = sub.add_parser("alerts", help="dose alerts: the investigation levels in force") \
        .add_subparsers(dest="alerts_command", required=True, metavar="ACTION")
    p = add_command(alerts, "levels", cmd_alerts_levels,
                    "the investigation levels in force: when and why they were set, per "
                    "procedure and quantity the level, and the records changed since")
    p.add_argument("--json", action="store_true", help="as one JSON object")
    p = add_command(alerts, "review-levels", cmd_alerts_review,
                    "review the investigation levels now: computed again from every final "
                    "record, kept as the levels in force (an audit event under your name), "
                    "and the alerts of the procedures whose level moved re-evaluated")
    p.add_argument("--json", action="store_true", help="the levels as one JSON object")
    add_as(p)
