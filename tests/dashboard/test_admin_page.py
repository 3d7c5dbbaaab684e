"""The Admin page: users, sites and rooms, physicians, the procedure catalog; each form's errors
next to their field, every change through the library (and so audited)."""

from __future__ import annotations

import re

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.element_tree import Block

from audit import auth
from audit import reference_data as admin
from audit.auth import Actor
from audit.storage.models import AuditEvent
from tests.dashboard.conftest import PASSWORD, AppFactory, messages_after, page, texts


def admin_page(app: AppFactory) -> AppTest:
    return app("boss").run().switch_page(page("admin")).run()


def click(at: AppTest, label: str) -> AppTest:
    [button] = [b for b in at.button if b.label == label]
    return button.click().run()


def last_event(engine: Engine) -> AuditEvent:
    with Session(engine) as s:
        return s.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(1)).one()


def test_the_admin_page_lists_users_rooms_physicians_and_the_catalog(
    app: AppFactory, people: dict[str, Actor]
) -> None:
    at = admin_page(app)
    assert not at.exception
    assert [t.label for t in at.tabs] == ["Users", "Sites and rooms", "Physicians",
                                          "Procedure catalog", "Merge names", "Sessions",
                                          "Rule packs"]
    users = at.dataframe[0].value
    assert set(users["username"]) == {"boss", "tech1", "tech2", "drchen", "quality", "rso1"}
    assert "password_hash" not in users.columns
    frames = [d.value for d in at.dataframe]
    assert any("kap_correction_factor" in f.columns and "OR 1" in set(f["name"])
               for f in frames)
    assert any("code" in f.columns and "TFESI" in set(f["code"]) for f in frames)


def test_adding_a_user_who_can_then_sign_in(
    app: AppFactory, people: dict[str, Actor], engine: Engine
) -> None:
    at = admin_page(app)
    at.text_input(key="au_username").input("newtech")
    at.selectbox(key="au_role").select("technologist")
    at.text_input(key="au_password").input(PASSWORD)
    click(at, "Add user")
    assert "User newtech added as technologist." in texts(at.success)
    created = last_event(engine)
    assert (created.actor, created.action, created.after["username"]) == (
        "boss", "create", "newtech")
    assert auth.authenticate(engine, "newtech", PASSWORD) == Actor("newtech",
                                                                   auth.Role.TECHNOLOGIST)


def test_add_user_errors_show_next_to_their_field(
    app: AppFactory, people: dict[str, Actor]
) -> None:
    at = admin_page(app)
    at.text_input(key="au_username").input("tech1")
    at.text_input(key="au_password").input("short")
    click(at, "Add user")
    assert "at least 10 characters" in messages_after(at, "au_password")[0]
    at.text_input(key="au_password").input(PASSWORD)
    click(at, "Add user")
    assert "'tech1' already exists" in messages_after(at, "au_username")[0]


def test_a_username_that_breaks_the_rule_is_refused_next_to_the_field(
    app: AppFactory, people: dict[str, Actor], engine: Engine
) -> None:
    at = admin_page(app)
    for name in ("' OR 1=1 --", "new\u200btech"):
        at.text_input(key="au_username").input(name)
        at.selectbox(key="au_role").select("technologist")
        at.text_input(key="au_password").input(PASSWORD)
        click(at, "Add user")
        [shown] = messages_after(at, "au_username")  # markdown-escaped by the page
        assert shown.startswith("must be 2-80 characters: letters, digits"), name
    assert {u["username"] for u in auth.list_users(engine, auth.cli_actor())} == set(
        people)


def test_changing_a_role_resetting_a_password_and_deactivating(
    app: AppFactory, people: dict[str, Actor], engine: Engine
) -> None:
    at = admin_page(app)
    at.selectbox(key="cu_user").select("tech2").run()
    at.selectbox(key="cu_role").select("rso")
    click(at, "Change role")
    assert "tech2 is now rso." in texts(at.success)
    assert (last_event(engine).before, last_event(engine).after) == (
        {"username": "tech2", "role": "technologist"}, {"username": "tech2", "role": "rso"})
    at.text_input(key="cu_password").input("a brand new passphrase")
    click(at, "Reset password (and unlock)")
    assert auth.authenticate(engine, "tech2", "a brand new passphrase").role is auth.Role.RSO
    click(at, "Deactivate tech2")
    assert "tech2 deactivated." in texts(at.success)
    assert last_event(engine).action == "deactivate"
    click(at, "Reactivate tech2")
    assert "tech2 reactivated." in texts(at.success)


def test_the_last_administrator_cannot_deactivate_themselves(
    app: AppFactory, people: dict[str, Actor]
) -> None:
    at = admin_page(app)
    at.selectbox(key="cu_user").select("boss").run()
    click(at, "Deactivate boss")
    assert any("cannot deactivate your own account" in e for e in texts(at.error))


def test_adding_and_editing_a_room(
    app: AppFactory, people: dict[str, Actor], engine: Engine
) -> None:
    at = admin_page(app)
    at.selectbox(key="ar_site").select("Riverside")
    at.text_input(key="ar_name").input("Suite C")
    at.text_input(key="ar_make").input("Siemens")
    at.selectbox(key="ar_dap_display_unit").select("µGy·m²")
    at.text_input(key="ar_kap_correction_factor").input("7")
    click(at, "Add room")
    assert "from 0.1 to 2" in messages_after(at, "ar_kap_correction_factor")[0]
    at.text_input(key="ar_kap_correction_factor").input("0.75")
    click(at, "Add room")
    assert "Room Suite C added at Riverside." in texts(at.success)
    room = next(r for r in admin.list_rooms(engine) if r["name"] == "Suite C")
    assert (room["dap_display_unit"], room["kap_correction_factor"]) == ("µGy·m²", 0.75)

    at.selectbox(key="er_room").select(room["room_id"]).run()
    prefix = f"er_{room['room_id']}_"
    at.text_input(key=prefix + "model").input("Cios Alpha")
    at.checkbox(key=prefix + "active").uncheck()
    click(at, "Save room")
    room = next(r for r in admin.list_rooms(engine) if r["name"] == "Suite C")
    assert room["model"] == "Cios Alpha" and room["active"] is False
    assert last_event(engine).after == {"name": "Suite C", "model": "Cios Alpha",
                                        "active": False}


def test_adding_a_site_and_a_physician_linked_to_an_account(
    app: AppFactory, people: dict[str, Actor], engine: Engine
) -> None:
    at = admin_page(app)
    at.text_input(key="as_name").input("Northgate")
    click(at, "Add site")
    assert "Northgate" in {s["name"] for s in admin.list_sites(engine)}
    auth.add_user(engine, people["boss"], "drnew", "physician", PASSWORD)
    at.run()
    at.text_input(key="ap_name").input("Dr. New")
    at.selectbox(key="ap_username").select("drnew")
    click(at, "Add physician")
    doc = next(p for p in admin.list_physicians(engine) if p["name"] == "Dr. New")
    assert doc["username"] == "drnew"
    at.text_input(key="ap_name").input("Dr. New")
    click(at, "Add physician")
    assert "exists" in messages_after(at, "ap_name")[0]


def test_adding_and_editing_a_procedure_type(
    app: AppFactory, people: dict[str, Actor], engine: Engine
) -> None:
    at = admin_page(app)
    at.text_input(key="at_code").input("genicular_rfa")
    at.text_input(key="at_name").input("Genicular nerve radiofrequency ablation")
    at.selectbox(key="at_region").select("by_level")
    click(at, "Add procedure type")
    assert "required when the region is by_level" in \
        messages_after(at, "at_level_regions")[0]
    at.selectbox(key="at_region").select("other")
    at.selectbox(key="at_contrast_policy").select("not_required")
    at.text_input(key="at_typical_dap_gycm2").input("1.2")
    click(at, "Add procedure type")
    assert "Procedure type GENICULAR_RFA added." in texts(at.success)
    entry = next(t for t in admin.list_procedure_types(engine)
                 if t["code"] == "GENICULAR_RFA")
    assert entry["typical_dap_gycm2"] == 1.2 and entry["contrast_policy"] == "not_required"

    at.selectbox(key="et_code").select("MBB").run()
    at.text_input(key="et_MBB_max_levels").input("3")
    click(at, "Save procedure type")
    assert "Procedure type MBB updated." in texts(at.success)
    assert last_event(engine).after == {"name": "MBB", "max_levels": 3}
    click(at, "Save procedure type")
    assert "nothing would change" in " ".join(texts(at.error))


# --- issue 12: the page stays where the user is, and says what it needs -------------------------

def open_tab(at: AppTest) -> str:
    """The tab the browser is told to show (the tab container's selected tab)."""
    def containers(node: object) -> list[Block]:
        found = []
        for child in getattr(node, "children", {}).values():
            if isinstance(child, Block) and child.type == "tab_container":
                found.append(child)
            found += containers(child)
        return found

    [container] = containers(at._tree)
    tabs = [child for child in container.children.values()]
    return str(tabs[container.proto.tab_container.default_tab_index].label)


def test_after_an_add_the_page_stays_on_the_tab_the_user_was_on(
    app: AppFactory, people: dict[str, Actor]
) -> None:
    at = admin_page(app)
    assert open_tab(at) == "Users"
    at.session_state["adm_tab"] = "Sites and rooms"  # the user opens the tab
    at.run()
    at.selectbox(key="ar_site").select("Riverside")
    at.text_input(key="ar_name").input("Suite C")
    click(at, "Add room")
    assert "Room Suite C added at Riverside." in texts(at.success)
    assert open_tab(at) == "Sites and rooms"
    at.session_state["adm_tab"] = "Physicians"
    at.run()
    at.text_input(key="ap_name").input("Dr. New")
    click(at, "Add physician")
    assert "Physician Dr. New added." in texts(at.success)
    assert open_tab(at) == "Physicians"


def test_each_form_is_empty_again_after_it_adds(
    app: AppFactory, people: dict[str, Actor], engine: Engine
) -> None:
    auth.add_user(engine, people["boss"], "drnew", "physician", PASSWORD)
    at = admin_page(app)
    at.text_input(key="ap_name").input("Dr. New")
    at.selectbox(key="ap_username").select("drnew")
    click(at, "Add physician")
    assert "Physician Dr. New added." in texts(at.success)
    assert (at.text_input(key="ap_name").value, at.selectbox(key="ap_username").value) == (
        "", "")
    at.text_input(key="as_name").input("Northgate")
    click(at, "Add site")
    assert at.text_input(key="as_name").value == ""
    at.selectbox(key="ar_site").select("Riverside")
    at.text_input(key="ar_name").input("Suite C")
    at.text_input(key="ar_make").input("Siemens")
    at.text_input(key="ar_kap_correction_factor").input("0.8")
    click(at, "Add room")
    assert [at.text_input(key=f"ar_{k}").value for k in ("name", "make",
                                                           "kap_correction_factor")] == [
        "", "", "1"]
    at.text_input(key="au_username").input("newtech")
    at.text_input(key="au_password").input(PASSWORD)
    click(at, "Add user")
    assert (at.text_input(key="au_username").value, at.text_input(key="au_password").value) \
        == ("", "")


def test_a_success_removes_the_errors_left_on_other_forms(
    app: AppFactory, people: dict[str, Actor]
) -> None:
    at = admin_page(app)
    at.selectbox(key="ar_site").select("Riverside")
    at.text_input(key="ar_name").input("Suite C")
    at.text_input(key="ar_kap_correction_factor").input("7")
    click(at, "Add room")
    assert at.error
    at.text_input(key="as_name").input("Northgate")
    click(at, "Add site")
    assert "Site Northgate added." in texts(at.success)
    assert not at.error, texts(at.error)


def test_last_sign_in_reads_never_for_who_never_signed_in(
    app: AppFactory, people: dict[str, Actor], engine: Engine
) -> None:
    auth.authenticate(engine, "tech1", PASSWORD)
    at = admin_page(app)
    users = at.dataframe[0].value.set_index("username")
    assert users.loc["tech2", "last_login_at"] == "Never"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", users.loc["tech1", "last_login_at"])
    assert not users["last_login_at"].isna().any()
    assert "None" not in users["last_login_at"].tolist()


def test_password_rules_are_stated_up_front_and_every_unmet_rule_is_listed(
    app: AppFactory, people: dict[str, Actor]
) -> None:
    rule = "Passwords need at least 10 characters"
    at = admin_page(app)
    assert sum(rule in c for c in texts(at.caption)) == 1  # the add-user form
    at.selectbox(key="cu_user").select("tech2").run()
    assert sum(rule in c for c in texts(at.caption)) == 2  # ... and the reset form
    at.text_input(key="au_username").input("x")
    at.text_input(key="au_password").input("short")
    click(at, "Add user")
    assert "2-80 characters" in messages_after(at, "au_username")[0]
    assert messages_after(at, "au_password") == ["must be at least 10 characters"]
    at.text_input(key="cu_password").input("short")
    click(at, "Reset password (and unlock)")
    assert messages_after(at, "cu_password") == ["must be at least 10 characters"]


def test_the_sessions_tab_ends_a_session_and_that_user_is_signed_out(
    app: AppFactory, people: dict[str, Actor], engine: Engine
) -> None:
    tech = app("tech1").run()  # tech1 signed in in another browser
    at = admin_page(app)
    listed = at.dataframe[-1].value
    assert {"tech1", "boss"} <= set(listed["username"])
    tech_session = tech.session_state["session_id"]
    at.selectbox(key="sess_chosen").select(tech_session)
    click(at, "End session")
    assert "Session ended: that browser is signed out at its next click." in texts(at.success)
    assert "tech1" not in set(at.dataframe[-1].value["username"])
    event = last_event(engine)
    assert (event.actor, event.action, event.reason) == ("boss", "logout",
                                                         "ended by an administrator")
    tech.run()  # tech1's next click
    assert "An administrator ended your session. Please sign in again." in (
        texts(tech.info) + texts(tech.warning) + texts(tech.error) + texts(tech.markdown))
