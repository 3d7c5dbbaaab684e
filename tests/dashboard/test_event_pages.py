"""The pages' parts built on irradiation events (issue 13), under Streamlit's AppTest on both
databases: a report's events and warnings on Dose reports, pulsed use from the C-arm on Dose,
studies sent as several reports on Reconciliation."""

from __future__ import annotations

import json
from pathlib import Path

import pydicom
import pytest
from sqlalchemy import Engine

from audit.auth import Actor
from audit.dose_reports.store import DoseImporter
from audit.vocab import Role
from tests.analytics.test_events import imported  # noqa: F401 (a fixture)
from tests.dashboard.conftest import open_tab
from tests.dashboard.test_dose_pages import QUALITY, TECH, app_db, page  # noqa: F401
from tests.dose_reports.dose_helpers import REAL_FILES
from tests.dose_reports.test_event_units import set_unit

RSO = Actor("rso1", Role.RSO)


@pytest.mark.usefixtures("app_db")
def test_dose_reports_page_shows_a_reports_events_with_labels_and_its_warnings(
        engine: Engine, admin: Actor, tmp_path: Path) -> None:
    importer = DoseImporter(engine, admin)
    assert importer.import_path(REAL_FILES[0]).status == "ok"
    ds = pydicom.dcmread(REAL_FILES[2])
    set_unit(ds, "113791", "beats/fortnight")
    ds.save_as(tmp_path / "odd.dcm")
    assert importer.import_path(tmp_path / "odd.dcm").status == "ok"

    app = page("dose_reports.py", TECH)
    assert not app.exception
    box = app.selectbox(key="report_events_report")
    assert box.value == 2  # the newest first
    assert [w.value for w in app.warning] == [
        "Left out: Pulse Rate (113791) left out of 24 irradiation events: unit "
        "'beats/fortnight' is not a known pulse/s unit"]
    events = app.dataframe[-1].value
    assert len(events) == 24 and events["sequence"].tolist() == list(range(1, 25))
    assert set(events["event_type"]) == {"Fluoroscopy", "Stationary"}
    assert events["pulse_rate_pps"].isna().all()
    assert events["kvp"].iloc[0] == 77.0
    shown = {c.get("label") for c in json.loads(app.dataframe[-1].proto.columns).values()}
    assert {"Event type", "Fluoro mode", "Pulse rate (pulses/s)", "Tube voltage (kVp)",
            "Tube current (mA)", "Field area (cm²)", "KAP (Gy·cm²)", "Ka,r (mGy)",
            "Exposure time (s)", "Primary angle (°)"} <= shown

    box.set_value(1).run()
    assert not app.warning
    assert len(app.dataframe[-1].value) == 25
    assert set(app.dataframe[-1].value["fluoro_mode"].dropna()) == {"Pulsed"}


@pytest.mark.usefixtures("app_db")
def test_dose_page_shows_pulsed_use_from_the_carm_beside_the_form(
        imported: dict) -> None:  # noqa: F811
    app = page("dose.py", RSO)
    assert not app.exception, [e.message for e in app.exception]
    assert not any("pulsed_event_share" in f.value.columns for f in app.dataframe)  # lazy tab
    open_tab(app, "d_tab", "C-arm technique")
    assert not app.exception, [e.message for e in app.exception]
    [use] = [f.value for f in app.dataframe if "pulsed_event_share" in f.value.columns]
    tfesi = use.set_index("procedure").loc["TFESI"]
    assert tfesi["pulsed_event_share"] == pytest.approx(80.0)  # shown as a percentage
    assert tfesi["form_pulsed_share"] == pytest.approx(50.0)
    assert "Not in the log" in set(use["procedure"]) and "All procedures" in set(
        use["procedure"])
    [per] = [f.value for f in app.dataframe if "median_events" in f.value.columns]
    assert per["median_events"].tolist() == [3.0]
    specs = [e.proto.spec for e in app.get("vega_lite_chart")]
    assert any("Share of pulsed fluoroscopy time" in spec for spec in specs)


@pytest.mark.usefixtures("app_db")
def test_reconciliation_compares_a_split_study_with_the_log_by_the_sum(
        imported: dict) -> None:  # noqa: F811
    app = page("reconciliation.py", QUALITY)
    assert not app.exception
    [split] = [f.value for f in app.dataframe if "report_dap_gycm2" in f.value.columns]
    assert split["record_id"].tolist() == [imported["b"]]
    assert split["agrees"].tolist() == [True]
    assert split["reports"].tolist() == [2]
    assert any("agrees with the reports' sum" in c.value for c in app.caption)
