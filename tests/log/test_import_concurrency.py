"""Imports hold the write lock only to write (issue 10).

Found: a 30,000-row CSV import held SQLite's write lock for 251 s, because every row was
validated and written inside one transaction; a technologist logging a case meanwhile waited
248 s. Now a CSV file is validated with no lock held and written in one short transaction, and
each dose report is parsed before its own transaction. These tests show the structure, not a
speed: the import is paused in the middle of its validation (or of parsing a report) and a
single case is logged meanwhile; it completes, and is written before the import's rows. The
figures are in bench/bench_import_concurrency.py. Every test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from audit.auth import Actor
from audit.dose_reports import store
from audit.dose_reports.store import DoseImporter
from audit.log import bulk
from audit.log.csv_import import import_csv
from audit.log.service import ProcedureLog
from audit.storage.models import AuditEvent, Physician, Procedure, Site, UserAccount
from audit.trail import verify_chain
from tests.conftest import valid_record
from tests.dose_reports.dose_helpers import make_report
from tests.log.test_csvlog import COLUMNS, write_csv

#: How long a paused import or a waiting log may take before the test gives up: a liveness
#: bound (the old code blocked the log until the import committed), not a timing threshold.
PATIENCE_S = 60


class Pause:
    """Wraps a function so that its `at`-th call from the import thread stops until the test
    has done its part: `reached` is set when the import is held there, `release()` lets it go."""

    def __init__(self, real: Callable[..., Any], at: int):
        self.real, self.at, self.calls = real, at, 0
        self.reached, self._go = threading.Event(), threading.Event()
        self.thread: threading.Thread | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if threading.current_thread() is self.thread:
            self.calls += 1
            if self.calls == self.at:
                self.reached.set()
                self._go.wait(PATIENCE_S * 2)
        return self.real(*args, **kwargs)

    def release(self) -> None:
        self._go.set()


@pytest.fixture
def in_background() -> Iterator[Callable[[Callable[[], Any]], tuple[threading.Thread,
                                                                       dict[str, Any]]]]:
    """start(call) -> (thread, box): runs `call` in a thread; box["value"] or box["error"]."""
    threads: list[threading.Thread] = []

    def start(call: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
        box: dict[str, Any] = {}

        def run() -> None:
            try:
                box["value"] = call()
            except BaseException as exc:  # the test asserts on it
                box["error"] = exc

        thread = threading.Thread(target=run, daemon=True)
        threads.append(thread)
        return thread, box

    yield start
    for thread in threads:
        thread.join(PATIENCE_S * 2)


def log_while_paused(service: ProcedureLog, actor: Actor, pause: Pause,
                     importer: threading.Thread, record: dict[str, Any],
                     create_missing: bool = False) -> tuple[bool, int | None]:
    """Start the import, wait until it is held at the pause, log `record` from this thread's
    helper, and report whether that log finished while the import was still held."""
    pause.thread = importer
    importer.start()
    assert pause.reached.wait(PATIENCE_S), "the import never reached the pause"
    done, box = threading.Event(), {}

    def log_one() -> None:
        try:
            box["id"] = service.log(record, actor, create_missing=create_missing).record_id
        finally:
            done.set()

    logger = threading.Thread(target=log_one, daemon=True)
    logger.start()
    finished_while_held = done.wait(PATIENCE_S)
    pause.release()
    importer.join(PATIENCE_S * 2)
    logger.join(PATIENCE_S * 2)
    return finished_while_held, box.get("id")


def csv_rows(count: int, **overrides: Any) -> list[dict[str, Any]]:
    return [valid_record(patient_id=f"CSV{i:04d}", **overrides) for i in range(count)]


def test_a_case_logged_while_a_csv_import_validates_is_not_kept_waiting(
    engine: Engine, service: ProcedureLog, admin: Actor, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, in_background: Any,
) -> None:
    service.log(valid_record(), admin, create_missing=True)  # the names exist
    path = write_csv(tmp_path / "log.csv", csv_rows(30), COLUMNS)
    pause = Pause(bulk.validate, at=15)  # the 15th row's validation
    monkeypatch.setattr(bulk, "validate", pause)
    importer, result = in_background(lambda: import_csv(service, admin, path))

    finished, single_id = log_while_paused(service, admin, pause, importer,
                                           valid_record(patient_id="LIVE1"))

    assert finished, "a single log waited for a CSV import that was only validating"
    imported = [r.record_id for r in result["value"].imported]
    assert len(imported) == 30 and single_id is not None
    assert single_id < min(imported)  # written first: the import had not written yet
    with Session(engine) as s:
        assert verify_chain(s).ok
        creates = list(s.scalars(select(AuditEvent.entity_id).where(
            AuditEvent.action == "create", AuditEvent.entity == "procedure")
            .order_by(AuditEvent.id)))
    assert creates[1:] == [str(single_id), *map(str, imported)]


def test_names_created_meanwhile_are_used_not_created_twice(
    engine: Engine, service: ProcedureLog, admin: Actor, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, in_background: Any,
) -> None:
    """The import checks its rows before the site, physician and technologist exist; a case
    logged meanwhile creates them; the import's write finds them (one creation each)."""
    new = {"site": "Hillside", "room": "Suite 2", "physician": "Dr. Okafor",
           "technologist": "nnew"}
    path = write_csv(tmp_path / "new.csv", csv_rows(10, **new), COLUMNS)
    pause = Pause(bulk.validate, at=5)
    monkeypatch.setattr(bulk, "validate", pause)
    importer, result = in_background(
        lambda: import_csv(service, admin, path, create_missing=True))

    finished, single_id = log_while_paused(service, admin, pause, importer,
                                           valid_record(patient_id="LIVE1", **new),
                                           create_missing=True)

    assert finished and single_id is not None
    assert "error" not in result, result
    assert len(result["value"].imported) == 10
    with Session(engine) as s:
        assert s.scalar(select(Site.id).where(Site.name == "Hillside")) is not None
        assert len(s.scalars(select(Physician.id).where(Physician.name == "Dr. Okafor"))
                   .all()) == 1
        tech = s.scalar(select(UserAccount.id).where(UserAccount.username == "nnew"))
        assert {p.technologist_id for p in s.scalars(select(Procedure))} == {tech}
        created = s.scalars(select(AuditEvent.entity).where(
            AuditEvent.action == "create", AuditEvent.entity != "procedure")).all()
        assert sorted(created) == ["physician", "room", "site", "user_account"]
        assert verify_chain(s).ok


def test_a_case_logged_while_a_dose_report_is_parsed_is_not_kept_waiting(
    engine: Engine, service: ProcedureLog, admin: Actor, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, in_background: Any,
) -> None:
    """Each dose report is read and parsed before its own write transaction, so a run over
    many files never holds the lock while reading one."""
    service.log(valid_record(), admin, create_missing=True)
    files = [make_report(tmp_path, f"r{i}.dcm", accession=f"ACC-{i}") for i in range(3)]
    pause = Pause(store.read_dose_report, at=2)  # parsing the second file
    monkeypatch.setattr(store, "read_dose_report", pause)
    importer_ = DoseImporter(engine, admin)
    importer, result = in_background(lambda: [importer_.import_path(f) for f in files])

    finished, _ = log_while_paused(service, admin, pause, importer,
                                   valid_record(patient_id="LIVE1"))

    assert finished, "a single log waited for a dose report being parsed"
    assert [r.status for r in result["value"]] == ["ok", "ok", "ok"]
    with Session(engine) as s:
        order = list(s.scalars(select(AuditEvent.entity).where(
            AuditEvent.action.in_(["create", "import"])).order_by(AuditEvent.id)))
        assert verify_chain(s).ok
    # the first report (written before the pause), the single case, then the other two
    assert order[-4:] == ["dose_report", "procedure", "dose_report", "dose_report"]
