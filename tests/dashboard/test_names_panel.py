"""Names on the Log procedure and Admin pages (issue 11): the form offers only existing names; a
new one comes through "Add a new site, room or physician", which shows the near name and needs
a tick to create one anyway; a new room asks for its display unit; remembered choices are
existing names; an administrator merges a duplicate."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine
from streamlit.testing.v1 import AppTest

from audit import auth
from audit import reference_data as admin
from audit.auth import Actor, cli_actor
from audit.log.service import ProcedureLog
from audit.vocab import Role
from dashboard import state
from tests.conftest import valid_record
from tests.dashboard.conftest import ROLE_USER, VIEWS, AppFactory, page, texts
from tests.dashboard.test_log_procedure import FORM, fill, log_page, open_form, save


def add(at: AppTest, kind: str, name: str) -> AppTest:
    at.radio(key="lpn_kind").set_value(kind).run()
    at.text_input(key="lpn_name").input(name)
    return at.button(key="lpn_add").click().run()


def physicians(engine: Engine) -> list[str]:
    return [p["name"] for p in admin.list_physicians(engine)]


def test_the_form_offers_only_existing_names(app: AppFactory, people: dict[str, Actor]) -> None:
    at = log_page(app)
    assert at.selectbox(key="lp_site").options == ["Riverside"]
    assert at.selectbox(key="lp_room").options == ["OR 1 · GE OEC 9900", "OR 2 · Ziehm Vision RFD"]
    assert at.selectbox(key="lp_physician").options == ["Dr. Chen", "Dr. Weiss"]
    for name in ("lp_site", "lp_room", "lp_physician"):  # typing cannot make a new option
        assert not at.selectbox(key=name).proto.accept_new_options


def test_remembered_choices_that_no_longer_exist_are_not_offered(
    app: AppFactory, people: dict[str, Actor], engine: Engine
) -> None:
    auth.update_preferences(engine, people["tech1"], {"site": "River", "room": "OR 9",
                                                       "physician": "Chen"})
    at = log_page(app)
    assert at.session_state["lp_site"] == "Riverside"
    assert at.session_state["lp_physician"] is None


def test_adding_a_near_name_shows_the_match_and_needs_confirmation(
    app: AppFactory, people: dict[str, Actor], engine: Engine
) -> None:
    at = add(log_page(app), "physician", "Weis")
    assert not at.exception
    [warning] = texts(at.warning)
    assert "'Weis' is new; did you mean 'Dr. Weiss'?" in warning
    assert any(b.label == "Use Dr. Weiss" for b in at.button)
    assert physicians(engine) == ["Dr. Chen", "Dr. Weiss"]
    at.button(key="lpn_add").click().run()  # again, without the tick: still not created
    assert physicians(engine) == ["Dr. Chen", "Dr. Weiss"]
    at.checkbox(key="lpn_confirm").check().run()
    at.button(key="lpn_add").click().run()
    assert physicians(engine) == ["Dr. Chen", "Dr. Weiss", "Weis"]
    assert at.session_state["lp_physician"] == "Weis"
    assert "Weis" in at.selectbox(key="lp_physician").options
    assert "Added physician 'Weis': chosen." in texts(at.success)


def test_the_near_match_can_be_chosen_instead(
    app: AppFactory, people: dict[str, Actor], engine: Engine
) -> None:
    at = add(log_page(app), "site", "River")
    [use] = [b for b in at.button if b.label == "Use Riverside"]
    use.click().run()
    assert at.session_state["lp_site"] == "Riverside"
    assert [s["name"] for s in admin.list_sites(engine)] == ["Riverside"]
    assert not at.warning


def test_a_name_written_another_way_chooses_the_existing_one(
    app: AppFactory, people: dict[str, Actor], engine: Engine
) -> None:
    at = add(log_page(app), "physician", "chen")  # "Dr. Chen" without the title
    assert at.session_state["lp_physician"] == "Dr. Chen"
    assert "'Dr. Chen' exists: chosen." in texts(at.success)
    assert physicians(engine) == ["Dr. Chen", "Dr. Weiss"]


def test_a_new_room_asks_for_its_display_unit_and_belongs_to_the_chosen_site(
    app: AppFactory, people: dict[str, Actor], engine: Engine, service: ProcedureLog
) -> None:
    at = add(log_page(app), "room", "Hybrid 3")
    assert any("the unit the C-arm's DAP display shows" in e for e in texts(at.error))
    assert [r["name"] for r in admin.list_rooms(engine)] == ["OR 1", "OR 2"]
    at.selectbox(key="lpn_unit").select("µGy·m²")
    at.button(key="lpn_add").click().run()
    rooms = {r["name"]: r for r in admin.list_rooms(engine)}
    assert (rooms["Hybrid 3"]["site"], rooms["Hybrid 3"]["dap_display_unit"]) == (
        "Riverside", "µGy·m²")
    assert at.session_state["lp_room"] == "Hybrid 3"
    at = open_form(at, room="Hybrid 3")
    gen = at.session_state["lp_gen"]
    assert at.selectbox(key=f"lp{gen}_dap_unit_Riverside_Hybrid 3").value == "µGy·m²"
    save(fill(at, {**FORM, "dap_value": "71"}))  # 71 µGy·m² = 0.71 Gy·cm²
    record = service.get(at.session_state["lp_saved"]["record_id"], cli_actor())
    assert (record["room"], record["dap_unit"]) == ("Hybrid 3", "µGy·m²")
    assert auth.get_preferences(engine, "tech1")["room"] == "Hybrid 3"


def admin_page(app: AppFactory) -> AppTest:
    return app("boss").run().switch_page(page("admin")).run()


def test_an_administrator_merges_a_duplicate_physician(
    app: AppFactory, people: dict[str, Actor], engine: Engine, service: ProcedureLog
) -> None:
    system = cli_actor()
    admin.add_physician(engine, system, "Dr. Weis")  # as typed before issue 11
    record_id = service.log(valid_record(physician="Dr. Weis"), system).record_id
    at = admin_page(app)
    at.radio(key="mg_kind").set_value("physician").run()
    at.selectbox(key="mg_source").select("Dr. Weis").run()
    assert any("Names near 'Dr. Weis': 'Dr. Weiss'" in c for c in texts(at.caption))
    at.selectbox(key="mg_target").select("Dr. Weiss").run()
    at.button(key="mg_go").click().run()
    assert any("reason" in e or "required" in e for e in texts(at.error))
    at.text_input(key="mg_reason").input("one physician")
    at.button(key="mg_go").click().run()
    assert "Merged physician 'Dr. Weis' into 'Dr. Weiss': 1 record(s) re-pointed." in \
        texts(at.success)
    assert service.get(record_id, system)["physician"] == "Dr. Weiss"
    assert physicians(engine) == ["Dr. Chen", "Dr. Weis", "Dr. Weiss"]  # kept, deactivated
    assert "Dr. Weis" not in [p["name"] for p in admin.list_physicians(engine,
                                                                        active_only=True)]


@pytest.mark.parametrize("role", [Role.TECHNOLOGIST, Role.QUALITY_OFFICER, Role.RSO])
def test_only_administrators_see_the_merge(app_db: str, people: dict[str, Actor],
                                           role: Role) -> None:
    at = AppTest.from_file(str(VIEWS / "admin.py"), default_timeout=30)
    at.session_state[state.ACTOR_KEY] = Actor(ROLE_USER[role], role)
    at.run()
    assert f"Your role ({role.value}) cannot open this page." in texts(at.error)
    assert not [r for r in at.radio if r.key == "mg_kind"]
