"""Reference levels by ICRP 135, every figure worked out by hand, on SQLite and PostgreSQL:

- the three-room clinic of tests/analytics/analytics_data.py (1-2 records a room) gets typical
  values, the pooled medians, never DRLs;
- a site of 10 rooms of 20 records (and an 11th room of 19) gets local DRLs: the 75th
  percentile of the 10 room medians, the 11th left out; the same site with a stricter
  records-per-room setting falls back to the typical value;
- the room KAP correction factor moves the figures and the comparisons as computed by hand;
- `report drl --format json` says for each procedure what the figure is and on what basis.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Engine, select

from audit.analytics.reference_levels import (
    levels_in_force,
    local_drls,
    share_above_reference,
)
from audit.analytics.snapshot import FrameCache, load_snapshot
from audit.auth import cli_actor
from audit.filters import Filters
from audit.log.service import ProcedureLog
from audit.reference_data import update_room
from audit.settings import update_setting
from audit.storage.engine import make_engine, read_session
from audit.storage.models import Room
from tests.analytics import analytics_data
from tests.conftest import BACKENDS, Databases, valid_record

ALL = Filters()


def one(frame: Any, procedure: str, quantity: str = "dap_gycm2") -> dict[str, Any]:
    found = frame[(frame["procedure"] == procedure) & (frame["quantity"] == quantity)]
    assert len(found) == 1
    return found.iloc[0].to_dict()


def room_id(engine: Engine, name: str) -> int:
    with read_session(engine) as session:
        return int(session.scalar(select(Room.id).where(Room.name == name)))


# --- a one-site, three-room clinic: typical values --------------------------------------------

def test_a_three_room_clinic_sees_typical_values_not_drls(engine: Engine) -> None:
    analytics_data.load(ProcedureLog(engine), cli_actor())
    drls = local_drls(load_snapshot(engine), ALL)
    assert set(drls["kind"]) == {"typical"} and set(drls["figure"]) == {"typical value"}
    assert drls["drl"].isna().all() and drls["achievable"].isna().all()
    kap = one(drls, "TFESI")  # KAP 1, 2 (R1), 3, 4 (R2), 5, 6 (R3): pooled median 3.5
    assert (kap["typical"], kap["level"], kap["records"]) == (3.5, 3.5, 6)
    assert (kap["rooms"], kap["rooms_with_records"], kap["room_records_min"]) == (0, 3, 2)
    assert (kap["min_rooms"], kap["min_room_records"]) == (10, 20)
    assert kap["basis"] == ("typical value (ICRP 135): median of all 6 records from 3 room(s); "
                            "a local DRL needs at least 10 rooms with at least 20 records each, "
                            "0 qualify; KAP x each room's KAP correction factor")
    assert "drl_min_rooms = 10 (ICRP Publication 135" in kap["source"]
    assert "median 0.68 (Kim SJ, J Spinal Disord Tech 2014, n = 181)" in kap["published"]
    time = one(drls, "TFESI", "fluoro_time_s")  # 20 30 35 40 50 60: (35 + 40) / 2
    assert time["typical"] == 37.5 and not time["kap_corrected"]
    assert one(drls, "ILESI")["typical"] == pytest.approx(0.6)  # (0.5 + 0.7) / 2
    assert "mean 18 (McCormick, Pain Med 2016, n = 366)" in one(
        drls, "ILESI", "fluoro_time_s")["published"]


def test_the_room_kap_factor_changes_the_comparison(engine: Engine) -> None:
    analytics_data.load(ProcedureLog(engine), cli_actor())
    cache = FrameCache(engine)
    before = share_above_reference(cache.get(), ALL, "physician").set_index("physician")
    # typical 3.5: above are #5 (Dr. A) and #4, #10 (Dr. B); ILESI 0.6: #7 (Dr. B)
    assert before["above"].to_dict() == {"Dr. A": 1, "Dr. B": 3}

    update_room(engine, cli_actor(), room_id(engine, "R3"), kap_correction_factor=0.5)
    snap = cache.get()
    # R3's #5 and #10 count as 2.5 and 3.0: TFESI 1, 2, 2.5, 3, 3, 4 -> median 2.75
    levels = levels_in_force(snap, ALL).set_index("procedure")
    assert levels.loc["TFESI", "value"] == pytest.approx(2.75)
    # ILESI: R3's #6 counts as 0.25, R1's #7 0.7 -> median 0.475
    assert levels.loc["ILESI", "value"] == pytest.approx(0.475)
    after = share_above_reference(snap, ALL, "physician").set_index("physician")
    # above 2.75: #3 (3.0), #4 (4.0), #10 (3.0), all Dr. B; #5 (2.5, Dr. A) no longer;
    # above 0.475: #7 (0.7, Dr. B)
    assert after["above"].to_dict() == {"Dr. A": 0, "Dr. B": 4}
    # the displayed KAP itself is kept: dose statistics still read 5.0 for #5
    assert snap.records["dap_gycm2"].max() == 6.0


# --- ten rooms of twenty records: local DRLs --------------------------------------------------

#: Room "C<i>" (i = 1..10): 20 TFESI records of KAP i/10 Gy·cm² and time 10·i s. Room "C11":
#: 19 records of 50 Gy·cm² and 600 s, one short of the 20 a room needs (its median must not
#: count).
ROOMS = {f"C{i}": (20, i / 10, 10 * i) for i in range(1, 11)} | {"C11": (19, 50.0, 600)}


def _big_site_records() -> list[dict[str, Any]]:
    records = []
    for room, (count, kap, time_s) in ROOMS.items():
        for n in range(count):
            number = len(records) + 1
            records.append(valid_record(
                performed_at=f"2026-0{1 + number % 3}-{1 + n:02d}T10:00:00+00:00",
                room=room, patient_id=f"BIG{number:04d}", accession_number=f"BIG{number:04d}",
                dap_value=kap, fluoro_time_s=time_s, air_kerma_mgy=None))
    return records


@pytest.fixture(scope="module", params=BACKENDS)
def big_engine(request: pytest.FixtureRequest, databases: Databases) -> Iterator[Engine]:
    url = databases.sqlite() if request.param == "sqlite" else databases.postgresql()
    engine = make_engine(url)
    ProcedureLog(engine).log_many(_big_site_records(), cli_actor(), confirm_warnings=True,
                                  create_missing=True)
    yield engine
    engine.dispose()


def test_enough_rooms_of_enough_records_make_a_local_drl(big_engine: Engine) -> None:
    kap = one(local_drls(load_snapshot(big_engine), ALL), "TFESI")
    # room medians 0.1 ... 1.0 (C11, 19 records, left out); 75th percentile by linear
    # interpolation: position 0.75 x 9 = 6.75 -> 0.7 + 0.75 x (0.8 - 0.7) = 0.775;
    # achievable: position 4.5 -> (0.5 + 0.6) / 2 = 0.55
    assert (kap["kind"], kap["figure"]) == ("drl", "local DRL")
    assert kap["drl"] == pytest.approx(0.775) and kap["level"] == pytest.approx(0.775)
    assert kap["achievable"] == pytest.approx(0.55)
    assert np.isnan(kap["typical"])
    assert (kap["rooms"], kap["rooms_with_records"], kap["records"],
            kap["room_records_min"]) == (10, 11, 219, 20)
    # the pooled median (219 records: 20 each of 0.1 ... 1.0, 19 of 50): the 110th is 0.6
    assert kap["local_median"] == pytest.approx(0.6)
    assert kap["basis"].startswith("local DRL (ICRP 135): 75th percentile of 10 room medians, "
                                   "each room with at least 20 records (fewest 20); 219 records")
    time = one(local_drls(load_snapshot(big_engine), ALL), "TFESI", "fluoro_time_s")
    assert time["drl"] == pytest.approx(77.5) and time["achievable"] == pytest.approx(55.0)


def test_too_few_records_per_room_leaves_a_typical_value(big_engine: Engine) -> None:
    snap = load_snapshot(big_engine)
    kap = one(local_drls(snap, ALL, min_room_records=21), "TFESI")
    assert (kap["kind"], kap["rooms"], kap["rooms_with_records"]) == ("typical", 0, 11)
    assert kap["typical"] == pytest.approx(0.6) and np.isnan(kap["drl"])
    assert kap["room_records_min"] == 19  # every room counts towards the pooled median
    eleven = one(local_drls(snap, ALL, min_rooms=11), "TFESI")
    assert (eleven["kind"], eleven["rooms"]) == ("typical", 10)


def test_the_room_kap_factor_moves_the_drl(big_engine: Engine) -> None:
    c10 = room_id(big_engine, "C10")
    update_room(big_engine, cli_actor(), c10, kap_correction_factor=0.3)
    try:
        kap = one(local_drls(load_snapshot(big_engine), ALL, ("dap_gycm2",)), "TFESI")
        # C10's median 1.0 counts as 0.3: 0.1 0.2 0.3 0.3 0.4 0.5 0.6 0.7 0.8 0.9
        # 75th: 0.6 + 0.75 x 0.1 = 0.675; median: (0.4 + 0.5) / 2 = 0.45
        assert kap["drl"] == pytest.approx(0.675)
        assert kap["achievable"] == pytest.approx(0.45)
    finally:
        update_room(big_engine, cli_actor(), c10, kap_correction_factor=1.0)


# --- report drl: the figure and its basis -----------------------------------------------------

def run_report(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "audit.cli", "--db", url, "report", "drl",
                           *args], capture_output=True, text=True, timeout=120)


def test_report_drl_says_what_each_figure_is_and_on_what_basis(db_url: str) -> None:
    engine = make_engine(db_url)
    analytics_data.load(ProcedureLog(engine), cli_actor())
    done = run_report(db_url, "--format", "json")
    assert done.returncode == 0, done.stderr
    groups = {(g["procedure"], g["quantity"]): g for g in json.loads(done.stdout)["groups"]}
    kap = groups[("TFESI", "dap_gycm2")]
    assert {k: kap[k] for k in ("kind", "figure", "level", "typical", "drl", "rooms",
                                "rooms_with_records", "records", "room_records_min",
                                "min_rooms", "min_room_records", "kap_corrected")} == {
        "kind": "typical", "figure": "typical value", "level": 3.5, "typical": 3.5,
        "drl": None, "rooms": 0, "rooms_with_records": 3, "records": 6, "room_records_min": 2,
        "min_rooms": 10, "min_room_records": 20, "kap_corrected": True}
    assert kap["basis"].startswith("typical value (ICRP 135)")
    assert "ICRP Publication 135" in kap["source"] and "Kim SJ" in kap["published"]

    # a site that lowers the thresholds (3 rooms of 1 record) reads a DRL, and says so
    update_setting(engine, cli_actor(), "drl_min_rooms", 3)
    update_setting(engine, cli_actor(), "drl_min_room_records", 1)
    engine.dispose()
    groups = {(g["procedure"], g["quantity"]): g
              for g in json.loads(run_report(db_url, "--format", "json").stdout)["groups"]}
    kap = groups[("TFESI", "dap_gycm2")]  # room medians 1.5, 3.5, 5.5
    assert (kap["kind"], kap["drl"], kap["achievable"], kap["rooms"]) == ("drl", 4.5, 3.5, 3)
    assert (kap["min_rooms"], kap["min_room_records"]) == (3, 1)
    assert "drl_min_rooms = 3 (ICRP Publication 135" in kap["source"]

    csv_out = run_report(db_url, "--format", "csv").stdout.splitlines()
    assert {"figure", "rooms", "room_records_min", "basis", "source"} <= set(
        csv_out[0].split(","))
    table = run_report(db_url).stdout
    assert "local DRL" in table and "typical value" in table  # ILESI: 2 rooms
    assert "basis (ICRP 135" in table and "thresholds: drl_min_rooms = 3" in table
