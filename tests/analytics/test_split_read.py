"""The analysis frame's full read on SQLite in two processes (audit.analytics._split_read):
the same frame as one process reads, and never a frame mixed from two data versions."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import Engine

from audit.analytics import _split_read
from audit.analytics.snapshot import load_snapshot
from audit.demo import generate
from audit.storage.engine import make_engine, migrate


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """A real SQLite file of 400 demo procedures."""
    url = f"sqlite:///{tmp_path_factory.mktemp('split') / 'split.sqlite3'}"
    migrate(url)
    engine = make_engine(url)
    generate(engine, procedures=400, seed=5, until=date(2026, 11, 1), progress=False)
    yield engine
    engine.dispose()


@pytest.fixture
def whole(demo: Engine, monkeypatch: pytest.MonkeyPatch) -> pd.DataFrame:
    """The frame as one process reads it."""
    monkeypatch.setattr(_split_read, "SPLIT_FROM", 10 ** 12)
    records = load_snapshot(demo).records
    monkeypatch.setattr(_split_read, "SPLIT_FROM", 10)
    return records


@pytest.fixture
def helped(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """What each helper's read gave (columns, or None where this process read its half)."""
    found: list[Any] = []
    finish = _split_read._finish

    def spy(*args: Any) -> Any:
        found.append(finish(*args))
        return found[-1]
    monkeypatch.setattr(_split_read, "_finish", spy)
    return found


def test_two_processes_read_the_same_frame_as_one(demo: Engine, whole: pd.DataFrame,
                                                  helped: list[Any]) -> None:
    split = load_snapshot(demo).records
    assert len(helped) == 1 and helped[0] is not None  # the helper read the upper half
    assert 0 < len(helped[0][0]) < len(whole)
    pd.testing.assert_frame_equal(split, whole, check_exact=True)


@pytest.mark.parametrize("helper", [
    # a write landed between the two starts: the helper saw a newer audit head, other rows
    "import sys, numpy as np\n"
    "sys.stdout.buffer.write(np.array([10 ** 9, 1], dtype='<i8').tobytes())\n"
    "sys.stdout.buffer.write(np.zeros(10).tobytes())",
    "raise SystemExit(3)",  # it failed
    "import sys; sys.stdout.buffer.write(b'short')",  # it wrote something else
])
def test_a_helper_that_saw_another_version_or_failed_is_not_used(
        demo: Engine, whole: pd.DataFrame, helped: list[Any],
        monkeypatch: pytest.MonkeyPatch, helper: str) -> None:
    monkeypatch.setattr(_split_read, "HELPER", helper)
    split = load_snapshot(demo).records
    assert helped == [None]  # this process read the upper half itself
    pd.testing.assert_frame_equal(split, whole, check_exact=True)


def test_a_helper_that_cannot_start_or_hangs_is_not_waited_for(
        demo: Engine, whole: pd.DataFrame, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "executable", "/nonexistent/python")
    pd.testing.assert_frame_equal(load_snapshot(demo).records, whole, check_exact=True)
    monkeypatch.undo()
    monkeypatch.setattr(_split_read, "SPLIT_FROM", 10)
    monkeypatch.setattr(_split_read, "HELPER", "import time; time.sleep(60)")
    monkeypatch.setattr(_split_read, "HELPER_TIMEOUT_S", 0.5)
    pd.testing.assert_frame_equal(load_snapshot(demo).records, whole, check_exact=True)


def test_only_a_file_database_of_enough_records_is_split(tmp_path: Path) -> None:
    memory = make_engine("sqlite://")
    with memory.connect() as conn:
        assert _split_read._file_of(conn) is None
    path = tmp_path / "small.sqlite3"
    migrate(f"sqlite:///{path}")
    small = make_engine(f"sqlite:///{path}")
    with small.connect() as conn:
        assert _split_read._file_of(conn) == path.resolve()
    small.dispose()


def test_a_record_logged_between_the_two_starts_never_mixes_two_versions(
        demo: Engine, whole: pd.DataFrame, helped: list[Any],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A real race: the helper starts, a record is logged and committed while this process
    reads its half, then the helper begins its transaction and sees the new audit head. Its
    half is not used: the frame is the version this process's transaction reads, without
    the new record."""
    from audit.analytics import _packing
    from audit.auth import cli_actor
    from audit.log.service import ProcedureLog
    from tests.conftest import valid_record

    monkeypatch.setattr(_split_read, "HELPER", "import time; time.sleep(1.5)\n"
                        + _split_read.HELPER)
    fetch = _packing.fetch
    logged: list[int] = []

    def write_then_fetch(conn: Any, query: Any, progress: Any = None) -> Any:
        if not logged:  # the lower half: another connection logs a record meanwhile
            writer = make_engine(demo.url.render_as_string(hide_password=False))
            logged.append(ProcedureLog(writer).log(
                valid_record(patient_id="RACE-1", performed_at="2026-10-30T10:00:00+00:00"),
                cli_actor(), create_missing=True, confirm_warnings=True).record_id)
            writer.dispose()
        return fetch(conn, query, progress)
    monkeypatch.setattr(_packing, "fetch", write_then_fetch)
    split = load_snapshot(demo).records
    assert helped == [None]  # the helper saw the newer head: not used
    assert logged[0] not in set(split["id"])
    pd.testing.assert_frame_equal(split, whole, check_exact=True)
    monkeypatch.undo()
    assert logged[0] in set(load_snapshot(demo).records["id"])  # the next read has it
