"""Compliance and dose metrics: every figure of the hand-built data set
(tests/analytics/analytics_data.py) checked against the value worked out by hand, on SQLite and
PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import numpy as np
import pytest
from sqlalchemy import Engine

from audit.analytics.compliance import compliance, compliance_records, p_chart
from audit.analytics.data_quality import completeness
from audit.analytics.dose_stats import dose_stats, technique_use
from audit.analytics.reference_levels import (
    levels_in_force,
    local_drls,
    room_medians,
    share_above_reference,
)
from audit.analytics.safety import safety_flags
from audit.analytics.snapshot import FrameCache, Snapshot, load_snapshot
from audit.auth import cli_actor
from audit.errors import ValidationFailed
from audit.filters import Filters
from audit.log.service import ProcedureLog
from audit.storage.engine import make_engine
from tests.analytics import analytics_data
from tests.conftest import BACKENDS, Databases

ALL = Filters()


@pytest.fixture(scope="module", params=BACKENDS)
def hand_engine(request: pytest.FixtureRequest, databases: Databases) -> Iterator[Engine]:
    url = databases.sqlite() if request.param == "sqlite" else databases.postgresql()
    engine = make_engine(url)
    analytics_data.load(ProcedureLog(engine), cli_actor())
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def snap(hand_engine: Engine) -> Snapshot:
    return load_snapshot(hand_engine)


def row(frame, column: str, value: str) -> dict:
    found = frame[frame[column] == value]
    assert len(found) == 1, f"{value!r} not found once in {frame[column].tolist()}"
    return found.iloc[0].to_dict()


def test_voided_records_are_not_in_the_frame(snap: Snapshot) -> None:
    assert len(snap.records) == 9
    assert snap.records["dap_gycm2"].max() == 6.0  # the voided record had 100


def test_overall_compliance(snap: Snapshot) -> None:
    # eligible: TFESI 1,2,3,4,5,10 and ILESI 6,7 (MBB is "recommended"); compliant 1, 6, 10;
    # excepted 4; non-compliant 2, 3, 5, 7; rate 3 / (8 - 1)
    result = compliance(snap, ALL).iloc[0].to_dict()
    assert (result["eligible"], result["compliant"], result["excepted"],
            result["non_compliant"]) == (8, 3, 1, 4)
    assert result["rate"] == pytest.approx(3 / 7)
    assert result["ci_low"] == pytest.approx(0.158220, abs=1e-6)  # Wilson, z = 1.96
    assert result["ci_high"] == pytest.approx(0.749542, abs=1e-6)


def test_compliance_by_physician_room_procedure_month(snap: Snapshot) -> None:
    by_physician = compliance(snap, ALL, "physician")
    a, b = row(by_physician, "physician", "Dr. A"), row(by_physician, "physician", "Dr. B")
    assert (a["eligible"], a["compliant"], a["excepted"], a["non_compliant"]) == (3, 1, 0, 2)
    assert a["rate"] == pytest.approx(1 / 3)
    assert (a["ci_low"], a["ci_high"]) == pytest.approx((0.061492, 0.792340), abs=1e-6)
    assert (b["eligible"], b["compliant"], b["excepted"], b["non_compliant"]) == (5, 2, 1, 2)
    assert b["rate"] == pytest.approx(0.5)
    assert (b["ci_low"], b["ci_high"]) == pytest.approx((0.150039, 0.849961), abs=1e-6)

    by_room = compliance(snap, ALL, "room")
    assert [tuple(r) for r in by_room[["room", "eligible", "compliant", "excepted"]]
            .itertuples(index=False)] == [("R1", 3, 1, 0), ("R2", 2, 0, 1), ("R3", 3, 2, 0)]

    by_procedure = compliance(snap, ALL, "procedure")
    assert set(by_procedure["procedure"]) == {"TFESI", "ILESI"}  # MBB is not eligible
    assert row(by_procedure, "procedure", "TFESI")["rate"] == pytest.approx(2 / 5)
    assert row(by_procedure, "procedure", "ILESI")["rate"] == pytest.approx(1 / 2)

    by_month = compliance(snap, ALL, "month")
    assert by_month["month"].tolist() == ["2026-01", "2026-02", "2026-03"]
    assert by_month["eligible"].tolist() == [2, 3, 3]
    assert by_month["compliant"].tolist() == [1, 0, 2]
    assert by_month["excepted"].tolist() == [0, 1, 0]


def test_filters_narrow_every_figure(snap: Snapshot) -> None:
    february = compliance(snap, Filters.days(date(2026, 2, 1), date(2026, 2, 28)))
    assert february.iloc[0]["eligible"] == 3
    only_r3 = compliance(snap, Filters(rooms=("R3",), physicians=("Dr. B",)))
    assert only_r3.iloc[0][["eligible", "compliant"]].tolist() == [2, 2]
    with pytest.raises(ValidationFailed) as info:
        compliance(snap, Filters(physicians=("Dr. Nobody",)))
    assert info.value.errors[0].field == "physician"
    assert "Dr. A" in info.value.errors[0].message


def test_p_chart_limits(snap: Snapshot) -> None:
    chart = p_chart(snap, ALL)
    centre = 3 / 7
    assert chart["n"].tolist() == [2, 2, 3]
    assert chart["rate"].tolist() == pytest.approx([0.5, 0.0, 2 / 3])
    assert chart["centre"].tolist() == pytest.approx([centre] * 3)
    sigma = np.sqrt(centre * (1 - centre) / np.array([2, 2, 3]))
    assert chart["ucl"].tolist() == pytest.approx(np.minimum(centre + 3 * sigma, 1).tolist())
    assert chart["lcl"].tolist() == pytest.approx([0.0, 0.0, 0.0])


def test_non_compliant_records_say_why(snap: Snapshot) -> None:
    listed = compliance_records(snap, ALL, "non_compliant")
    why = dict(zip(listed["performed_at"].dt.strftime("%m-%d"), listed["why"], strict=True))
    assert why == {"01-20": "contrast not confirmed", "02-05": "no real-time contrast",
                   "02-15": "too few views", "03-02": "no saved image"}
    excepted = compliance_records(snap, ALL, "excepted")
    assert excepted["performed_at"].dt.strftime("%m-%d").tolist() == ["02-10"]
    of_b = compliance_records(snap, ALL, "non_compliant", group=("physician", "Dr. B"))
    assert sorted(of_b["why"]) == ["no real-time contrast", "no saved image"]


def test_dose_statistics_by_procedure(snap: Snapshot) -> None:
    stats = dose_stats(snap, ALL)
    tfesi = row(stats, "procedure", "TFESI")
    # KAP 1..6: median 3.5; 75th: index 3.75 -> 4 + 0.75 x (5 - 4) = 4.75
    assert (tfesi["dap_gycm2_n"], tfesi["dap_gycm2_median"], tfesi["dap_gycm2_p75"]) == \
        (6, 3.5, 4.75)
    # time 20 30 35 40 50 60: median 37.5; 75th 40 + 0.75 x 10 = 47.5
    assert (tfesi["fluoro_time_s_median"], tfesi["fluoro_time_s_p75"]) == (37.5, 47.5)
    # Ka,r only on 3 records (10 20 30): median 20, 75th 25
    assert (tfesi["air_kerma_mgy_n"], tfesi["air_kerma_mgy_median"],
            tfesi["air_kerma_mgy_p75"]) == (3, 20.0, 25.0)
    ilesi = row(stats, "procedure", "ILESI")
    assert ilesi["dap_gycm2_median"] == pytest.approx(0.6)
    assert ilesi["air_kerma_mgy_n"] == 0 and np.isnan(ilesi["air_kerma_mgy_median"])


def test_dose_per_level(snap: Snapshot) -> None:
    stats = dose_stats(snap, ALL, by=("procedure", "levels"), quantities=("dap_gycm2",),
                               per_level=True)
    tfesi = row(stats, "procedure", "TFESI")
    assert tfesi["levels"] == "2"
    assert tfesi["dap_gycm2_per_level_median"] == pytest.approx(1.75)


def test_local_drl_by_the_icrp_135_method(snap: Snapshot) -> None:
    medians = room_medians(snap, ALL)
    tfesi = medians[medians["procedure"] == "TFESI"]
    assert dict(zip(tfesi["room"], tfesi["median"], strict=True)) == {"R1": 1.5, "R2": 3.5,
                                                                      "R3": 5.5}
    # thresholds lowered for this check: 3 rooms of at least 1 record make a DRL
    drls = local_drls(snap, ALL, ("dap_gycm2",), min_room_records=1, min_rooms=3)
    tfesi = row(drls, "procedure", "TFESI")
    # room medians 1.5, 3.5, 5.5: DRL = 75th percentile = 4.5, achievable = median = 3.5
    assert (tfesi["kind"], tfesi["rooms"], tfesi["drl"], tfesi["achievable"]) == \
        ("drl", 3, 4.5, 3.5)
    ilesi = row(drls, "procedure", "ILESI")  # 2 rooms: a typical value, the local median
    assert (ilesi["kind"], ilesi["rooms"]) == ("typical", 2)
    assert ilesi["level"] == pytest.approx(0.6) and np.isnan(ilesi["drl"])


def test_share_above_the_reference_level(snap: Snapshot) -> None:
    # the default thresholds (10 rooms of 20 records): every figure is a typical value
    levels = levels_in_force(snap, ALL)
    assert row(levels, "procedure", "TFESI")["value"] == 3.5  # median of 1, 2, 3, 4, 5, 6
    assert row(levels, "procedure", "TFESI")["kind"] == "typical"
    # TFESI above 3.5: #4, #5, #10; ILESI above 0.6: #7; MBB typical 2.5: none above
    by_physician = share_above_reference(snap, ALL, "physician")
    a, b = row(by_physician, "physician", "Dr. A"), row(by_physician, "physician", "Dr. B")
    assert (a["records"], a["above"]) == (4, 1)
    assert (b["records"], b["above"]) == (5, 3)
    assert b["share_above"] == pytest.approx(0.6)
    overall = share_above_reference(snap, ALL).iloc[0]
    assert (overall["records"], overall["above"]) == (9, 4)


def test_technique_and_completeness(snap: Snapshot) -> None:
    technique = technique_use(snap, ALL).iloc[0]
    assert (technique["pulsed_recorded"], technique["pulsed"]) == (3, 2)
    assert technique["pulsed_rate"] == pytest.approx(2 / 3)
    quality = completeness(snap, ALL).iloc[0]
    assert (quality["records"], quality["missing_dap"], quality["missing_air_kerma"]) == (9, 0, 6)
    assert quality["with_warnings"] >= 1  # not confirmed where required: a confirmed warning


def test_safety_flags(snap: Snapshot) -> None:
    flags = safety_flags(snap, ALL).iloc[0]
    assert flags["pregnant"] == 1
    assert flags["srdl_reached"] == 0  # the 100 Gy·cm² record is void; 500 is the SRDL
    assert flags["levels_over_limit"] == 0


def test_frame_follows_log_amend_and_void(hand_engine: Engine) -> None:
    cache = FrameCache(hand_engine)
    before = cache.get()
    service = ProcedureLog(hand_engine)
    actor = cli_actor()
    new = service.log(analytics_data._record(11, "CAUDAL", "R1", "Dr. A", "03-20", 12, 0.4,
                                             None, levels=None, laterality=None),
                      actor, confirm_warnings=True, create_missing=True).record_id
    after_log = cache.get()
    assert len(after_log.records) == len(before.records) + 1
    service.amend(new, {"dap_value": 0.9}, actor, version=1, reason="typo",
                  confirm_warnings=True)
    amended = cache.get().records
    assert amended.loc[amended["id"] == new, "dap_gycm2"].item() == 0.9
    service.void(new, actor, version=2, reason="test record")
    assert new not in cache.get().records["id"].tolist()
    assert len(cache.get().records) == len(before.records)
