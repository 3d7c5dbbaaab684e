"""Several processes logging into one database at once: nothing lost, no error reaches a caller,
and the audit chain stays one unbroken line."""

from __future__ import annotations

import multiprocessing
import queue
import sys
import time
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from audit.auth import cli_actor
from audit.log.service import ProcedureLog
from audit.storage.engine import make_engine
from audit.storage.models import AuditEvent, Physician, Procedure, Site
from audit.trail import verify_chain
from tests.conftest import valid_record

PROCESSES = 4
PER_PROCESS = 250


def _worker(url: str, worker: int, start: Any, results: Any) -> None:
    errors: list[str] = []
    try:
        engine = make_engine(url)
        service = ProcedureLog(engine)
        start.wait()  # all processes begin together
        for i in range(PER_PROCESS):
            record = valid_record(patient_id=f"W{worker}-{i:04d}",
                                  performed_at=f"2026-03-{1 + i % 28:02d}T10:{i % 60:02d}:00Z")
            try:
                # Every process races to create the same site, room, physician and technologist.
                service.log(record, cli_actor(), create_missing=True)
            except Exception as exc:  # any error here is a failure of the service
                errors.append(f"{type(exc).__name__}: {exc}")
        engine.dispose()
    except BaseException as exc:  # the parent must hear of it, not wait for a result forever
        errors.append(f"worker {worker} stopped: {type(exc).__name__}: {exc}")
    finally:
        results.put((worker, errors))


def _collect(workers: list[Any], results: Any, deadline_s: float) -> dict[int, list[str]]:
    """Each worker's errors; a worker that died without reporting fails the test at once
    (with its exit code) instead of leaving it waiting until the deadline."""
    outcomes: dict[int, list[str]] = {}
    waited = 0.0
    while len(outcomes) < len(workers):
        try:
            worker, errors = results.get(timeout=5)
            outcomes[worker] = errors
            continue
        except queue.Empty:
            waited += 5
        silent = [(w, p.exitcode) for w, p in enumerate(workers)
                  if w not in outcomes and not p.is_alive()]
        if silent:
            time.sleep(2)  # a result put just before exiting may still be in the pipe
            while True:
                try:
                    worker, errors = results.get_nowait()
                except queue.Empty:
                    break
                outcomes[worker] = errors
            silent = [(w, code) for w, code in silent if w not in outcomes]
            assert not silent, f"workers died without a result (worker, exit code): {silent}"
        assert waited < deadline_s, f"no result from {len(workers) - len(outcomes)} workers"
    return outcomes


@pytest.mark.slow
@pytest.mark.timeout(1900)  # beyond the 1800 s the results are waited for below
def test_four_processes_logging_at_once(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # A spawned child first re-runs the parent's __main__ file. After an AppTest test in the
    # same worker that is dashboard/app.py, which opens the default database and can fail with
    # "database is locked" before _worker ever runs. The workers need nothing from __main__.
    main = sys.modules["__main__"]
    monkeypatch.setattr(main, "__spec__", None, raising=False)
    monkeypatch.delattr(main, "__file__", raising=False)
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    results = ctx.Queue()
    workers = [ctx.Process(target=_worker, args=(db_url, w, start, results))
               for w in range(PROCESSES)]
    for p in workers:
        p.start()
    start.set()
    # Generous: on a loaded 2-core CI machine 1000 serialised writes can take minutes.
    outcomes = _collect(workers, results, deadline_s=1800)
    for p in workers:
        p.join(timeout=60)
    assert all(errors == [] for errors in outcomes.values()), outcomes
    engine = make_engine(db_url)
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(Procedure)) == PROCESSES * PER_PROCESS
        assert s.scalar(select(func.count()).select_from(Site)) == 1
        assert s.scalar(select(func.count()).select_from(Physician)) == 1
        creates = s.scalar(select(func.count()).select_from(AuditEvent)
                           .where(AuditEvent.entity == "procedure"))
        assert creates == PROCESSES * PER_PROCESS
        report = verify_chain(s)
    engine.dispose()
    assert report.ok, report.message()
