"""Benchmark: how many open alerts the default thresholds raise on realistic demo data.

    python bench/bench_alert_rate.py            # 20,000 and 1,000,000 demo procedures
    python bench/bench_alert_rate.py --quick    # 20,000 only

Why: 5,008 open alerts for 20,007 procedures (a quarter of all cases, nearly all of them
"investigation" at 3x the local median) were acknowledged unread. Target (issue 11): open
alerts at most 5 per 100 procedures, at both sizes. Prints, per size, the open alerts per 100
procedures by kind under the default settings, beside what the old rule (3x the median of the
type, no minimum sample) would flag on the same records, and the time of the first refresh.
No pass/fail: figures are printed (tests/alerts/test_investigation.py holds the rate on 5,000
procedures). The demo database is generated once and kept under bench/out/ (bench/_common.py);
each run refreshes the alerts of a copy, so the cached file stays as generated.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from audit.alerts.store import refresh_alerts
from audit.alerts.summary import alert_rates
from audit.analytics.snapshot import Snapshot, load_snapshot
from audit.auth import Actor
from audit.storage.engine import make_engine, migrate
from audit.vocab import DoseQuantity, Role
from bench._common import demo_database, figure, parser

RSO = Actor("bench", Role.RSO)
TARGET_PER_100 = 5.0


def old_rule_per_100(snap: Snapshot, factor: float = 3.0) -> float:
    """Investigation alerts per 100 procedures under the rule this replaced: at or above
    `factor` x the median of the type over all records (any number of records)."""
    records = snap.records
    hits = 0
    for quantity in DoseQuantity.values():
        values = records[quantity]
        median = values.groupby(records["type_id"]).transform("median")
        hits += int(np.count_nonzero(values.to_numpy() >= factor * median.to_numpy()))
    return 100.0 * hits / max(len(records), 1)


def run(size: int) -> None:
    print(f"\n{size:,} demo procedures", flush=True)
    cached = demo_database(size)
    with tempfile.TemporaryDirectory(prefix="bench-alerts-") as tmp:
        copy = Path(tmp) / "alerts.sqlite3"
        shutil.copyfile(cached, copy)
        shutil.copytree(cached.with_name(cached.stem + ".keys"), copy.with_name("alerts.keys"))
        url = f"sqlite:///{copy}"
        migrate(url)  # the settings the cached file may predate (0011)
        engine = make_engine(url)
        try:
            snap = load_snapshot(engine)
            started = time.perf_counter()
            result = refresh_alerts(engine, snap)
            refresh_s = time.perf_counter() - started
            rates = alert_rates(engine, RSO, snap).set_index("kind")
            procedures = int(rates.loc["all", "procedures"])
            figure("procedures", f"{procedures:,}")
            figure("first refresh (alerts stored)", refresh_s, "s", f"{result.opened:,} opened")
            for kind in rates.index:
                figure(f"open alerts per 100 procedures: {kind}",
                       float(rates.loc[kind, "open_per_100"]), "",
                       f"{int(rates.loc[kind, 'open']):,} open")
            total = float(rates.loc["all", "open_per_100"])
            figure("target: at most", TARGET_PER_100, "per 100",
                   "met" if total <= TARGET_PER_100 else "NOT MET")
            figure("old rule (3x median): investigation per 100", old_rule_per_100(snap))
        finally:
            engine.dispose()


def main() -> int:
    args = parser(__doc__.splitlines()[0]).parse_args()
    for size in (20_000,) if args.quick else (20_000, 1_000_000):
        run(size)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
