"""Helpers shared by the benchmark scripts: timing, figures, cached demo databases."""

from __future__ import annotations

import argparse
import resource
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

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
