"""Benchmark: the DICOM receiver's throughput over loopback, beside the importer alone.

What it measures, on the same number of reports (copies of the real ones in tests/data/rdsr,
each with its own study and SOP instance UIDs):

* receive: pynetdicom's StoreSCU (and dcmtk's storescu, when installed) sends every report on
  one association to `fluoro-audit
  receive` running in this process (audit.dicom_net.scp.Receiver, port 0, SQLite): each object
  written and fsynced to the inbox, imported, moved, its receipt recorded and audited, then
  answered; reports per second from the first C-STORE to the last answer;
* import: `DoseImporter.import_path` of the same files into another empty database: what the
  importer alone costs, so the difference is the network, the inbox and the receipt.

    python bench/bench_receiver.py            # 120 reports
    python bench/bench_receiver.py --quick    # 24 reports
"""

from __future__ import annotations

import logging
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from audit.auth import cli_actor  # noqa: E402
from audit.dicom_net.scp import DOSE_SR_CLASSES, Receiver  # noqa: E402
from audit.dose_reports.store import DoseImporter  # noqa: E402
from audit.storage.engine import make_engine, migrate  # noqa: E402
from bench._common import add_url, figure, fresh_url, parser  # noqa: E402

#: --url: the PostgreSQL server to make scratch databases on (None: SQLite files).
URL: list[str | None] = [None]
from bench.bench_rdsr_import import make_copies  # noqa: E402

warnings.filterwarnings("ignore", message="Invalid value for VR UI", category=UserWarning)
def copies(folder: Path, total: int) -> list[Path]:
    """``total`` copies of the real reports, each its own study and SOP instance (the import
    bench's copies, so both benches send the same files)."""
    return [path for path, *_ in make_copies(folder, total)]


def receive_rate(files: list[Path], folder: Path, dcmtk: bool = False) -> float:
    """Reports per second into a receiver; sent by pynetdicom's StoreSCU in this process, or
    by dcmtk's storescu (another process: the sender's own Python does not compete)."""
    import shutil
    import subprocess

    from pynetdicom import AE

    name = "dcmtk" if dcmtk else "pynetdicom"
    url, drop = fresh_url(URL[0], f"receive_{name}", folder)
    migrate(url)
    engine = make_engine(url)
    receiver = Receiver(engine, cli_actor(), folder / f"inbox-{name}", port=0,
                        address="127.0.0.1")
    receiver.start()
    try:
        if dcmtk:
            start = time.perf_counter()
            subprocess.run([shutil.which("storescu") or "storescu", "-aec", "FLUORO_AUDIT",
                            "127.0.0.1", str(receiver.port), *map(str, files)], check=True)
            return len(files) / (time.perf_counter() - start)
        ae = AE(ae_title="BENCH")
        for uid in DOSE_SR_CLASSES:
            ae.add_requested_context(uid)
        assoc = ae.associate("127.0.0.1", receiver.port, ae_title="FLUORO_AUDIT")
        start = time.perf_counter()
        statuses = [int(assoc.send_c_store(path).Status) for path in files]
        elapsed = time.perf_counter() - start
        assoc.release()
    finally:
        receiver.stop()
        engine.dispose()
        drop()
    assert statuses == [0] * len(files), statuses
    return len(files) / elapsed


def import_rate(files: list[Path], folder: Path) -> float:
    url, drop = fresh_url(URL[0], "import", folder)
    migrate(url)
    engine = make_engine(url)
    importer = DoseImporter(engine, cli_actor())
    start = time.perf_counter()
    results = [importer.import_path(path) for path in files]
    elapsed = time.perf_counter() - start
    engine.dispose()
    drop()
    assert all(r.status == "ok" for r in results), [r.reason for r in results]
    return len(files) / elapsed


def main() -> int:
    args = add_url(parser(__doc__ or "")).parse_args()
    URL[0] = args.url
    total = 24 if args.quick else 120
    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="bench-receiver-") as tmp:
        folder = Path(tmp)
        files = copies(folder / "files", total)
        import shutil

        received = receive_rate(files, folder)
        by_dcmtk = receive_rate(files, folder, dcmtk=True) if shutil.which("storescu") else None
        imported = import_rate(files, folder)
    backend = "SQLite" if args.url is None or args.url.startswith("sqlite") else "PostgreSQL"
    print(f"receiver throughput, {total} reports over loopback ({backend})")
    figure("receive, sent by pynetdicom StoreSCU", received, "rep/s", "sender in this process")
    if by_dcmtk is not None:
        figure("receive, sent by dcmtk storescu", by_dcmtk, "rep/s", "sender in its own process")
    figure("import_path alone", imported, "rep/s")
    figure("receive / import time", imported / (by_dcmtk or received), "x",
           "network, fsync'd inbox and audited receipt on top of the import")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
