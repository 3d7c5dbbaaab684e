"""No partial export is ever left behind, and a PHI export is audited before its first byte
(issue 10): failures, SIGTERM and SIGKILL on real export processes, on both databases."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from audit.auth import Actor, cli_actor
from audit.cli.export import EXIT_TERMINATED, sigterm_stops_cleanly
from audit.export import registry, runner
from audit.export.cells import Kind
from audit.export.runner import PAUSE_ENV, export
from audit.export.staging import GRACE_SECONDS, OWNER_FILE, Staging, _process_start, sweep
from audit.export.types import Column, Section, SectionContext, SectionData
from audit.log.service import ProcedureLog
from audit.storage.models import AuditEvent
from audit.vocab import AuditAction, Role
from tests.conftest import valid_record

RSO = Actor("rso1", Role.RSO)


@pytest.fixture
def two_records(service: ProcedureLog, admin: Actor) -> None:
    service.log_many([valid_record(),
                      valid_record(performed_at="2026-04-02T10:00:00Z", patient_id="MRN0002")],
                     admin, create_missing=True)


def export_events(engine: Engine) -> list[AuditEvent]:
    with Session(engine) as s:
        return list(s.scalars(select(AuditEvent).where(
            AuditEvent.action == AuditAction.EXPORT.value).order_by(AuditEvent.id)))


def stages(engine: Engine) -> list[str]:
    return [(e.after or {}).get("stage", "") for e in export_events(engine)]


def partials(parent: Path) -> list[Path]:
    return sorted(parent.glob(".*.partial-*"))


# --- in-process failures -------------------------------------------------------------------------

def _broken(ctx: SectionContext) -> SectionData:
    def chunks() -> Iterator[list[list[Any]]]:
        yield [["fine"]]
        raise RuntimeError("disk on fire")

    return SectionData([Column("x", Kind.TEXT)], chunks())


def test_a_phi_export_failing_midway_leaves_nothing_but_its_events(
    engine: Engine, two_records: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(registry.SECTIONS, "broken", Section("broken", "broken.csv", "t",
                                                             _broken))
    with pytest.raises(RuntimeError, match="disk on fire"):
        export(engine, RSO, tmp_path / "x", sections=("procedures", "broken"),
               include_phi=True, make_zip=True)
    assert list(tmp_path.iterdir()) == []  # no folder, no zip, no partial folder
    started, failed = export_events(engine)
    assert started.actor == failed.actor == "rso1"
    assert started.after["stage"] == "started" and started.after["include_phi"] is True
    assert started.after["sections"] == ["procedures", "broken"]
    assert started.after["target"] == str(tmp_path / "x")
    assert started.after["filters"]["include_voided"] is False
    assert started.entity_id == failed.entity_id
    assert failed.after["stage"] == "failed"
    assert failed.after["error"] == "RuntimeError: disk on fire"
    assert failed.after["started_event_id"] == started.id


def test_the_started_event_is_committed_before_the_first_byte(
    engine: Engine, two_records: None, tmp_path: Path
) -> None:
    seen: list[list[str]] = []

    def progress(done: int, total: int) -> None:  # called while the rows are being written
        if not seen:
            seen.append(stages(engine))  # another connection: sees committed events only

    result = export(engine, RSO, tmp_path / "x", include_phi=True, progress=progress)
    assert seen == [["started"]]
    started, completed = export_events(engine)
    assert completed.after["started_event_id"] == started.id == result.started_event_id
    assert completed.after["stage"] == "completed" and completed.after["files"]
    assert result.manifest["audit_event"]["started_event_id"] == started.id


def test_an_export_without_phi_writes_only_its_completion(
    engine: Engine, two_records: None, tmp_path: Path
) -> None:
    result = export(engine, RSO, tmp_path / "x")
    assert stages(engine) == ["completed"] and result.started_event_id is None


def test_a_failing_zip_leaves_nothing_and_closes_the_completion(
    engine: Engine, two_records: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def half_a_zip(folder: Path, zip_path: Path) -> None:
        zip_path.write_bytes(b"PK\x03\x04 half")
        raise OSError("no space left on device")

    monkeypatch.setattr(runner, "_zip", half_a_zip)
    with pytest.raises(OSError, match="no space left"):
        export(engine, RSO, tmp_path / "x", make_zip=True)
    assert list(tmp_path.iterdir()) == []
    assert stages(engine) == ["completed", "failed"]
    assert export_events(engine)[-1].after["error"] == "OSError: no space left on device"


def test_the_partial_folder_is_private_and_names_its_owner(
    engine: Engine, two_records: None, tmp_path: Path
) -> None:
    looked: list[tuple[int, dict[str, Any], bool]] = []

    def progress(done: int, total: int) -> None:
        if not looked:
            (partial,) = partials(tmp_path)
            owner = json.loads((partial / OWNER_FILE).read_text())
            looked.append((partial.stat().st_mode & 0o777, owner, (tmp_path / "x").exists()))

    export(engine, RSO, tmp_path / "x", progress=progress)
    assert looked == [(0o700, {"pid": os.getpid(), "host": socket.gethostname(),
                               "started": _process_start(os.getpid())}, False)]
    assert partials(tmp_path) == [] and (tmp_path / "x").is_dir()


# --- real processes, stopped midway --------------------------------------------------------------

def start_export(db_url: str, out: Path) -> subprocess.Popen[str]:
    """`fluoro-audit export log --include-phi`, pausing once its first rows are on disk."""
    return subprocess.Popen(
        [sys.executable, "-m", "audit.cli", "--db", db_url, "export", "log", "--out", str(out),
         "--include-phi", "--zip"],
        env={**os.environ, PAUSE_ENV: "120"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)


def wait_for_phi_on_disk(process: subprocess.Popen[str], parent: Path, name: str) -> Path:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        for partial in partials(parent):
            written = partial / name / "procedures.csv"
            if written.is_file() and b"MRN0001" in written.read_bytes():
                return partial
        if process.poll() is not None:
            pytest.fail(f"the export ended before it paused: {process.communicate()}")
        time.sleep(0.05)
    process.kill()
    pytest.fail("the export never wrote its first rows")


@pytest.mark.slow  # a real export process
def test_sigterm_midway_leaves_nothing_and_records_the_failure(
    db_url: str, engine: Engine, two_records: None, tmp_path: Path
) -> None:
    parent = tmp_path / "exports"
    parent.mkdir()
    process = start_export(db_url, parent / "q1")
    wait_for_phi_on_disk(process, parent, "q1")
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == EXIT_TERMINATED, err
    assert list(parent.iterdir()) == []
    started, failed = export_events(engine)
    assert started.actor == failed.actor == cli_actor().username
    assert started.after["stage"] == "started" and started.after["include_phi"] is True
    assert started.after["target"] == str(parent / "q1")
    assert failed.after["stage"] == "failed" and "exit status 143" in failed.after["error"]


@pytest.mark.slow  # two real export processes
def test_sigkill_midway_leaves_a_partial_that_the_next_export_removes(
    db_url: str, engine: Engine, two_records: None, tmp_path: Path
) -> None:
    parent = tmp_path / "exports"
    parent.mkdir()
    process = start_export(db_url, parent / "q1")
    partial = wait_for_phi_on_disk(process, parent, "q1")
    process.kill()
    process.communicate(timeout=60)
    assert partials(parent) == [partial] and not (parent / "q1").exists()
    assert json.loads((partial / OWNER_FILE).read_text())["pid"] == process.pid
    assert stages(engine) == ["started"]  # the PHI export is on record all the same
    assert export_events(engine)[0].after["include_phi"] is True

    result = export(engine, RSO, parent / "q2")
    assert sorted(p.name for p in parent.iterdir()) == ["q2"] and result.path.is_dir()


def test_sigterm_raises_only_while_the_export_runs() -> None:
    previous = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as stopped, sigterm_stops_cleanly():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises here, well before
    assert stopped.value.code == EXIT_TERMINATED
    assert signal.getsignal(signal.SIGTERM) is previous


# --- the sweep -----------------------------------------------------------------------------------

def _partial(parent: Path, name: str, owner: dict[str, Any] | None, age: float = 0) -> Path:
    folder = parent / f".{name}.partial-0000"
    (folder / name).mkdir(parents=True)
    if owner is not None:
        (folder / OWNER_FILE).write_text(json.dumps(owner))
    if age:
        then = time.time() - age
        os.utime(folder, (then, then))
    return folder


def test_the_sweep_removes_only_what_a_dead_process_left(tmp_path: Path) -> None:
    host = socket.gethostname()
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead = int(done.stdout)
    alive = os.getppid()
    finished = tmp_path / "finished"  # a finished export: not a partial name, never touched
    finished.mkdir()
    (finished / OWNER_FILE).write_text(json.dumps({"pid": dead, "host": host}))
    keep = [
        finished,
        _partial(tmp_path, "mine", {"pid": os.getpid(), "host": host, "started": None}),
        _partial(tmp_path, "alive", {"pid": alive, "host": host,
                                     "started": _process_start(alive)}),
        _partial(tmp_path, "elsewhere", {"pid": dead, "host": "another-host", "started": None}),
        _partial(tmp_path, "fresh", None),
    ]
    gone = [
        _partial(tmp_path, "dead", {"pid": dead, "host": host, "started": None}),
        _partial(tmp_path, "old", None, age=GRACE_SECONDS + 60),
    ]
    if _process_start(alive) is not None:  # /proc tells a reused pid from its first owner
        gone.append(_partial(tmp_path, "reused", {"pid": alive, "host": host, "started": "-1"}))
    assert sorted(sweep(tmp_path)) == sorted(gone)
    assert all(p.exists() for p in keep) and not any(p.exists() for p in gone)


def test_commit_is_all_or_nothing_and_never_overwrites(tmp_path: Path) -> None:
    def staged(name: str) -> Staging:
        staging = Staging(tmp_path / name, tmp_path / f"{name}.zip", "0000")
        staging.create()
        (staging.folder / "a.csv").write_text("x")
        assert staging.zip_path is not None
        staging.zip_path.write_bytes(b"zip")
        return staging

    theirs = tmp_path / "a.zip"  # a zip of the same name appears while the export runs
    first = staged("a")
    theirs.write_bytes(b"someone else's")
    with pytest.raises(FileExistsError, match="never overwrite"):
        first.commit()
    first.discard()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.zip"]
    assert theirs.read_bytes() == b"someone else's"

    second = staged("b")  # the folder gets content meanwhile: the placed zip is taken back
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "keep.txt").write_text("mine")
    with pytest.raises(OSError):
        second.commit()
    second.discard()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.zip", "b"]
    assert [p.name for p in (tmp_path / "b").iterdir()] == ["keep.txt"]

    third = staged("c")
    third.commit()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.zip", "b", "c", "c.zip"]
    assert (tmp_path / "c" / "a.csv").read_text() == "x"
