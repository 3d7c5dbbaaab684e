"""Lockout under concurrent wrong passwords (issue 10): every attempt is counted, the account
locks after exactly MAX_FAILED_LOGINS of them, and later attempts are refused as locked.

Each attempt runs in its own thread on its own pooled connection, all released at once
(tests.conftest.race). On PostgreSQL the failures used to overwrite each other's count, so 40
attempts left failed_logins at 3 and the account never locked.
"""

from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from audit import lockout
from audit.auth import MAX_FAILED_LOGINS, SignInFailed, add_user, authenticate, cli_actor
from audit.storage.models import AuditEvent, UserAccount, utcnow
from audit.vocab import Role
from tests.conftest import race

PASSWORD = "correct horse battery"
ATTEMPTS = 24


@pytest.fixture
def user(engine: Engine) -> UserAccount:
    return add_user(engine, cli_actor(), "tnguyen", Role.TECHNOLOGIST, PASSWORD)


def failure_reasons(engine: Engine) -> Counter[str | None]:
    with Session(engine) as s:
        return Counter(s.scalars(select(AuditEvent.reason)
                                 .where(AuditEvent.action == "login_failed")))


def lock_events(engine: Engine) -> list[AuditEvent]:
    """The audit events that record an account being locked."""
    with Session(engine) as s:
        return list(s.scalars(select(AuditEvent)
                              .where(AuditEvent.actor == lockout.LOCKOUT_ACTOR)))


def wrong_attempts(engine: Engine, count: int) -> list[BaseException | None]:
    return race([lambda i=i: authenticate(engine, "tnguyen", f"wrong {i}")
                 for i in range(count)])


def test_concurrent_wrong_passwords_lock_after_exactly_the_limit(engine: Engine,
                                                                 user: UserAccount) -> None:
    outcomes = wrong_attempts(engine, ATTEMPTS)
    assert all(isinstance(o, SignInFailed) for o in outcomes), outcomes
    assert {str(o) for o in outcomes} == {lockout.FAILED}  # one message, locked or not
    assert len(lock_events(engine)) == 1  # exactly one attempt locked the account
    # Every attempt is in the trail: the ones evaluated before the lock, the one that locked,
    # and the rest refused because the account was locked by then.
    assert failure_reasons(engine) == Counter({"wrong password": MAX_FAILED_LOGINS - 1,
                                               "locked for 15 min": 1,
                                               "locked": ATTEMPTS - MAX_FAILED_LOGINS})
    with Session(engine) as s:
        account = s.get(UserAccount, user.id)
        assert account.locked_until is not None and account.locked_until > utcnow()
        assert account.failed_logins == 0  # the count starts again when the lock ends
    with pytest.raises(SignInFailed, match="the account is locked"):
        authenticate(engine, "tnguyen", PASSWORD)  # even the right password
    assert failure_reasons(engine)["locked"] == ATTEMPTS - MAX_FAILED_LOGINS + 1


@pytest.mark.parametrize("round_", range(3))
def test_concurrent_failures_below_the_limit_are_all_counted(engine: Engine, user: UserAccount,
                                                             round_: int) -> None:
    outcomes = wrong_attempts(engine, MAX_FAILED_LOGINS - 1)
    assert all(isinstance(o, SignInFailed) and str(o) == lockout.FAILED for o in outcomes)
    with Session(engine) as s:
        account = s.get(UserAccount, user.id)
        assert account.failed_logins == MAX_FAILED_LOGINS - 1
        assert account.locked_until is None
    with pytest.raises(SignInFailed, match="the account is locked"):
        authenticate(engine, "tnguyen", "wrong again")  # the limit-th failure locks
    assert failure_reasons(engine)["locked for 15 min"] == 1 and len(lock_events(engine)) == 1


def test_right_password_among_concurrent_failures_resets_or_is_refused(
        engine: Engine, user: UserAccount) -> None:
    """A correct password racing the lockout either signs in (and clears the count) or, once
    the account is locked, is refused as locked: it never clears a lock set meanwhile."""
    calls = [lambda i=i: authenticate(engine, "tnguyen", f"wrong {i}")
             for i in range(MAX_FAILED_LOGINS + 2)]
    calls.append(lambda: authenticate(engine, "tnguyen", PASSWORD))
    outcomes = race(calls)
    reasons = failure_reasons(engine)
    assert reasons["locked for 15 min"] <= 1
    with Session(engine) as s:
        account = s.get(UserAccount, user.id)
        locked = account.locked_until is not None and account.locked_until > utcnow()
        signed_in = outcomes[-1] is None
        if not signed_in:
            assert str(outcomes[-1]) == lockout.FAILED
            assert locked
        assert locked == (reasons["locked for 15 min"] == 1) == (len(lock_events(engine)) == 1)
