"""The app shell: first-run setup, sign-in, lockout, idle timeout, sign-out, and navigation by
role (including that a role cannot reach a page it must not, by switch_page or by opening it)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from streamlit.testing.v1 import AppTest

from audit import auth, lockout
from audit.auth import Actor
from audit.errors import PermissionDenied
from audit.storage.models import AuditEvent, UserAccount, UserSession, utcnow
from audit.vocab import Role
from dashboard import state
from dashboard.navigation import PAGES
from tests.dashboard.conftest import (
    PASSWORD,
    PEOPLE,
    VIEWS,
    AppFactory,
    messages_after,
    page,
    texts,
)


def events(engine: Engine, action: str) -> list[AuditEvent]:
    with Session(engine) as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.action == action)
                              .order_by(AuditEvent.id)))


def sign_in(at: AppTest, username: str, password: str) -> AppTest:
    at.text_input(key="si_username").input(username)
    at.text_input(key="si_password").input(password)
    return at.button[0].click().run()


def idle_for(engine: Engine, at: AppTest, minutes: float) -> None:
    """The stored session of `at` last saw activity `minutes` ago."""
    then = utcnow() - timedelta(minutes=minutes)
    with Session(engine) as s, s.begin():
        row = s.get(UserSession, at.session_state[state.SESSION_KEY])
        row.last_seen_at, row.expires_at = then, then + timedelta(minutes=30)
    at.session_state[state.LAST_SEEN_KEY] = then.timestamp()


def nav_titles(at: AppTest) -> list[str]:
    """Titles of the pages st.navigation registered in the last run."""
    return sorted(str(info.get("page_name")) for info in at._registered_pages.values())


# --- first run ----------------------------------------------------------------------------------

def test_first_start_asks_for_the_administrator_then_signs_them_in(
    app: AppFactory, engine: Engine
) -> None:
    at = app().run()
    assert texts(at.title) == ["Welcome to fluoro-audit"]
    at.text_input(key="fr_username").input("admin")
    at.text_input(key="fr_password").input(PASSWORD)
    at.text_input(key="fr_repeat").input(PASSWORD)
    at.button[0].click().run()
    assert not at.exception
    assert at.session_state[state.ACTOR_KEY] == Actor("admin", Role.ADMIN)
    assert "Administrator admin created" in texts(at.success)[0]
    assert "Admin" in nav_titles(at)
    with Session(engine) as s:
        user = s.scalar(select(UserAccount).where(UserAccount.username == "admin"))
        assert user.role == "admin" and user.password_hash.startswith("$argon2id$")
    created = [e for e in events(engine, "create") if e.entity == "user_account"]
    assert created[-1].actor == auth.SETUP_ACTOR


def test_first_run_errors_show_under_their_fields(app: AppFactory) -> None:
    at = app().run()
    at.text_input(key="fr_username").input("x")
    at.text_input(key="fr_password").input("short")
    at.text_input(key="fr_repeat").input("short")
    at.button[0].click().run()
    [username_error] = messages_after(at, "fr_username")
    assert "2-80 characters" in username_error
    [password_error] = messages_after(at, "fr_password")
    assert "at least 10 characters" in password_error
    assert messages_after(at, "fr_display_name") == []
    at.text_input(key="fr_username").input("admin")
    at.text_input(key="fr_password").input(PASSWORD)
    at.text_input(key="fr_repeat").input(PASSWORD + "x")
    at.button[0].click().run()
    assert any("the two passwords differ" in e for e in texts(at.error))
    assert state.ACTOR_KEY not in at.session_state


def test_once_an_account_can_sign_in_there_is_no_setup_screen(
    app: AppFactory, people: dict[str, Actor]
) -> None:
    at = app().run()
    assert texts(at.title) == ["fluoro-audit"]
    assert [t.label for t in at.text_input] == ["Username", "Password"]
    with pytest.raises(PermissionDenied, match="already exists"):
        auth.create_first_admin(state.engine(), "intruder", PASSWORD)


# --- sign-in ------------------------------------------------------------------------------------

def test_sign_in_with_the_right_password_opens_the_role_navigation(
    app: AppFactory, people: dict[str, Actor], engine: Engine
) -> None:
    at = sign_in(app().run(), "tech1", PASSWORD)
    assert at.session_state[state.ACTOR_KEY] == Actor("tech1", Role.TECHNOLOGIST)
    assert texts(at.title) == ["Log procedure"]  # a technologist starts on the entry form
    assert "Signed in as **tech1**" in at.sidebar.markdown[0].value
    assert events(engine, "login")[-1].actor == "tech1"


def test_a_wrong_password_is_refused_and_audited(
    app: AppFactory, people: dict[str, Actor], engine: Engine
) -> None:
    at = sign_in(app().run(), "tech1", "not the password")
    assert texts(at.error) == [lockout.FAILED]
    assert state.ACTOR_KEY not in at.session_state
    assert events(engine, "login_failed")[-1].reason == "wrong password"


def test_five_failures_lock_the_account_even_for_the_right_password(
    app: AppFactory, people: dict[str, Actor]
) -> None:
    at = app().run()
    for _ in range(auth.MAX_FAILED_LOGINS):
        sign_in(at, "tech2", "guess guess guess")
    assert texts(at.error) == [lockout.FAILED]
    sign_in(at, "tech2", PASSWORD)
    assert texts(at.error) == [lockout.FAILED]
    assert state.ACTOR_KEY not in at.session_state


def test_the_sign_in_page_says_the_same_for_every_refusal(
    app: AppFactory, people: dict[str, Actor], engine: Engine
) -> None:
    """Unknown user, wrong password, deactivated and locked accounts (issue 10): one message,
    so the page does not tell which usernames exist or are locked."""
    with Session(engine) as s, s.begin():
        s.scalar(select(UserAccount).where(UserAccount.username == "quality")).active = False
        s.scalar(select(UserAccount).where(UserAccount.username == "rso1")).locked_until = (
            utcnow() + auth.LOCKOUT)
    shown = {}
    for case, (name, password) in {"unknown": ("nobody", PASSWORD),
                                   "wrong password": ("tech1", "not the password"),
                                   "deactivated": ("quality", PASSWORD),
                                   "locked": ("rso1", PASSWORD),
                                   "NUL in the name": ("tech\x001", PASSWORD)}.items():
        at = sign_in(app().run(), name, password)
        assert not at.exception, case
        assert state.ACTOR_KEY not in at.session_state, case
        shown[case] = texts(at.error)
    assert all(errors == [lockout.FAILED] for errors in shown.values()), shown


def test_sign_out_ends_the_session_and_is_audited(
    app: AppFactory, people: dict[str, Actor], engine: Engine
) -> None:
    at = app("tech1").run()
    at.sidebar.button[0].click().run()
    assert state.ACTOR_KEY not in at.session_state
    assert "You have signed out." in texts(at.info)
    assert [t.label for t in at.text_input] == ["Username", "Password"]
    assert events(engine, "logout")[-1].reason == "signed out"


def test_an_idle_session_ends_after_the_configured_minutes(
    app: AppFactory, people: dict[str, Actor], engine: Engine
) -> None:
    at = app("tech1")
    idle_for(engine, at, 31)
    at.run()
    assert state.ACTOR_KEY not in at.session_state
    assert "signed out after 30 minutes without activity" in texts(at.info)[0]
    assert events(engine, "logout")[-1].reason == "idle timeout"
    assert [t.label for t in at.text_input] == ["Username", "Password"]


def test_the_idle_limit_is_the_session_idle_minutes_setting(
    app: AppFactory, people: dict[str, Actor], engine: Engine
) -> None:
    from audit.settings import update_setting

    update_setting(engine, auth.cli_actor(), "session_idle_minutes", 5)
    at = app("tech1")
    idle_for(engine, at, 6)
    at.run()
    assert "after 5 minutes" in texts(at.info)[0]
    at = app("tech1")
    idle_for(engine, at, 4)
    at.run()
    assert at.session_state[state.ACTOR_KEY].username == "tech1"


def test_a_deactivated_account_is_signed_out_at_its_next_click(
    app: AppFactory, people: dict[str, Actor], engine: Engine
) -> None:
    at = app("tech1").run()
    auth.deactivate_user(engine, people["boss"], "tech1")
    at.run()
    assert state.ACTOR_KEY not in at.session_state
    assert "no longer active" in texts(at.info)[0]


def test_a_role_change_applies_at_the_next_click(
    app: AppFactory, people: dict[str, Actor], engine: Engine
) -> None:
    at = app("tech1").run()
    assert "Admin" not in nav_titles(at)
    auth.change_role(engine, people["boss"], "tech1", Role.ADMIN)
    at.run()
    assert at.session_state[state.ACTOR_KEY].role is Role.ADMIN
    assert "Admin" in nav_titles(at)


# --- navigation by role -------------------------------------------------------------------------

EXPECTED = {
    Role.ADMIN: {"Overview", "Log procedure", "Records", "Admin"},
    Role.TECHNOLOGIST: {"Overview", "Log procedure", "Records"},
    Role.PHYSICIAN: {"Overview", "Records"},
    Role.QUALITY_OFFICER: {"Overview", "Records"},
    Role.RSO: {"Overview", "Records"},
}
MINE = {"home.py", "log_procedure.py", "records.py", "admin.py"}


@pytest.mark.parametrize("role", list(Role), ids=lambda r: r.value)
def test_each_role_sees_its_pages_and_cannot_switch_to_others(
    app: AppFactory, people: dict[str, Actor], role: Role
) -> None:
    at = app({r: n for n, r in PEOPLE.items()}[role]).run()
    assert not at.exception
    titles = {t for t in nav_titles(at) if t in {s.title for s in PAGES if s.module in MINE}}
    assert titles == EXPECTED[role]
    for spec in PAGES:
        if spec.module not in MINE:
            continue
        if spec.title in EXPECTED[role]:
            at.switch_page(page(spec.module.removesuffix(".py"))).run()
            assert not at.exception, spec.module
            assert not any("cannot open this page" in e for e in texts(at.error))
        else:
            with pytest.raises(ValueError, match="Could not find a navigation page"):
                at.switch_page(page(spec.module.removesuffix(".py")))


@pytest.mark.parametrize(("module", "role"), [
    ("admin", Role.TECHNOLOGIST), ("admin", Role.RSO), ("admin", Role.QUALITY_OFFICER),
    ("admin", Role.PHYSICIAN), ("log_procedure", Role.PHYSICIAN),
    ("log_procedure", Role.QUALITY_OFFICER), ("log_procedure", Role.RSO),
])
def test_a_page_opened_directly_refuses_a_role_that_may_not_see_it(
    app_db: str, people: dict[str, Actor], module: str, role: Role
) -> None:
    at = AppTest.from_file(str(VIEWS / f"{module}.py"), default_timeout=30)
    at.session_state[state.ACTOR_KEY] = Actor({r: n for n, r in PEOPLE.items()}[role], role)
    at.run()
    assert f"Your role ({role.value}) cannot open this page." in texts(at.error)
    assert len(at.main) == 1  # nothing else was drawn


@pytest.mark.parametrize("module", ["home", "log_procedure", "records", "admin"])
def test_a_page_opened_without_signing_in_asks_to_sign_in(app_db: str, module: str) -> None:
    at = AppTest.from_file(str(VIEWS / f"{module}.py"), default_timeout=30).run()
    assert texts(at.error) == ["Please sign in."]
