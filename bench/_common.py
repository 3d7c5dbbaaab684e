"""Helpers shared by the benchmark scripts: timing, figures, cached demo databases."""

from __future__ import annotations

import argparse
import resource
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "out"


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="small sizes (under a minute)")
    return p


@contextmanager
def timed() -> Iterator[list[float]]:
    box: list[float] = []
    start = time.perf_counter()
    yield box
    box.append(time.perf_counter() - start)


def percentiles(samples_s: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples_s)
    q = statistics.quantiles(ms, n=100, method="inclusive")
    return {"p50_ms": q[49], "p95_ms": q[94], "max_ms": ms[-1]}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def figure(name: str, value: float | str, unit: str = "", note: str = "") -> None:
    text = f"{value:,.3f}" if isinstance(value, float) else str(value)
    print(f"  {name:<44} {text:>14} {unit:<8} {note}")


def demo_database(procedures: int, seed: int = 1,
                  progress: Callable[[int, int], None] | bool = True) -> Path:
    """A SQLite file with `procedures` demo records, generated once and kept in bench/out/
    (its key directory beside it). The name carries a digest of the generator's source, so a
    changed generator (other distributions) makes a new file instead of reusing stale data."""
    import hashlib
    from datetime import date

    import audit.demo
    from audit.demo import generate
    from audit.storage.engine import make_engine, migrate

    OUT.mkdir(exist_ok=True)
    package = Path(audit.demo.__file__).parent  # every module of the generator counts
    source = b"".join(p.read_bytes() for p in sorted(package.glob("*.py")))
    stamp = hashlib.blake2b(source, digest_size=4).hexdigest()
    path = OUT / f"demo-{procedures}-s{seed}-{stamp}.sqlite3"
    if not path.exists():
        partial = path.with_suffix(".partial")
        partial.unlink(missing_ok=True)
        migrate(f"sqlite:///{partial}")
        engine = make_engine(f"sqlite:///{partial}")
        generate(engine, procedures=procedures, seed=seed, until=date(2026, 11, 1),
                 progress=progress)
        engine.dispose()
        partial.rename(path)
    return path


def database_url(url: str | None, procedures: int, seed: int = 1) -> str:
    """The database a bench runs on: `url` when given (a SQLite file or PostgreSQL, already
    holding the data: see make_pg_demo), else the cached SQLite demo file of `procedures`."""
    if url:
        return url
    return f"sqlite:///{demo_database(procedures, seed, progress=False)}"


def add_url(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """--url: run on this database (sqlite:///FILE or postgresql+psycopg://...) instead of the
    cached SQLite demo file; the bench then uses the records it holds."""
    p.add_argument("--url", default=None,
                   help="database URL (SQLite file or PostgreSQL) holding demo records")
    p.add_argument("--size", type=int, default=None,
                   help="how many records the --url database holds (for the printed label)")
    return p


def make_pg_demo(admin_url: str, procedures: int, seed: int = 1,
                 name: str | None = None) -> str:
    """A PostgreSQL database holding `procedures` demo records (1M, 5M, 10M...), made once:
    created from `admin_url` (a role that may create databases), migrated and filled by
    audit.demo.generate, which writes with COPY on PostgreSQL. Too slow for CI; run by hand
    (bench/make_pg_demo.py). Returns its URL; an existing complete one is reused (its name
    carries the size and seed, and a finished database holds a marker table)."""
    from datetime import date

    from sqlalchemy import create_engine, inspect, make_url, text

    from audit.demo import generate
    from audit.storage.engine import make_engine, migrate

    name = name or f"fluoro_bench_{procedures}_s{seed}"
    admin = create_engine(make_url(admin_url).set(drivername="postgresql+psycopg"),
                          isolation_level="AUTOCOMMIT")
    url = make_url(admin_url).set(drivername="postgresql+psycopg", database=name) \
        .render_as_string(hide_password=False)
    try:
        with admin.connect() as conn:
            exists = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"),
                                  {"n": name}).scalar()
            if exists:
                probe = create_engine(url)
                done = inspect(probe).has_table("bench_demo_done")
                probe.dispose()
                if done:
                    return url
                conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    migrate(url)
    engine = make_engine(url)
    try:
        generate(engine, procedures=procedures, seed=seed, until=date(2026, 11, 1),
                 progress=False)
        with engine.begin() as conn:  # a marker outside the schema: the load finished
            conn.execute(text("CREATE TABLE bench_demo_done (procedures integer)"))
            conn.execute(text("INSERT INTO bench_demo_done VALUES (:n)"), {"n": procedures})
    finally:
        engine.dispose()
    return url


def scratch_copy(url: str | None, size: int, tmp: Path) -> tuple[str, Callable[[], None]]:
    """A copy of the demo database to change (the cached or given one stays as it was): a
    file copy on SQLite, CREATE DATABASE ... TEMPLATE on PostgreSQL. Returns it and its
    clean-up."""
    import shutil

    from sqlalchemy import make_url

    source = database_url(url, size)
    parsed = make_url(source)
    if parsed.get_backend_name() == "sqlite":
        cached = Path(parsed.database or "")
        copy = tmp / "scratch.sqlite3"
        shutil.copyfile(cached, copy)
        keys = cached.with_name(cached.stem + ".keys")
        if keys.is_dir():
            shutil.copytree(keys, copy.with_name("scratch.keys"))
        return f"sqlite:///{copy}", lambda: None
    return _pg_database(parsed, f"{parsed.database}_scratch", template=parsed.database)


def group_by_s(engine: Any) -> float:
    """A plain GROUP BY over the same records: the database's own floor for one pass."""
    from sqlalchemy import func, select

    from audit.storage.models import Procedure

    started = time.perf_counter()
    with engine.connect() as conn:
        conn.execute(select(Procedure.procedure_type_id, func.count(),
                            func.avg(Procedure.dap_gycm2), func.max(Procedure.air_kerma_mgy))
                     .where(Procedure.status == "final")
                     .group_by(Procedure.procedure_type_id)).all()
    return time.perf_counter() - started


def fresh_url(url: str | None, name: str, tmp: Path) -> tuple[str, Callable[[], None]]:
    """An empty database for a bench that fills its own: a SQLite file in `tmp`, or, when `url`
    names a PostgreSQL server (any database on it, a role that may create databases), a new
    database there, dropped by the returned clean-up. The caller migrates it."""
    import uuid

    from sqlalchemy import make_url

    if url is None or make_url(url).get_backend_name() == "sqlite":
        return f"sqlite:///{tmp / f'{name}.sqlite3'}", lambda: None
    parsed = make_url(url).set(drivername="postgresql+psycopg")
    database = f"fluoro_bench_{name}_{uuid.uuid4().hex[:8]}"
    return _pg_database(parsed, database)


def _pg_database(parsed: Any, name: str,
                 template: str | None = None) -> tuple[str, Callable[[], None]]:
    """A new database `name` on `parsed`'s server (replacing one left by an earlier run; a copy
    of `template` when given): its URL and the clean-up that drops it."""
    from sqlalchemy import create_engine, text

    admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        copy = f' TEMPLATE "{template}"' if template else ""
        conn.execute(text(f'CREATE DATABASE "{name}"{copy}'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return parsed.set(database=name).render_as_string(hide_password=False), drop
