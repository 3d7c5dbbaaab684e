"""`fluoro-audit import rdsr`, `watch` and `reconcile` as a user runs them (subprocess)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import Engine

from audit.auth import Actor
from audit.dose_reports.store import DoseImporter
from audit.dose_reports.watch import Watcher, expand_paths
from audit.log.service import ProcedureLog

from .dose_helpers import REAL_FILES, counts, log_procedure, make_report
from .test_rdsr_parse import REAL_EXPECTED, approx


def cli(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "audit.cli", "--db", db_url, *args],
                          capture_output=True, text=True, timeout=120)


def lines(output: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in output.splitlines() if line.strip()]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """The three real files, one in a subfolder, plus a file that is not a report."""
    root = tmp_path / "exports"
    (root / "room2").mkdir(parents=True)
    shutil.copy(REAL_FILES[0], root)
    shutil.copy(REAL_FILES[1], root)
    shutil.copy(REAL_FILES[2], root / "room2")
    (root / "README.txt").write_text("exported by the PACS router\n")
    (root / ".hidden").write_bytes(b"ignored")
    return root


def test_import_a_folder_twice_adds_nothing_the_second_time_and_says_so(
    db_url: str, engine: Engine, folder: Path
) -> None:
    first = cli(db_url, "import", "rdsr", str(folder), "--json")
    assert first.returncode == 1, first.stderr  # README.txt was rejected; the rest imported
    results = {Path(str(r["file"])).name: r for r in lines(first.stdout)}
    assert sorted(results) == ["README.txt", *sorted(p.name for p in REAL_FILES)]
    assert results["README.txt"]["status"] == "rejected"
    assert "non-DICOM" in str(results["README.txt"]["reason"])
    for path in REAL_FILES:
        result = results[path.name]
        assert result["status"] == "ok" and result["reason"] is None
        for name, value in REAL_EXPECTED[path.name].items():
            assert result[name] == approx(value), name
    assert "3 imported" in first.stderr and "3 procedure missing from the log" in first.stderr
    before = counts(engine)

    second = cli(db_url, "import", "rdsr", str(folder), "--json")
    assert second.returncode == 1
    statuses = sorted(str(r["status"]) for r in lines(second.stdout))
    assert statuses == ["duplicate", "duplicate", "duplicate", "rejected"]
    assert "0 imported, 3 duplicate" in second.stderr
    assert counts(engine) == before


def test_only_duplicates_say_nothing_new(db_url: str, tmp_path: Path) -> None:
    assert cli(db_url, "import", "rdsr", str(REAL_FILES[2])).returncode == 0
    again = cli(db_url, "import", "rdsr", str(REAL_FILES[2]))
    assert again.returncode == 0
    assert again.stdout.startswith("duplicate")
    assert "nothing new: every file was already imported" in again.stdout


def test_a_missing_path_is_refused_before_anything_is_imported(
    db_url: str, engine: Engine, folder: Path
) -> None:
    run = cli(db_url, "import", "rdsr", str(folder), str(folder / "nope.dcm"))
    assert run.returncode == 1
    assert "nope.dcm" in run.stderr and "nothing was imported" in run.stderr
    assert counts(engine)["dose_report"] == 0


def test_dry_run_prints_the_outcome_and_writes_nothing(
    db_url: str, engine: Engine, folder: Path
) -> None:
    before = counts(engine)
    run = cli(db_url, "import", "rdsr", str(folder), "--dry-run", "--json")
    assert run.returncode == 1  # README.txt is not a report
    assert [r["dry_run"] for r in lines(run.stdout)] == [True] * 4
    assert "dry run, nothing written" in run.stderr
    assert counts(engine) == before


def test_readable_output_names_the_record_and_the_fill(
    db_url: str, service: ProcedureLog, admin: Actor, tmp_path: Path
) -> None:
    record_id = log_procedure(service, admin, patient_id="MRN-1", accession_number="ACC-1",
                              performed_at="2024-03-15T09:00:00+00:00", air_kerma_mgy=None,
                              dap_value=1.5, fluoro_time_s=60)
    run = cli(db_url, "import", "rdsr", str(make_report(tmp_path)))
    assert run.returncode == 0, run.stderr
    assert f"record {record_id} (accession), filled air_kerma_mgy" in run.stdout
    assert "1 linked to the log" in run.stdout


def test_reconcile_links_reports_logged_later(
    db_url: str, service: ProcedureLog, admin: Actor, tmp_path: Path
) -> None:
    cli(db_url, "import", "rdsr", str(make_report(tmp_path)))
    record_id = log_procedure(service, admin, patient_id="MRN-1", accession_number="ACC-1",
                              performed_at="2024-03-15T09:00:00+00:00")
    run = cli(db_url, "reconcile", "--json")
    assert run.returncode == 0
    assert [r["record_id"] for r in lines(run.stdout)] == [record_id]


# --- watch ------------------------------------------------------------------------------------

def test_watch_once_imports_and_moves_every_file(
    db_url: str, engine: Engine, folder: Path
) -> None:
    duplicate = folder / "resent.dcm"
    shutil.copy(REAL_FILES[0], duplicate)
    run = cli(db_url, "watch", str(folder), "--once", "--settle", "0")
    assert run.returncode == 1, run.stderr  # README.txt was rejected, every other file moved
    statuses = sorted(str(r["status"]) for r in lines(run.stdout))
    assert statuses == ["duplicate", "ok", "ok", "ok", "rejected"]
    done = sorted(p.relative_to(folder / "done").as_posix()
                  for p in (folder / "done").rglob("*") if p.is_file())
    assert done == sorted([REAL_FILES[0].name, REAL_FILES[1].name, "resent.dcm",
                           f"room2/{REAL_FILES[2].name}"])
    assert (folder / "rejected" / "README.txt").exists()
    reason = (folder / "rejected" / "README.txt.reason.txt").read_text()
    assert "non-DICOM" in reason
    left = [p.name for p in folder.rglob("*")
            if p.is_file() and "done" not in p.parts and "rejected" not in p.parts]
    assert left == [".hidden"]
    assert counts(engine)["dose_report"] == 3

    again = cli(db_url, "watch", str(folder), "--once", "--settle", "0")
    assert again.returncode == 0 and again.stdout == ""
    assert counts(engine)["dose_report"] == 3


def test_watch_a_missing_folder_is_an_error(db_url: str, tmp_path: Path) -> None:
    run = cli(db_url, "watch", str(tmp_path / "absent"), "--once")
    assert run.returncode == 1 and "no such folder" in run.stderr


def test_a_file_still_growing_is_left_for_the_next_pass(
    engine: Engine, admin: Actor, tmp_path: Path
) -> None:
    watcher = Watcher(DoseImporter(engine, admin), tmp_path, settle=0)
    path = tmp_path / "arriving.dcm"
    data = REAL_FILES[2].read_bytes()
    path.write_bytes(data[:1000])
    assert watcher.ready() == []  # first sight
    path.write_bytes(data)  # still being written: size changed
    assert watcher.ready() == []
    assert watcher.ready() == [path]  # unchanged since the last look
    assert watcher.process(path).status == "ok"
    assert (tmp_path / "done" / "arriving.dcm").exists()


def test_a_name_already_in_done_is_not_overwritten(
    engine: Engine, admin: Actor, tmp_path: Path
) -> None:
    watcher = Watcher(DoseImporter(engine, admin), tmp_path, settle=0)
    for _ in range(2):
        shutil.copy(REAL_FILES[1], tmp_path / "report.dcm")
        watcher.run_once()
    assert sorted(p.name for p in (tmp_path / "done").iterdir()) == ["report-1.dcm",
                                                                   "report.dcm"]


def test_expand_paths_skips_hidden_files_and_reason_files(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.dcm").write_bytes(b"x")
    (tmp_path / "a" / "x.dcm.reason.txt").write_text("why")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "y").write_bytes(b"y")
    (tmp_path / "b.part").write_bytes(b"partial")
    assert expand_paths([tmp_path]) == [tmp_path / "a" / "x.dcm"]
