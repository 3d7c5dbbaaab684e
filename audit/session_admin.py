"""Who is signed in, for the admin: every live session and a way to end one.

A lost laptop, a workstation left signed in, or a former employee's browser: the admin sees every
session that has not ended (account, role, when it started, when it was last active, when it will
time out) and can end any of them. Ending one is the same revocation as signing out
(audit.sessions), audited as a LOGOUT by the admin with the reason "ended by an administrator";
the browser that held it is signed out at its next click. Kept apart from audit.auth and
audit.sessions because it needs both (auth's permission check, sessions' revocation).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, select

from audit import sessions
from audit.auth import Actor, Permission, require
from audit.errors import NotFound
from audit.storage.engine import read_session
from audit.storage.models import UserAccount, UserSession, utcnow


def all_live_sessions(engine: Engine, actor: Actor) -> list[dict[str, Any]]:
    """Every session that has not ended, most recently active first, with its account.
    Ids and times only: never a token or its hash."""
    require(actor, Permission.ADMIN)
    with read_session(engine) as session:
        rows = session.execute(
            select(UserSession.id, UserAccount.username, UserAccount.display_name,
                   UserAccount.role, UserSession.created_at, UserSession.last_seen_at,
                   UserSession.expires_at)
            .join(UserAccount, UserAccount.id == UserSession.user_id)
            .where(UserSession.revoked_at.is_(None), UserSession.expires_at > utcnow())
            .order_by(UserSession.last_seen_at.desc(), UserSession.id.desc())).all()
    return [dict(row._mapping) for row in rows]


def end_session(engine: Engine, actor: Actor, session_id: int) -> None:
    """End someone's session (audited, by the admin). Refused when it has already ended, so
    two admins ending the same session see which of them did it."""
    require(actor, Permission.ADMIN)
    if not sessions.end(engine, session_id, sessions.ENDED_BY_ADMIN, actor.username):
        raise NotFound(f"session {session_id} has already ended (signed out, timed out or "
                       "ended by an administrator)")
