"""Sign-in outcomes written so that concurrent attempts cannot lose a count (issue 10).

Why a module of its own: audit.auth decides (which password, which limit); this writes the
result with UPDATEs conditional on the account not being locked, so the database counts. On
PostgreSQL forty wrong passwords at once used to read failed_logins together and each write
back its own +1: the count ended at 3 and the account never locked. Here failed_logins + 1 is
computed by the UPDATE (its row lock orders the attempts), the attempt that reaches the limit
locks, and an attempt that finds the account locked meanwhile is refused as locked. Callers take
the audit chain's lock first (audit.trail.lock_chain), the order every audited write uses.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from audit.storage.models import UserAccount
from audit.trail import record_event
from audit.vocab import AuditAction

WRONG = "Wrong username or password."
#: Bulk UPDATEs here change columns no loaded object is used for afterwards.
_NO_SYNC = {"synchronize_session": False}


def can_sign_in_clause() -> Any:
    """The accounts that can sign in: active, allowed to, with a password."""
    return (UserAccount.active.is_(True) & UserAccount.can_sign_in.is_(True)
            & UserAccount.password_hash.is_not(None))


def is_locked(locked_until: datetime | None, now: datetime) -> bool:
    return locked_until is not None and locked_until > now


def _unlocked(user: UserAccount, now: datetime) -> Any:
    """This account, if not locked as of now: the condition of every sign-in write."""
    return (UserAccount.id == user.id) & (UserAccount.locked_until.is_(None)
                                          | (UserAccount.locked_until <= now))


def refuse(session: Session, actor: str, user_id: int | None, reason: str, message: str) -> str:
    """Audit a refused sign-in and return the message to show."""
    record_event(session, actor=actor, action=AuditAction.LOGIN_FAILED, entity="user_account",
                 entity_id=user_id, reason=reason)
    return message


def record_success(session: Session, user: UserAccount, now: datetime,
                   new_hash: str | None) -> str | None:
    """Record a right password (count cleared, lock lifted) and return the role; None, with
    nothing written, if the account was locked, disabled or given a new password since it
    was read: a right password never lifts a lock set by a concurrent failure."""
    values: dict[str, Any] = {"failed_logins": 0, "locked_until": None, "last_login_at": now}
    if new_hash:
        values["password_hash"] = new_hash
    role = session.execute(update(UserAccount)
                           .where(_unlocked(user, now), can_sign_in_clause(),
                                  UserAccount.password_hash == user.password_hash)
                           .values(**values).returning(UserAccount.role),
                           execution_options=_NO_SYNC).scalar()
    if role is not None:
        record_event(session, actor=user.username, action=AuditAction.LOGIN,
                     entity="user_account", entity_id=user.id)
    return role


def record_refusal(session: Session, user: UserAccount, now: datetime, *, wrong: bool,
                   limit: int, lock_for: timedelta) -> str:
    """Audit a refused sign-in of an existing account and return its message.

    A wrong password is counted in SQL (failed_logins + 1 ... RETURNING); the attempt that
    reaches `limit` locks the account for `lock_for` and starts the count again. An account
    locked by now (before or meanwhile) is refused as locked.
    """
    if wrong:
        count = session.execute(update(UserAccount).where(_unlocked(user, now))
                                .values(failed_logins=UserAccount.failed_logins + 1)
                                .returning(UserAccount.failed_logins),
                                execution_options=_NO_SYNC).scalar()
        if count is not None and count < limit:
            return refuse(session, user.username, user.id, "wrong password", WRONG)
        if count is not None:
            session.execute(update(UserAccount).where(UserAccount.id == user.id)
                            .values(failed_logins=0, locked_until=now + lock_for),
                            execution_options=_NO_SYNC)
            minutes = int(lock_for.total_seconds() // 60)
            return refuse(session, user.username, user.id, f"locked for {minutes} min",
                          f"Too many failed attempts: the account is locked for {minutes} "
                          "minutes.")
    until = session.scalar(select(UserAccount.locked_until).where(UserAccount.id == user.id))
    if until is None or not is_locked(until, now):  # disabled, or a new password, meanwhile
        return refuse(session, user.username, user.id, "account changed during sign-in", WRONG)
    minutes = int((until - now).total_seconds() // 60) + 1
    return refuse(session, user.username, user.id, "locked",
                  f"This account is locked after repeated failures; try again in {minutes} "
                  "min or ask an administrator.")
