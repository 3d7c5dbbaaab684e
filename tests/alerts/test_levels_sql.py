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
    (sorting only those values); where they moved further it sorts everything: both exact.
    (The window is widened here: a type of 30 records has no value within 5% of its 99th
    percentile, whose neighbours may be its largest values; a type of 100,000 has hundreds.)"""
    from audit.alerts import from_sql

    monkeypatch.setattr(from_sql, "NEAR", (10.0, 10.0))
    update_setting(pg_demo, admin, "investigation_min_records", 20)
    frame, _ = both(pg_demo)
    generate(pg_demo, procedures=120, seed=9, until=date(2026, 7, 31), months=1)
    now, _ = both(pg_demo)
    snap = load_snapshot(pg_demo)
    qs = (0.5, snap.settings.investigation_percentile / 100)
    with pg_demo.connect() as conn:
        assert from_sql._near_previous(conn, qs, frame) is not None  # found near
        pd.testing.assert_frame_equal(levels_in_sql(conn, snap, frame), now, check_exact=True)
        monkeypatch.setattr(from_sql, "NEAR", (0.05, 0.25))
        far = frame.assign(median=frame["median"] * 100, percentile=frame["percentile"] / 100)
        assert from_sql._near_previous(conn, qs, far) is None  # too far: sort everything
        pd.testing.assert_frame_equal(levels_in_sql(conn, snap, far), now, check_exact=True)
    assert not now.equals(frame)  # the new records moved something
