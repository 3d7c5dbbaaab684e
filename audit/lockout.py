"""Sign-in outcomes written so that concurrent attempts cannot lose a count (issue 10).

Why a module of its own: audit.auth decides (which password, which limit); this writes the
result with UPDATEs conditional on the account not being locked, so the database counts. On
PostgreSQL forty wrong passwords at once used to read failed_logins together and each write
back its own +1: the count ended at 3 and the account never locked. Here failed_logins + 1 is
computed by the UPDATE (its row lock orders the attempts), the attempt that reaches the limit
locks, and an attempt that finds the account locked meanwhile is refused as locked. Callers take
the audit chain's lock first (audit.trail.lock_chain), the order every audited write uses.

Every refusal returns the same message (FAILED): a distinct "locked" text told an attacker which
usernames exist. The reason goes to the audit trail instead, and the lock itself is an event of
its own (LOCKOUT_ACTOR amends the account), written in the transaction that locks.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from audit.storage.models import UserAccount
from audit.trail import record_event
from audit.vocab import AuditAction

#: What every refused sign-in shows: unknown user, wrong password, deactivated or locked account.
FAILED = ("Sign-in failed: wrong username or password, or the account is locked. If it keeps "
          "failing, ask an administrator.")
#: The audit trail's actor of an automatic lock (no person locks the account).
LOCKOUT_ACTOR = "lockout"
#: Bulk UPDATEs here change columns no loaded object is used for afterwards.
_NO_SYNC = {"synchronize_session": False}


def can_sign_in_clause() -> Any:
    """The accounts that can sign in: active, allowed to, with a password."""
    return (UserAccount.active.is_(True) & UserAccount.can_sign_in.is_(True)
            & UserAccount.password_hash.is_not(None))


def queryable_name(name: str) -> bool:
    """Whether the database can be asked about `name`: PostgreSQL refuses NUL in text and
    neither driver encodes a lone surrogate. Such a name names no account."""
    if "\x00" in name:
        return False
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def audit_name(name: str) -> str:
    """The attempted username as the audit trail can store and hash it (NUL and lone
    surrogates escaped, 80 characters), so a hostile name is recorded, not refused."""
    text = name.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")
    return text[:80] or "?"


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
    """Audit a refused sign-in of an existing account and return its message (FAILED).

    A wrong password is counted in SQL (failed_logins + 1 ... RETURNING); the attempt that
    reaches `limit` locks the account for `lock_for`, starts the count again and records the
    lock as an event of its own, all in this transaction. An account locked by now (before or
    meanwhile) is refused as locked.
    """
    if wrong:
        count = session.execute(update(UserAccount).where(_unlocked(user, now))
                                .values(failed_logins=UserAccount.failed_logins + 1)
                                .returning(UserAccount.failed_logins),
                                execution_options=_NO_SYNC).scalar()
        if count is not None and count < limit:
            return refuse(session, user.username, user.id, "wrong password", FAILED)
        if count is not None:
            until = now + lock_for
            session.execute(update(UserAccount).where(UserAccount.id == user.id)
                            .values(failed_logins=0, locked_until=until),
                            execution_options=_NO_SYNC)
            minutes = int(lock_for.total_seconds() // 60)
            refuse(session, user.username, user.id, f"locked for {minutes} min", FAILED)
            record_event(session, actor=LOCKOUT_ACTOR, action=AuditAction.AMEND,
                         entity="user_account", entity_id=user.id,
                         reason=f"locked for {minutes} min after {count} failed sign-ins",
                         before={"locked": False, "failed_logins": count - 1},
                         after={"locked": True, "locked_until": until, "failed_logins": 0})
            return FAILED
    until = session.scalar(select(UserAccount.locked_until).where(UserAccount.id == user.id))
    if until is None or not is_locked(until, now):  # disabled, or a new password, meanwhile
        return refuse(session, user.username, user.id, "account changed during sign-in", FAILED)
    return refuse(session, user.username, user.id, "locked", FAILED)
