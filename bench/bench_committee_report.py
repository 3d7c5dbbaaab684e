"""Benchmark: the committee report over a year of a large demo database, end to end.

    python bench/bench_committee_report.py            # 20,000 and 1,000,000 demo procedures
    python bench/bench_committee_report.py --quick    # 20,000 only
    python bench/bench_committee_report.py --url postgresql+psycopg://.../fluoro_bench_1000000_s1

Why: the radiation safety committee's report (issue 14) gathers every dashboard figure from
one snapshot (compliance overall and by physician, room and procedure, the p-chart, dose and
reference levels, the scorecard, alerts with their first refresh, safety flags, completeness),
renders the p-chart to SVG and typesets the PDF. Target: under 30 s for a year of a
1,000,000-record database, with progress shown. Prints the time of each step (as the progress
callback reports it) and the total, on a copy of the cached demo database (bench/_common.py),
twice: cold (no saved frame, alerts never refreshed: a first report after an upgrade) and warm
(the second report, as the app makes it once its analysis frame is loaded), with the process's
CPU time beside the wall time (on a shared machine other work inflates the wall time). No
pass/fail.
"""

from __future__ import annotations

import itertools
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import Engine

from audit.analytics.snapshot import FrameCache
from audit.auth import Actor
from audit.documents.committee import committee_document
from audit.documents.committee_figures import STEPS
from audit.storage.engine import make_engine, migrate
from audit.vocab import Role
from bench._common import add_url, figure, parser, scratch_copy

QUALITY = Actor("bench", Role.QUALITY_OFFICER)
TARGET_S = 30.0
#: A year of the demo data, which ends on 2026-11-01 (bench/_common.py).
FIRST, LAST = date(2025, 11, 1), date(2026, 10, 31)


def run(size: int, url: str | None = None) -> None:
    print(f"\n{size:,} demo procedures, committee report {FIRST} to {LAST}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-committee-") as tmp:
        copy, drop = scratch_copy(url, size, Path(tmp))  # the cached file, or --url's database
        migrate(copy)  # the settings the cached file may predate
        engine = make_engine(copy)
        try:
            for label in ("cold", "warm"):  # a new cache each time: as a new process
                _once(engine, label, FrameCache(engine, store=Path(tmp) / "cache"))
        finally:
            engine.dispose()
            drop()


def _once(engine: Engine, label: str, frames: FrameCache) -> None:
    """One report. Cold: nothing read yet (no saved frame, alerts never refreshed); warm: the
    second report, from a new process's cache, as `report committee` and the app make it: the
    saved frame file is read, alerts are up to date."""
    marks: list[tuple[str, float]] = []
    steps_done: list[int] = []

    def progress(step: str, done: int, total: int) -> None:
        if not steps_done or steps_done[-1] != done:  # a step's own progress is no new step
            steps_done.append(done)
            marks.append((STEPS[done] if done < len(STEPS) else step, time.perf_counter()))
        print(f"    [{done}/{total}] {step}", file=sys.stderr, flush=True)

    started, cpu_started = time.perf_counter(), time.process_time()
    pdf, info = committee_document(engine, QUALITY, first=FIRST, last=LAST, progress=progress,
                                   frames=frames)
    total = time.perf_counter() - started
    cpu = time.process_time() - cpu_started  # all threads; other work inflates it less
    print(f"  {label}:")
    figure("records in the period", f"{info['records']:,}")
    for (step, at), (_, after) in itertools.pairwise(marks):
        figure(f"step: {step}", after - at, "s")
    figure(f"total, {label} (gather, chart, typeset, audit)", total, "s",
           "met" if total < TARGET_S else "NOT MET")
    figure(f"CPU time of this process, {label}", cpu, "s",
           "the wall time on an idle machine, about (SQLite's work included)")
    figure("PDF size", len(pdf) / 1024, "KiB")


def main() -> int:
    args = add_url(parser(__doc__.splitlines()[0])).parse_args()
    if args.url:
        run(args.size or 1_000_000, args.url)
        return 0
    for size in (20_000,) if args.quick else (20_000, 1_000_000):
        run(size)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
