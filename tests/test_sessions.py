"""The session store (audit.sessions) on SQLite and PostgreSQL: a handoff code is exchanged once
for a token, only hashes are stored, the idle timeout and revocation end a session for good, and
account changes (deactivation, password reset) end every session of the account, each end in the
audit trail."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from audit import auth, sessions
from audit.auth import Actor, cli_actor
from audit.errors import PermissionDenied
from audit.settings import update_setting
from audit.storage.models import AuditEvent, UserSession, utcnow
from audit.trail import verify_chain
from audit.vocab import Role

PASSWORD = "correct horse battery"


@pytest.fixture
def boss(engine: Engine) -> Actor:
    auth.add_user(engine, cli_actor(), "boss", Role.ADMIN, PASSWORD)
    auth.add_user(engine, cli_actor(), "tech1", Role.TECHNOLOGIST, PASSWORD)
    return Actor("boss", Role.ADMIN)


class Clock:
    """audit.sessions' clock, moved forward by the test."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.offset = timedelta(0)
        monkeypatch.setattr(sessions, "utcnow", lambda: utcnow() + self.offset)

    def advance(self, **delta: float) -> None:
        self.offset += timedelta(**delta)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    return Clock(monkeypatch)


def signed_in(engine: Engine, username: str = "tech1") -> tuple[int, str]:
    """A session with its cookie collected: (session id, token)."""
    session_id, handoff = sessions.start(engine, username)
    token = sessions.redeem(engine, handoff)
    assert token is not None
    return session_id, token


def row(engine: Engine, session_id: int) -> UserSession:
    with Session(engine) as s:
        return s.get(UserSession, session_id)


def events(engine: Engine) -> list[AuditEvent]:
    with Session(engine) as s:
        return list(s.scalars(select(AuditEvent).order_by(AuditEvent.id)))


def test_a_handoff_is_exchanged_once_for_a_token_that_signs_in(engine: Engine,
                                                              boss: Actor) -> None:
    session_id, handoff = sessions.start(engine, "tech1")
    token = sessions.redeem(engine, handoff)
    assert token and token != handoff
    assert sessions.redeem(engine, handoff) is None  # used
    live = sessions.resume(engine, token)
    assert isinstance(live, sessions.Live)
    assert (live.session_id, live.username, live.role) == (session_id, "tech1", Role.TECHNOLOGIST)
    assert sessions.resume(engine, handoff) is None  # the code itself is no token
    assert sessions.resume(engine, "x" * 43) is None
    assert sessions.resume(engine, "x" * 10_000) is None  # not even hashed
    assert sessions.resume(engine, None) is None


def test_a_handoff_expires_unused(engine: Engine, boss: Actor, clock: Clock) -> None:
    _, handoff = sessions.start(engine, "tech1")
    clock.advance(seconds=sessions.HANDOFF_SECONDS + 1)
    assert sessions.redeem(engine, handoff) is None


def test_only_hashes_of_the_secrets_are_stored(engine: Engine, boss: Actor) -> None:
    session_id, handoff = sessions.start(engine, "tech1")
    stored = row(engine, session_id)
    assert stored.handoff_hash == hashlib.sha256(handoff.encode()).hexdigest()
    assert stored.token_hash is None
    token = sessions.redeem(engine, handoff)
    assert token is not None
    stored = row(engine, session_id)
    assert stored.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert stored.handoff_hash is None and stored.handoff_expires_at is None
    with Session(engine) as s:  # nowhere in the table or in the trail
        cells = [json.dumps([str(v) for v in r]) for r in s.execute(text(
            "SELECT * FROM user_session")).all()]
        cells += [json.dumps([e.before, e.after, e.reason]) for e in s.scalars(
            select(AuditEvent))]
    for secret in (token, handoff):
        assert not any(secret in cell for cell in cells)


def test_the_idle_timeout_ends_a_session_and_activity_keeps_it(engine: Engine, boss: Actor,
                                                               clock: Clock) -> None:
    session_id, token = signed_in(engine)
    clock.advance(minutes=20)
    live = sessions.resume(engine, token)  # activity: moves last_seen_at
    assert isinstance(live, sessions.Live)
    stored = row(engine, session_id)
    assert stored.expires_at - stored.last_seen_at == timedelta(minutes=30)
    clock.advance(minutes=25)  # 45 min after sign-in, 25 after the last activity
    assert isinstance(sessions.check(engine, session_id), sessions.Live)
    clock.advance(minutes=31)
    assert sessions.resume(engine, token) == sessions.Ended(session_id, sessions.IDLE_TIMEOUT)
    clock.advance(minutes=-60)  # ended for good, whatever the clock says later
    assert sessions.resume(engine, token) == sessions.Ended(session_id, sessions.IDLE_TIMEOUT)
    stored = row(engine, session_id)
    assert stored.revoked_reason == sessions.IDLE_TIMEOUT and stored.revoked_at is not None
    [logout] = [e for e in events(engine) if e.action == "logout"]
    assert (logout.actor, logout.reason, logout.after) == (
        "tech1", "idle timeout", {"session": session_id})


def test_a_look_without_activity_does_not_keep_a_session(engine: Engine, boss: Actor,
                                                         clock: Clock) -> None:
    session_id, _ = signed_in(engine)
    clock.advance(minutes=20)
    assert isinstance(sessions.check(engine, session_id, touch=False), sessions.Live)
    clock.advance(minutes=11)
    assert sessions.check(engine, session_id) == sessions.Ended(session_id,
                                                                sessions.IDLE_TIMEOUT)


def test_a_shorter_idle_setting_applies_to_open_sessions(engine: Engine, boss: Actor,
                                                         clock: Clock) -> None:
    session_id, token = signed_in(engine)
    update_setting(engine, cli_actor(), "session_idle_minutes", 5)
    clock.advance(minutes=6)
    assert sessions.resume(engine, token) == sessions.Ended(session_id, sessions.IDLE_TIMEOUT)


def test_sign_out_revokes_the_token_for_good(engine: Engine, boss: Actor) -> None:
    session_id, token = signed_in(engine)
    other_id, other = signed_in(engine)  # another browser of the same person
    assert sessions.end(engine, session_id, sessions.SIGNED_OUT)
    assert not sessions.end(engine, session_id, sessions.SIGNED_OUT)  # once
    assert sessions.resume(engine, token) == sessions.Ended(session_id, sessions.SIGNED_OUT)
    assert isinstance(sessions.resume(engine, other), sessions.Live)
    assert sessions.end_by_token(engine, other)
    assert not sessions.end_by_token(engine, other)
    assert sessions.check(engine, other_id) == sessions.Ended(other_id, sessions.SIGNED_OUT)
    assert sessions.live_sessions(engine, "tech1") == []
    logouts = [(e.reason, e.after) for e in events(engine) if e.action == "logout"]
    assert logouts == [("signed out", {"session": session_id}),
                       ("signed out", {"session": other_id})]


def test_a_handoff_of_an_ended_session_is_refused(engine: Engine, boss: Actor) -> None:
    session_id, handoff = sessions.start(engine, "tech1")
    sessions.end(engine, session_id, sessions.SIGNED_OUT)
    assert sessions.redeem(engine, handoff) is None


def test_deactivation_ends_every_session_of_the_account(engine: Engine, boss: Actor) -> None:
    first, token = signed_in(engine)
    second, _ = sessions.start(engine, "tech1")  # signed in, cookie not collected yet
    mine, boss_token = signed_in(engine, "boss")
    auth.deactivate_user(engine, boss, "tech1")
    assert sessions.resume(engine, token) == sessions.Ended(first, sessions.DEACTIVATED)
    assert sessions.check(engine, second) == sessions.Ended(second, sessions.DEACTIVATED)
    assert isinstance(sessions.resume(engine, boss_token), sessions.Live)
    auth.reactivate_user(engine, boss, "tech1")  # no session comes back
    assert sessions.resume(engine, token) == sessions.Ended(first, sessions.DEACTIVATED)
    ends = [(e.actor, e.reason, e.after) for e in events(engine) if e.action == "logout"]
    assert ends == [("boss", "account deactivated", {"session": first}),
                    ("boss", "account deactivated", {"session": second})]
    assert mine


def test_a_password_reset_ends_the_sessions_and_a_role_change_does_not(engine: Engine,
                                                                      boss: Actor) -> None:
    session_id, token = signed_in(engine)
    auth.change_role(engine, boss, "tech1", Role.RSO)
    live = sessions.resume(engine, token)
    assert isinstance(live, sessions.Live) and live.role is Role.RSO  # read from the account
    auth.reset_password(engine, boss, "tech1", "another long password")
    assert sessions.resume(engine, token) == sessions.Ended(session_id, sessions.PASSWORD_RESET)


def test_an_account_disabled_outside_the_app_ends_its_session_at_the_next_check(
    engine: Engine, boss: Actor
) -> None:
    session_id, token = signed_in(engine)
    with Session(engine) as s, s.begin():
        s.execute(text("UPDATE user_account SET active = false WHERE username = 'tech1'"))
    assert sessions.resume(engine, token) == sessions.Ended(session_id, sessions.DEACTIVATED)
    assert row(engine, session_id).revoked_reason == sessions.DEACTIVATED


def test_only_an_account_that_can_sign_in_gets_a_session(engine: Engine, boss: Actor) -> None:
    auth.add_user(engine, cli_actor(), "imported", Role.TECHNOLOGIST, None)
    for name in ("imported", "nobody"):
        with pytest.raises(PermissionDenied):
            sessions.start(engine, name)


def test_every_step_is_in_the_audit_trail(engine: Engine, boss: Actor) -> None:
    session_id, token = signed_in(engine)
    sessions.resume(engine, token)
    sessions.end(engine, session_id, sessions.SIGNED_OUT)
    steps = [(e.action, e.entity, e.reason) for e in events(engine)
             if e.entity == "user_session" or e.action == "logout"]
    assert steps == [("create", "user_session", None),
                     ("amend", "user_session", "session cookie issued"),
                     ("logout", "user_account", "signed out")]
    created = next(e for e in events(engine) if e.entity == "user_session")
    assert created.entity_id == str(session_id) and created.after["username"] == "tech1"
    with Session(engine) as s:
        assert verify_chain(s).ok
