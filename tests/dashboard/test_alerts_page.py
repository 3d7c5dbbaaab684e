"""The Alerts page under AppTest, on five SRDL alerts: rates per 100 procedures and the
groupings by patient and physician; ticking 2 of 5, one note, "Acknowledge 2 alerts?", a
success message and exactly those two acknowledged; a failed submit keeps the ticks and shows
the error next to the note. On both databases."""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
import pytest
from sqlalchemy import Engine
from streamlit.testing.v1 import AppTest

from audit.alerts.store import list_alerts
from audit.auth import Actor
from tests.alerts.test_alerts import QUALITY, RSO, log_all, tfesi
from tests.dashboard.conftest import VIEWS, messages_after

#: Five patients, each one record of 62 min fluoroscopy: five SRDL time alerts (KAP and Ka,r
#: are ordinary, and five records are far below the investigation minimum). Dr. Park has two.
FIVE = [tfesi(f"T{k}", f"PAT-{k}", f"03-0{k}", 0.7, fluoro_time_s=3720,
              **({"physician": "Dr. Park"} if k <= 2 else {})) for k in range(1, 6)]
QUIET = [tfesi("Q1", "PAT-Q1", "03-10", 0.7), tfesi("Q2", "PAT-Q2", "03-11", 0.8),
         tfesi("Q3", "PAT-Q3", "03-12", 0.9)]


@pytest.fixture
def five(db_url: str, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    import streamlit as st

    log_all(engine, FIVE + QUIET, refresh_each=False)
    monkeypatch.setenv("FLUORO_AUDIT_DB", db_url)
    st.cache_resource.clear()
    st.cache_data.clear()
    yield db_url
    st.cache_resource.clear()
    st.cache_data.clear()


def open_page(actor: Actor) -> AppTest:
    at = AppTest.from_file(str(VIEWS / "alerts.py"), default_timeout=60)
    at.session_state["actor"] = actor
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def table_with(at: AppTest, *columns: str) -> pd.DataFrame:
    return next(d.value for d in at.dataframe if set(columns) <= set(d.value.columns))


def tick(at: AppTest, rows: list[int]) -> str:
    """Tick these rows of the acknowledge table (as a click in the browser would); its key."""
    key = at.data_editor[0].key
    at.session_state[key] = {"edited_rows": {r: {"acknowledge": True} for r in rows},
                             "added_rows": [], "deleted_rows": []}
    return key


def submit(at: AppTest) -> None:
    next(b for b in at.button if b.label == "Acknowledge ticked alerts").click().run()
    assert not at.exception, [e.message for e in at.exception]


def test_rates_and_groupings(five: str, engine: Engine) -> None:
    at = open_page(RSO)
    assert [m.value for m in at.metric] == ["5", "5", "0", "0"]
    assert "62.50 per 100 procedures" in [c.value for c in at.caption]  # 5 of 8
    rates = table_with(at, "open_per_100", "raised_per_100").set_index("kind")
    assert rates.loc["SRDL", ["procedures", "open", "open_per_100"]].tolist() == [8, 5, 62.5]
    doctors = table_with(at, "physician", "open_per_100").set_index("physician")
    assert doctors.loc["Dr. Park", ["procedures", "srdl", "open", "open_per_100"]].tolist() \
        == [2, 2, 2, 100.0]
    assert doctors.loc["Dr. Chen", ["procedures", "open", "open_per_100"]].tolist() == \
        [6, 3, 50.0]
    patients = table_with(at, "patient", "srdl", "open")
    assert sorted(patients["patient"]) == [f"PAT-{k}" for k in range(1, 6)]
    assert set(patients["open"]) == {1}
    physician_chart = next(e for e in at.get("vega_lite_chart")
                           if "per 100" in e.proto.spec)
    assert "physician" in physician_chart.proto.spec


def test_tick_two_of_five_confirm_and_exactly_those_two_are_acknowledged(
        five: str, engine: Engine) -> None:
    at = open_page(RSO)
    listed = at.data_editor[0].value
    assert len(listed) == 5 and not listed["acknowledge"].any()  # nothing ticked for you
    chosen = [int(listed["alert_id"].iloc[1]), int(listed["alert_id"].iloc[3])]
    tick(at, [1, 3])
    at.text_area(key="a_note").input("patients informed; skin checks booked")
    at.checkbox(key="a_informed").check()
    submit(at)
    assert [w.value for w in at.warning] == [
        f"Acknowledge 2 alerts? #{chosen[0]}, #{chosen[1]}"]
    assert set(list_alerts(engine, RSO)["status"]) == {"open"}  # not before the confirmation
    at.button(key="a_yes").click().run()
    assert not at.exception
    assert [s.value for s in at.success] == [
        f"2 alerts acknowledged: \\#{chosen[0]}, \\#{chosen[1]}."]
    after = list_alerts(engine, RSO).set_index("alert_id")
    assert sorted(after.index[after["status"] == "acknowledged"]) == sorted(chosen)
    assert set(after.loc[chosen, "note"]) == {"patients informed; skin checks booked"}
    assert after.loc[chosen, "patient_informed"].tolist() == [True, True]
    left = at.data_editor[0].value
    assert sorted(left["alert_id"]) == sorted(set(listed["alert_id"]) - set(chosen))
    assert at.text_area(key="a_note").value == ""  # the next batch starts blank


def test_empty_note_keeps_the_ticks_and_shows_the_error_next_to_the_note(
        five: str, engine: Engine) -> None:
    at = open_page(RSO)
    key = tick(at, [0, 2])
    at.run()
    submit(at)
    errors = messages_after(at, "a_note")
    assert len(errors) == 1 and errors[0].startswith("required: what was done")
    assert not at.warning  # no "Acknowledge 2 alerts?" with nothing to say
    assert at.data_editor[0].key == key  # the same table, ticks kept
    assert at.session_state[key]["edited_rows"] == {0: {"acknowledge": True},
                                                    2: {"acknowledge": True}}
    assert "2 ticked" in " ".join(c.value for c in at.caption)
    assert set(list_alerts(engine, RSO)["status"]) == {"open"}
    # the note added, the same ticks go through
    at.text_area(key="a_note").input("no action needed: long case, documented")
    submit(at)
    at.button(key="a_yes").click().run()
    assert len(at.success) == 1
    assert (list_alerts(engine, RSO)["status"] == "acknowledged").sum() == 2


def test_nothing_ticked_is_refused_next_to_the_table(five: str, engine: Engine) -> None:
    at = open_page(RSO)
    at.text_area(key="a_note").input("informed")
    submit(at)
    assert any("tick at least one alert" in e.value for e in at.error)
    assert not at.warning


def test_an_alert_acknowledged_meanwhile_refuses_the_batch_by_name(
        five: str, engine: Engine) -> None:
    from audit.alerts.store import acknowledge

    at = open_page(RSO)
    first = int(at.data_editor[0].value["alert_id"].iloc[0])
    tick(at, [0, 1])
    at.text_area(key="a_note").input("informed")
    submit(at)
    acknowledge(engine, RSO, [first], "someone else was quicker")
    at.button(key="a_yes").click().run()
    assert any(f"already acknowledged: #{first}" in e.value.replace("\\", "")
               for e in at.error)
    assert (list_alerts(engine, RSO)["status"] == "acknowledged").sum() == 1


def test_without_manage_alerts_no_form_and_pseudonyms(five: str) -> None:
    at = open_page(QUALITY)
    assert any("Only the radiation safety officer" in i.value for i in at.info)
    assert not at.get("form") and not at.data_editor
    patients = table_with(at, "patient", "srdl", "open")["patient"]
    assert len(patients) == 5 and all(p.startswith("P") and not p.startswith("PAT-")
                                      for p in patients)


def levels_table(at: AppTest) -> pd.DataFrame:
    return table_with(at, "median", "floor", "records")


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_levels_in_force_and_the_rsos_review(five: str, engine: Engine) -> None:
    from audit.alerts import levels_in_force
    from audit.auth import cli_actor
    from audit.settings import update_setting

    log_all(engine, [tfesi(f"R{k}", f"PAT-R{k}", f"04-{k:02d}", 0.5 + k / 100)
                     for k in range(1, 13)], refresh_each=False)
    update_setting(engine, cli_actor(), "investigation_min_records", 8)
    at = open_page(RSO)  # the page's refresh sets the levels from 20 records
    first = levels_in_force(engine)
    assert first is not None
    texts = [t.value for t in at.text]
    assert any(t.startswith("In force since ") and t.endswith(
        "threshold changed: investigation_min_records.") for t in texts), texts
    assert levels_table(at)["records"].tolist() == [20, 20, 20]
    log_all(engine, [tfesi("Q4", "PAT-Q4", "03-13", 1.0)], refresh_each=False)
    at = open_page(RSO)  # 1 of 20 changed: under a tenth, the levels stay
    assert levels_in_force(engine).event_id == first.event_id
    assert any(t.endswith("Records changed since: TFESI 1.") for t in
               [t.value for t in at.text])
    at = open_page(QUALITY)  # sees the levels, has no review button
    assert levels_table(at)["records"].tolist() == [20, 20, 20]
    assert "Review the investigation levels now" not in [b.label for b in at.button]
    at = open_page(RSO)
    next(b for b in at.button if b.label == "Review the investigation levels now").click().run()
    assert not at.exception, [e.message for e in at.exception]
    reviewed = levels_in_force(engine)
    assert reviewed.event_id != first.event_id and reviewed.reason == "requested by rso1"
    assert levels_table(at)["records"].tolist() == [21, 21, 21]
    assert any("Investigation levels reviewed" in s.value for s in at.success)
