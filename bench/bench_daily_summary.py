"""Benchmark: the daily summary table (issue 16), kept current by refresh, beside the write-path
alternative and a plain GROUP BY.

    python bench/bench_daily_summary.py                  # 1,000,000 demo records, SQLite
    python bench/bench_daily_summary.py --quick          # 50,000
    python bench/bench_daily_summary.py --url postgresql+psycopg://.../fluoro_bench_1000000_s1

On a copy of the demo database (bench/_common.scratch_copy) it prints: the migration's backfill
(0018: the full GROUP BY into the summary), the monthly counts from the summary against the
same counts from the analysis frame (read + compliance by month), a refresh after 1,000 new
records, and what keeping the summary in the write path would add to each write: one atomic
INSERT ... ON CONFLICT DO UPDATE increment per record, the statement a write's transaction
would add (measured on a scratch table of the same shape). docs/design.md "The daily
summary" gives the figures that decided it.
"""

from __future__ import annotations

import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import make_url, text

from audit.analytics.compliance import compliance
from audit.analytics.daily_summary import monthly_counts, refresh_summary
from audit.analytics.snapshot import load_snapshot
from audit.demo import generate
from audit.filters import Filters
from audit.storage.engine import make_engine, migrate
from bench._common import add_url, figure, group_by_s, parser, peak_rss_mb, scratch_copy

NEW_RECORDS = 1_000
UPSERTS = 1_000


def upsert_cost_ms(engine: object) -> float:
    """Mean time one write-path increment adds to a write's transaction (the statement, not the
    commit the record pays anyway), on a scratch table."""
    with engine.begin() as conn:  # type: ignore[attr-defined]
        conn.execute(text("DROP TABLE IF EXISTS bench_summary_upsert"))
        conn.execute(text("CREATE TABLE bench_summary_upsert (day date, site_id integer, "
                          "room_id integer, procedure_type_id integer, physician_id integer, "
                          "procedures integer, kap_sum float, kap_n integer, PRIMARY KEY (day, "
                          "site_id, room_id, procedure_type_id, physician_id))"))
    statement = text(
        "INSERT INTO bench_summary_upsert VALUES (:d, 1, :r, :t, :p, 1, :k, 1) "
        "ON CONFLICT (day, site_id, room_id, procedure_type_id, physician_id) DO UPDATE SET "
        "procedures = bench_summary_upsert.procedures + 1, "
        "kap_sum = bench_summary_upsert.kap_sum + excluded.kap_sum, "
        "kap_n = bench_summary_upsert.kap_n + 1")
    started = time.perf_counter()
    with engine.begin() as conn:  # type: ignore[attr-defined]
        for i in range(UPSERTS):  # inside a transaction, as the record's own would be
            conn.execute(statement, {"d": date(2026, 1, 1 + i % 28), "r": i % 3, "t": i % 7,
                                     "p": i % 5, "k": 1.5})
    elapsed = time.perf_counter() - started
    with engine.begin() as conn:  # type: ignore[attr-defined]
        conn.execute(text("DROP TABLE bench_summary_upsert"))
    return 1000 * elapsed / UPSERTS


def run(size: int, url: str | None) -> None:
    print(f"\n{size:,} demo procedures" + (f" ({make_url(url).get_backend_name()})" if url
                                            else " (SQLite)"), flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-summary-") as tmp:
        copy, drop = scratch_copy(url, size, Path(tmp))
        engine = make_engine(copy)
        try:
            figure("plain GROUP BY of the records", group_by_s(engine), "s")
            started = time.perf_counter()
            migrate(copy)  # 0018, 0028 and its backfill, if the copy predates them
            figure("migrate (0028's backfill when due)", time.perf_counter() - started, "s")
            started = time.perf_counter()
            refresh_summary(engine)
            figure("refresh with nothing new", time.perf_counter() - started, "s")
            started = time.perf_counter()
            counts = monthly_counts(engine, Filters())
            figure("monthly counts from the summary", time.perf_counter() - started, "s",
                   f"{len(counts)} months")
            started = time.perf_counter()
            snap = load_snapshot(engine)
            compliance(snap, Filters(), by="month")
            figure("same counts from the frame (read + group)", time.perf_counter() - started,
                   "s")
            generate(engine, procedures=NEW_RECORDS, seed=3, until=date(2026, 11, 2), months=1)
            started = time.perf_counter()
            refresh_summary(engine)
            figure(f"refresh after {NEW_RECORDS:,} new records", time.perf_counter() - started,
                   "s")
            figure("write path instead: one atomic increment", upsert_cost_ms(engine), "ms",
                   "added to each record's transaction")
            figure("peak RSS", peak_rss_mb(), "MB")
        finally:
            engine.dispose()
            drop()


def main() -> int:
    args = add_url(parser(__doc__.splitlines()[0])).parse_args()
    run(args.size or (50_000 if args.quick else 1_000_000), args.url)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
