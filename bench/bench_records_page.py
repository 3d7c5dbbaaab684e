"""Records page speed: the query behind opening the page and paging through it.

    python bench/bench_records_page.py            # 1,000,000 demo procedures (a few minutes)
    python bench/bench_records_page.py --quick    # 20,000
    python bench/bench_records_page.py --db postgresql://... --procedures 1000000

The database is filled with audit.demo.generate (reused if it already holds enough), a few
hundred records are voided through the service, then each view the page offers is timed:
what ProcedureLog.list does for one page (the count and 50 rows). The target is under 2 s per
view; figures are printed, nothing passes or fails.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import func, select

from audit.auth import Actor, cli_actor
from audit.filters import Filters
from audit.log.service import ProcedureLog
from audit.storage.engine import make_engine, migrate, read_session
from audit.storage.models import Procedure
from audit.vocab import Role

PAGE = 50
TARGET_S = 2.0
VOIDED = 300


def prepare(url: str, procedures: int) -> ProcedureLog:
    from audit.demo import generate

    migrate(url)
    engine = make_engine(url)
    with read_session(engine) as s:
        have = s.scalar(select(func.count()).select_from(Procedure)) or 0
    if have < procedures:
        print(f"generating {procedures - have:,} demo procedures ...", flush=True)
        started = time.perf_counter()
        # A new seed when topping up: the demo's patient numbers are per seed.
        seed = 11 if not have else 12 + have % 900
        generate(engine, procedures=procedures - have, seed=seed, progress=True)
        print(f"  done in {time.perf_counter() - started:.0f} s", flush=True)
        if engine.dialect.name == "postgresql":
            # What autovacuum does shortly after a bulk load; without statistics the planner
            # takes a million-row table for an empty one.
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("ANALYZE")
    service = ProcedureLog(engine)
    with read_session(engine) as s:
        voided = s.scalar(select(func.count()).select_from(Procedure)
                          .where(Procedure.status == "void")) or 0
        ids = s.scalars(select(Procedure.id).where(Procedure.status == "final")
                        .order_by(Procedure.id).limit(max(0, VOIDED - voided))).all()
    for rid in ids:  # voids go through the service: audited like any other
        service.void(rid, cli_actor(), version=1, reason="benchmark: duplicate")
    return service


def timed(call: Callable[[], tuple[list[dict[str, object]], int]],
          repeat: int) -> tuple[float, float, int, int]:
    """(first run s, median of the rest s, rows on the page, total)."""
    times = []
    rows: list[dict[str, object]] = []
    total = 0
    for _ in range(repeat):
        started = time.perf_counter()
        rows, total = call()
        times.append(time.perf_counter() - started)
    rest = times[1:] or times
    return times[0], statistics.median(rest), len(rows), total


def views(service: ProcedureLog) -> list[tuple[str, Actor, Filters, int]]:
    """What a person does on the page: open it, page on, filter (as admin and as a
    technologist, whose list is scoped to their own entries)."""
    with read_session(service.engine) as s:
        latest = s.scalar(select(func.max(Procedure.performed_at)))
    if isinstance(latest, str):  # SQLite's max() bypasses the column type
        latest = datetime.fromisoformat(latest)
    latest = (latest or datetime.now(UTC)).replace(tzinfo=UTC)

    def records(**chosen: Any) -> Filters:  # the page lists voided records too
        return Filters(include_voided=True, **chosen)

    month = records(start=latest - timedelta(days=30), before=latest)
    admin, tech = cli_actor(), Actor("jsmith", Role.TECHNOLOGIST)
    return [
        ("open (all records), page 1", admin, records(), 0),
        ("page 100", admin, records(), 99 * PAGE),
        ("page 1000", admin, records(), 999 * PAGE),
        ("filter: room + procedure + final", admin,
         records(rooms=("OR 2",), procedures=("TFESI",), status="final"), 0),
        ("filter: physician, page 100", admin, records(physicians=("Dr. Li Wei",)),
         99 * PAGE),
        ("filter: last 30 days", admin, month, 0),
        ("filter: void", admin, records(status="void"), 0),
        ("filter: all five (dates, room, physician, procedure, status)", admin,
         records(start=latest - timedelta(days=365), before=latest, rooms=("OR 2",),
                 physicians=("Dr. Li Wei",), procedures=("TFESI",), status="final"), 0),
        ("technologist: open, page 1", tech, records(), 0),
        ("technologist: page 100", tech, records(), 99 * PAGE),
        ("technologist: filter room + void", tech, records(rooms=("OR 1",), status="void"),
         0),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="20,000 procedures")
    parser.add_argument("--procedures", type=int, default=None,
                        help="procedures in the database (default 1,000,000)")
    parser.add_argument("--url", "--db", dest="db", default=None,
                        help="database URL or SQLite file to use (default: a temporary file)")
    parser.add_argument("--repeat", type=int, default=4, help="runs per view")
    args = parser.parse_args(argv)
    procedures = args.procedures or (20_000 if args.quick else 1_000_000)
    with tempfile.TemporaryDirectory(prefix="bench-records-") as tmp:
        url = args.db or f"sqlite:///{Path(tmp) / 'records.sqlite3'}"
        service = prepare(url, procedures)
        with read_session(service.engine) as s:
            total = s.scalar(select(func.count()).select_from(Procedure)) or 0
        print(f"\nRecords page on {service.engine.dialect.name}, {total:,} procedures, "
              f"{PAGE} rows a page (target < {TARGET_S:g} s)\n")
        print(f"{'view':<62} {'first s':>8} {'median s':>9} {'rows':>5} {'matching':>10}")
        worst = 0.0
        for label, actor, f, offset in views(service):
            first, median, rows, matching = timed(
                lambda a=actor, f=f, o=offset: service.list(a, f, limit=PAGE, offset=o),
                args.repeat)
            worst = max(worst, first, median)
            print(f"{label:<62} {first:8.3f} {median:9.3f} {rows:5d} {matching:10,}")
        verdict = "within" if worst < TARGET_S else "OVER"
        print(f"\nslowest view: {worst:.3f} s ({verdict} the {TARGET_S:g} s target)")
        service.engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
