"""An administrator sees every live session and can end one (audit.session_admin), on both
databases: the list never carries a token or hash, ending is audited as a LOGOUT by the admin,
the ended browser is refused at its next check, and nobody else may list or end sessions."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from audit import auth, sessions
from audit.auth import Actor, cli_actor
from audit.errors import NotFound, PermissionDenied
from audit.session_admin import all_live_sessions, end_session
from audit.storage.models import AuditEvent
from audit.vocab import Role

PASSWORD = "correct horse battery"


@pytest.fixture
def boss(engine: Engine) -> Actor:
    for name, role in (("boss", Role.ADMIN), ("tech1", Role.TECHNOLOGIST),
                       ("quality", Role.QUALITY_OFFICER)):
        auth.add_user(engine, cli_actor(), name, role, PASSWORD)
    return Actor("boss", Role.ADMIN)


def test_the_admin_lists_every_live_session_without_secrets(engine: Engine,
                                                            boss: Actor) -> None:
    first, _ = sessions.start(engine, "tech1")
    second, _ = sessions.start(engine, "quality")
    ended, _ = sessions.start(engine, "tech1")
    sessions.end(engine, ended, sessions.SIGNED_OUT)
    live = all_live_sessions(engine, boss)
    assert sorted((s["id"], s["username"], s["role"]) for s in live) == [
        (first, "tech1", Role.TECHNOLOGIST.value), (second, "quality",
                                                    Role.QUALITY_OFFICER.value)]
    assert not any("hash" in key or "token" in key for s in live for key in s)


def test_ending_a_session_signs_that_browser_out_and_is_audited(engine: Engine,
                                                                boss: Actor) -> None:
    session_id, handoff = sessions.start(engine, "tech1")
    token = sessions.redeem(engine, handoff)
    end_session(engine, boss, session_id)
    assert sessions.resume(engine, token) == sessions.Ended(session_id,
                                                            sessions.ENDED_BY_ADMIN)
    assert all_live_sessions(engine, boss) == []
    with Session(engine) as s:
        event = s.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(1)).one()
    assert (event.actor, event.action, event.reason, event.after) == (
        "boss", "logout", sessions.ENDED_BY_ADMIN, {"session": session_id})
    with pytest.raises(NotFound, match="already ended"):
        end_session(engine, boss, session_id)


@pytest.mark.parametrize("role", [Role.QUALITY_OFFICER, Role.TECHNOLOGIST, Role.RSO])
def test_no_one_but_an_admin_lists_or_ends_sessions(engine: Engine, boss: Actor,
                                                    role: Role) -> None:
    session_id, _ = sessions.start(engine, "tech1")
    with pytest.raises(PermissionDenied):
        all_live_sessions(engine, Actor("someone", role))
    with pytest.raises(PermissionDenied):
        end_session(engine, Actor("someone", role), session_id)
    assert isinstance(sessions.check(engine, session_id), sessions.Live)
