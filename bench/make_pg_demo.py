"""Make PostgreSQL demo databases for the benches: 1M, 5M or 10M records (by hand, not CI).

    FLUORO_AUDIT_KEY_DIR=bench/out/pg-keys \
        python bench/make_pg_demo.py postgresql://USER:PW@HOST:5432/postgres --procedures 1000000

Creates database fluoro_bench_<procedures>_s<seed> (the role must be allowed to create
databases), migrates it and fills it with audit.demo.generate (COPY on PostgreSQL); prints its
URL, which every bench takes as --url. A finished database is reused. Keep the key directory:
the benches need it to read the audit trail's and pseudonyms' keys.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse

from bench._common import make_pg_demo


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("admin_url", help="PostgreSQL URL of a role that may create databases")
    p.add_argument("--procedures", type=int, default=1_000_000)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    started = time.perf_counter()
    url = make_pg_demo(args.admin_url, args.procedures, args.seed)
    print(f"{url}  ({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
