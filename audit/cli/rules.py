"""`rules list|enable|disable|set` (the practice rule packs; changes by administrators,
audited: audit.rules.store) and `followup add|list` (a procedure's outcome, which the repeat
rules read: audit.rules.follow_up)."""

from __future__ import annotations

import argparse

from audit.cli.common import EXIT_OK, Subcommands, add_command, print_json
from audit.cli.documents import actor_of, add_as
from audit.storage.engine import make_engine


def cmd_rules_list(args: argparse.Namespace) -> int:
    from audit.rules.store import list_packs

    engine = make_engine(args.db)
    for pack in list_packs(engine, actor_of(args, engine)):
        print_json(pack)
    return EXIT_OK


def _switch(args: argparse.Namespace, on: bool) -> int:
    from audit.rules.store import set_enabled

    engine = make_engine(args.db)
    pack = set_enabled(engine, actor_of(args, engine), args.key, on)
    print_json({"key": pack["key"], "enabled": pack["enabled"]})
    return EXIT_OK


def cmd_rules_enable(args: argparse.Namespace) -> int:
    return _switch(args, True)


def cmd_rules_disable(args: argparse.Namespace) -> int:
    return _switch(args, False)


def cmd_rules_set(args: argparse.Namespace) -> int:
    from audit.rules.store import set_parameter

    engine = make_engine(args.db)
    pack = set_parameter(engine, actor_of(args, engine), args.key, args.param, args.value)
    print_json({"key": pack["key"], "parameters": pack["parameters"]})
    return EXIT_OK


def cmd_followup_add(args: argparse.Namespace) -> int:
    from audit.rules.follow_up import record_follow_up

    engine = make_engine(args.db)
    fid = record_follow_up(engine, actor_of(args, engine), args.record_id, args.date,
                           args.relief, args.duration_days, args.note)
    print_json({"follow_up_id": fid, "record_id": args.record_id})
    return EXIT_OK


def cmd_followup_list(args: argparse.Namespace) -> int:
    from audit.rules.follow_up import list_follow_ups

    engine = make_engine(args.db)
    for row in list_follow_ups(engine, actor_of(args, engine), args.record_id):
        print_json(row)
    return EXIT_OK


def add_rules(sub: Subcommands) -> None:
    """Add `rules list|enable|disable|set` to the command line."""
    group = sub.add_parser("rules", help="the practice rule packs (Medicare LCDs, the 2015 "
                           "safeguards): list, switch, set a parameter; changes audited"
                           ).add_subparsers(dest="what", required=True, metavar="WHAT")
    p = add_command(group, "list", cmd_rules_list, "every pack with its source, dates, switch "
                    "and parameters, one JSON line each")
    add_as(p)
    for name, handler, verb in (("enable", cmd_rules_enable, "switch a pack on"),
                                ("disable", cmd_rules_disable, "switch a pack off")):
        p = add_command(group, name, handler, f"{verb} (administrators; audited)")
        p.add_argument("key", metavar="KEY", help="lcd_esi, lcd_facet or safeguards_2015")
        add_as(p)
    p = add_command(group, "set", cmd_rules_set, "change one parameter of a pack "
                    "(administrators; audited; the allowed range is checked)")
    p.add_argument("key", metavar="KEY")
    p.add_argument("param", metavar="PARAM", help="see `rules list` for a pack's parameters")
    p.add_argument("value", metavar="VALUE")
    add_as(p)


def add_followup(sub: Subcommands) -> None:
    """Add `followup add|list` to the command line."""
    group = sub.add_parser("followup", help="a procedure's outcome recorded later (relief and "
                           "how long it lasted); audited").add_subparsers(
                               dest="what", required=True, metavar="WHAT")
    p = add_command(group, "add", cmd_followup_add, "record a procedure's outcome")
    p.add_argument("record_id", type=int, metavar="RECORD_ID")
    p.add_argument("--date", required=True, metavar="DATE",
                   help="the day of the follow-up, YYYY-MM-DD")
    p.add_argument("--relief", required=True, metavar="PERCENT",
                   help="pain relief from the procedure, 0-100 percent")
    p.add_argument("--duration-days", dest="duration_days", required=True, metavar="DAYS",
                   help="how many days the relief lasted (or has lasted so far), 0-3650")
    p.add_argument("--note", metavar="TEXT")
    add_as(p)
    p = add_command(group, "list", cmd_followup_list, "a record's follow-ups, one JSON line "
                    "each")
    p.add_argument("record_id", type=int, metavar="RECORD_ID")
    add_as(p)
