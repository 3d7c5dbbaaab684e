"""Fixtures for the Streamlit pages: AppTest on a fresh database (SQLite and PostgreSQL), with
real accounts, so the app's own session checks (account still active, role) run as in use."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import streamlit as st
from sqlalchemy import Engine
from streamlit.testing.v1 import AppTest

from audit import auth, sessions
from audit import reference_data as admin
from audit.auth import Actor, cli_actor
from audit.vocab import Role
from dashboard import analytics, state  # noqa: F401  (analytics: see below)

# dashboard.analytics is imported here, once, and not by the warm-up thread a sign-in starts:
# that import parses ASTs (inspect.signature) while the page's script run parses its own
# (Streamlit's magic), and on CPython 3.11 two threads parsing at once can fail with "AST
# constructor recursion depth mismatch" (CPython gh-106905).

APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"
VIEWS = APP.parent / "views"
PASSWORD = "correct horse battery"
#: One account per role; the physician account is linked to Dr. Chen.
PEOPLE = {"boss": Role.ADMIN, "tech1": Role.TECHNOLOGIST, "tech2": Role.TECHNOLOGIST,
          "drchen": Role.PHYSICIAN, "quality": Role.QUALITY_OFFICER, "rso1": Role.RSO}
ROLE_USER = {role: name for name, role in PEOPLE.items()}


@pytest.fixture
def app_db(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The app serves `db_url`; its engine is disposed afterwards (PostgreSQL connections are
    shared with everyone's tests)."""
    monkeypatch.setenv("FLUORO_AUDIT_DB", db_url)
    st.cache_data.clear()
    yield db_url
    wait_for_warm_up()
    state._engine_for(db_url).dispose()
    st.cache_resource.clear()
    st.cache_data.clear()


#: The background threads a sign-in starts (dashboard.state.warm_analysis_frame).
WARM_UP_THREADS = {"frame-import", "frame-warmup"}


def wait_for_warm_up(timeout: float = 120) -> None:
    """Let the analysis warm-up a sign-in started finish inside its own test. Left running, it
    read FLUORO_AUDIT_DB after the test had restored it, and so migrated ./var's database in
    the next test, at the same time as that test's template migration."""
    deadline = time.monotonic() + timeout
    for thread in threading.enumerate():
        if thread.name in WARM_UP_THREADS:
            thread.join(max(0.0, deadline - time.monotonic()))
            assert not thread.is_alive(), f"the {thread.name} thread did not finish"


@pytest.fixture
def people(app_db: str, engine: Engine) -> dict[str, Actor]:
    """Accounts for every role, a site with one room (displays cGy·cm²), two physicians."""
    system = cli_actor()
    for name, role in PEOPLE.items():
        auth.add_user(engine, system, name, role, PASSWORD)
    admin.add_site(engine, system, "Riverside")
    admin.add_room(engine, system, "Riverside", "OR 1", make="GE", model="OEC 9900",
                   dap_display_unit="cGy·cm²")
    admin.add_room(engine, system, "Riverside", "OR 2", make="Ziehm", model="Vision RFD")
    admin.add_physician(engine, system, "Dr. Chen", username="drchen")
    admin.add_physician(engine, system, "Dr. Weiss")
    return {name: Actor(name, role) for name, role in PEOPLE.items()}


AppFactory = Callable[..., AppTest]


@pytest.fixture
def app(app_db: str) -> AppFactory:
    """make(user=None): the app, signed in as `user` (a PEOPLE name) or not signed in."""
    def make(user: str | None = None, *, timezone: str = "America/Chicago") -> AppTest:
        at = AppTest.from_file(str(APP), default_timeout=30)
        at.context["timezone"] = timezone
        if user is not None:
            signed_in(at, user, PEOPLE[user])
        return at

    return make


def signed_in(at: AppTest, username: str, role: Role) -> AppTest:
    """`at` signed in as `username`, as the sign-in page leaves it: a stored session
    (audit.sessions), its id and the actor in the session state."""
    session_id, _ = sessions.start(state.engine(), username)
    at.session_state[state.ACTOR_KEY] = Actor(username, role)
    at.session_state[state.SESSION_KEY] = session_id
    at.session_state[state.LAST_SEEN_KEY] = time.time()
    return at


def page(name: str) -> str:
    """A view's path relative to app.py, for AppTest.switch_page."""
    return f"views/{name}.py"


def open_tab(at: AppTest, key: str, label: str) -> AppTest:
    """Open the tab `label` of the st.tabs `key` and rerun, as a click on it does: the tabs
    are lazy (on_change="rerun"), so only the open tab's figures are drawn."""
    labels = [t.label for t in at.tabs]
    assert label in labels, f"no tab {label!r} among {labels}"
    at.session_state[key] = label
    return at.run()


def texts(elements: object) -> list[str]:
    return [str(e.value) for e in elements]  # type: ignore[attr-defined]


def messages_after(at: AppTest, key: str) -> list[str]:
    """The errors and warnings drawn right after the widget `key`, before the next widget:
    what a person sees next to that field."""
    from streamlit.testing.v1.element_tree import Block, Widget

    nodes = [n for n in at.main if not isinstance(n, Block)]
    start = next(i for i, n in enumerate(nodes) if getattr(n, "key", None) == key)
    found = []
    for node in nodes[start + 1:]:
        if isinstance(node, Widget):
            break
        if type(node).__name__ in {"Error", "Warning"}:
            found.append(str(node.value))
    return found
