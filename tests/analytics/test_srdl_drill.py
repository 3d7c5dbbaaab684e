"""The Data quality page's list of the records that reached a substantial radiation dose level
(SRDL), from SQL: equal to the frame's when the records are rare, read through the record
facts' indexes on each quantity (migration 0026) instead of a walk back through every record,
and when a room's KAP correction factor puts a stored KAP below the SRDL above it.
PostgreSQL only, asked for directly."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import numpy as np
import pytest
from sqlalchemy import Engine, event

from audit.analytics.snapshot import load_snapshot
from audit.analytics.source import FrameSource
from audit.analytics.sql.source import SqlSource
from audit.auth import Actor
from audit.demo import generate
from audit.filters import Filters
from audit.reference_data import list_rooms, update_room
from audit.settings import update_setting
from audit.storage.engine import make_engine
from tests.analytics.sql_figures import assert_same
from tests.conftest import Databases


@pytest.fixture(scope="module")
def demo(databases: Databases) -> Iterator[Engine]:
    engine = make_engine(databases.postgresql())
    generate(engine, procedures=800, seed=31, until=date(2026, 6, 30))
    yield engine
    engine.dispose()


def statements(engine: Engine) -> list[str]:
    seen: list[str] = []
    event.listen(engine, "before_cursor_execute",
                 lambda conn, cursor, statement, *rest: seen.append(statement))
    return seen


@pytest.mark.parametrize("factor", [1.0, 2.0])
def test_rare_srdl_records_are_read_by_range_and_equal_the_frames(
        demo: Engine, admin: Actor, factor: float) -> None:
    records = load_snapshot(demo).records
    # thresholds that about 1 record in 100 reaches for each quantity: rarer than the
    # drill's first look at the newest 20 x limit records can fill
    for key, column in (("srdl_air_kerma_mgy", "air_kerma_mgy"),
                        ("srdl_kap_gycm2", "dap_gycm2"),
                        ("srdl_fluoro_time_s", "fluoro_time_s")):
        update_setting(demo, admin, key, float(np.nanquantile(records[column], 0.99)))
    room = list_rooms(demo)[0]
    if room["kap_correction_factor"] != factor:
        update_room(demo, admin, room["room_id"], kap_correction_factor=factor)
    snap = load_snapshot(demo)
    frame, sql = FrameSource(snap, demo), SqlSource(demo)
    seen = statements(demo)
    for filters in (Filters(), Filters.days(date(2026, 1, 1), None)):
        for limit in (3, 8, 1000):
            shown, expected = (source.flagged_records(filters, "srdl_reached", limit=limit)
                               for source in (sql, frame))
            assert_same(f"SRDL records, the newest {limit}", filters, expected, shown)
    # enough to fill the small limits, too few for their first look at the newest records
    assert len(frame.flagged_records(Filters(), "srdl_reached", limit=1000)) > 8
    assert any("MATERIALIZED" in s and "dap_gycm2 >=" in s for s in seen)  # read by range
    if factor > 1:  # some records reach the KAP SRDL only through the room's factor
        corrected = snap.records["dap_gycm2"] * np.where(
            snap.records["room_id"] == room["room_id"], factor, 1.0)
        kap = float(snap.settings.srdl_kap_gycm2)
        assert ((snap.records["dap_gycm2"] < kap) & (corrected >= kap)).any()
