"""The Data quality page's lists of rare records, from SQL. The records that reached a
substantial radiation dose level (SRDL): equal to the frame's when the records are rare, read
through the record facts' indexes on each quantity (migration 0026) instead of a walk back
through every record, and when a room's KAP correction factor puts a stored KAP below the SRDL
above it. The records of a flag with a partial index (cervical particulate TFESI, uptake not
repositioned, pregnant) under a name filter: read from the flag's rows first. PostgreSQL only,
asked for directly."""

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
from audit.log.service import ProcedureLog
from audit.reference_data import list_rooms, update_room
from audit.settings import update_setting
from audit.storage.engine import make_engine
from tests.analytics.sql_figures import assert_same
from tests.conftest import Databases, valid_record


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
    # record ids: filters the count summary does not hold, so its window cannot bound the
    # list (count_summary.list_window) and the range is read
    by_id = Filters(record_ids=tuple(int(i) for i in snap.records["id"]))
    for filters in (Filters(), Filters.days(date(2026, 1, 1), None), by_id):
        for limit in (3, 8, 1000):
            shown, expected = (source.flagged_records(filters, "srdl_reached", limit=limit)
                               for source in (sql, frame))
            assert_same(f"SRDL records, the newest {limit}", filters, expected, shown)
    # enough to fill the small limits, too few for their first look at the newest records
    assert len(frame.flagged_records(Filters(), "srdl_reached", limit=1000)) > 8
    assert any("MATERIALIZED" in s and "dap_gycm2 >=" in s for s in seen)  # read by range
    assert any("rec.performed_at >=" in s for s in seen)  # the summary's window
    if factor > 1:  # some records reach the KAP SRDL only through the room's factor
        corrected = snap.records["dap_gycm2"] * np.where(
            snap.records["room_id"] == room["room_id"], factor, 1.0)
        kap = float(snap.settings.srdl_kap_gycm2)
        assert ((snap.records["dap_gycm2"] < kap) & (corrected >= kap)).any()


@pytest.mark.parametrize("flag", ["particulate_cervical_tfesi", "uptake_not_repositioned",
                                  "pregnant"])
def test_a_rare_flags_records_under_a_name_are_read_from_its_own_rows(
        demo: Engine, admin: Actor, flag: str) -> None:
    # Under a physician, room or procedure the flag's rows (its partial index) are read alone
    # first, in a subquery PostgreSQL plans by itself, then the filters among them; under a
    # period alone the walk back in time along the partial index stays. Either way the list
    # is the frame's.
    if flag == "particulate_cervical_tfesi":  # about 1 record in 1,000: log one
        ProcedureLog(demo).log(valid_record(
            site="Demo Riverside Spine Center", room="Demo OR 1", physician="Dr. Demo Chen",
            technologist="demo-tech1", levels=["C5", "C6"], injectate="triamcinolone"),
            admin, confirm_warnings=True)
    snap = load_snapshot(demo)
    frame, sql = FrameSource(snap, demo), SqlSource(demo, shared=False)
    names = ["Dr. Demo Chen"]
    cases = [(Filters(physicians=(names[0],)), True),
             (Filters.days(date(2026, 1, 1), None, rooms=(snap.rooms["label"].iloc[0],),
                           procedures=("TFESI", "ILESI")), True),
             (Filters.days(date(2025, 7, 1), date(2026, 3, 31)), False),
             (Filters(), False)]
    found = 0
    seen = statements(demo)
    for filters, fenced in cases:
        seen.clear()
        shown = sql.flagged_records(filters, flag, limit=5)
        listed = [s for s in seen if "ORDER BY" in s and "LIMIT" in s]
        assert listed and all((") AS flagged" in s) == fenced for s in listed), filters
        assert_same(f"{flag} records", filters, frame.flagged_records(filters, flag, limit=5),
                    shown)
        found += len(shown)
    assert found  # the demo holds flagged records under these filters
