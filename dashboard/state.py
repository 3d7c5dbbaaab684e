"""Per-process resources and per-session state shared by every page.

The engine and the service are owned here (st.cache_resource), not st.connection: its query
cache never expires, and audit figures must change the moment a record is saved. Pages cache
only DataFrames (st.cache_data) and call `data_changed()` after every write.

The session (audit.sessions; docs/design.md §8): `sign_in()` starts a stored session and keeps
its id and the audit.auth.Actor here, and leaves the browser a one-time code to exchange for the
HttpOnly session cookie (`cookie_script()`, dashboard/cookies.py). `check_session()` (run by
app.py before every page) checks the stored session at every click: it ends after
`session_idle_minutes` without activity, at sign-out (here or in another window), deactivation
or a password reset, and follows a new role. A new Streamlit session (a reload, a new tab, a
link opened) resumes from the cookie, which st.context.cookies reads from the WebSocket request.
"""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Any
from zoneinfo import ZoneInfo

import streamlit as st

from audit import (
    ENV_DB,
    Actor,
    Engine,
    Permission,
    ProcedureLog,
    Settings,
    current_revision,
    default_url,
    head_revision,
    make_engine,
    migrate,
    sessions,
)
from audit.log import browser_zone
from dashboard import cookies, sso

ACTOR_KEY = "actor"
#: The stored session (audit.sessions) this Streamlit session is signed in with.
SESSION_KEY = "session_id"
#: When the stored session last saw activity (epoch seconds), for the idle watcher.
LAST_SEEN_KEY = "last_seen"
FLASH_KEY = "flash"
#: A warning for the next page (a deep link to a page the role may not open).
NOTICE_KEY = "notice"
#: What the browser must do with the session cookie: ("set", handoff code) or ("clear",).
COOKIE_ACTION_KEY = "cookie_action"
#: The cookie this Streamlit session was opened with has been looked at (once is enough: it
#: stays what it was when the page loaded).
COOKIE_READ_KEY = "cookie_read"
#: The next check is the idle watcher's look, which is no activity.
PROBE_KEY = "idle_probe"


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


@st.cache_resource(show_spinner=False)
def warm_analysis_frame() -> None:
    """Once per process, when someone who can open the audit pages has signed in: import the
    analysis pages' modules (pandas, altair) and start reading the analysis frame, both in a
    background thread, so that neither the sign-in page nor the answer to signing in waits for
    them (dashboard.analytics.frame_cache; the pages' own call waits for the frame)."""
    def load() -> None:
        try:
            from dashboard import analytics

            analytics.warm()  # the frame on SQLite; on PostgreSQL figures come from SQL
        except Exception:  # the page's own call reports it
            return

    threading.Thread(target=load, daemon=True, name="frame-import").start()


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
    """Start a stored session for `actor`, who has just proved who they are, and ask the browser
    to collect its cookie (raises PermissionDenied if the account was disabled meanwhile)."""
    session_id, handoff = sessions.start(engine(), actor.username)
    st.session_state[ACTOR_KEY] = actor
    st.session_state[SESSION_KEY] = session_id
    st.session_state[LAST_SEEN_KEY] = time.time()
    st.session_state[COOKIE_ACTION_KEY] = ("set", handoff)


def sign_out(reason: str = sessions.SIGNED_OUT, message: str | None = None) -> None:
    """End the session (stored, audited: a copy of the cookie is useless from now on), forget
    everything this Streamlit session held (form contents included, so the next person at the
    workstation sees no patient data) and have the browser drop the cookie."""
    session_id = st.session_state.get(SESSION_KEY)
    if session_id is not None:
        sessions.end(engine(), int(session_id), reason)
    _forget(message)


def _forget(message: str | None, *, end_identity: bool = True) -> None:
    """Forget the signed-in user. With `end_identity`, a single sign-on identity held in this
    browser ends too (a session that ended must not come back through the provider's cookie);
    not for a stale cookie found on arrival, which may come with a sign-on just made."""
    if end_identity:
        sso.end_identity()
    for key in list(st.session_state.keys()):
        del st.session_state[key]
    st.session_state[COOKIE_READ_KEY] = True
    st.session_state[COOKIE_ACTION_KEY] = ("clear",)
    if message:
        st.session_state[FLASH_KEY] = message


def _ended_message(reason: str) -> str | None:
    if reason == sessions.IDLE_TIMEOUT:
        return (f"You were signed out after {idle_minutes():g} minutes without activity. "
                "Please sign in again.")
    if reason == sessions.DEACTIVATED:
        return "Your account is no longer active. Ask an administrator."
    if reason == sessions.PASSWORD_RESET:
        return "Your password was reset by an administrator. Please sign in with the new one."
    if reason == sessions.SIGNED_OUT:
        return "You were signed out in another window. Please sign in again."
    if reason == sessions.ENDED_BY_ADMIN:
        return "An administrator ended your session. Please sign in again."
    return f"Your session has ended ({reason}). Please sign in again."


def check_session() -> Actor | None:
    """The signed-in actor after checking the stored session (idle timeout, revoked, account
    deactivated, new role); else the session the browser's cookie names, if it is live; None
    if nobody is signed in (a message for the sign-in page is left in the flash)."""
    session_id = st.session_state.get(SESSION_KEY)
    if session_id is None or current_actor() is None:
        return _resume()
    probe = bool(st.session_state.pop(PROBE_KEY, False))
    outcome = sessions.check(engine(), int(session_id), touch=not probe)
    if isinstance(outcome, sessions.Ended):
        _forget(_ended_message(outcome.reason))
        return None
    return _signed_in(outcome)


def _resume() -> Actor | None:
    """A new Streamlit session (reload, new tab, a link): the session its cookie names."""
    if st.session_state.get(COOKIE_READ_KEY):
        return None
    st.session_state[COOKIE_READ_KEY] = True
    token = _cookie()
    if not token:
        return None
    outcome = sessions.resume(engine(), token)
    if isinstance(outcome, sessions.Live):
        return _signed_in(outcome)
    reason = outcome.reason if outcome is not None else ""
    # A reload after sign-out says nothing; after a timeout or a deactivation it says why.
    _forget(_ended_message(reason) if reason in {sessions.IDLE_TIMEOUT, sessions.DEACTIVATED,
                                                 sessions.PASSWORD_RESET,
                                                 sessions.ENDED_BY_ADMIN} else None,
            end_identity=False)
    return None


def _signed_in(live: sessions.Live) -> Actor:
    actor = Actor(live.username, live.role)
    if current_actor() != actor:
        st.session_state[ACTOR_KEY] = actor
    st.session_state[SESSION_KEY] = live.session_id
    st.session_state[LAST_SEEN_KEY] = live.last_seen_at.timestamp()
    return actor


def _cookie() -> str | None:
    try:
        return st.context.cookies.get(cookies.COOKIE_NAME)
    except Exception:  # no browser context (a bare script run)
        return None


def probe_idle() -> None:
    """The idle watcher's rerun: look at the session without counting it as activity."""
    st.session_state[PROBE_KEY] = True


def cookie_script(slot: Any) -> None:
    """Draw into `slot` (once) the script that has the browser collect or drop the session
    cookie: a same-origin fetch() to dashboard/cookies.py, which answers with Set-Cookie."""
    action = st.session_state.pop(COOKIE_ACTION_KEY, None)
    if not action:
        return
    set_it = action[0] == "set"
    url = cookies.route_url(cookies.START_PATH if set_it else cookies.END_PATH)
    body = f", body: {json.dumps(action[1])}" if set_it else ""
    slot.html(f"<script>fetch({json.dumps(url)}, {{method: 'POST', credentials: 'same-origin', "
              f"cache: 'no-store'{body}}}).catch(() => {{}});</script>",
              unsafe_allow_javascript=True)


def notice(message: str) -> None:
    st.session_state[NOTICE_KEY] = message


def pop_notice() -> str | None:
    return st.session_state.pop(NOTICE_KEY, None)


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
