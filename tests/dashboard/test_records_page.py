"""The Records page: server-side pages and filters, detail with history, amend with a reason
(a concurrent change is reported, nothing overwritten), void, and what each role may do."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from audit.auth import Actor, cli_actor
from audit.log.service import ProcedureLog
from tests.conftest import valid_record
from tests.dashboard.conftest import AppFactory, messages_after, page, texts


def seed(service: ProcedureLog, n: int = 3, **overrides: Any) -> list[int]:
    """n TFESI records on successive days from 1 March 2026, newest last, each of its own
    patient (numbered on from the records already there: no two are possible duplicates)."""
    first = datetime(2026, 3, 1, 9, 30, tzinfo=timezone(timedelta(hours=-5)))
    known = service.list(cli_actor())[1]
    records = [valid_record(performed_at=(first + timedelta(days=day)).isoformat(),
                            patient_id=f"MRN{known + day:04d}", **overrides)
               for day in range(n)]
    return [r.record_id for r in service.log_many(records, cli_actor())]


def records_page(app: AppFactory, user: str) -> AppTest:
    at = app(user).run()
    return at.switch_page(page("records")).run()


def open_record(at: AppTest, record_id: int) -> AppTest:
    return at.number_input(key="rec_open").set_value(record_id).run()


def table(at: AppTest) -> list[dict[str, Any]]:
    return at.dataframe[0].value.to_dict("records")


def amend_key(at: AppTest, name: str, version: int = 1) -> str:
    """The amend form's widget key for `name`, for the record version the page shows."""
    return f"am_{at.session_state['rec_selected']}_{version}_{name}"


def submit(at: AppTest, label: str) -> AppTest:
    [button] = [b for b in at.button if b.label == label]
    return button.click().run()


def test_the_list_is_newest_first_and_paged_on_the_server(
    app: AppFactory, people: dict[str, Actor], service: ProcedureLog
) -> None:
    ids = seed(service, 55)
    at = records_page(app, "boss")
    assert not at.exception
    assert "55 records · page 1 of 2" in texts(at.caption)[0]
    rows = table(at)
    assert len(rows) == 50 and rows[0]["record_id"] == ids[-1]
    at.pagination[0].set_value(2).run()
    rows = table(at)
    assert [r["record_id"] for r in rows] == list(reversed(ids[:5]))
    assert "page 2 of 2" in texts(at.caption)[0]


def test_times_are_shown_in_the_users_time_zone(
    app: AppFactory, people: dict[str, Actor], service: ProcedureLog
) -> None:
    seed(service, 1)
    at = records_page(app, "boss")
    assert table(at)[0]["performed_at"] == "2026-03-01 08:30"  # 09:30 -05:00 = 08:30 CST
    assert "times in America/Chicago" in texts(at.caption)[0]


def test_filters_narrow_the_list_and_return_to_the_first_page(
    app: AppFactory, people: dict[str, Actor], service: ProcedureLog
) -> None:
    seed(service, 3)
    seed(service, 2, room="OR 2", physician="Dr. Weiss", procedure_code="CAUDAL",
         levels=None, laterality=None, realtime_contrast=False)
    at = records_page(app, "boss")
    assert "5 records" in texts(at.caption)[0]
    at.selectbox(key="rec_room").select("OR 2").run()
    assert {r["room"] for r in table(at)} == {"OR 2"} and len(table(at)) == 2
    at.selectbox(key="rec_room").select("").run()
    at.selectbox(key="rec_physician").select("Dr. Chen").run()
    assert len(table(at)) == 3
    at.selectbox(key="rec_procedure").select("CAUDAL").run()
    assert table(at) == [] and "No records match these filters." in texts(at.info)
    at.selectbox(key="rec_physician").select("").run()
    at.date_input(key="rec_from").set_value(date(2026, 3, 2)).run()
    at.date_input(key="rec_to").set_value(date(2026, 3, 2)).run()
    assert len(table(at)) == 1 and table(at)[0]["procedure_code"] == "CAUDAL"


def test_a_technologist_sees_only_their_own_entries(
    app: AppFactory, people: dict[str, Actor], service: ProcedureLog
) -> None:
    mine = seed(service, 2, technologist="tech1")
    seed(service, 1, technologist="tech2")
    at = records_page(app, "tech1")
    assert [r["record_id"] for r in table(at)] == list(reversed(mine))
    assert "(the ones you logged)" in texts(at.caption)[0]


def test_a_physician_sees_their_own_patients_and_a_quality_officer_no_phi(
    app: AppFactory, people: dict[str, Actor], service: ProcedureLog
) -> None:
    seed(service, 2)  # Dr. Chen, linked to the account drchen
    seed(service, 1, physician="Dr. Weiss")
    at = records_page(app, "drchen")
    assert len(table(at)) == 2 and "(your patients)" in texts(at.caption)[0]
    at = records_page(app, "quality")
    rows = table(at)
    assert len(rows) == 3 and all(str(r["patient_id"]).startswith("P") for r in rows)
    assert not any("MRN" in str(r["patient_id"]) for r in rows)
    assert not any(w.key == "rec_patient" for w in at.text_input)
    open_record(at, rows[0]["record_id"])
    assert "MRN" not in " ".join(m.value for m in at.markdown)
    assert not [t for t in at.tabs if t.label == "Amend"]  # reads, never changes


def test_detail_shows_the_record_and_its_history(
    app: AppFactory, people: dict[str, Actor], service: ProcedureLog
) -> None:
    [rid] = seed(service, 1)
    at = open_record(records_page(app, "tech1"), rid)
    assert f"Record {rid}" in texts(at.subheader)
    body = " ".join(m.value for m in at.markdown)
    assert "Fluoro time (s): **0:32 (32 s)**" in body
    assert "Patient ID (MRN): **MRN0000**" in body
    assert any(m.value.startswith("**Created** by **cli:") for m in at.markdown)
    assert "Days of background" in body  # ... and beside it, NCRP 184's caution
    assert any("not a measure of your personal risk" in c.value for c in at.caption)


def test_amending_with_a_reason_records_before_and_after_in_the_history(
    app: AppFactory, people: dict[str, Actor], service: ProcedureLog
) -> None:
    [rid] = seed(service, 1)
    at = open_record(records_page(app, "tech1"), rid)
    at.text_input(key=amend_key(at, "fluoro_time_s")).input("1:05")
    submit(at, "Save amendment")
    assert "required: say why" in messages_after(at, amend_key(at, "reason"))[0]
    assert service.get(rid, cli_actor())["version"] == 1
    at.text_input(key=amend_key(at, "reason")).input("typed the wrong counter")
    submit(at, "Save amendment")
    assert not at.exception
    assert f"Record {rid} amended: Fluoro time." in texts(at.success)[0]
    record = service.get(rid, cli_actor())
    assert record["fluoro_time_s"] == 65 and record["version"] == 2
    amended = [m.value for m in at.markdown if m.value.startswith("**Amended** by **tech1**")]
    assert amended and "typed the wrong counter" in amended[0]
    history = at.table[-1].value
    row = history[history["Field"] == "Fluoro time (s)"].iloc[0]
    assert (row["Before"], row["After"]) == ("32", "65")


def test_an_amend_error_shows_next_to_the_field(
    app: AppFactory, people: dict[str, Actor], service: ProcedureLog
) -> None:
    [rid] = seed(service, 1)
    at = open_record(records_page(app, "tech1"), rid)
    at.text_input(key=amend_key(at, "saved_images")).input("many")
    at.text_input(key=amend_key(at, "reason")).input("count")
    submit(at, "Save amendment")
    assert "expected a whole number" in messages_after(at, amend_key(at, "saved_images"))[0]


def test_a_concurrent_change_is_reported_and_nothing_is_overwritten(
    app: AppFactory, people: dict[str, Actor], service: ProcedureLog
) -> None:
    [rid] = seed(service, 1)
    at = open_record(records_page(app, "tech1"), rid)
    service.amend(rid, {"saved_images": 3}, people["boss"], version=1, reason="PACS count")
    at.text_input(key=amend_key(at, "fluoro_time_s")).input("40")
    at.text_input(key=amend_key(at, "reason")).input("my correction")
    submit(at, "Save amendment")
    [error] = [e for e in texts(at.error) if "changed while you were editing" in e]
    assert "changed by boss" in error and "nothing was saved" in error
    record = service.get(rid, cli_actor())
    assert record["fluoro_time_s"] == 32 and record["saved_images"] == 3
    submit(at, "Reload the record")
    assert at.text_input(key=amend_key(at, "saved_images", version=2)).value == "3"


def test_voiding_keeps_the_record_visible_as_void(
    app: AppFactory, people: dict[str, Actor], service: ProcedureLog
) -> None:
    [rid] = seed(service, 1)
    at = open_record(records_page(app, "tech1"), rid)
    submit(at, "Void record")
    assert "required" in messages_after(at, f"void_{rid}_1_reason")[0]
    at.text_input(key=f"void_{rid}_1_reason").input("duplicate of another entry")
    submit(at, "Void record")
    assert f"Record {rid} — VOID" in texts(at.subheader)
    assert any("duplicate of another entry" in e for e in texts(at.error))
    assert table(at)[0]["status"] == "Void"
    assert not [b for b in at.button if b.label == "Save amendment"]
    at.selectbox(key="rec_status").select("void").run()
    assert [r["record_id"] for r in table(at)] == [rid]


def test_a_technologist_cannot_open_another_technologists_record(
    app: AppFactory, people: dict[str, Actor], service: ProcedureLog
) -> None:
    [rid] = seed(service, 1, technologist="tech2")
    at = open_record(records_page(app, "tech1"), rid)
    assert any("may not read this record" in e for e in texts(at.error))
    assert not [b for b in at.button if b.label == "Save amendment"]


@pytest.mark.parametrize("user", ["boss", "tech1"])
def test_who_may_amend_sees_the_forms(
    app: AppFactory, people: dict[str, Actor], service: ProcedureLog, user: str
) -> None:
    [rid] = seed(service, 1)
    at = open_record(records_page(app, user), rid)
    assert [b.label for b in at.button if b.label in {"Save amendment", "Void record"}] == [
        "Save amendment", "Void record"]


# --- issue 12: stored values as words; the time as a date and a time -----------------------------

def test_detail_shows_stored_values_as_words(
    app: AppFactory, people: dict[str, Actor], service: ProcedureLog
) -> None:
    [rid] = seed(service, 1, patient_sex="F", injectate="local_anesthetic_only",
                 guidance="fluoroscopy_dsa", dsa_runs=1, vascular_uptake=False)
    at = open_record(records_page(app, "tech1"), rid)
    body = " ".join(m.value for m in at.markdown)
    for line in ("Pregnancy status: **Not pregnant**", "Sex: **Female**",
                 "Contrast confirmation: **Confirmed with contrast**",
                 "Injectate: **Local anesthetic only**", "Guidance: **Fluoroscopy + DSA**",
                 "Real-time contrast: **Yes**", "Vascular uptake: **No**",
                 "Dose source: **Typed in**", "Laterality: **Left**"):
        assert line in body, line
    for raw in ("not_pregnant", "local_anesthetic_only", "fluoroscopy_dsa", "**confirmed**"):
        assert raw not in body, raw
    pregnancy = at.selectbox(key=amend_key(at, "pregnancy_status"))
    assert pregnancy.value == "not_pregnant" and "Not pregnant" in pregnancy.options


def test_the_amend_form_asks_a_date_and_a_time_in_the_users_zone(
    app: AppFactory, people: dict[str, Actor], service: ProcedureLog
) -> None:
    [rid] = seed(service, 1)  # 2026-03-01 09:30 -05:00 = 08:30 in Chicago (CST)
    at = open_record(records_page(app, "tech1"), rid)
    assert not [w for w in at.text_input if "ISO" in w.label or "offset" in w.label]
    day = at.date_input(key=amend_key(at, "performed_date"))
    clock = at.time_input(key=amend_key(at, "performed_time"))
    assert (day.label, clock.label) == ("Date performed", "Time performed (America/Chicago)")
    assert (day.value, clock.value) == (date(2026, 3, 1), time(8, 30))
    clock.set_value(time(10, 15))
    at.text_input(key=amend_key(at, "reason")).input("time read off the wrong clock")
    submit(at, "Save amendment")
    assert f"Record {rid} amended: Date and time performed." in texts(at.success)[0]
    moment = service.get(rid, cli_actor())["performed_at"]
    assert datetime.fromisoformat(str(moment)) == datetime(2026, 3, 1, 16, 15, tzinfo=UTC)
