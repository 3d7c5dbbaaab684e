"""`db ...`: administering the database itself, as its owner.

`db grant-app ROLE` gives a PostgreSQL role exactly the application's privileges
(audit.storage.roles): the owner runs migrations, the dashboards and commands connect as that
role, which cannot change or remove audit events, disable their triggers or delete records.

`db rebuild-facts` recomputes the record facts the SQL figures read on PostgreSQL
(audit.analytics.sql.facts) from the records, whatever version they say they reflect, then the
count summary made from them (audit.analytics.sql.count_summary) and the practice rules' stored
findings (audit.rules.findings_store): the repair for rows changed behind the app's back (a
refresh follows the audit events only).
"""

from __future__ import annotations

import argparse

from audit.auth import cli_actor
from audit.cli.common import EXIT_OK, Subcommands, add_command, print_json
from audit.storage.engine import make_engine


def cmd_grant_app(args: argparse.Namespace) -> int:
    from audit.storage.roles import grant_app

    engine = make_engine(args.db)
    try:
        grants = grant_app(engine, cli_actor(), args.role)
    finally:
        engine.dispose()
    print_json(grants.as_dict())
    return EXIT_OK


def cmd_rebuild_facts(args: argparse.Namespace) -> int:
    from sqlalchemy import func, select

    from audit.analytics.sql.count_summary import refresh_counts
    from audit.analytics.sql.dose_buckets import refresh_buckets
    from audit.analytics.sql.facts import rebuild_facts
    from audit.rules.findings_store import refresh_findings
    from audit.storage.models import CountSummary, DoseBucket, RecordFact, RuleFinding

    engine = make_engine(args.db)
    try:
        version = rebuild_facts(engine)
        refresh_counts(engine, force=True)  # made from the facts: rebuilt after them
        refresh_buckets(engine, force=True)  # the Dose page's buckets: from the facts too
        refresh_findings(engine, force=True)
        with engine.connect() as conn:
            rows = int(conn.scalar(select(func.count()).select_from(RecordFact)) or 0)
            counted = int(conn.scalar(select(func.count()).select_from(CountSummary)) or 0)
            found = int(conn.scalar(select(func.count()).select_from(RuleFinding)) or 0)
            buckets = int(conn.scalar(select(func.count()).select_from(DoseBucket)) or 0)
    finally:
        engine.dispose()
    print_json({"data_version": version, "records": rows, "count_summary_rows": counted,
                "dose_bucket_rows": buckets, "rule_finding_rows": found})
    return EXIT_OK


def add_db(sub: Subcommands) -> None:
    """Add `db grant-app` and `db rebuild-facts` to the command line."""
    db = sub.add_parser("db", help="administer the database (as its owner)").add_subparsers(
        dest="db_command", required=True, metavar="ACTION")
    p = add_command(db, "grant-app", cmd_grant_app,
                    "PostgreSQL: give ROLE the application's privileges (SELECT and INSERT on "
                    "the audit trail; SELECT, INSERT, UPDATE elsewhere; DELETE only on a "
                    "record's levels and the caches derived from the records: the daily and "
                    "count summaries, the record facts, the stored rule findings, the figures "
                    "cache; no TRUNCATE or ALTER); idempotent, audited; run as the tables' "
                    "owner, again after each upgrade")
    p.add_argument("role", help="the role the application connects as")
    add_command(db, "rebuild-facts", cmd_rebuild_facts,
                "PostgreSQL: recompute the record facts the SQL figures read from the records, "
                "then the count summary made from them and the practice rules' stored findings "
                "(a repair: a refresh follows the audit events, so a row changed behind the "
                "app's back stays wrong until this); "
                "prints the data version and rows")
