"""Benchmark: RDSR import rate, beside the cost of merely reading the same files.

What it measures, in one run on the same files:

* read: ``pydicom.dcmread`` of each file plus a walk of its whole SR content tree (every
  item's concept code and numeric value touched): the floor any RDSR importer pays;
* parse: ``read_dose_report`` (our parser: truncation check, walk, units, summary);
* import: ``DoseImporter.import_path``: parse, store, supersession check, reconciliation with
  the log (half the reports have a logged procedure to fill and compare), audit event, and one
  commit per file.

Files: the three real reports in tests/data/rdsr, copied with new SOP instance, study UIDs and
accession numbers (pydicom) until there are enough for stable figures. Target: import <= 1.3x
the read time. For scale, OpenREM 1.0.0b3 took 48.9 s for 16 real fluoroscopy reports
(690 events) on this kind of machine.

    python bench/bench_rdsr_import.py            # 240 files
    python bench/bench_rdsr_import.py --quick    # 24 files, under a minute
    python bench/bench_rdsr_import.py --db postgresql://...   # an empty database to use
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import pydicom
from pydicom.uid import generate_uid

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from audit.auth import cli_actor  # noqa: E402
from audit.dose_reports.reader import read_dose_report  # noqa: E402
from audit.dose_reports.store import DoseImporter  # noqa: E402
from audit.log.service import ProcedureLog  # noqa: E402
from audit.storage.engine import make_engine, migrate  # noqa: E402

#: One real file carries a UID pydicom finds non-conformant; the warning is noise here.
warnings.filterwarnings("ignore", message="Invalid value for VR UI", category=UserWarning)
REAL = sorted((ROOT / "tests" / "data" / "rdsr").glob("*.dcm"))
OPENREM_SECONDS, OPENREM_FILES, OPENREM_EVENTS = 48.9, 16, 690


def make_copies(folder: Path, total: int) -> list[tuple[Path, str, str, str]]:
    """``total`` files cycling over the real ones, each its own study and SOP instance.

    Returns (path, accession, patient id, study date) for logging matching procedures.
    """
    originals = [pydicom.dcmread(path) for path in REAL]
    folder.mkdir(parents=True, exist_ok=True)
    made = []
    for number in range(total):
        ds = originals[number % len(originals)]
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.StudyInstanceUID = generate_uid()
        ds.AccessionNumber = f"BENCH{number:06d}"
        path = folder / f"report_{number:05d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        made.append((path, ds.AccessionNumber, str(ds.PatientID), str(ds.StudyDate)))
    return made


def walk(items: Iterable[pydicom.Dataset]) -> int:
    """Touch every content item's concept code and numeric value; return the item count."""
    count = 0
    for item in items:
        count += 1
        names = item.get("ConceptNameCodeSequence")
        if names:
            _ = names[0].get("CodeValue")
        measured = item.get("MeasuredValueSequence")
        if measured:
            _ = measured[0].get("NumericValue")
            units = measured[0].get("MeasurementUnitsCodeSequence")
            if units:
                _ = units[0].get("CodeValue")
        codes = item.get("ConceptCodeSequence")
        if codes:
            _ = codes[0].get("CodeValue")
        children = item.get("ContentSequence")
        if children:
            count += walk(children)
    return count


def read_and_walk(path: Path) -> int:
    ds = pydicom.dcmread(path)
    return walk(ds.get("ContentSequence") or [])


def timed(label: str, paths: Sequence[Path], work: Callable[[Path], object]) -> float:
    start = time.perf_counter()
    for path in paths:
        work(path)
    seconds = time.perf_counter() - start
    print(f"  {label:<34} {seconds:8.3f} s  {len(paths) / seconds:8.1f} files/s", flush=True)
    return seconds


def log_half(url: str, copies: Sequence[tuple[Path, str, str, str]]) -> int:
    """Log a procedure for every other report (accession match: fill and compare run)."""
    records = []
    for path, accession, patient, day in copies[::2]:
        records.append({
            "performed_at": f"{day[:4]}-{day[4:6]}-{day[6:]}T08:00:00+00:00",
            "site": "Bench", "room": "Angio 1", "physician": "Dr. Bench",
            "technologist": "bench", "patient_id": patient[:64], "accession_number": accession,
            "pregnancy_status": "not_applicable", "procedure_code": "OTHER",
            "guidance": "fluoroscopy", "fluoro_time_s": 60, "dap_value": 1.0,
            "saved_images": 1, "contrast_confirmation": "not_required",
            "notes": path.name,
        })
    service = ProcedureLog(make_engine(url))
    service.log_many(records, cli_actor(), confirm_warnings=True, create_missing=True)
    return len(records)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="24 files instead of 240")
    parser.add_argument("--files", type=int, help="number of files (overrides --quick)")
    parser.add_argument("--url", "--db", dest="db",
                        help="database URL, SQLite or PostgreSQL (default: a new SQLite file)")
    args = parser.parse_args(argv)
    total = args.files or (24 if args.quick else 240)

    with tempfile.TemporaryDirectory(prefix="bench-rdsr-") as tmp:
        folder = Path(tmp)
        copies = make_copies(folder / "files", total)
        paths = [c[0] for c in copies]
        events = sum(read_dose_report(p).events for p in paths[: len(REAL)]) * (
            total / len(REAL))
        url = args.db or f"sqlite:///{folder / 'bench.sqlite3'}"
        migrate(url)
        logged = log_half(url, copies)
        importer = DoseImporter(make_engine(url), cli_actor())

        print(f"RDSR import: {total} files (copies of {len(REAL)} real reports, "
              f"~{events:.0f} irradiation events), {logged} with a logged procedure; "
              f"database {url.split('://')[0]}")
        for path in paths:  # warm the page cache so every pass reads from memory
            path.read_bytes()
        reads = [timed("read: dcmread + content walk", paths, read_and_walk)]
        parse = timed("parse: read_dose_report", paths, read_dose_report)
        outcomes: list[str] = []
        imported = timed("import: parse + store + reconcile", paths,
                         lambda p: outcomes.append(importer.import_path(p).status))
        reads.append(timed("read again", paths, read_and_walk))
        read = statistics.mean(reads)

        assert outcomes.count("ok") == total, f"not all imported: {set(outcomes)}"
        print()
        print(f"  import rate       {total / imported:8.1f} files/s  "
              f"{events / imported:9.0f} events/s")
        print(f"  import / read     {imported / read:8.2f}x   (target <= 1.3x; parse alone "
              f"{parse / read:.2f}x)")
        print(f"  per file          read {read / total * 1000:.2f} ms, parse "
              f"{parse / total * 1000:.2f} ms, import {imported / total * 1000:.2f} ms")
        print(f"  for scale         OpenREM 1.0.0b3: {OPENREM_SECONDS} s for {OPENREM_FILES} "
              f"reports ({OPENREM_EVENTS} events) = {OPENREM_FILES / OPENREM_SECONDS:.2f} "
              f"files/s, {OPENREM_EVENTS / OPENREM_SECONDS:.1f} events/s")


if __name__ == "__main__":
    main()
