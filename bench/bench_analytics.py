"""Benchmark: time to compute each audit page's figures, cold and warm, on SQLite.

    python bench/bench_analytics.py            # 1,000,000 demo procedures (issue 4's size)
    python bench/bench_analytics.py --quick    # 50,000, under a minute
    python bench/bench_analytics.py --url postgresql://...   # PostgreSQL: figures from SQL

Cold: a fresh frame cache (as in a new dashboard process): read the analysis frame, then
compute the page. Warm: the frame is loaded and the user changes a filter. Beside them, the
time of one plain GROUP BY over the same table, measured in the same run, to judge the figures
against what this machine does in SQL at all. Targets (issue 4): warm <= 0.3 s, cold <= 3 s.
No pass/fail: figures are printed. The demo database is generated once (about 90 s for a
million records) and kept under bench/out/ (gitignored).
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from audit.alerts.detection import investigation_levels
from audit.alerts.store import alert_counts, list_alerts, refresh_alerts
from audit.analytics.compliance import compliance, compliance_records, p_chart
from audit.analytics.data_quality import completeness
from audit.analytics.dose_stats import dose_distribution, dose_histogram, monthly_medians
from audit.analytics.reference_levels import local_drls, reference_table
from audit.analytics.safety import flagged_records, safety_flags
from audit.analytics.scorecard import physician_scorecard
from audit.analytics.snapshot import FrameCache, Snapshot
from audit.auth import Actor
from audit.demo import generate
from audit.filters import Filters
from audit.storage.engine import make_engine, migrate
from audit.vocab import Role

OUT = Path(__file__).resolve().parent / "out"
UNTIL = date(2026, 11, 1)
RSO = Actor("bench", Role.RSO)


def ensure_database(procedures: int, seed: int = 1) -> Path:
    """The demo database of this size, generated once and reused."""
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"demo-{procedures}-seed{seed}.sqlite3"
    if not path.exists():
        partial = path.with_suffix(".partial")
        for leftover in OUT.glob(partial.name + "*"):
            leftover.unlink()
        url = f"sqlite:///{partial}"
        migrate(url)
        engine = make_engine(url)
        started = time.perf_counter()
        print(f"generating {procedures:,} demo procedures into {path.name} ...", flush=True)
        generate(engine, procedures=procedures, seed=seed, until=UNTIL, progress=True)
        engine.dispose()
        print(f"generated in {time.perf_counter() - started:.0f} s", flush=True)
        os.replace(partial, path)
    migrate(f"sqlite:///{path}")
    return path


def plain_group_by(path: Path) -> float:
    """One plain GROUP BY over the procedure table (a full scan), as the yardstick."""
    with sqlite3.connect(path) as conn:
        started = time.perf_counter()
        conn.execute("SELECT region, count(*), avg(dap_gycm2), avg(fluoro_time_s) "
                     "FROM procedure WHERE status = 'final' GROUP BY region").fetchall()
        return time.perf_counter() - started


# --- what each page computes (the same calls as dashboard/views/*) ---------------------------

def compliance_page(engine: Any, snap: Snapshot, f: Filters) -> None:
    compliance(snap, f)
    p_chart(snap, f)
    for by in ("physician", "room", "procedure"):
        compliance(snap, f, by)
    compliance_records(snap, f, "non_compliant", limit=2000)


def dose_page(engine: Any, snap: Snapshot, f: Filters) -> None:
    distribution = dose_distribution(snap, f, "dap_gycm2")
    local_drls(snap, f, ("dap_gycm2",))
    reference_table(snap)
    if len(distribution):
        dose_histogram(snap, f, distribution["procedure"].iloc[0], "dap_gycm2")
    physician_scorecard(snap, f)
    monthly_medians(snap, f, "dap_gycm2")
    local_drls(snap, f)


def alerts_page(engine: Any, snap: Snapshot, f: Filters) -> None:
    refresh_alerts(engine, snap)
    alert_counts(engine, RSO, f)
    for status in ("open", "acknowledged", "withdrawn"):
        list_alerts(engine, RSO, f, status=status, limit=2000)
    for kind in ("srdl", "cumulative", "investigation"):
        list_alerts(engine, RSO, f, status="open", kind=kind, limit=200)
    investigation_levels(snap)


def data_quality_page(engine: Any, snap: Snapshot, f: Filters) -> None:
    completeness(snap, f)
    completeness(snap, f, "room")
    completeness(snap, f, "technologist")
    safety_flags(snap, f)
    flagged_records(snap, f, "particulate_cervical_tfesi", limit=2000)


PAGES: dict[str, Callable[[Any, Snapshot, Filters], None]] = {
    "Compliance": compliance_page, "Dose": dose_page, "Alerts": alerts_page,
    "Data quality": data_quality_page,
}
WARM_FILTERS = [
    Filters(physicians=("Dr. Demo Weiss",)),
    Filters.days(date(2025, 11, 1), date(2026, 10, 31)),
    Filters(rooms=("Demo OR 2", "Demo Suite A"), procedures=("TFESI", "ILESI")),
]


def timed(work: Callable[[], Any]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def chosen(pages: dict[str, Any], names: str | None) -> dict[str, Any]:
    """The pages named by --pages (all: None); an unknown name is refused, naming the known."""
    if names is None:
        return pages
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in pages]
    if unknown:
        raise SystemExit(f"--pages: unknown {', '.join(unknown)}; allowed: {', '.join(pages)}")
    return {n: pages[n] for n in wanted}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="50,000 procedures")
    parser.add_argument("--procedures", type=int, help="override the size")
    parser.add_argument("--url", default=None,
                        help="a PostgreSQL demo database (bench/make_pg_demo.py): the pages' "
                             "figures from SQL, as the dashboards compute them there")
    parser.add_argument("--pages", default=None,
                        help="only these pages, comma-separated (e.g. Compliance or "
                             "\"Compliance,Data quality\"): a 5M run of one page")
    parser.add_argument("--read-only", action="store_true",
                        help="PostgreSQL: skip the shared results' part (it writes a setting "
                             "and stores results): for a database this run may only read")
    parser.add_argument("--no-ahead", action="store_true",
                        help="PostgreSQL: compute a Dose tab's figures one after another "
                             "instead of asking them ahead together (SqlSource.ahead)")
    args = parser.parse_args(argv)
    if args.url and not args.url.startswith("sqlite"):
        from bench import _pg_pages  # figures from SQL (issue 16)

        _pg_pages.AHEAD = not args.no_ahead

        return _pg_pages.main(args.url, pages=chosen(_pg_pages.PAGES, args.pages),
                              shared=not args.read_only)
    size = args.procedures or (50_000 if args.quick else 1_000_000)
    path = ensure_database(size)
    url = f"sqlite:///{path}"
    engine = make_engine(url)

    group_by = min(plain_group_by(path) for _ in range(3))
    first = FrameCache(engine)
    cpu_started = time.process_time()
    frame_load = timed(first.get)
    frame_cpu = time.process_time() - cpu_started  # what other work on the machine inflates less
    snap = first.get()
    first_alerts = timed(lambda: refresh_alerts(engine, snap))  # one-off: stores the alerts
    megabytes = snap.records.memory_usage(deep=True).sum() / 1e6

    print(f"\nfluoro-audit analytics benchmark: {len(snap.records):,} final records (SQLite, "
          f"{path.stat().st_size / 1e6:.0f} MB)")
    print(f"plain GROUP BY over the table: {group_by:.2f} s   frame read: {frame_load:.2f} s "
          f"(CPU {frame_cpu:.2f} s; {megabytes:.0f} MB in memory)   first alert refresh (stores "
          "them): "
          f"{first_alerts:.2f} s")
    store = OUT / "cache"
    FrameCache(engine, store=store).get()  # the frame file a restarted dashboard finds
    print("cold: a new process reading every record; restart: a new process with the frame "
          "file; warm: a filter change (slowest of "
          f"{len(WARM_FILTERS)})")
    print(f"\n{'page':<14}{'cold s':>8}{'restart s':>10}{'warm s':>8}"
          f"{'cold/GB':>9}{'warm/GB':>9}")
    for name, page in chosen(PAGES, args.pages).items():
        cache = FrameCache(engine)  # a new process: nothing in memory, no frame file
        cold = timed(lambda page=page, cache=cache: page(engine, cache.get(), Filters()))
        restarted = FrameCache(engine, store=store)
        restart = timed(lambda page=page, c=restarted: page(engine, c.get(), Filters()))
        warm = max(timed(lambda page=page, cache=cache, f=f: page(engine, cache.get(), f))
                   for f in WARM_FILTERS)
        print(f"{name:<14}{cold:>8.2f}{restart:>10.2f}{warm:>8.3f}{cold / group_by:>9.1f}"
              f"{warm / group_by:>9.2f}")
    print("\ntargets: warm <= 0.3 s, cold <= 3 s per page (GB: the plain GROUP BY above)")
    engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
