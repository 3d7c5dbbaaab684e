"""`complication add|list|void`: adverse events of a logged procedure, recorded at follow-up
(or for the time of the procedure) from the shell (audit.log.complications)."""

from __future__ import annotations

import argparse

from audit.cli.common import EXIT_OK, Subcommands, add_command, print_json
from audit.cli.documents import actor_of, add_as
from audit.storage.engine import make_engine
from audit.vocab import ComplicationKind, ComplicationSeverity


def cmd_add(args: argparse.Namespace) -> int:
    from audit.log.complications import record_complication
    from audit.vocab import ComplicationTiming

    engine = make_engine(args.db)
    timing = (ComplicationTiming.AT_PROCEDURE if args.at_procedure
              else ComplicationTiming.FOLLOW_UP)
    cid = record_complication(engine, actor_of(args, engine), args.record_id, args.kind,
                              args.severity, args.detail, noticed_at=args.noticed_at,
                              timing=timing)
    print_json({"complication_id": cid, "record_id": args.record_id})
    return EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    from audit.log.complications import list_complications

    engine = make_engine(args.db)
    for row in list_complications(engine, actor_of(args, engine), args.record_id):
        print_json(row)
    return EXIT_OK


def cmd_void(args: argparse.Namespace) -> int:
    from audit.log.complications import void_complication

    engine = make_engine(args.db)
    void_complication(engine, actor_of(args, engine), args.complication_id, args.reason)
    print_json({"complication_id": args.complication_id, "status": "void"})
    return EXIT_OK


def add_complication(sub: Subcommands) -> None:
    """Add `complication add|list|void` to the command line."""
    group = sub.add_parser("complication", help="a procedure's complications (adverse "
                           "events): add, list, void; every change audited").add_subparsers(
                               dest="what", required=True, metavar="WHAT")
    p = add_command(group, "add", cmd_add, "record a complication of a logged procedure")
    p.add_argument("record_id", type=int, metavar="RECORD_ID", help="the procedure's record")
    p.add_argument("--kind", required=True, metavar="KIND",
                   help=f"one of: {ComplicationKind.allowed()}")
    p.add_argument("--severity", required=True, metavar="SEVERITY",
                   help=f"one of: {ComplicationSeverity.allowed()} (ACR grades for contrast "
                        "reactions)")
    p.add_argument("--detail", metavar="TEXT", help="what happened (required for kind other)")
    p.add_argument("--noticed-at", dest="noticed_at", metavar="DATETIME",
                   help="when it was noticed, ISO 8601 with UTC offset (a follow-up call)")
    p.add_argument("--at-procedure", action="store_true",
                   help="it happened during the procedure (default: found at follow-up)")
    add_as(p)
    p = add_command(group, "list", cmd_list, "a record's complications, one JSON line each")
    p.add_argument("record_id", type=int, metavar="RECORD_ID")
    add_as(p)
    p = add_command(group, "void", cmd_void, "void a complication entered by mistake (kept, "
                    "marked void)")
    p.add_argument("complication_id", type=int, metavar="COMPLICATION_ID")
    p.add_argument("--reason", required=True, metavar="TEXT", help="why it is voided")
    add_as(p)
