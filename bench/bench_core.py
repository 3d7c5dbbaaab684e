"""Core benchmarks (issue: procedure log core).

1. Log one procedure through the service: p50 / p95 latency (target p95 <= 20 ms on SQLite).
2. `demo --procedures N`: rows/s and database size, beside a raw sqlite3 executemany of the
   same rows measured in the same run (target: demo <= 3x the raw insert time).
"""

from __future__ import annotations

import sqlite3
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from audit.auth import cli_actor
from audit.demo.cast import ensure_cast
from audit.demo.loading import CHUNK, generate
from audit.demo.records import build_chunk
from audit.log.service import ProcedureLog
from audit.storage.engine import make_engine, migrate
from audit.storage.models import Procedure, ProcedureLevel
from bench._common import add_url, figure, fresh_url, parser, percentiles

#: --url: the PostgreSQL server to make scratch databases on (None: SQLite files).
URL: list[str | None] = [None]


def record(i: int) -> dict[str, object]:
    return {
        "performed_at": f"2026-03-{1 + i % 28:02d}T{8 + i % 9:02d}:{i % 60:02d}:00-05:00",
        "site": "Bench", "room": "OR 1", "physician": f"Dr. {i % 5}",
        "technologist": "bench", "patient_id": f"B{i + 10:07d}",
        "pregnancy_status": "not_applicable",
        "procedure_code": "TFESI", "levels": ["L4", "L5"], "laterality": "left",
        "guidance": "fluoroscopy", "fluoro_time_s": f"0:{20 + i % 30}",
        "dap_value": 60 + i % 40, "dap_unit": "cGy·cm²", "air_kerma_mgy": 5 + i % 7,
        "saved_images": 2, "contrast_agent": "iohexol 240", "contrast_volume_ml": 1.5,
        "contrast_confirmation": "confirmed", "confirmation_views": ["AP", "LAT"],
        "realtime_contrast": True, "injectate": "dexamethasone",
    }


def bench_log_latency(tmp: Path, n: int) -> None:
    url, drop = fresh_url(URL[0], "latency", tmp)
    migrate(url)
    service = ProcedureLog(make_engine(url))
    actor = cli_actor()
    for i in range(5):  # create the names once, outside the timing
        service.log(record(-1 - i), actor, create_missing=True)
    samples = []
    for i in range(1, n + 1):
        start = time.perf_counter()
        service.log(record(i), actor)
        samples.append(time.perf_counter() - start)
    service.engine.dispose()
    drop()
    p = percentiles(samples)
    print(f"Log one procedure through the service ({_backend()}, {n} records)")
    figure("p50 latency", p["p50_ms"], "ms")
    figure("p95 latency", p["p95_ms"], "ms", "target <= 20 ms")
    figure("max latency", p["max_ms"], "ms")


def bench_demo(tmp: Path, n: int) -> None:
    url, drop = fresh_url(URL[0], "demo", tmp)
    migrate(url)
    engine = make_engine(url)
    start = time.perf_counter()
    generate(engine, procedures=n, seed=1, until=date(2026, 11, 1), progress=False)
    demo_s = time.perf_counter() - start
    engine.dispose()
    drop()
    if URL[0] is not None and not URL[0].startswith("sqlite"):
        print(f"`fluoro-audit demo --procedures {n}` (PostgreSQL, COPY)")
        figure("demo total", demo_s, "s")
        figure("demo rate", n / demo_s, "rows/s", "no sqlite3 baseline on PostgreSQL")
        return
    size_mb = (tmp / "demo.sqlite3").stat().st_size / 1e6

    # Baseline: the same rows (same generator, same seed) inserted with sqlite3's executemany
    # into an empty database of the same schema; only the inserts are timed.
    raw_path = tmp / "raw.sqlite3"
    migrate(f"sqlite:///{raw_path}")
    ref_engine = make_engine(f"sqlite:///{raw_path}")
    ref = ensure_cast(ref_engine)
    ref_engine.dispose()
    rng = np.random.default_rng(1)
    patients = {"weight": np.full(max(1, n // 3), 80.0), "sex": np.array(["F"] * max(1, n // 3),
                dtype=object), "id": np.ones(max(1, n // 3), dtype=int)}
    conn = sqlite3.connect(raw_path)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("INSERT INTO patient (id, mrn, pseudonym, created_at) VALUES (1, 'x', 'y', "
                 "'2026-01-01 00:00:00.000000')")
    proc_cols = [c.name for c in Procedure.__table__.columns]
    level_cols = [c.name for c in ProcedureLevel.__table__.columns]
    proc_sql = (f"INSERT INTO procedure ({', '.join(proc_cols)}) "  # noqa: S608
                f"VALUES ({', '.join('?' * len(proc_cols))})")
    level_sql = (f"INSERT INTO procedure_level ({', '.join(level_cols)}) "  # noqa: S608
                 f"VALUES ({', '.join('?' * len(level_cols))})")
    from datetime import UTC, datetime, timedelta

    end = datetime(2026, 11, 1, tzinfo=UTC)
    raw_s = 0.0
    for lo in range(0, n, CHUNK):
        columns, levels = build_chunk(rng, 1 + lo, min(CHUNK, n - lo), ref, patients,
                                      end - timedelta(days=730), end, end)
        for key in ("performed_at", "created_at", "updated_at"):
            columns[key] = [v.strftime("%Y-%m-%d %H:%M:%S.%f") for v in columns[key]]
        proc_rows = list(zip(*(columns[c] for c in proc_cols), strict=True))
        level_rows = list(zip(*(levels[c] for c in level_cols), strict=True))
        start = time.perf_counter()
        with conn:
            conn.executemany(proc_sql, proc_rows)
            conn.executemany(level_sql, level_rows)
        raw_s += time.perf_counter() - start
    conn.close()
    print(f"`fluoro-audit demo --procedures {n}` (SQLite)")
    figure("demo total", demo_s, "s")
    figure("demo rate", n / demo_s, "rows/s")
    figure("database size", size_mb, "MB")
    figure("raw executemany of the same rows", raw_s, "s")
    figure("demo / raw executemany", demo_s / raw_s, "x", "target <= 3x")


def _backend() -> str:
    return "SQLite" if URL[0] is None or URL[0].startswith("sqlite") else "PostgreSQL"


def main() -> None:
    args = add_url(parser(__doc__ or "")).parse_args()
    URL[0] = args.url
    with tempfile.TemporaryDirectory(prefix="fa-bench-") as tmp:
        bench_log_latency(Path(tmp), 200 if args.quick else 2000)
        bench_demo(Path(tmp), 20_000 if args.quick else 1_000_000)


if __name__ == "__main__":
    main()
