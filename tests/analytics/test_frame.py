"""The analysis frame: packed columns read back exactly, incremental refresh, and the frame file
that survives restarts (checked against the audit chain before it is trusted)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine, select

from audit.analytics import _packing
from audit.analytics import snapshot as frame
from audit.analytics._packing import (
    CONFIRMATIONS,
    FACTS,
    MAX_SAVED_IMAGES,
    OPERATORS,
    REGIONS,
    Flag,
)
from audit.analytics.compliance import compliance
from audit.analytics.dose_stats import dose_stats
from audit.analytics.snapshot import FrameCache, load_snapshot
from audit.auth import cli_actor
from audit.demo import generate
from audit.filters import Filters
from audit.log.service import ProcedureLog
from audit.storage.engine import make_engine, migrate, read_session
from audit.storage.models import Procedure
from audit.vocab import PARTICULATE_STEROIDS
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


def _expected_small_fields(p: Procedure) -> dict[str, int]:
    """What the frame must hold for one stored record, computed in Python from the ORM row:
    the meaning the SQL packing (portable CASEs, or SQLite's shorter products) must keep."""
    def text(value: object) -> object:
        return getattr(value, "value", value)

    views = p.confirmation_views or ""
    bits = {
        "contrast_exception_reason": p.contrast_exception_reason is not None,
        "realtime_contrast": p.realtime_contrast is True,
        "pulsed_fluoro": p.pulsed_fluoro is True,
        "pulsed_fluoro_recorded": p.pulsed_fluoro is not None,
        "low_dose_mode": p.low_dose_mode is True,
        "low_dose_mode_recorded": p.low_dose_mode is not None,
        "vascular_uptake": p.vascular_uptake is True,
        "needle_repositioned": p.needle_repositioned is True,
        "particulate_steroid": text(p.injectate) in {s.value for s in PARTICULATE_STEROIDS},
        "pregnant": text(p.pregnancy_status) == "pregnant",
        "saved_with_warnings": p.warnings not in (None, []),
        "dose_from_report": text(p.dose_source) != "manual",
        "dsa_guidance": text(p.guidance) == "fluoroscopy_dsa",
        "dap_missing_reason": p.dap_missing_reason is not None,
        "ultrasound_guidance": text(p.guidance) == "ultrasound",
        "trainee_present": p.trainee_present is True,
        "trainee_present_recorded": p.trainee_present is not None,
    }
    operator = text(p.carm_operator)
    return {
        "flags": sum(FACTS[name] for name, on in bits.items() if on)
        + ((OPERATORS.index(operator) + 1) << Flag.OPERATOR_SHIFT if operator else 0),
        "n_views": 0 if views == "" else min(7, views.count(";") + 1),
        "saved_images": min(p.saved_images, MAX_SAVED_IMAGES),
        "region": REGIONS.index(text(p.region)),
        "confirmation": CONFIRMATIONS.index(text(p.contrast_confirmation)),
        "operator": OPERATORS.index(operator) + 1 if operator else 0,
    }


def test_every_packed_field_means_what_the_record_says(engine: Engine) -> None:
    """Every record of a varied demo set (missing and recorded booleans, no injectate, empty
    and several views, warnings, each operator): the frame's packed fields equal the ones
    computed from the stored row, on both databases (SQLite's query is written differently)."""
    generate(engine, procedures=400, seed=11, until=date(2026, 11, 1), progress=False)
    analytics_data.load(ProcedureLog(engine), cli_actor())
    records = load_snapshot(engine).records.set_index("id")
    with read_session(engine) as session:
        stored = session.scalars(select(Procedure).where(Procedure.status == "final")).all()
        expected = {p.id: _expected_small_fields(p) for p in stored}
    assert len(expected) == len(records)
    seen_flags = 0
    for record_id, fields in expected.items():
        row = records.loc[record_id]
        assert {name: int(row[name]) for name in fields} == fields, record_id
        seen_flags |= fields["flags"]
    assert seen_flags & Flag.PARTICULATE and seen_flags & Flag.PULSED_KNOWN  # varied enough


def test_a_restart_from_the_frame_file_gives_the_same_figures(tmp_path: Path) -> None:
    """A new process that reads the frame file and catches up (an amend and a new record
    since) computes the same figures as one that reads every record."""
    engine = _sqlite(tmp_path, "figures.sqlite3")
    generate(engine, procedures=600, seed=3, until=date(2026, 11, 1), progress=False)
    store = tmp_path / "cache"
    FrameCache(engine, store=store).get()
    service = ProcedureLog(engine)
    service.log(valid_record(patient_id="LATE", performed_at="2026-04-01T10:00:00+00:00"),
                cli_actor(), create_missing=True, confirm_warnings=True)
    restarted = FrameCache(engine, store=store).get()
    full = load_snapshot(engine)
    assert restarted.token == full.token
    by_id = restarted.records.sort_values("id").reset_index(drop=True)
    assert by_id.equals(full.records.sort_values("id").reset_index(drop=True))
    for by in (None, "physician", "room", "procedure"):
        assert compliance(restarted, Filters(), by).equals(compliance(full, Filters(), by))
    assert dose_stats(restarted, Filters()).equals(dose_stats(full, Filters()))
    engine.dispose()


def test_a_full_read_reports_how_far_it_has_come(engine: Engine,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A first full read (seconds at a million records) tells its caller the records read so
    far after each chunk, from 0 to all of them; the frame is the same as without."""
    generate(engine, procedures=250, seed=2, until=date(2026, 11, 1), progress=False)
    monkeypatch.setattr(_packing, "CHUNK", 60)
    heard: list[tuple[int, int]] = []
    snap = FrameCache(engine).get(lambda done, total: heard.append((done, total)))
    final = len(snap.records)
    assert heard[0] == (0, final) and heard[-1] == (final, final)
    assert [done for done, _ in heard] == sorted(done for done, _ in heard)
    assert len(heard) >= final // 60 + 1
    assert snap.records.equals(load_snapshot(engine).records)


def test_figures_warm_keeps_the_frame_file_current_for_the_next_process(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """`figures warm` on SQLite (what `make run` does before it starts the dashboard) writes
    the frame file, and again after a single new record (a dashboard process writes it only
    every STORE_EVERY_EVENTS): the next process reads the file, never every record, and has
    the same frame as a full read."""
    import json

    from audit.cli import main

    engine = _sqlite(tmp_path, "warm.sqlite3")
    service = ProcedureLog(engine)
    analytics_data.load(service, cli_actor())
    url = engine.url.render_as_string(hide_password=False)
    store = tmp_path / "cache"
    monkeypatch.setenv("FLUORO_AUDIT_CACHE_DIR", str(store))
    assert main(["--db", url, "figures", "warm", "--json"]) == 0
    out, err = capsys.readouterr()
    first = json.loads(out)
    assert first["read_all"] is True and first["records"] > 0
    assert "reading the records:" in err  # progress of the full read on stderr
    [made] = store.glob("frame-*.npz")
    assert first["path"] == str(made)

    service.log(valid_record(patient_id="LATE", performed_at="2026-04-01T10:00:00+00:00"),
                cli_actor(), create_missing=True, confirm_warnings=True)
    assert main(["--db", url, "figures", "warm"]) == 0
    out = capsys.readouterr().out
    assert f"{first['records'] + 1:,} records (from the file and the events after it)" in out

    def no_full_read(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the next process should read the frame file")

    full = load_snapshot(engine)
    monkeypatch.setattr(frame, "load_snapshot", no_full_read)
    monkeypatch.setattr(frame, "_read_records", no_full_read)  # nothing left to catch up
    cache = FrameCache(engine, store=store)
    restarted = cache.get()
    assert not cache.read_all and restarted.token == full.token
    assert restarted.records.sort_values("id").reset_index(drop=True).equals(
        full.records.sort_values("id").reset_index(drop=True))
    engine.dispose()
