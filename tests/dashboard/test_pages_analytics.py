"""The audit pages under Streamlit's AppTest: each chart's Vega-Lite spec and data, the tables
beside them, the filters, role gating, and acknowledging an alert; on both databases."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from sqlalchemy import Engine
from streamlit.testing.v1 import AppTest

from audit.alerts.store import list_alerts
from audit.analytics.compliance import compliance, p_chart
from audit.analytics.dose_stats import dose_distribution
from audit.analytics.reference_levels import reference_column
from audit.analytics.safety import SAFETY_FLAGS, safety_flags
from audit.analytics.snapshot import date_range, load_snapshot
from audit.auth import Actor, Permission
from audit.demo import HIGH_DOSE_PHYSICIAN, OMITS_CONTRAST, generate
from audit.filters import Filters
from audit.storage.engine import make_engine
from audit.vocab import Role
from dashboard.analytics import months_back
from dashboard.navigation import PAGES, pages_for
from tests.conftest import BACKENDS, Databases
from tests.dashboard.conftest import open_tab, texts

VIEWS = Path(__file__).resolve().parents[2] / "dashboard" / "views"
RSO = Actor("rso1", Role.RSO)
QUALITY = Actor("qo1", Role.QUALITY_OFFICER)


@pytest.fixture(scope="module", params=BACKENDS)
def demo(request: pytest.FixtureRequest, databases: Databases) -> Iterator[tuple[str, Engine]]:
    url = databases.sqlite() if request.param == "sqlite" else databases.postgresql()
    engine = make_engine(url)
    generate(engine, procedures=3000, seed=3, until=date(2026, 6, 30))
    yield url, engine
    engine.dispose()


def page(url: str, name: str, actor: Actor, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv("FLUORO_AUDIT_DB", url)
    at = AppTest.from_file(str(VIEWS / f"{name}.py"), default_timeout=60)
    at.session_state["actor"] = actor
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def charts(at: AppTest) -> list[tuple[dict, pd.DataFrame | None]]:
    """Each Vega-Lite chart as (spec, its first dataset)."""
    found = []
    for element in at.get("vega_lite_chart"):
        proto = element.proto
        data = None
        if proto.datasets:
            data = pa.ipc.open_stream(proto.datasets[0].data.data).read_pandas()
        found.append((json.loads(proto.spec), data))
    return found


def fields(spec: dict) -> set[str]:
    """Every encoded field of a (layered) spec."""
    out: set[str] = set()
    for layer in spec.get("layer", [spec]):
        for channel in layer.get("encoding", {}).values():
            if isinstance(channel, dict) and "field" in channel:
                out.add(channel["field"])
    return out


@pytest.fixture(autouse=True)
def _fresh_resources() -> Iterator[None]:
    """Each test gets its own engine and frame (st.cache_resource outlives an AppTest)."""
    import streamlit as st

    st.cache_resource.clear()
    yield
    st.cache_resource.clear()


def test_audit_pages_are_registered_for_dashboard_roles() -> None:
    audit = {s.module: s for s in PAGES if s.section == "Audit"}
    dashboards = {"compliance.py", "dose.py", "alerts.py", "data_quality.py",
                  "committee_report.py", "complications.py", "coverage.py"}
    assert set(audit) == dashboards | {"export.py"}  # the Export page shares the section
    assert all(audit[m].permission is Permission.VIEW_DASHBOARDS for m in dashboards)
    assert audit["export.py"].permission is Permission.EXPORT
    assert "Audit" in pages_for(QUALITY) and "Audit" in pages_for(RSO)
    assert "Audit" not in pages_for(Actor("t", Role.TECHNOLOGIST))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["compliance", "dose", "alerts", "data_quality"])
def test_pages_refuse_roles_without_dashboards(demo: tuple[str, Engine], name: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    at = page(demo[0], name, Actor("tech1", Role.TECHNOLOGIST), monkeypatch)
    assert "cannot open this page" in at.error[0].value
    assert not at.get("vega_lite_chart")


@pytest.mark.slow
def test_compliance_page(demo: tuple[str, Engine], monkeypatch: pytest.MonkeyPatch) -> None:
    url, engine = demo
    snap = load_snapshot(engine)
    at = page(url, "compliance", QUALITY, monkeypatch)
    overall = compliance(snap, Filters()).iloc[0]
    assert at.metric[0].value == f"{overall['rate']:.1%}"
    assert at.metric[1].value == f"{overall['eligible']:,}"
    found = charts(at)
    assert len(found) == 4  # p-chart and three breakdowns
    spec, data = found[0]
    assert {"month", "rate", "centre", "lcl", "ucl", "status"} <= fields(spec)  # status: words
    expected = p_chart(snap, Filters())
    assert data["rate"].tolist() == pytest.approx(expected["rate"].tolist())
    assert data["ucl"].tolist() == pytest.approx(expected["ucl"].tolist())
    # the p-chart's table beside it holds the same numbers
    assert at.dataframe[0].value["n"].tolist() == expected["n"].tolist()
    by_physician = at.dataframe[1].value
    assert by_physician.iloc[0]["physician"] == OMITS_CONTRAST  # lowest rate, unfiltered
    assert {"rate", "ci_low", "ci_high"} <= fields(found[1][0])
    listed = at.dataframe[-1].value
    assert len(listed) > 0 and set(listed["why"]) <= {
        "contrast not confirmed", "no saved image", "too few views", "no real-time contrast",
        "no saved image; too few views", "contrast not confirmed; no saved image",
        "no saved image; no real-time contrast", "too few views; no real-time contrast",
        "contraindicated without a reason", "no saved image; too few views; no real-time "
        "contrast"}
    at.radio(key="c_which").set_value("Excepted").run()
    assert set(at.dataframe[-1].value["why"]) == {"contraindicated, reason documented"}
    at.selectbox(key="c_who").set_value(OMITS_CONTRAST).run()
    assert set(at.dataframe[-1].value["physician"]) == {OMITS_CONTRAST}


@pytest.mark.slow
def test_filters_change_the_figures(demo: tuple[str, Engine],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    url, engine = demo
    at = page(url, "compliance", QUALITY, monkeypatch)
    at.multiselect(key="f_physicians").set_value([OMITS_CONTRAST]).run()
    expected = compliance(load_snapshot(engine), Filters(physicians=(OMITS_CONTRAST,))).iloc[0]
    assert at.metric[0].value == f"{expected['rate']:.1%}"
    assert f"physician: {OMITS_CONTRAST}" in at.caption[0].value


def test_the_period_presets_are_whole_calendar_months(
        demo: tuple[str, Engine], monkeypatch: pytest.MonkeyPatch) -> None:
    """"Last 3 months" is the newest record's month and the two before it, whole: the
    summaries' month rows answer it, and the p-chart has no partial first month."""
    assert months_back(date(2026, 2, 17), 3) == date(2025, 12, 1)
    assert months_back(date(2026, 12, 31), 12) == date(2026, 1, 1)
    assert months_back(date(2026, 1, 1), 1) == date(2026, 1, 1)
    url, engine = demo
    snap = load_snapshot(engine)
    span = date_range(snap)
    assert span is not None
    newest = span[1]
    at = page(url, "compliance", QUALITY, monkeypatch)
    at.selectbox(key="f_period").set_value("Last 3 months").run()
    assert not at.exception
    expected = compliance(snap, Filters.days(months_back(newest, 3), newest)).iloc[0]
    assert at.metric[0].value == f"{expected['rate']:.1%}"
    shown = at.caption[0].value.replace("\\", "")  # Markdown escapes the first hyphen
    assert shown.startswith(f"{months_back(newest, 3).isoformat()} to {newest.isoformat()}")


@pytest.mark.slow
def test_dose_page(demo: tuple[str, Engine], monkeypatch: pytest.MonkeyPatch) -> None:
    url, engine = demo
    snap = load_snapshot(engine)
    at = page(url, "dose", QUALITY, monkeypatch)
    assert [t.label for t in at.tabs] == ["Per procedure", "Physicians", "Case mix",
                                          "Over time", "Reference levels", "C-arm technique"]
    found = charts(at)
    assert len(found) == 2  # the open tab only: distribution and one procedure's histogram
    spec, data = found[0]
    assert {"p5", "p25", "p50", "p75", "p95", "reference", "value"} <= fields(spec)
    assert spec["layer"][0]["encoding"]["x"]["scale"]["type"] == "log"
    # the boxes share the reference lines' basis: KAP times each room's correction factor
    expected = dose_distribution(snap, Filters(), reference_column("dap_gycm2"))
    assert data["p50"].tolist() == pytest.approx(expected["p50"].tolist())
    assert set(data["figure"]) == {"typical value"}  # 5 demo rooms: fewer than ICRP 135's 10
    tfesi = data[data["procedure"] == "TFESI"].iloc[0]
    assert tfesi["published_median"] == 0.68  # Kim 2014, seeded
    assert not any("kap_per_level_ratio" in d.value.columns for d in at.dataframe)

    open_tab(at, "d_tab", "Physicians")  # the scorecard and the case-mix-adjusted one
    found = charts(at)
    assert len(found) == 2
    card = next(d.value for d in at.dataframe if "kap_per_level_ratio" in d.value.columns)
    assert card.iloc[0]["physician"] == HIGH_DOSE_PHYSICIAN  # highest normalised dose
    assert card.iloc[0]["kap_per_level_ratio"] > 2
    assert "kap_per_level_ratio" in fields(found[0][0])
    assert not any("p95" in fields(spec) for spec, _ in found)  # the first tab is not drawn
    # the frame computes everything in memory: no "from every selected record" note
    assert not [c for c in at.caption if "every selected record" in c.value]

    open_tab(at, "d_tab", "Over time")
    [(spec, data)] = charts(at)
    assert spec["facet"]["field"] == "procedure" and {"month", "median"} <= set(data.columns)
    at.selectbox(key="d_quantity").set_value("fluoro_time_s").run()
    assert at.session_state["d_tab"] == "Over time"  # the tab stays open across reruns
    assert "Fluoroscopy time" in texts(at.subheader)[0]


@pytest.mark.slow
def test_alerts_page_and_acknowledgement(demo: tuple[str, Engine],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    url, engine = demo
    at = page(url, "alerts", RSO, monkeypatch)
    stored = list_alerts(engine, RSO)
    assert at.metric[0].value == f"{int((stored['status'] == 'open').sum()):,}"
    spec, data = charts(at)[0]
    assert {"kind", "alerts", "status"} <= fields(spec)
    assert int(data["alerts"].sum()) == len(stored)
    listed = at.data_editor[0].value  # open alerts, most urgent (SRDL) first
    assert listed["kind"].iloc[0] == "SRDL" and not listed["acknowledge"].any()
    target = int(listed["alert_id"].iloc[0])
    key = at.data_editor[0].key
    at.session_state[key] = {"edited_rows": {0: {"acknowledge": True}}, "added_rows": [],
                             "deleted_rows": []}
    at.text_area(key="a_note").input("patient informed; skin check in 3 weeks")
    at.checkbox(key="a_informed").check()
    next(b for b in at.button if b.label == "Acknowledge ticked alerts").click().run()
    assert [w.value for w in at.warning] == [f"Acknowledge 1 alert? #{target}"]
    at.button(key="a_yes").click().run()
    assert not at.exception
    after = list_alerts(engine, RSO).set_index("alert_id").loc[target]
    assert (after["status"], after["note"], after["patient_informed"]) == \
        ("acknowledged", "patient informed; skin check in 3 weeks", True)
    assert (list_alerts(engine, RSO)["status"] == "acknowledged").sum() == 1  # that one only


@pytest.mark.slow
def test_alerts_page_without_manage_alerts(demo: tuple[str, Engine],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    at = page(demo[0], "alerts", QUALITY, monkeypatch)
    assert any("Only the radiation safety officer" in i.value for i in at.info)
    assert not at.get("form")
    patients = next(d.value for d in at.dataframe if "threshold_source" in d.value.columns
                    )["patient"]
    assert all(str(p).startswith("P") for p in patients)  # pseudonyms, not MRNs


@pytest.mark.slow
def test_data_quality_page(demo: tuple[str, Engine], monkeypatch: pytest.MonkeyPatch) -> None:
    url, engine = demo
    snap = load_snapshot(engine)
    at = page(url, "data_quality", QUALITY, monkeypatch)
    found = charts(at)
    assert len(found) == 3  # by room, by technologist, safety flags
    flags = safety_flags(snap, Filters()).iloc[0]
    flag_data = found[2][1].set_index("flag")
    for name in SAFETY_FLAGS:
        assert flag_data.loc[name, "records"] == flags[name]
    by_room = at.dataframe[0].value
    assert by_room["records"].sum() == len(snap.records)
