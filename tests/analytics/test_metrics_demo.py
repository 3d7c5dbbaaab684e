"""Metrics on the demo data: medians and 75th percentiles equal numpy's on the same rows, and
the two physicians the demo is built to show (audit.demo) stand out without any filter."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import date

import numpy as np
import pytest
from sqlalchemy import Engine, case, select

from audit.analytics.compliance import compliance
from audit.analytics.dose_stats import dose_stats
from audit.analytics.reference_levels import local_drls
from audit.analytics.safety import SAFETY_FLAGS, safety_flags
from audit.analytics.scorecard import physician_scorecard
from audit.analytics.snapshot import Snapshot, load_snapshot
from audit.demo import HIGH_DOSE_PHYSICIAN, OMITS_CONTRAST, generate
from audit.filters import Filters
from audit.storage.engine import make_engine, read_session
from audit.storage.models import Procedure, ProcedureType, Room
from tests.conftest import BACKENDS, Databases

ALL = Filters()
HIGH_DOSE = HIGH_DOSE_PHYSICIAN
pytestmark = pytest.mark.slow  # 4000 demo procedures per database


@pytest.fixture(scope="module", params=BACKENDS)
def demo_engine(request: pytest.FixtureRequest, databases: Databases) -> Iterator[Engine]:
    url = databases.sqlite() if request.param == "sqlite" else databases.postgresql()
    engine = make_engine(url)
    generate(engine, procedures=4000, seed=7, until=date(2026, 6, 30))
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def snap(demo_engine: Engine) -> Snapshot:
    return load_snapshot(demo_engine)


def _rows(engine: Engine) -> list[tuple]:
    """The same rows, read independently of the frame (ORM, final records only)."""
    with read_session(engine) as session:
        return session.execute(
            select(ProcedureType.code, Room.name,
                   # an ultrasound-guided record's stored 0 s is no fluoro time (no X-rays)
                   case((Procedure.guidance != "ultrasound", Procedure.fluoro_time_s)),
                   Procedure.dap_gycm2, Procedure.air_kerma_mgy, Procedure.id)
            .join(ProcedureType, ProcedureType.id == Procedure.procedure_type_id)
            .join(Room, Room.id == Procedure.room_id)
            .where(Procedure.status == "final")).all()


def test_dose_percentiles_equal_numpy(demo_engine: Engine, snap: Snapshot) -> None:
    values: dict[tuple[str, int], list[float]] = defaultdict(list)
    for code, _room, time_s, dap, kerma, _ in _rows(demo_engine):
        for index, value in enumerate((time_s, dap, kerma)):
            if value is not None:
                values[(code, index)].append(value)
    stats = dose_stats(snap, ALL)
    checked = 0
    for record in stats.itertuples():
        for index, quantity in enumerate(("fluoro_time_s", "dap_gycm2", "air_kerma_mgy")):
            expected = np.percentile(np.array(values[(record.procedure, index)]), [50, 75])
            got = (getattr(record, f"{quantity}_median"), getattr(record, f"{quantity}_p75"))
            assert got == tuple(expected), (record.procedure, quantity)  # exact, not approx
            assert getattr(record, f"{quantity}_n") == len(values[(record.procedure, index)])
            checked += 1
    assert checked == 30


def test_local_drl_equals_numpy_over_room_medians(demo_engine: Engine, snap: Snapshot) -> None:
    with read_session(demo_engine) as session:
        factor = dict(session.execute(select(Room.name, Room.kap_correction_factor)).all())
    assert set(factor.values()) != {1.0}  # the demo's OR 1 has a KAP correction factor
    by_room: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for code, room, _time, dap, _kerma, _ in _rows(demo_engine):
        if dap is not None:  # no KAP without X-rays (ultrasound guidance)
            by_room[code][room].append(dap * factor[room])  # reference levels: corrected KAP
    # the demo has 5 rooms: under ICRP 135's thresholds (10 rooms) every figure is typical
    assert set(local_drls(snap, ALL, ("dap_gycm2",))["kind"]) == {"typical"}
    drls = local_drls(snap, ALL, ("dap_gycm2",), min_rooms=5)  # rooms of >= 20 records
    kinds = set()
    for record in drls.itertuples():
        rooms = by_room[record.procedure].values()
        counted = [v for v in rooms if len(v) >= 20]
        assert (record.rooms, record.rooms_with_records) == (len(counted), len(rooms))
        assert record.kap_corrected
        if len(counted) == 5:
            medians = np.array([np.percentile(v, 50) for v in counted])
            assert record.kind == "drl"
            assert record.drl == np.percentile(medians, 75)
            assert record.achievable == np.percentile(medians, 50)
            assert record.room_records_min == min(len(v) for v in counted)
        else:  # a rare procedure: a room under 20 records leaves a typical value
            assert record.kind == "typical"
            assert record.typical == np.percentile(np.concatenate(list(rooms)), 50)
        kinds.add(record.kind)
    assert kinds == {"drl", "typical"}


def test_the_physician_who_omits_contrast_stands_out(snap: Snapshot) -> None:
    rates = compliance(snap, ALL, "physician").set_index("physician")
    others = rates.drop(index=OMITS_CONTRAST)
    assert rates["rate"].idxmin() == OMITS_CONTRAST
    # not noise: her whole 95% interval lies below every colleague's
    assert rates.loc[OMITS_CONTRAST, "ci_high"] < others["ci_low"].min()


def test_the_high_dose_physician_stands_out(snap: Snapshot) -> None:
    card = physician_scorecard(snap, ALL).set_index("physician")
    others = card.drop(index=HIGH_DOSE)
    assert card["kap_per_level_ratio"].idxmax() == HIGH_DOSE
    assert card.loc[HIGH_DOSE, "kap_per_level_ratio"] > 2 * others["kap_per_level_ratio"].max()
    assert card["share_above"].idxmax() == HIGH_DOSE
    assert card.loc[HIGH_DOSE, "time_per_level_ratio"] > others["time_per_level_ratio"].max()


def test_demo_has_something_for_every_flag(snap: Snapshot) -> None:
    flags = safety_flags(snap, ALL).iloc[0]
    for name in SAFETY_FLAGS:
        assert flags[name] > 0, name
