"""Recorded chain heads (audit.checkpoints): written after every committed transaction that
appended events, never for one rolled back, never out of step under concurrent writers; and no
false alarm from verify-audit after a day's ordinary work (issue 10)."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from audit import checkpoints
from audit.auth import Actor, SignInFailed, add_user, authenticate, sign_out
from audit.dose_reports.store import DoseImporter
from audit.errors import StaleVersion, ValidationFailed
from audit.export.runner import export
from audit.keys import ENV_KEY_DIR, checkpoint_path
from audit.log.service import ProcedureLog
from audit.reference_data import update_physician, update_room, update_site
from audit.settings import update_setting
from audit.storage.engine import make_engine, migrate
from audit.storage.models import AuditEvent, Physician, Room, Site
from audit.vocab import Role
from tests.conftest import Databases, race, valid_record
from tests.dose_reports.dose_helpers import make_report
from tests.test_trail_tamper import verify

ROOT = Path(__file__).resolve().parents[1]


def recorded_ids(engine: Engine) -> list[int]:
    path = checkpoint_path(engine)
    assert path is not None
    return [json.loads(line)["event_id"] for line in path.read_text().splitlines()]


def last_event(engine: Engine) -> int:
    with Session(engine) as s:
        return int(s.scalar(select(func.max(AuditEvent.id))) or 0)


def test_a_days_work_verifies_without_a_warning(
    db_url: str, engine: Engine, service: ProcedureLog, admin: Actor, tmp_path: Path,
    capsys: pytest.CaptureFixture[str]
) -> None:
    add_user(engine, admin, "tech1", Role.TECHNOLOGIST, "correct horse battery")
    tech = authenticate(engine, "tech1", "correct horse battery")
    with pytest.raises(SignInFailed):
        authenticate(engine, "tech1", "wrong password")
    first = service.log(valid_record(), tech, create_missing=True).record_id
    second = service.log(valid_record(patient_id="MRN0002", accession_number="ACC-1",
                                      performed_at="2024-03-15T09:00:00+00:00",
                                      air_kerma_mgy=None), admin, create_missing=True).record_id
    service.amend(first, {"levels": ["L3", "L4"], "physician": "Dr. Okafor"}, admin, version=1,
                  reason="wrong levels", create_missing=True)
    service.amend(first, {"dap_value": 1.2, "dap_unit": "mGy·cm²"}, admin, version=2,
                  reason="unit", confirm_warnings=True)
    third = service.log(valid_record(patient_id="MRN0003"), tech).record_id
    service.void(third, admin, version=1, reason="duplicate")
    with Session(engine) as s:  # renames: earlier events name the old names
        site, room, doctor = (s.scalar(select(Site.id)), s.scalar(select(Room.id)),
                              s.scalar(select(Physician.id).where(Physician.name == "Dr. Chen")))
    update_site(engine, admin, site, name="Riverside North")
    update_room(engine, admin, room, name="OR 1A")
    update_physician(engine, admin, doctor, name="Dr. Chen-Li")
    update_setting(engine, admin, "investigation_factor", 4)
    DoseImporter(engine, admin).import_path(make_report(tmp_path, patient="MRN0002", dose=9.0))
    export(engine, admin, tmp_path / "export", sections=("procedures", "audit_trail"))
    sign_out(engine, tech)
    code, out = verify(db_url, capsys)
    assert code == 0, out
    assert "warning" not in out and "procedures intact: 3 records" in out
    with Session(engine) as s:  # the dose report filled the second record's Ka,r
        assert s.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.entity == "procedure", AuditEvent.entity_id == str(second),
            AuditEvent.action == "amend")) == 1


def test_demo_data_loaded_in_bulk_verifies(db_url: str, engine: Engine,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    from audit.demo import generate

    generate(engine, procedures=120, seed=3)
    code, out = verify(db_url, capsys)
    assert code == 0, out
    assert "120 records were loaded in bulk" in out


def test_a_refused_or_rolled_back_write_records_no_head(
    engine: Engine, service: ProcedureLog, admin: Actor, logged: int
) -> None:
    before = recorded_ids(engine)
    with pytest.raises(StaleVersion):
        service.amend(logged, {"saved_images": 5}, admin, version=7, reason="x")
    with pytest.raises(ValidationFailed):  # a batch with one bad record writes nothing
        service.log_many([valid_record(), valid_record(dap_unit="mGy")], admin)
    assert recorded_ids(engine) == before == [last_event(engine)]


def test_concurrent_writers_leave_the_checkpoint_on_the_last_event(
    db_url: str, engine: Engine, admin: Actor, logged: int, capsys: pytest.CaptureFixture[str]
) -> None:
    def writer(index: int) -> None:
        service = ProcedureLog(engine)
        for n in range(3):
            service.log(valid_record(patient_id=f"MRN-{index}-{n}"), admin)

    assert race([lambda i=i: writer(i) for i in range(4)]) == [None] * 4
    recorded = recorded_ids(engine)
    assert max(recorded) == last_event(engine) and len(set(recorded)) == 13
    code, out = verify(db_url, capsys)
    assert code == 0, out


def test_two_processes_writing_at_once(db_url: str, engine: Engine, logged: int,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    script = ("import sys; from audit.auth import cli_actor; from audit.log.service import "
              "ProcedureLog; from audit.storage.engine import make_engine; "
              "from tests.conftest import valid_record; "
              "s = ProcedureLog(make_engine(sys.argv[1])); "
              "[s.log(valid_record(patient_id=f'P{sys.argv[2]}{n}'), cli_actor()) "
              "for n in range(4)]")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    workers = [subprocess.Popen([sys.executable, "-c", script, db_url, str(i)], cwd=ROOT,
                                env=env) for i in range(2)]
    assert [w.wait(timeout=120) for w in workers] == [0, 0]
    assert max(recorded_ids(engine)) == last_event(engine)
    code, out = verify(db_url, capsys)
    assert code == 0, out


def test_a_moved_database_warns_once_and_starts_its_checkpoint(
    databases: Databases, admin: Actor, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db_url = databases.sqlite()  # a file that can be copied
    engine = make_engine(db_url)
    ProcedureLog(engine).log(valid_record(), admin, create_missing=True)
    engine.dispose()
    moved = tmp_path / "moved.sqlite3"
    with sqlite3.connect(db_url.removeprefix("sqlite:///")) as source, \
            sqlite3.connect(moved) as copy:
        source.backup(copy)  # the file and its WAL, as `fluoro-audit backup` copies it
    url = f"sqlite:///{moved}"
    code, out = verify(url, capsys)
    assert code == 0, out
    assert "warning: no checkpoint has been recorded for this database yet" in out
    assert "moved, restored or renamed" in out
    path = checkpoint_path(url)
    assert path is not None and path.exists()
    code, out = verify(url, capsys)
    assert code == 0 and "warning" not in out


def test_the_checkpoint_file_is_private(own_dir: Path) -> None:
    url = f"sqlite:///{own_dir / 'a.sqlite3'}"
    migrate(url)
    engine = make_engine(url)
    try:
        ProcedureLog(engine).log(valid_record(), _cli(), create_missing=True)
        path = checkpoint_path(engine)
        assert path is not None and path.parent.parent == own_dir / "a.keys"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    finally:
        engine.dispose()


def test_recorded_heads_read_in_order_and_a_torn_line_is_counted(tmp_path: Path) -> None:
    path = tmp_path / "c" / "x.heads"
    for event_id in (3, 9, 7):
        checkpoints.append(path, event_id, f"{event_id:064x}")
    with path.open("a") as handle:
        handle.write('{"event_id": 12, "mac": "ab')  # a write cut short
    recorded = checkpoints.read(path)
    assert recorded is not None and recorded.unreadable == 1
    assert [h.event_id for h in recorded.in_order()] == [3, 7, 9]
    assert recorded.has(7, f"{7:064x}") and not recorded.has(7, f"{8:064x}")
    assert checkpoints.read(tmp_path / "none.heads") is None


def test_an_in_memory_database_has_no_checkpoint() -> None:
    assert checkpoints.path_for(make_engine("sqlite://")) is None


@pytest.fixture
def own_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Keys (and checkpoints) beside the database, as at a site."""
    monkeypatch.delenv(ENV_KEY_DIR, raising=False)
    return tmp_path


def _cli() -> Actor:
    from audit.auth import cli_actor

    return cli_actor()
