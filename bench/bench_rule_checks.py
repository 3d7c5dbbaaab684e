"""Benchmark: the practice-rule checks at entry (issue 15, part B) for a patient with 100 earlier
procedures, and `report rules` over the whole database.

    python bench/bench_rule_checks.py                  # 1,000,000 demo records, SQLite
    python bench/bench_rule_checks.py --quick          # 50,000
    python bench/bench_rule_checks.py --size 100000    # 100,000
    python bench/bench_rule_checks.py --url postgresql+psycopg://.../fluoro_bench_1000000_s1
    python bench/bench_rule_checks.py --url postgresql+psycopg://.../fluoro_bench_5000000_s1 \
        --report month          # read-only: the Coverage page's rule report alone (issue 16)
    FLUORO_AUDIT_KEY_DIR=... python bench/bench_rule_checks.py --url postgresql+psycopg://... \
        --stored                # WRITES: the stored findings built, kept, read (issue 16)

On a copy of the demo database (bench/_common.scratch_copy), every rule pack on, one patient
gets 100 lumbar procedures over five years; then a new TFESI for that patient is checked again
and again: the rule check alone (the packs, the patient's history in one indexed query, the
rules) and the whole refused `log()` (validation, duplicates, every warning); then `report rules`
over every record once. The target is under 50 ms p95 for the rule check on 1,000,000 records
(docs/design.md §16).

--report month|year|all (with --url; read-only, the database is neither migrated nor written,
so a shared bench database can be used): only `rule_report` checking the records batch by
batch (stored=False: as the Coverage page did before the stored findings, and does on SQLite;
the newest 1,000 exceptions of each rule kept), over the last month, the last twelve months or
every record up to the database's newest record; prints the seconds, the batches and the peak
RSS of this process (run one period per process, as the figures in docs/design.md were).
--batch N: patients per batch (default audit.rules.period.BATCH_PATIENTS).

--stored (with --url, PostgreSQL; migrates and WRITES the database: use a copy, with its key
directory in FLUORO_AUDIT_KEY_DIR): the stored findings (audit.rules.findings_store) built
from scratch (`db rebuild-facts`' rebuild), an incremental refresh after 1,000 new records
logged for existing patients, then `rule_report` as the Coverage page runs it (now from the
stored findings) over the last month, the last twelve months and every record, each twice
(the second is a repeat: the page keeps its report per data version, so it measures the SQL
alone); prints seconds and this process's peak RSS after each step.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import Engine, func, make_url, select

from audit.auth import cli_actor
from audit.errors import WarningsNotConfirmed
from audit.filters import Filters
from audit.log.entry_warnings import rule_warnings
from audit.log.service import ProcedureLog
from audit.rules.findings_store import refresh_findings
from audit.rules.packs import PACKS
from audit.rules.period import BATCH_PATIENTS
from audit.rules.report import EXCEPTIONS_LISTED, rule_report
from audit.rules.store import list_packs, set_enabled
from audit.storage.engine import make_engine, migrate, read_session
from audit.storage.models import Patient, Procedure, RuleFinding
from bench._common import add_url, figure, parser, peak_rss_mb, percentiles, scratch_copy

PRIOR = 100
REPEAT = 200
MRN = "BENCH-RULES-0001"


def record(at: datetime, code: str = "TFESI", mrn: str = MRN) -> dict[str, object]:
    levels = {"TFESI": ["L4", "L5"], "ILESI": ["L4-L5"], "MBB": ["L4-L5"], "RFA": ["L4-L5"]}
    return {"performed_at": at.isoformat(), "site": "Bench site", "room": "Bench room",
            "physician": "Dr. Bench", "technologist": "benchtech", "patient_id": mrn,
            "pregnancy_status": "not_pregnant", "procedure_code": code,
            "levels": levels[code], "laterality": "midline" if code == "ILESI" else "left",
            "guidance": "fluoroscopy", "fluoro_time_s": 30, "dap_value": 0.7,
            "dap_unit": "Gy·cm²", "saved_images": 2, "contrast_agent": "iohexol 240",
            "contrast_volume_ml": 1.5, "contrast_confirmation": "confirmed",
            "confirmation_views": ["AP", "LAT"], "realtime_contrast": True,
            "injectate": "dexamethasone", "contrast_test_dose": code == "ILESI" or None}


def run(size: int, url: str | None) -> None:
    print(f"\n{size:,} demo procedures" + (f" ({make_url(url).get_backend_name()})" if url
                                            else " (SQLite)"), flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-rules-") as tmp:
        copy, drop = scratch_copy(url, size, Path(tmp))
        engine = make_engine(copy)
        try:
            migrate(copy)  # 0019 if the copy predates it
            for pack in PACKS:
                set_enabled(engine, cli_actor(), pack.key, True)
            service = ProcedureLog(engine)
            now = datetime(2026, 11, 20, 10, tzinfo=UTC)
            codes = ("TFESI", "ILESI", "MBB", "RFA")
            history = [record(now - timedelta(days=18 * (i + 1)), codes[i % 4])
                       for i in range(PRIOR)]
            started = time.perf_counter()
            service.log_many(history, cli_actor(), confirm_warnings=True, create_missing=True)
            figure(f"log {PRIOR} earlier procedures of one patient",
                   time.perf_counter() - started, "s")
            candidate = record(now)
            checked = service._validate  # the checked record, as the service has it
            with read_session(engine) as session:
                catalog, settings = service._reference(session)
                valid = checked(session, candidate, catalog, settings)
                samples = []
                found = []
                for _ in range(REPEAT):
                    started = time.perf_counter()
                    found = rule_warnings(session, valid)
                    samples.append(time.perf_counter() - started)
            stats = percentiles(samples)
            figure("rule check at entry p50", stats["p50_ms"], "ms", f"{len(found)} warnings")
            figure("rule check at entry p95", stats["p95_ms"], "ms", "target < 50 ms at 1M")
            samples = []
            for _ in range(REPEAT // 4):
                started = time.perf_counter()
                with contextlib.suppress(WarningsNotConfirmed):
                    service.log(candidate, cli_actor())
                samples.append(time.perf_counter() - started)
            stats = percentiles(samples)
            figure("whole log() refused for warnings p95", stats["p95_ms"], "ms",
                   "validation, duplicates, every warning")
            started = time.perf_counter()
            report = rule_report(engine, cli_actor(), Filters())
            figure("report rules over every record", time.perf_counter() - started, "s",
                   f"{int(report['rules']['eligible'].sum()):,} findings")
        finally:
            engine.dispose()
            drop()
        figure("peak RSS", peak_rss_mb(), "MB")


def period(engine: Engine, which: str) -> Filters:
    """The last month, the last twelve months or every record, up to the newest record."""
    with read_session(engine) as session:
        newest = session.scalar(select(func.max(Procedure.performed_at)))
    if which == "all" or newest is None:
        return Filters()
    last = newest.date()
    back = 0 if which == "month" else 11  # months before the newest record's month
    year, month = divmod(last.year * 12 + last.month - 1 - back, 12)
    return Filters.days(date(year, month + 1, 1), last)


def report_only(url: str, which: str, batch: int) -> None:
    """rule_report alone, as the Coverage page runs it, on a database only read."""
    engine = make_engine(url)
    chosen = period(engine, which)
    print(f"\nrule report, {which} ({chosen.describe()}), {batch:,} patients a batch, "
          f"{make_url(url).get_backend_name()}", flush=True)
    start_mb = peak_rss_mb()
    seen: list[tuple[int, float]] = []
    started = time.perf_counter()
    report = rule_report(engine, cli_actor(), chosen, exceptions_per_rule=EXCEPTIONS_LISTED,
                         batch_patients=batch, stored=False,
                         progress=lambda done, total: seen.append(
                             (total, time.perf_counter() - started)))
    rules = report["rules"]
    figure("rule report", time.perf_counter() - started, "s",
           f"{int(rules['eligible'].sum()):,} findings, {int(rules['exceptions'].sum()):,} "
           f"exceptions, {len(report['exceptions']):,} kept")
    figure("batches", str(seen[0][0]), "", f"first after {seen[0][1]:.1f} s (the patients)")
    figure("peak RSS", peak_rss_mb(), "MB", f"{start_mb:.0f} MB before the report")
    engine.dispose()


def stored_run(url: str, batch: int) -> None:
    """The stored findings on a database it migrates and writes (module doc, --stored)."""
    migrate(url)
    engine = make_engine(url)
    print(f"\nstored rule findings, {batch:,} patients a batch, "
          f"{make_url(url).get_backend_name()}", flush=True)
    try:
        for pack in list_packs(engine, cli_actor()):
            if not pack["enabled"]:
                set_enabled(engine, cli_actor(), pack["key"], True)
        start_mb = peak_rss_mb()
        seen: list[int] = []
        started = time.perf_counter()
        refresh_findings(engine, force=True, batch_patients=batch,
                         progress=lambda done, total: seen.append(total))
        with read_session(engine) as session:
            rows = int(session.scalar(select(func.count()).select_from(RuleFinding)) or 0)
            newest = session.scalar(select(func.max(Procedure.performed_at)))
            mrns = list(session.scalars(select(Patient.mrn).order_by(Patient.id.desc())
                                        .limit(1000)))
        figure("first build", time.perf_counter() - started, "s",
               f"{rows:,} rows, {seen[-1] if seen else 0:,} batches")
        figure("peak RSS", peak_rss_mb(), "MB", f"{start_mb:.0f} MB before")
        at = newest or datetime.now(UTC)
        new = [record(at - timedelta(minutes=37 * (i + 1)), "TFESI", mrn)
               for i, mrn in enumerate(mrns)]
        started = time.perf_counter()
        ProcedureLog(engine).log_many(new, cli_actor(), confirm_warnings=True,
                                      create_missing=True)
        figure(f"log {len(new):,} records of existing patients", time.perf_counter() - started,
               "s")
        started = time.perf_counter()
        refresh_findings(engine, batch_patients=batch)
        figure("incremental refresh", time.perf_counter() - started, "s",
               f"after {len(new):,} new records")
        for which in ("month", "year", "all"):
            chosen = period(engine, which)
            for round_ in ("", " again"):
                started = time.perf_counter()
                report = rule_report(engine, cli_actor(), chosen,
                                     exceptions_per_rule=EXCEPTIONS_LISTED)
                figure(f"report, {which}{round_}", time.perf_counter() - started, "s",
                       f"{int(report['rules']['eligible'].sum()):,} findings, "
                       f"{len(report['exceptions']):,} exceptions kept")
        figure("peak RSS", peak_rss_mb(), "MB")
    finally:
        engine.dispose()


def main() -> int:
    p = add_url(parser(__doc__.splitlines()[0]))
    p.add_argument("--report", choices=("month", "year", "all"),
                   help="with --url: only the rule report over this period (read-only)")
    p.add_argument("--batch", type=int, default=BATCH_PATIENTS,
                   help="patients per batch of the rule report")
    p.add_argument("--stored", action="store_true",
                   help="with --url (PostgreSQL; migrated and WRITTEN): the stored findings "
                        "built, refreshed after 1,000 new records and read")
    args = p.parse_args()
    if args.stored:
        if not args.url:
            p.error("--stored writes the database given by --url")
        stored_run(args.url, args.batch)
        return 0
    if args.report:
        if not args.url:
            p.error("--report reads the database given by --url")
        report_only(args.url, args.report, args.batch)
        return 0
    run(args.size or (50_000 if args.quick else 1_000_000), args.url)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
