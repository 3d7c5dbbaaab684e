"""Sign-in sessions that survive a reload of the page, stored so that a copied cookie is useless
once the session has ended (issue 12; docs/design.md §8).

A session starts when a password has been accepted (`start`): a `user_session` row and a one-time
handoff code, valid HANDOFF_SECONDS, which the browser exchanges (`redeem`, through the
dashboard's own HTTP route) for the session token; from then on the token lives only in an
HttpOnly cookie. The database keeps SHA-256 hashes of both, never the secrets: 32 random bytes
cannot be guessed, so an unkeyed hash is enough, and a copy of the table signs nobody in.

Every page load checks the session (`check` by id within one Streamlit session, `resume` by the
cookie's token after a reload): it must not be revoked, its last activity must be within the
idle timeout (setting session_idle_minutes, read here at every check, so a shorter setting
applies at once), and its account must still be active and able to sign in. The role is read
from the account at every check, never kept with the session, so a new role applies at the next
click. Activity moves last_seen_at forward, at most once per TOUCH_EVERY (an UPDATE of the row,
not audited, like a screen preference).

A session ends by setting revoked_at (rows are never deleted), with a LOGOUT event on the account
naming the session and the reason: signed out; idle timeout (found at the next check after it);
account deactivated and password reset (audit.auth ends every session of the account in the
transaction of the change); a role change or a lock-out ends none. Starting one writes a CREATE
event on `user_session`, the browser collecting its cookie an AMEND.
"""

from __future__ import annotations

import hashlib
import math
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from audit.errors import PermissionDenied
from audit.lockout import can_sign_in_clause
from audit.storage.engine import read_session, retrying, write_session
from audit.storage.models import Setting, UserAccount, UserSession, utcnow
from audit.trail import lock_chain, record_event
from audit.vocab import AuditAction, Role

#: Random bytes in a session token and in a handoff code (256 bits).
TOKEN_BYTES = 32
#: How long a handoff code can be exchanged for the cookie (once).
HANDOFF_SECONDS = 60
#: last_seen_at moves at most this often: an idle limit is kept to within this much.
TOUCH_EVERY = timedelta(seconds=30)
DEFAULT_IDLE_MINUTES = 30.0
ENTITY = "user_session"
#: Reasons a session ends, as the audit trail and the sign-in page name them.
SIGNED_OUT = "signed out"
IDLE_TIMEOUT = "idle timeout"
DEACTIVATED = "account deactivated"
ENDED_BY_ADMIN = "ended by an administrator"
PASSWORD_RESET = "password reset"
#: A secret longer than this is no token of ours (and is not hashed).
_MAX_SECRET = 128
_NO_SYNC = {"synchronize_session": False}


def secret_hash(secret: str) -> str:
    """What the table stores of a token or handoff code: its SHA-256, hex."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def _plausible(secret: object) -> bool:
    return isinstance(secret, str) and 0 < len(secret) <= _MAX_SECRET


@dataclass(frozen=True)
class Live:
    """A session in force: who it is (role as the account has it now) and its last activity."""

    session_id: int
    username: str
    role: Role
    last_seen_at: datetime


@dataclass(frozen=True)
class Ended:
    """A session that no longer signs anyone in, and why (one of the reasons above, or the
    reason it was revoked with)."""

    session_id: int
    reason: str


def idle_limit(session: Session) -> timedelta:
    """The idle timeout: the setting session_idle_minutes, else 30 minutes."""
    value = session.scalar(select(Setting.value).where(Setting.key == "session_idle_minutes"))
    try:
        minutes = float(value)
    except (TypeError, ValueError):
        minutes = DEFAULT_IDLE_MINUTES
    if not math.isfinite(minutes) or minutes <= 0:
        minutes = DEFAULT_IDLE_MINUTES
    return timedelta(minutes=minutes)


def start(engine: Engine, username: str) -> tuple[int, str]:
    """A new session of `username`, who has just signed in: (session id, handoff code). The code
    is the only way to the session's token, once, within HANDOFF_SECONDS."""
    handoff = secrets.token_urlsafe(TOKEN_BYTES)

    def work() -> int:
        with write_session(engine) as session:
            lock_chain(session)
            user = session.scalar(select(UserAccount).where(UserAccount.username == username,
                                                            can_sign_in_clause()))
            if user is None:
                raise PermissionDenied(f"{username!r} cannot sign in")
            now = utcnow()
            row = UserSession(user_id=user.id, handoff_hash=secret_hash(handoff),
                              handoff_expires_at=now + timedelta(seconds=HANDOFF_SECONDS),
                              created_at=now, last_seen_at=now,
                              expires_at=now + idle_limit(session))
            session.add(row)
            session.flush()
            record_event(session, actor=user.username, action=AuditAction.CREATE, entity=ENTITY,
                         entity_id=row.id, after={"username": user.username, "created_at": now,
                                                  "expires_at": row.expires_at})
            return row.id

    return retrying(work), handoff


def redeem(engine: Engine, handoff: str) -> str | None:
    """Exchange a handoff code for the session's token (a new secret, whose hash is stored now):
    None if the code is unknown, used, expired, or its session ended meanwhile."""
    if not _plausible(handoff):
        return None
    token = secrets.token_urlsafe(TOKEN_BYTES)

    def work() -> str | None:
        with write_session(engine) as session:
            lock_chain(session)
            now = utcnow()
            row = session.execute(
                update(UserSession)
                .where(UserSession.handoff_hash == secret_hash(handoff),
                       UserSession.handoff_expires_at > now, UserSession.revoked_at.is_(None),
                       UserSession.token_hash.is_(None))
                .values(token_hash=secret_hash(token), handoff_hash=None,
                        handoff_expires_at=None)
                .returning(UserSession.id, UserSession.user_id),
                execution_options=_NO_SYNC).one_or_none()
            if row is None:
                return None
            name = session.scalar(select(UserAccount.username)
                                  .where(UserAccount.id == row.user_id))
            record_event(session, actor=str(name), action=AuditAction.AMEND, entity=ENTITY,
                         entity_id=row.id, reason="session cookie issued",
                         before={"cookie": False}, after={"cookie": True})
            return token

    return retrying(work)


def check(engine: Engine, session_id: int, *, touch: bool = True) -> Live | Ended:
    """The session `session_id` now (see the module's docstring); `touch=False` for a look that
    is no activity (the idle watcher's)."""
    found = _judge(engine, UserSession.id == session_id, touch)
    return found if found is not None else Ended(session_id, "unknown session")


def resume(engine: Engine, token: object, *, touch: bool = True) -> Live | Ended | None:
    """The session whose cookie holds `token`; None if no session has that token."""
    if not _plausible(token):
        return None
    return _judge(engine, UserSession.token_hash == secret_hash(str(token)), touch)


def _judge(engine: Engine, where: Any, touch: bool) -> Live | Ended | None:
    with read_session(engine) as session:
        row = session.execute(
            select(UserSession.id, UserSession.last_seen_at, UserSession.expires_at,
                   UserSession.revoked_at, UserSession.revoked_reason, UserAccount.username,
                   UserAccount.role, can_sign_in_clause().label("usable"))
            .join(UserAccount, UserAccount.id == UserSession.user_id).where(where)
        ).one_or_none()
        idle = idle_limit(session) if row is not None else timedelta(0)
    if row is None:
        return None
    if row.revoked_at is not None:
        return Ended(row.id, row.revoked_reason or SIGNED_OUT)
    now = utcnow()
    if now >= row.expires_at or now - row.last_seen_at > idle:
        end(engine, row.id, IDLE_TIMEOUT)
        return Ended(row.id, IDLE_TIMEOUT)
    if not row.usable:
        end(engine, row.id, DEACTIVATED)
        return Ended(row.id, DEACTIVATED)
    last_seen = row.last_seen_at
    if touch and now - last_seen >= TOUCH_EVERY and _touch(engine, row.id, now, idle):
        last_seen = now
    return Live(row.id, row.username, Role(row.role), last_seen)


def _touch(engine: Engine, session_id: int, now: datetime, idle: timedelta) -> bool:
    """Record activity. A database too busy to take it now is no error: the next click will."""
    try:
        with write_session(engine) as session:
            done = session.execute(update(UserSession)
                                   .where(UserSession.id == session_id,
                                          UserSession.revoked_at.is_(None))
                                   .values(last_seen_at=now, expires_at=now + idle),
                                   execution_options=_NO_SYNC).rowcount
    except OperationalError:
        return False
    return bool(done)


def end(engine: Engine, session_id: int, reason: str, actor: str | None = None) -> bool:
    """End one session (audited); False if it had already ended."""
    return retrying(lambda: _end_where(engine, UserSession.id == session_id, reason, actor)) > 0


def end_by_token(engine: Engine, token: object, reason: str = SIGNED_OUT) -> bool:
    """End the session whose cookie holds `token` (the sign-out route); False if none was live."""
    if not _plausible(token):
        return False
    where = UserSession.token_hash == secret_hash(str(token))
    return retrying(lambda: _end_where(engine, where, reason, None)) > 0


def _end_where(engine: Engine, where: Any, reason: str, actor: str | None) -> int:
    with write_session(engine) as session:
        return _revoke(session, where, reason, actor)


def end_for_user(session: Session, user_id: int, actor: str, reason: str) -> int:
    """End every live session of an account, in the caller's transaction (an account change
    made by `actor`); the number ended."""
    return _revoke(session, UserSession.user_id == user_id, reason, actor)


def _revoke(session: Session, where: Any, reason: str, actor: str | None) -> int:
    lock_chain(session)  # the lock order of every audited write: the chain first
    rows = session.execute(
        update(UserSession).where(where, UserSession.revoked_at.is_(None))
        .values(revoked_at=utcnow(), revoked_reason=reason[:80], handoff_hash=None,
                handoff_expires_at=None)
        .returning(UserSession.id, UserSession.user_id),
        execution_options=_NO_SYNC).all()
    for session_id, user_id in sorted(rows):
        name = session.scalar(select(UserAccount.username).where(UserAccount.id == user_id))
        record_event(session, actor=actor or str(name), action=AuditAction.LOGOUT,
                     entity="user_account", entity_id=user_id, reason=reason,
                     after={"session": session_id})
    return len(rows)


def live_sessions(engine: Engine, username: str) -> list[dict[str, Any]]:
    """The sessions of an account that have not ended (ids and times; never a hash)."""
    with read_session(engine) as session:
        rows = session.execute(
            select(UserSession.id, UserSession.created_at, UserSession.last_seen_at,
                   UserSession.expires_at)
            .join(UserAccount, UserAccount.id == UserSession.user_id)
            .where(UserAccount.username == username, UserSession.revoked_at.is_(None),
                   UserSession.expires_at > utcnow())
            .order_by(UserSession.id)).all()
    return [dict(row._mapping) for row in rows]
