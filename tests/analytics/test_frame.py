"""The analysis frame: packed columns read back exactly, incremental refresh, and the frame file
that survives restarts (checked against the audit chain before it is trusted)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine, select

from audit.analytics import snapshot as frame
from audit.analytics._packing import Flag
from audit.analytics.snapshot import FrameCache, load_snapshot
from audit.auth import cli_actor
from audit.log.service import ProcedureLog
from audit.storage.engine import make_engine, migrate, read_session
from audit.storage.models import Procedure
from tests.analytics import analytics_data
from tests.conftest import valid_record


def test_packed_columns_read_back_exactly(engine: Engine) -> None:
    ids = analytics_data.load(ProcedureLog(engine), cli_actor())
    records = load_snapshot(engine).records.set_index("id")
    with read_session(engine) as session:
        stored = session.get(Procedure, ids[3])
        assert records.loc[ids[3], "room_id"] == stored.room_id
        assert records.loc[ids[3], "physician_id"] == stored.physician_id
        assert records.loc[ids[3], "patient_id"] == stored.patient_id
        assert records.loc[ids[3], "technologist_id"] == stored.technologist_id
        assert records.loc[ids[3], "t"] == int(stored.performed_at.timestamp())
    assert records.loc[ids[5], "n_views"] == 1 and records.loc[ids[6], "n_views"] == 2
    assert records.loc[ids[1], "n_levels"] == 2 and records.loc[ids[6], "n_levels"] == 1
    assert records.loc[ids[7], "saved_images"] == 0
    assert np.isnan(records.loc[ids[4], "air_kerma_mgy"])
    assert records.loc[ids[1], "flags"] & Flag.PULSED
    assert not records.loc[ids[2], "flags"] & Flag.PULSED
    assert records.loc[ids[2], "flags"] & Flag.PULSED_KNOWN
    assert records.loc[ids[4], "flags"] & Flag.EXCEPTION_REASON
    assert records.loc[ids[6], "flags"] & Flag.PREGNANT


def _sqlite(tmp_path: Path, name: str) -> Engine:
    url = f"sqlite:///{tmp_path / name}"
    migrate(url)
    return make_engine(url)


def test_frame_file_survives_a_restart_and_catches_up(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    engine = _sqlite(tmp_path, "a.sqlite3")
    service = ProcedureLog(engine)
    analytics_data.load(service, cli_actor())
    store = tmp_path / "cache"
    first = FrameCache(engine, store=store).get()
    assert len(list(store.glob("frame-*.npz"))) == 1
    new = service.log(valid_record(patient_id="LATE", performed_at="2026-04-01T10:00:00+00:00"),
                      cli_actor(), create_missing=True,
                      confirm_warnings=True).record_id  # room 'OR 1' beside 'R1': near

    def no_full_read(_engine: Engine) -> None:
        raise AssertionError("the frame file should have been used")

    monkeypatch.setattr(frame, "load_snapshot", no_full_read)
    restarted = FrameCache(engine, store=store).get()  # a new process: file + new events
    assert len(restarted.records) == len(first.records) + 1
    assert new in restarted.records["id"].tolist()
    engine.dispose()


def test_frame_file_of_another_database_is_not_trusted(tmp_path: Path) -> None:
    store = tmp_path / "cache"
    engine = _sqlite(tmp_path, "same.sqlite3")
    analytics_data.load(ProcedureLog(engine), cli_actor())
    FrameCache(engine, store=store).get()
    engine.dispose()
    for leftover in tmp_path.glob("same.sqlite3*"):
        leftover.unlink()
    engine = _sqlite(tmp_path, "same.sqlite3")  # same URL, a different database
    for index in range(20):  # more events that the old file's token exists here too
        ProcedureLog(engine).log(valid_record(patient_id=f"N{index}"), cli_actor(),
                                 create_missing=True)
    snap = FrameCache(engine, store=store).get()
    with read_session(engine) as session:
        ids = sorted(session.scalars(select(Procedure.id)).all())
    assert sorted(snap.records["id"].tolist()) == ids
    assert snap.records["dap_gycm2"].tolist() == [0.71] * 20
    engine.dispose()
