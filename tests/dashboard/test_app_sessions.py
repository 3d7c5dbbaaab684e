"""The app's side of stored sessions (Streamlit AppTest, both databases): signing in starts a
stored session and hands the browser a one-time code; a new Streamlit session (a reload) with the
cookie resumes it, and after sign-out, the idle timeout or a deactivation it does not; the idle
watcher's look is no activity; the sign-in page loads no analysis frame."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from streamlit.testing.v1 import AppTest

from audit import auth, sessions
from audit.auth import Actor
from audit.storage.models import AuditEvent, UserSession, utcnow
from audit.vocab import Role
from dashboard import state
from tests.dashboard.conftest import APP, PASSWORD, AppFactory, texts

ROOT = Path(__file__).resolve().parents[2]


def events(engine: Engine) -> list[AuditEvent]:
    with Session(engine) as s:
        return list(s.scalars(select(AuditEvent).order_by(AuditEvent.id)))


def sign_in(at: AppTest, username: str) -> AppTest:
    at.text_input(key="si_username").input(username)
    at.text_input(key="si_password").input(PASSWORD)
    return at.button[0].click().run()


def cookie_scripts(at: AppTest) -> list[str]:
    return [h.value for h in at.html if "/_session/" in h.value]


def reload(app: AppFactory, monkeypatch: pytest.MonkeyPatch, token: str | None) -> AppTest:
    """A new Streamlit session whose browser sends `token` as the session cookie."""
    monkeypatch.setattr(state, "_cookie", lambda: token)
    return app().run()


def collect_cookie(at: AppTest) -> str:
    """What the browser does with the code the page hands it: the token of the cookie."""
    [script] = cookie_scripts(at)
    assert "/_session/start" in script
    code = re.search(r'body: "([^"]+)"', script)[1]  # type: ignore[index]
    token = sessions.redeem(state.engine(), code)
    assert token is not None
    return token


def test_signing_in_starts_a_stored_session_that_a_reload_resumes(
    app: AppFactory, people: dict[str, Actor], engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = sign_in(app().run(), "tech1")
    session_id = at.session_state[state.SESSION_KEY]
    assert sessions.live_sessions(engine, "tech1")[0]["id"] == session_id
    token = collect_cookie(at)
    assert cookie_scripts(at.run()) == []  # drawn once
    logins = len([e for e in events(engine) if e.action == "login"])

    again = reload(app, monkeypatch, token)
    assert again.session_state[state.ACTOR_KEY] == Actor("tech1", Role.TECHNOLOGIST)
    assert again.session_state[state.SESSION_KEY] == session_id
    assert texts(again.title) == ["Log procedure"]
    assert not again.text_input or "si_username" not in [t.key for t in again.text_input]
    assert len([e for e in events(engine) if e.action == "login"]) == logins  # no new sign-in


def test_after_sign_out_the_cookie_signs_nobody_in(
    app: AppFactory, people: dict[str, Actor], engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = sign_in(app().run(), "tech1")
    token = collect_cookie(at)
    at.sidebar.button[0].click().run()
    assert "You have signed out." in texts(at.info)
    [script] = cookie_scripts(at)
    assert "/_session/end" in script  # the browser drops the cookie
    again = reload(app, monkeypatch, token)
    assert state.ACTOR_KEY not in again.session_state
    assert [t.label for t in again.text_input] == ["Username", "Password"]
    assert texts(again.info) == []  # after one's own sign-out: nothing to explain
    assert "/_session/end" in cookie_scripts(again)[0]


def test_a_cookie_past_the_idle_timeout_or_of_a_deactivated_account_says_why(
    app: AppFactory, people: dict[str, Actor], engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = collect_cookie(sign_in(app().run(), "tech1"))
    with Session(engine) as s, s.begin():
        for row in s.scalars(select(UserSession)):
            row.last_seen_at = utcnow() - timedelta(minutes=31)
    again = reload(app, monkeypatch, token)
    assert "signed out after 30 minutes without activity" in texts(again.info)[0]

    token = collect_cookie(sign_in(app().run(), "tech2"))
    auth.deactivate_user(engine, people["boss"], "tech2")
    again = reload(app, monkeypatch, token)
    assert "no longer active" in texts(again.info)[0]
    assert state.ACTOR_KEY not in again.session_state


def test_signing_out_elsewhere_ends_this_window_at_its_next_click(
    app: AppFactory, people: dict[str, Actor], engine: Engine
) -> None:
    at = app("tech1").run()
    sessions.end(engine, at.session_state[state.SESSION_KEY], sessions.SIGNED_OUT)
    at.run()
    assert state.ACTOR_KEY not in at.session_state
    assert "signed out in another window" in texts(at.info)[0]


def test_the_idle_watchers_look_is_no_activity(
    app: AppFactory, people: dict[str, Actor], engine: Engine
) -> None:
    at = app("tech1")
    session_id = at.session_state[state.SESSION_KEY]
    then = utcnow() - timedelta(minutes=5)
    with Session(engine) as s, s.begin():
        s.get(UserSession, session_id).last_seen_at = then
    at.session_state[state.PROBE_KEY] = True
    at.run()
    with Session(engine) as s:
        assert s.get(UserSession, session_id).last_seen_at == then
    at.run()  # a click
    with Session(engine) as s:
        assert s.get(UserSession, session_id).last_seen_at > then


PROBE = """
import sys, threading, time
from streamlit.testing.v1 import AppTest
started = []
_start = threading.Thread.start
def start(thread):
    started.append(thread.name)
    _start(thread)
threading.Thread.start = start
at = AppTest.from_file(sys.argv[1], default_timeout=60).run()
assert [t.label for t in at.text_input] == ["Username", "Password"], at
print(sorted({"dashboard.analytics", "altair"} & set(sys.modules)), "frame-warmup" in started)
at.text_input(key="si_username").input(sys.argv[2])
at.text_input(key="si_password").input(sys.argv[3])
at.button[0].click().run()
for _ in range(600):  # imported and started in the background
    if not any(t.name == "frame-import" for t in threading.enumerate()):
        break
    time.sleep(0.1)
print(sorted({"dashboard.analytics", "altair"} & set(sys.modules)), "frame-warmup" in started)
"""


def test_the_sign_in_page_loads_no_analysis_frame(app_db: str, people: dict[str, Actor],
                                                  tmp_path: Path) -> None:
    """In a fresh process, as a server starts: the sign-in page imports neither the analysis
    module nor altair and starts no warm-up; a quality officer's sign-in starts it."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(APP), "quality", PASSWORD], cwd=ROOT,
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT),
             "FLUORO_AUDIT_CACHE_DIR": str(tmp_path)})
    assert done.returncode == 0, done.stderr[-3000:]
    before, after = done.stdout.strip().splitlines()[-2:]
    assert before == "[] False"
    assert after == "['altair', 'dashboard.analytics'] True"
