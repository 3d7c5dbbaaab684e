"""Per-process resources and per-session state shared by every page.

The engine and the service are owned here (st.cache_resource), not st.connection: its query
cache never expires, and audit figures must change the moment a record is saved. Pages cache
only DataFrames (st.cache_data) and call `data_changed()` after every write.

The session: `sign_in()` stores the audit.auth.Actor under ACTOR_KEY; `check_session()` (run by
app.py before every page) ends it after `session_idle_minutes` without activity, and follows an
administrator's changes (deactivated account, new role) at the user's next click.
"""

from __future__ import annotations

import os
import time
from zoneinfo import ZoneInfo

import streamlit as st

from audit import (
    ENV_DB,
    Actor,
    Engine,
    Permission,
    ProcedureLog,
    Settings,
    auth,
    current_revision,
    default_url,
    head_revision,
    make_engine,
    migrate,
)
from audit.log import browser_zone

ACTOR_KEY = "actor"
LAST_SEEN_KEY = "last_seen"
FLASH_KEY = "flash"


def database_url() -> str:
    """The database this process serves: FLUORO_AUDIT_DB, else the default SQLite file."""
    return os.environ.get(ENV_DB) or default_url()


def engine() -> Engine:
    """The process's engine for the configured database."""
    return _engine_for(database_url())


def service() -> ProcedureLog:
    return _service_for(database_url())


@st.cache_resource(show_spinner=False)
def _engine_for(url: str) -> Engine:
    """One engine per database URL; the schema is brought to head first (once per process),
    so `streamlit run dashboard/app.py` on a new database file works like `fluoro-audit
    serve`."""
    eng = make_engine(url)
    if current_revision(eng) != head_revision():
        migrate(url)
    return eng


@st.cache_resource(show_spinner=False)
def _service_for(url: str) -> ProcedureLog:
    return ProcedureLog(_engine_for(url))


def current_actor() -> Actor | None:
    """The signed-in user, or None."""
    actor = st.session_state.get(ACTOR_KEY)
    return actor if isinstance(actor, Actor) else None


def require(permission: Permission) -> Actor:
    """Stop the page unless the signed-in user holds `permission` (checked on every page, not
    only by hiding it from the navigation)."""
    actor = current_actor()
    if actor is None:
        st.error("Please sign in.")
        st.stop()
    if not actor.can(permission):
        st.error(f"Your role ({actor.role.value}) cannot open this page.")
        st.stop()
    return actor


def data_changed() -> None:
    """Call after any write: cached figures and tables must show it at once."""
    st.cache_data.clear()


# --- sign-in session ---------------------------------------------------------------------------

def idle_minutes() -> float:
    """The idle timeout, from the setting `session_idle_minutes` (default 30)."""
    try:
        return float(service().settings.session_idle_minutes)
    except (TypeError, ValueError):
        return Settings.session_idle_minutes


def sign_in(actor: Actor) -> None:
    st.session_state[ACTOR_KEY] = actor
    st.session_state[LAST_SEEN_KEY] = time.time()


def sign_out(reason: str = "signed out", message: str | None = None) -> None:
    """End the session: audit it, forget everything the session held (form contents included,
    so the next person at the workstation sees no patient data)."""
    actor = current_actor()
    if actor is not None:
        auth.sign_out(engine(), actor, reason)
    for key in list(st.session_state.keys()):
        del st.session_state[key]
    if message:
        st.session_state[FLASH_KEY] = message


def check_session() -> Actor | None:
    """The signed-in actor after applying the idle timeout and account changes; None if the
    session ended (a message for the sign-in screen is left in the flash)."""
    actor = current_actor()
    if actor is None:
        return None
    now = time.time()
    limit = idle_minutes()
    last = float(st.session_state.get(LAST_SEEN_KEY, now))
    if now - last > limit * 60:
        sign_out("idle timeout", f"You were signed out after {limit:g} minutes without "
                 "activity. Please sign in again.")
        return None
    fresh = auth.current_actor_state(engine(), actor)
    if fresh is None:
        sign_out("account deactivated", "Your account is no longer active. Ask an "
                 "administrator.")
        return None
    if fresh != actor:
        st.session_state[ACTOR_KEY] = fresh
    st.session_state[LAST_SEEN_KEY] = now
    return fresh


def flash(message: str) -> None:
    st.session_state[FLASH_KEY] = message


def pop_flash() -> str | None:
    return st.session_state.pop(FLASH_KEY, None)


def user_zone() -> ZoneInfo | None:
    """The browser's time zone: dates are typed and shown in local time, stored in UTC."""
    try:
        return browser_zone(st.context.timezone)
    except Exception:  # no browser context (bare script run)
        return None
