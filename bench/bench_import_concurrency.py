"""Benchmark: logging a case while a large CSV import runs (issue 10), on SQLite.

One process imports a legacy CSV log (`fluoro-audit import csv`, 30,000 rows; --quick 3,000);
meanwhile this process logs one procedure through the service, waits 0.2 s, logs the next, as
a technologist at the form would. Printed: the import's total time, how long it held SQLite's
write lock (from BEGIN IMMEDIATE to COMMIT of its write transactions, measured in the importing
process), and the latency of the single logs: p50, p95 and max. Target: log p95 < 1 s. A log
that arrives while the import writes waits for its one short write transaction: the max.

Before issue 10 the import validated and wrote every row inside one write transaction: the
30,000-row file held the lock 251 s and a log waited up to 248 s.

    python bench/bench_import_concurrency.py            # 30,000 rows
    python bench/bench_import_concurrency.py --quick    # 3,000 rows
    python bench/bench_import_concurrency.py --rows N
"""

from __future__ import annotations

import csv
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from audit.auth import cli_actor
from audit.log.service import ProcedureLog
from audit.storage.engine import make_engine, migrate
from bench._common import add_url, figure, fresh_url, parser, percentiles

LOG_EVERY_S = 0.2
COLUMNS = ("performed_at", "site", "room", "physician", "technologist", "patient_id",
           "pregnancy_status", "procedure_code", "levels", "laterality", "guidance",
           "fluoro_time_s", "dap_value", "dap_unit", "air_kerma_mgy", "saved_images",
           "contrast_agent", "contrast_volume_ml", "contrast_confirmation",
           "confirmation_views", "realtime_contrast", "injectate")


def record(i: int, prefix: str = "B") -> dict[str, Any]:
    """A valid lumbar TFESI; `i` varies the date, physician, patient and dose."""
    return {
        "performed_at": f"2025-{1 + i % 12:02d}-{1 + i % 28:02d}T{8 + i % 9:02d}:"
                        f"{i % 60:02d}:00-05:00",
        "site": "Bench", "room": "OR 1", "physician": f"Dr. {i % 5}",
        "technologist": "bench", "patient_id": f"{prefix}{i:07d}",
        "pregnancy_status": "not_applicable", "procedure_code": "TFESI",
        "levels": ["L4", "L5"], "laterality": "left", "guidance": "fluoroscopy",
        "fluoro_time_s": f"0:{20 + i % 30}", "dap_value": 60 + i % 40, "dap_unit": "cGy·cm²",
        "air_kerma_mgy": 5 + i % 7, "saved_images": 2, "contrast_agent": "iohexol 240",
        "contrast_volume_ml": 1.5, "contrast_confirmation": "confirmed",
        "confirmation_views": ["AP", "LAT"], "realtime_contrast": True,
        "injectate": "dexamethasone",
    }


def write_file(path: Path, rows: int) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(COLUMNS)
        for i in range(rows):
            rec = record(i)
            out.writerow([";".join(v) if isinstance(v, list) else
                          ("true" if v is True else v) for v in (rec[c] for c in COLUMNS)])


def run_import(url: str, path: str, started: Any, results: Any) -> None:
    """The importing process: import the file, timing it and its write transactions."""
    from sqlalchemy import event

    from audit.log.csv_import import import_csv

    engine = make_engine(url)
    held: list[float] = []
    opened: dict[int, float] = {}

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        if conn.get_execution_options().get("sqlite_begin") == "IMMEDIATE":
            opened[id(conn)] = time.perf_counter()

    @event.listens_for(engine, "commit")
    def _commit(conn: Any) -> None:
        if id(conn) in opened:
            held.append(time.perf_counter() - opened.pop(id(conn)))

    @event.listens_for(engine, "rollback")
    def _rollback(conn: Any) -> None:
        if id(conn) in opened:
            held.append(time.perf_counter() - opened.pop(id(conn)))

    service = ProcedureLog(engine)
    started.set()
    start = time.perf_counter()
    result = import_csv(service, cli_actor(), path, confirm_warnings=True)
    total = time.perf_counter() - start
    results.put({"total_s": total, "held_s": sum(held), "transactions": len(held),
                 "longest_s": max(held, default=0.0), "imported": len(result.imported),
                 "failed": len(result.failed)})


def main() -> None:
    p = add_url(parser(__doc__ or ""))
    p.add_argument("--rows", type=int, help="rows in the CSV file (default 30,000)")
    args = p.parse_args()
    rows = args.rows or (3_000 if args.quick else 30_000)
    with tempfile.TemporaryDirectory(prefix="fa-bench-") as tmp:
        url, drop = fresh_url(args.url, "import", Path(tmp))
        migrate(url)
        service = ProcedureLog(make_engine(url))
        actor = cli_actor()
        for i in range(5):  # the names exist; the service's caches are warm
            service.log(record(i, "W"), actor, create_missing=True, confirm_warnings=True)
        path = Path(tmp) / "legacy.csv"
        write_file(path, rows)

        context = multiprocessing.get_context("spawn")
        started, results = context.Event(), context.Queue()
        importer = context.Process(target=run_import, args=(url, str(path), started, results))
        importer.start()
        started.wait(120)
        latencies: list[float] = []
        n = 0
        while importer.is_alive() and results.empty():  # a technologist: log, 0.2 s, log...
            n += 1
            begin = time.perf_counter()
            service.log(record(n, "L"), actor, confirm_warnings=True)
            latencies.append(time.perf_counter() - begin)
            time.sleep(LOG_EVERY_S)
        outcome = results.get(timeout=600)
        importer.join(60)

    print(f"CSV import of {rows:,} rows (SQLite) while one procedure is logged every "
          f"{LOG_EVERY_S:g} s")
    figure("rows imported", f"{outcome['imported']:,}", "",
           f"{outcome['failed']} failed" if outcome["failed"] else "")
    figure("import total", outcome["total_s"], "s")
    figure("write lock held (sum)", outcome["held_s"], "s",
           f"{outcome['transactions']} write transaction(s), "
           f"{outcome['held_s'] / outcome['total_s']:.0%} of the import")
    figure("longest write transaction", outcome["longest_s"], "s",
           "a log arriving then waits up to this")
    figure("single logs during the import", f"{len(latencies):,}",
           "", f"{sum(s > 1 for s in latencies)} took over 1 s")
    if len(latencies) >= 2:
        q = percentiles(latencies)
        figure("log latency p50", q["p50_ms"], "ms")
        figure("log latency p95", q["p95_ms"], "ms", "target < 1000 ms")
        figure("log latency max", q["max_ms"], "ms")
        service.engine.dispose()
        drop()


if __name__ == "__main__":
    main()
