"""Benchmark: the procedure-log export beside `sqlite3 -csv` on the same rows, in the same run.

    python bench/bench_export.py            100,000 and 1,000,000 demo procedures
    python bench/bench_export.py --quick    20,000 (well under a minute once cached)
    python bench/bench_export.py --url URL  a given database (PostgreSQL: beside psql's COPY)

For each size a demo database (audit.demo.generate, seed 1, ending 2026-01-01) is generated once
and cached under bench/out/ (gitignored). Each run measures, in child processes so that peak
RSS (ru_maxrss from wait4) and CPU time belong to that run alone:
- sqlite3: the sqlite3 shell printing the same rows with the same joins, filter and order (raw
  values, levels via group_concat) as CSV: the floor for "rows out of SQLite into a file";
- export: audit.export.runner.export() of the procedure log, complete: row count first, rendering,
  BOM/CRLF/quoting, formula guard, SHA-256, data dictionary, manifest, SHA256SUMS, audit event.

Targets (issue 6): export time <= 2x sqlite3's, export peak RSS <= 200 MB at 1M rows. The
machine may be shared, so each run is repeated (--repeat, best kept) and CPU seconds are shown
beside wall seconds. Prints figures; no pass/fail.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
SEED = 1
UNTIL = date(2026, 1, 1)

#: The same rows as the export (final records, performed_at order) with the same joins.
SQLITE_QUERY = """
SELECT p.id, p.status, p.version, p.performed_at, s.name, r.name, ph.name, u.username,
  pt.pseudonym, p.accession_number, p.patient_sex, p.patient_weight_kg, p.pregnancy_status,
  t.code,
  (SELECT group_concat(level, ';') FROM (SELECT level FROM procedure_level
     WHERE procedure_id = p.id ORDER BY position)),
  p.laterality, p.guidance, p.fluoro_time_s, p.dap_gycm2, p.dap_value, p.dap_unit,
  p.dap_missing_reason, p.air_kerma_mgy, p.saved_images, p.dsa_runs, p.pulsed_fluoro,
  p.pulse_rate_pps, p.low_dose_mode, p.contrast_agent, p.contrast_volume_ml,
  p.contrast_confirmation, p.contrast_exception_reason, p.contrast_exception_detail,
  p.confirmation_views, p.realtime_contrast, p.vascular_uptake, p.needle_repositioned,
  p.injectate, p.notes, p.dose_source, p.region, p.effective_dose_msv,
  round(p.effective_dose_msv * 365 / 3.1, 1), p.warnings, p.void_reason, p.created_at,
  p.created_by, p.updated_at, p.updated_by
FROM procedure p
JOIN site s ON s.id = p.site_id
JOIN room r ON r.id = p.room_id
JOIN physician ph ON ph.id = p.physician_id
JOIN user_account u ON u.id = p.technologist_id
JOIN patient pt ON pt.id = p.patient_id
JOIN procedure_type t ON t.id = p.procedure_type_id
WHERE p.status = 'final'
ORDER BY p.performed_at, p.id;
"""


def demo_database(procedures: int) -> Path:
    """The cached demo database of this size, generated on first use in a child process (this
    process stays small: a forked child's ru_maxrss would include the parent's pages)."""
    path = OUT / f"export-demo-{procedures}-seed{SEED}.sqlite3"
    if not path.exists():
        subprocess.run([sys.executable, __file__, "--generate", str(procedures)], check=True)
    return path


def generate_database(procedures: int) -> None:
    sys.path.insert(0, str(ROOT))
    from audit.demo import generate
    from audit.storage.engine import make_engine, migrate

    path = OUT / f"export-demo-{procedures}-seed{SEED}.sqlite3"
    OUT.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    for leftover in OUT.glob(partial.name + "*"):
        leftover.unlink()
    url = f"sqlite:///{partial}"
    print(f"generating {procedures:,} demo procedures into {path.name} (cached) ...",
          file=sys.stderr, flush=True)
    started = time.perf_counter()
    migrate(url)
    engine = make_engine(url)
    generate(engine, procedures=procedures, seed=SEED, until=UNTIL)
    with engine.connect() as conn:  # fold the WAL into the file before renaming it
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    os.replace(partial, path)
    print(f"  generated in {time.perf_counter() - started:.0f} s", file=sys.stderr)


def measured(command: list[str], stdout: Any = subprocess.DEVNULL) -> dict[str, float]:
    """Run a child process; its wall time, CPU time and peak RSS (from wait4's rusage)."""
    with tempfile.TemporaryFile() as errors:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=stdout, stderr=errors)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        code = os.waitstatus_to_exitcode(status)
        process.returncode = code
        if code != 0:
            errors.seek(0)
            message = errors.read().decode(errors="replace")[-2000:]
            raise RuntimeError(f"{command[0]} failed ({code}): {message}")
    return {"seconds": seconds, "cpu": usage.ru_utime + usage.ru_stime,
            "peak_rss_mb": usage.ru_maxrss / 1024}


def run_sqlite3(database: Path, target: Path) -> dict[str, float]:
    sqlite3 = shutil.which("sqlite3")
    if sqlite3 is None:
        raise FileNotFoundError("sqlite3 shell not found: apt-get install -y sqlite3")
    query = OUT / "bench_export_query.sql"
    query.write_text(SQLITE_QUERY, encoding="utf-8")
    with open(target, "wb") as handle:
        result = measured([sqlite3, "-csv", "-header", "-cmd", f".read {query}",
                           str(database), ".quit"], stdout=handle)
    result["bytes"] = target.stat().st_size
    return result


def run_psql(url: str, target: Path) -> dict[str, float]:
    """PostgreSQL's floor: psql's COPY of the final records (every column, ordered) as CSV."""
    from sqlalchemy import make_url

    psql = shutil.which("psql")
    if psql is None:
        raise FileNotFoundError("psql not found: apt-get install -y postgresql-client")
    plain = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with open(target, "wb") as handle:
        result = measured([psql, plain, "-c", "\\copy (SELECT * FROM procedure WHERE status = "
                           "'final' ORDER BY performed_at, id) TO STDOUT WITH CSV HEADER"],
                          stdout=handle)
    result["bytes"] = target.stat().st_size
    return result


def run_export(database: Path | str, target: Path) -> dict[str, float]:
    report = target.with_suffix(".json")
    result = measured([sys.executable, __file__, "--child", str(database), str(target),
                       str(report)])
    child = json.loads(report.read_text())
    result.update(child)
    return result


def child(database: str, target: str, report: str) -> None:
    """The measured process: one complete export of the procedure log."""
    sys.path.insert(0, str(ROOT))
    from audit.auth import cli_actor
    from audit.export.runner import export
    from audit.storage.engine import make_engine

    engine = make_engine(database if "://" in database else f"sqlite:///{database}")
    result = export(engine, cli_actor(), Path(target))
    files = {f.name: f.as_dict() for f in result.files}
    Path(report).write_text(json.dumps({"rows": files["procedures.csv"]["rows"],
                                        "bytes": files["procedures.csv"]["bytes"]}))


def best(runs: list[dict[str, float]]) -> dict[str, float]:
    return min(runs, key=lambda r: r["seconds"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20,000 procedures only")
    parser.add_argument("--sizes", type=int, nargs="+", help="procedure counts to run")
    parser.add_argument("--repeat", type=int, default=None,
                        help="runs per tool and size, best kept (default 1 quick, 2 full)")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--generate", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--url", default=None,
                        help="export this database instead (PostgreSQL: beside psql's COPY)")
    args = parser.parse_args(argv)
    if args.generate:
        generate_database(args.generate)
        return 0
    if args.child:
        child(*args.child)
        return 0
    sizes = args.sizes or ([20_000] if args.quick else [100_000, 1_000_000])
    repeat = args.repeat or (1 if args.quick else 2)
    startup = best([measured([sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1]);"
                              " import audit.export.runner, audit.auth,"
                              " audit.storage.engine", str(ROOT)])
                    for _ in range(repeat)])
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"sqlite3 shell: {shutil.which('sqlite3') or 'not found'}; load average {load} "
          f"({os.cpu_count()} CPUs); best of {repeat} run(s) each")
    print(f"export's fixed cost (Python start and imports): {startup['seconds']:.2f} s, "
          f"{startup['peak_rss_mb']:.0f} MB")
    print(f"{'rows':>10} {'tool':<8} {'seconds':>8} {'cpu s':>7} {'rows/s':>10} "
          f"{'peak RSS MB':>11} {'file MB':>8} {'x sqlite3':>9}")
    for size in [0] if args.url else sizes:
        database: Path | str = args.url or demo_database(size)
        floor = run_psql if args.url and not args.url.startswith("sqlite") else run_sqlite3
        if args.url and args.url.startswith("sqlite:///"):
            database = Path(args.url.removeprefix("sqlite:///"))
        runs: dict[str, list[dict[str, float]]] = {"sqlite3": [], "export": []}
        for attempt in range(repeat):
            csv_path = OUT / f"bench-sqlite3-{size}.csv"
            runs["sqlite3"].append(floor(database, csv_path))  # type: ignore[arg-type]
            csv_path.unlink()
            folder = OUT / f"bench-export-{size}-{attempt}-{os.getpid()}"
            runs["export"].append(run_export(database, folder))
            shutil.rmtree(folder)
            folder.with_suffix(".json").unlink()
        base, ours = best(runs["sqlite3"]), best(runs["export"])
        rows = int(ours["rows"])
        for name, figures in (("sqlite3", base), ("export", ours)):
            ratio = figures["seconds"] / base["seconds"]
            print(f"{rows:>10,} {name:<8} {figures['seconds']:>8.2f} {figures['cpu']:>7.2f} "
                  f"{rows / figures['seconds']:>10,.0f} {figures['peak_rss_mb']:>11.1f} "
                  f"{figures['bytes'] / 1e6:>8.1f} {ratio:>9.2f}")
    print("targets: export <= 2x sqlite3 seconds; export peak RSS <= 200 MB at 1,000,000 rows")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
