"""One bad dose report file never stops the others (issue 10).

`import rdsr`, `watch` and `reconcile` handle each file (each report) in its own transaction: a
file that is crafted, truncated, not DICOM, refused by the database or hits a bug is rejected
with its reason, the session is rolled back, and the next file is imported. `watch` moves a
rejected file to rejected/ with `<name>.reason.txt` and never retries it forever. Every test
runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.exc import DataError, OperationalError

from audit.auth import Actor
from audit.cli import main
from audit.dose_reports import matching as reconcile
from audit.dose_reports.store import DoseImporter
from audit.dose_reports.watch import Watcher
from audit.log.service import ProcedureLog

from .dose_helpers import REAL_FILES, counts, log_procedure, make_report, procedure, reports
from .test_import_cli import cli, lines


def crafted(folder: Path, name: str = "a-crafted.dcm") -> Path:
    """The report of the defect: DAP total 1.5e308 Gy·cm², which became infinity."""
    return make_report(folder, name, dap="1.5e308", accession="ACC-X")  # type: ignore[arg-type]


def data_error(message: str = "numeric field overflow") -> DataError:
    """What PostgreSQL's driver raises for one row's bad data (SQLSTATE class 22)."""
    return DataError("UPDATE procedure SET ...", {}, Exception(message))


def fail_first(monkeypatch: pytest.MonkeyPatch, error: BaseException) -> list[int]:
    """Make reconciliation (inside the transaction, after the report row was flushed) raise
    ``error`` on its first call only; returns the list counting the calls."""
    original = reconcile.apply
    calls: list[int] = []

    def apply(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise error
        return original(*args, **kwargs)

    monkeypatch.setattr(reconcile, "apply", apply)
    return calls


def two_linked_reports(service: ProcedureLog, admin: Actor, folder: Path) -> list[Path]:
    """Two reports of two logged procedures (accessions ACC-1, ACC-2): both reach apply()."""
    paths = []
    for n in (1, 2):
        log_procedure(service, admin, patient_id=f"MRN-{n}", accession_number=f"ACC-{n}",
                      performed_at="2024-03-15T09:00:00+00:00", air_kerma_mgy=None)
        paths.append(make_report(folder, f"{n}.dcm", accession=f"ACC-{n}", patient=f"MRN-{n}"))
    return paths


# --- the importer -----------------------------------------------------------------------------

def test_a_database_error_on_one_file_rolls_it_back_and_rejects_it(
    engine: Engine, admin: Actor, service: ProcedureLog, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first, second = two_linked_reports(service, admin, tmp_path)
    fail_first(monkeypatch, data_error())
    importer = DoseImporter(engine, admin)
    before = counts(engine)
    result = importer.import_path(first)
    assert result.status == "rejected"
    assert "database refused" in (result.reason or "")
    assert "numeric field overflow" in (result.reason or "")
    assert counts(engine) == before  # the flushed report row was rolled back
    assert importer.import_path(second).status == "ok"
    assert counts(engine)["dose_report"] == before["dose_report"] + 1


def test_an_unreachable_database_is_raised_not_blamed_on_the_file(
    engine: Engine, admin: Actor, service: ProcedureLog, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first, _ = two_linked_reports(service, admin, tmp_path)
    fail_first(monkeypatch, OperationalError("SELECT 1", {}, Exception("server closed")))
    with pytest.raises(OperationalError):
        DoseImporter(engine, admin).import_path(first)


# --- import rdsr ------------------------------------------------------------------------------

def test_import_rdsr_rejects_the_crafted_report_and_imports_the_file_after_it(
    db_url: str, engine: Engine, tmp_path: Path
) -> None:
    """The defect: on PostgreSQL Infinity in the audit JSON aborted the whole command; on
    SQLite the report was stored as DAP = inf."""
    bad, good = crafted(tmp_path), make_report(tmp_path, "b-good.dcm")
    run = cli(db_url, "import", "rdsr", str(bad), str(good), "--json")
    assert run.returncode == 1, run.stderr
    first, second = lines(run.stdout)
    assert first["status"] == "rejected" and second["status"] == "ok"
    reason = str(first["reason"])
    assert "dap_total_gycm2" in reason and "1.5e+308" in reason and "allowed: 0 to" in reason
    assert "1 imported, 0 duplicate, 1 rejected" in run.stderr
    assert [r.dap_total_gycm2 for r in reports(engine)] == [1.5]


def test_import_rdsr_goes_on_after_a_database_error_or_a_bug_in_one_file(
    db_url: str, engine: Engine, admin: Actor, service: ProcedureLog, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    paths = two_linked_reports(service, admin, tmp_path)
    for error, expected in ((data_error(), "database refused"),
                            (RuntimeError("disk on fire"), "internal error")):
        fail_first(monkeypatch, error)
        code = main(["--db", db_url, "import", "rdsr", *map(str, paths), "--json"])
        assert code == 1
        results = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert results[0]["status"] == "rejected" and expected in results[0]["reason"]
        assert results[1]["status"] in ("ok", "duplicate")
        monkeypatch.undo()
    assert len(reports(engine)) == 1  # the second file, once; the first never
    assert main(["--db", db_url, "import", "rdsr", str(paths[0])]) == 0


# --- watch ------------------------------------------------------------------------------------

def test_watch_moves_the_crafted_report_to_rejected_and_imports_the_next(
    engine: Engine, admin: Actor, tmp_path: Path
) -> None:
    bad = crafted(tmp_path)
    make_report(tmp_path, "b-good.dcm")
    results = Watcher(DoseImporter(engine, admin), tmp_path, settle=0).run_once()
    assert [r.status for r in results] == ["rejected", "ok"]
    assert (tmp_path / "rejected" / bad.name).exists()
    reason = (tmp_path / "rejected" / f"{bad.name}.reason.txt").read_text()
    assert "dap_total_gycm2" in reason and "1.5e+308" in reason
    assert (tmp_path / "done" / "b-good.dcm").exists()
    assert [r.dap_total_gycm2 for r in reports(engine)] == [1.5]


def test_watch_rejects_a_file_the_database_refuses_and_goes_on(
    engine: Engine, admin: Actor, service: ProcedureLog, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    two_linked_reports(service, admin, tmp_path)
    fail_first(monkeypatch, data_error())
    results = Watcher(DoseImporter(engine, admin), tmp_path, settle=0).run_once()
    assert [r.status for r in results] == ["rejected", "ok"]
    assert "database refused" in (tmp_path / "rejected" / "1.dcm.reason.txt").read_text()
    assert (tmp_path / "done" / "2.dcm").exists()


def test_watch_does_not_retry_a_failing_file_forever(
    engine: Engine, admin: Actor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file that keeps failing with a connection-type error while the database answers is
    rejected after ``attempts`` tries; the file behind it is imported in the same pass."""
    importer = DoseImporter(engine, admin)
    first = make_report(tmp_path, "a.dcm")
    make_report(tmp_path, "b.dcm")
    original = importer.import_path
    tries: list[str] = []

    def import_path(path: Path, **kwargs: Any) -> Any:
        if Path(path) == first:
            tries.append(path.name)
            raise OperationalError("INSERT", {}, Exception("SSL SYSCALL error"))
        return original(path, **kwargs)

    monkeypatch.setattr(importer, "import_path", import_path)
    watcher = Watcher(importer, tmp_path, settle=0, attempts=3, retry_delay=0)
    assert [r.status for r in watcher.run_once()] == ["rejected", "ok"]
    assert tries == ["a.dcm"] * 3
    reason = (tmp_path / "rejected" / "a.dcm.reason.txt").read_text()
    assert "SSL SYSCALL error" in reason and "3 attempts" in reason
    assert watcher.run_once() == []  # nothing left to retry


def test_watch_leaves_every_file_in_place_while_the_database_is_unreachable(
    engine: Engine, admin: Actor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    importer = DoseImporter(engine, admin)
    path = make_report(tmp_path, "a.dcm")

    def down(*args: Any, **kwargs: Any) -> Any:
        raise OperationalError("connect", {}, Exception("connection refused"))

    monkeypatch.setattr(importer, "import_path", down)
    monkeypatch.setattr(importer, "database_reachable", lambda: False)
    watcher = Watcher(importer, tmp_path, settle=0, retry_delay=0)
    with pytest.raises(OperationalError):
        watcher.run_once()
    assert path.exists() and not (tmp_path / "rejected").exists()


# --- reconcile --------------------------------------------------------------------------------

def test_reconcile_goes_on_after_a_database_error_on_one_report(
    db_url: str, engine: Engine, admin: Actor, service: ProcedureLog, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    importer = DoseImporter(engine, admin)
    for n in (1, 2):
        path = make_report(tmp_path, f"{n}.dcm", accession=f"ACC-{n}", patient=f"MRN-{n}")
        assert importer.import_path(path).record_id is None  # missing from the log
    ids = [log_procedure(service, admin, patient_id=f"MRN-{n}", accession_number=f"ACC-{n}",
                         performed_at="2024-03-15T09:00:00+00:00", air_kerma_mgy=None)
           for n in (1, 2)]
    fail_first(monkeypatch, data_error())
    assert main(["--db", db_url, "reconcile", "--json"]) == 1
    first, second = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert first["status"] == "rejected" and "database refused" in first["reason"]
    assert second["status"] == "ok" and second["record_id"] == ids[1]
    assert procedure(engine, ids[0]).air_kerma_mgy is None  # rolled back
    assert procedure(engine, ids[1]).air_kerma_mgy == 12.0
    monkeypatch.undo()
    assert main(["--db", db_url, "reconcile"]) == 0  # the first links on the next run
    assert procedure(engine, ids[0]).air_kerma_mgy == 12.0


def test_real_files_are_unaffected(engine: Engine, admin: Actor, tmp_path: Path) -> None:
    watcher = Watcher(DoseImporter(engine, admin), tmp_path, settle=0)
    for path in REAL_FILES:
        (tmp_path / path.name).write_bytes(path.read_bytes())
    assert [r.status for r in watcher.run_once()] == ["ok"] * 3
