"""`make bench`: run every bench/bench_*.py and print its figures (no pass/fail on time).

Pass --quick to run the small sizes (each script then takes under a minute)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    extra = sys.argv[1:]
    failures = 0
    for script in sorted(HERE.glob("bench_*.py")):
        print(f"\n== {script.name} {' '.join(extra)}", flush=True)
        result = subprocess.run([sys.executable, str(script), *extra], cwd=HERE.parent)
        failures += result.returncode != 0
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
