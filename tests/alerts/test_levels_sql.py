"""Investigation levels computed by PostgreSQL (audit.alerts.from_sql, for FLUORO_AUDIT_FIGURES=
sql) equal the frame's (audit.alerts.detection.investigation_levels) float for float: counts,
medians, percentiles, floors, levels and source texts, under several percentiles, with a room
whose KAP correction factor is not 1 and with ultrasound-guided records (no fluoroscopy time).
PostgreSQL only: the database is asked for directly, so the test never skips where the suite's
PostgreSQL is configured."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pandas as pd
import pytest
from sqlalchemy import Engine

from audit.alerts.detection import investigation_levels
from audit.alerts.from_sql import investigation_levels as levels_in_sql
from audit.analytics.snapshot import load_snapshot
from audit.auth import Actor
from audit.demo import generate
from audit.errors import ValidationFailed
from audit.reference_data import list_rooms, update_room
from audit.settings import update_setting
from audit.storage.engine import make_engine
from tests.conftest import Databases


@pytest.fixture(scope="module")
def pg_demo(databases: Databases) -> Iterator[Engine]:
    engine = make_engine(databases.postgresql())
    generate(engine, procedures=1500, seed=5, until=date(2026, 6, 30))
    yield engine
    engine.dispose()


def both(engine: Engine) -> tuple[pd.DataFrame, pd.DataFrame]:
    snap = load_snapshot(engine)
    lookups = snap.__class__(**{**snap.__dict__, "records": snap.records.iloc[:0], "cache": {}})
    with engine.connect() as conn:
        return investigation_levels(snap), levels_in_sql(conn, lookups)


@pytest.mark.parametrize("percentile,minimum", [(99, 20), (95, 20), (50, 1), (99.99, 5),
                                                (90, 100000)])
def test_levels_from_postgresql_equal_the_frames(pg_demo: Engine, admin: Actor,
                                                 percentile: float, minimum: int) -> None:
    update_setting(pg_demo, admin, "investigation_percentile", percentile)
    update_setting(pg_demo, admin, "investigation_min_records", minimum)
    frame, sql = both(pg_demo)
    assert len(frame) and frame["level"].notna().any() == (minimum < 1000)
    pd.testing.assert_frame_equal(sql, frame, check_exact=True)


def test_a_corrected_kap_and_ultrasound_records_count_as_on_the_frame(pg_demo: Engine,
                                                                      admin: Actor) -> None:
    room = list_rooms(pg_demo)[0]
    update_room(pg_demo, admin, room["room_id"], kap_correction_factor=0.73)
    frame, sql = both(pg_demo)
    pd.testing.assert_frame_equal(sql, frame, check_exact=True)


def test_a_setting_that_cannot_be_used_is_named_as_on_the_frame(pg_demo: Engine,
                                                                admin: Actor) -> None:
    update_setting(pg_demo, admin, "investigation_percentile", 100)
    snap = load_snapshot(pg_demo)
    with pg_demo.connect() as conn, pytest.raises(ValidationFailed) as info:
        levels_in_sql(conn, snap)
    assert info.value.errors[0].field == "investigation_percentile"
    update_setting(pg_demo, admin, "investigation_percentile", 99)


def test_the_page_reuses_the_refreshs_levels_until_an_input_changes(
        pg_demo: Engine, admin: Actor, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Alerts page shows the levels the refresh computed, and keeps them across an
    acknowledgement (which moves the data version, not a level); a setting recomputes them."""
    from audit.alerts import from_sql
    from audit.alerts.store import acknowledge, list_alerts, refresh_alerts
    from audit.analytics.sql.source import SqlSource
    from tests.alerts.test_alerts import RSO

    update_setting(pg_demo, admin, "investigation_min_records", 20)
    source = SqlSource(pg_demo)
    refresh_alerts(pg_demo, source, full=True)
    computed = []
    real = from_sql.investigation_levels
    monkeypatch.setattr(from_sql, "investigation_levels",
                        lambda *a: computed.append(1) or real(*a))
    pd.testing.assert_frame_equal(source.investigation_levels(), both(pg_demo)[0],
                                  check_exact=True)
    alert = int(list_alerts(pg_demo, RSO, status="open")["alert_id"].iloc[0])
    acknowledge(pg_demo, RSO, [alert], "reviewed")
    source.investigation_levels()
    assert computed == []  # the refresh's, twice
    update_setting(pg_demo, admin, "investigation_factor", 2.5)
    pd.testing.assert_frame_equal(source.investigation_levels(), both(pg_demo)[0],
                                  check_exact=True)
    assert computed == [1]


def test_levels_looked_for_near_the_previous_ones_equal_the_frames(
        pg_demo: Engine, admin: Actor, monkeypatch: pytest.MonkeyPatch) -> None:
    """After new records a refresh looks near the previous medians and percentiles first
    (sorting only those values); the types where they moved further are sorted whole: both
    exact. (The window is widened here: a type of 30 records has no value within 5% of its
    99th percentile, whose neighbours may be its largest values; a type of 100,000 has
    hundreds.)"""
    from audit.alerts import from_sql

    monkeypatch.setattr(from_sql, "NEAR", (10.0, 10.0))
    update_setting(pg_demo, admin, "investigation_min_records", 20)
    frame, _ = both(pg_demo)
    generate(pg_demo, procedures=120, seed=9, until=date(2026, 7, 31), months=1)
    now, _ = both(pg_demo)
    snap = load_snapshot(pg_demo)
    qs = (0.5, snap.settings.investigation_percentile / 100)
    sorted_ = spy_sorts(monkeypatch)
    with pg_demo.connect() as conn:
        types = sorted(int(t) for t in frame["type_id"].unique())
        picked, missed = from_sql._within(conn, qs, from_sql._windows_near(frame, qs))
        assert missed == [] and sorted(picked) == types  # every type found near
        pd.testing.assert_frame_equal(levels_in_sql(conn, snap, frame), now, check_exact=True)
        assert sorted_ == []
        # one type's median far from where it was, another's unknown
        monkeypatch.setattr(from_sql, "NEAR", (0.5, 10.0))
        far = frame.assign(median=frame["median"].where(frame["type_id"] != types[0], 1e9)
                           .where(frame["type_id"] != types[1]))
        picked, missed = from_sql._within(conn, qs, from_sql._windows_near(far, qs))
        assert missed == types[:2]  # only those types are sorted whole
        pd.testing.assert_frame_equal(levels_in_sql(conn, snap, far), now, check_exact=True)
        assert sorted_ == [types[:2]]
    assert not now.equals(frame)  # the new records moved something


def spy_sorts(monkeypatch: pytest.MonkeyPatch) -> list[list[int] | None]:
    """The types each whole sort was asked for (None: every type)."""
    from audit.alerts import from_sql

    asked: list[list[int] | None] = []
    real = from_sql._sorted

    def spy(conn: object, qs: tuple[float, ...], types: list[int] | None) -> object:
        asked.append(types)
        return real(conn, qs, types)  # type: ignore[arg-type]
    monkeypatch.setattr(from_sql, "_sorted", spy)
    return asked


@pytest.mark.parametrize("sample_rows,sigmas,slack", [(100_000, 4.0, 0.002), (400, 4.0, 0.002),
                                                    (400, 0.0, 0.0)])
def test_first_levels_look_where_a_sample_puts_them_and_equal_the_frames(
        pg_demo: Engine, admin: Actor, monkeypatch: pytest.MonkeyPatch,
        sample_rows: int, sigmas: float, slack: float) -> None:
    """With no previous levels, a sample of the table's pages places the windows: the whole
    table when it is small, about SAMPLE_ROWS records of a large one (here 400 of 1,500).
    Every level is exact: a type the sample cannot place is sorted whole, and only those.
    With windows of no width (sigmas 0) most types miss, and are sorted."""
    from audit.alerts import from_sql

    update_setting(pg_demo, admin, "investigation_min_records", 20)
    with pg_demo.begin() as conn:
        conn.exec_driver_sql("ANALYZE procedure")  # the sample's size comes from reltuples
    monkeypatch.setattr(from_sql, "SAMPLE_ROWS", sample_rows)
    monkeypatch.setattr(from_sql, "SAMPLE_SIGMAS", sigmas)
    monkeypatch.setattr(from_sql, "SAMPLE_SLACK", slack)
    sorted_ = spy_sorts(monkeypatch)
    frame, sql = both(pg_demo)
    pd.testing.assert_frame_equal(sql, frame, check_exact=True)
    types = {int(t) for t in frame["type_id"].unique()}
    assert len(sorted_) <= 1 and None not in sorted_  # never every type
    with pg_demo.connect() as conn:
        placed = from_sql._windows_sampled(conn, (0.5, 0.99))
    assert not types - set(placed) or sorted_  # a type the sample missed is sorted
    if sample_rows > 1500:  # the whole table sampled: every window holds its quantile
        assert sorted_ == [] and set(placed) == types
    if sigmas == 0:
        assert sorted_ and set(sorted_[0]) <= types  # windows too narrow: sorted
