"""Investigation levels: the local percentile of the procedure type, never below the factor x
median floor, only from the minimum sample; worked out by hand on ten records; and on a
realistic demo set, open alerts stay at most 5 per 100 procedures. On both databases."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import Engine

from audit.alerts.detection import investigation_levels
from audit.alerts.store import list_alerts, refresh_alerts
from audit.alerts.summary import alert_rates
from audit.analytics.snapshot import load_snapshot
from audit.auth import Actor
from audit.demo import generate
from audit.settings import Settings, update_setting
from tests.alerts.test_alerts import RSO, log_all, tfesi

#: Ten TFESI records, KAP 1..10 Gy·cm² (one patient each, a month apart so no cumulative sum
#: reaches anything); time and Ka,r are the same in all ten.
TEN = [tfesi(f"K{k}", f"PAT-{k:02d}", f"{k:02d}-01", float(k)) for k in range(1, 11)]


def configure(engine: Engine, admin: Actor, **values: float) -> None:
    for key, value in values.items():
        update_setting(engine, admin, key, value)


def investigation_kap(engine: Engine) -> list[tuple[float, float]]:
    """(value, threshold) of each open KAP investigation alert, by value."""
    alerts = list_alerts(engine, RSO, kind="investigation", status="open")
    kap = alerts[alerts["quantity"] == "dap_gycm2"]
    return sorted(zip(kap["value"].tolist(), kap["threshold"].tolist(), strict=True))


def test_defaults_are_the_99th_percentile_from_100_records_and_3x_the_median() -> None:
    defaults = Settings()
    assert (defaults.investigation_percentile, defaults.investigation_min_records,
            defaults.investigation_factor) == (99, 100, 3)


def test_seeded_settings_name_their_source(engine: Engine) -> None:
    snap = load_snapshot(engine)
    assert snap.settings.investigation_percentile == 99
    assert snap.settings.investigation_min_records == 100
    assert "local QA choice" in snap.setting_sources["investigation_percentile"]
    assert "NCRP Report 168" in snap.setting_sources["investigation_min_records"]
    assert "never below" in snap.setting_sources["investigation_factor"]


def test_level_is_the_local_percentile_above_the_floor(engine: Engine, admin: Actor) -> None:
    # KAP 1..10: median 5.5; 90th percentile (linear) = 9 + 0.1 x (10 - 9) = 9.1; floor
    # 1.5 x 5.5 = 8.25 < 9.1, so the level is 9.1 and only KAP 10 is above it.
    configure(engine, admin, investigation_min_records=10, investigation_percentile=90,
              investigation_factor=1.5)
    log_all(engine, TEN, refresh_each=False)
    assert investigation_kap(engine) == [(10.0, 9.1)]
    levels = investigation_levels(load_snapshot(engine)).set_index(["procedure", "quantity"])
    kap = levels.loc[("TFESI", "dap_gycm2")]
    assert (kap["records"], kap["median"], kap["percentile"], kap["floor"], kap["level"]) == \
        (10, 5.5, pytest.approx(9.1), 8.25, 9.1)
    assert "90th percentile" in kap["source"] and "1.5 x their median" in kap["source"]
    # time and Ka,r are the same in all ten: level = floor 1.5 x the value, nobody above it
    alerts = list_alerts(engine, RSO, kind="investigation")
    assert set(alerts["quantity"]) == {"dap_gycm2"}


def test_floor_wins_where_the_percentile_is_lower(engine: Engine, admin: Actor) -> None:
    # 80th percentile = 8 + 0.2 x 1 = 8.2 < floor 1.5 x 5.5 = 8.25: level 8.25, KAP 9 and 10
    configure(engine, admin, investigation_min_records=10, investigation_percentile=80,
              investigation_factor=1.5)
    log_all(engine, TEN, refresh_each=False)
    assert investigation_kap(engine) == [(9.0, 8.25), (10.0, 8.25)]


def test_below_the_minimum_sample_no_investigation_alert(engine: Engine, admin: Actor) -> None:
    configure(engine, admin, investigation_min_records=11, investigation_percentile=90,
              investigation_factor=1.5)
    log_all(engine, TEN, refresh_each=False)
    assert investigation_kap(engine) == []
    kap = investigation_levels(load_snapshot(engine)).set_index(
        ["procedure", "quantity"]).loc[("TFESI", "dap_gycm2")]
    assert kap["records"] == 10 and kap["level"] != kap["level"]  # nan: no level
    assert "no level: 10 TFESI records with dap_gycm2, 11 needed" in kap["source"]
    # with the minimum at 10 the level appears, and the alerts follow
    update_setting(engine, admin, "investigation_min_records", 10)
    refresh_alerts(engine, load_snapshot(engine))
    assert investigation_kap(engine) == [(10.0, 9.1)]


def test_substantial_dose_levels_apply_below_the_minimum_sample(engine: Engine) -> None:
    log_all(engine, [tfesi("S1", "PAT-S", "03-01", 600.0, fluoro_time_s=3700)],
            refresh_each=False)
    alerts = list_alerts(engine, RSO)
    assert set(alerts["kind"]) == {"srdl", "cumulative"}  # 600 >= 500 and >= 200 in 84 days


def test_a_setting_that_cannot_be_used_is_named(engine: Engine, admin: Actor) -> None:
    from audit.errors import ValidationFailed

    configure(engine, admin, investigation_percentile=100)  # the maximum: nothing is above
    with pytest.raises(ValidationFailed) as info:
        investigation_levels(load_snapshot(engine))
    assert info.value.errors[0].field == "investigation_percentile"


@pytest.mark.slow
def test_realistic_demo_data_raise_at_most_5_open_alerts_per_100_procedures(
        engine: Engine) -> None:
    """The figure bench/bench_alert_rate.py prints for 20,000 and 1,000,000 procedures, held on
    a smaller set (not timed)."""
    generate(engine, procedures=5000, seed=7, until=date(2026, 6, 30))
    snap = load_snapshot(engine)
    refresh_alerts(engine, snap)
    rates = alert_rates(engine, RSO, snap).set_index("kind")
    assert rates.loc["all", "procedures"] == 5000
    assert rates.loc["all", "open_per_100"] <= 5.0, rates
    assert 0 < rates.loc["investigation", "open_per_100"] <= 3.5, rates


def test_kap_alerts_compare_the_room_corrected_kap(engine: Engine, admin: Actor) -> None:
    """A room whose display reads low (factor 1.25, set from a calibration) must not hide a
    high-dose case: 450 Gy·cm² displayed is 562.5 Gy·cm² corrected, above the 500 SRDL."""
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from audit import reference_data
    from audit.storage.models import Room

    log_all(engine, [tfesi("R1", "PAT-R1", "03-01", 450.0)], refresh_each=False)
    kap_srdl = list_alerts(engine, RSO, kind="srdl")
    assert "dap_gycm2" not in set(kap_srdl["quantity"])  # 450 displayed, factor 1: below 500
    with Session(engine) as s:
        room_id = s.scalar(select(Room.id))
    reference_data.update_room(engine, admin, room_id, kap_correction_factor=1.25)
    refresh_alerts(engine, load_snapshot(engine))
    kap_srdl = list_alerts(engine, RSO, kind="srdl")
    kap_srdl = kap_srdl[kap_srdl["quantity"] == "dap_gycm2"]
    assert kap_srdl["value"].tolist() == [562.5]
    assert kap_srdl["threshold"].tolist() == [500.0]
