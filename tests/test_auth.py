"""Accounts: Argon2id hashes, lockout after repeated failures, every sign-in audited."""

from __future__ import annotations

import statistics
import time
from datetime import timedelta

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from audit import auth, lockout
from audit.auth import (
    LOCKOUT,
    MAX_FAILED_LOGINS,
    Actor,
    Permission,
    SignInFailed,
    add_user,
    authenticate,
    cli_actor,
    require,
)
from audit.errors import PermissionDenied, ValidationFailed
from audit.storage.models import AuditEvent, UserAccount, utcnow
from audit.trail import verify_chain
from audit.vocab import Role

PASSWORD = "correct horse battery"


@pytest.fixture
def user(engine: Engine) -> UserAccount:
    return add_user(engine, cli_actor(), "tnguyen", Role.TECHNOLOGIST, PASSWORD)


def events(engine: Engine, action: str) -> list[AuditEvent]:
    with Session(engine) as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def test_passwords_are_stored_as_argon2id(engine: Engine, user: UserAccount) -> None:
    with Session(engine) as s:
        stored = s.get(UserAccount, user.id).password_hash
    assert stored.startswith("$argon2id$") and PASSWORD not in stored


def test_sign_in_returns_the_actor_and_is_audited(engine: Engine, user: UserAccount) -> None:
    actor = authenticate(engine, "tnguyen", PASSWORD)
    assert actor == Actor("tnguyen", Role.TECHNOLOGIST)
    assert [e.actor for e in events(engine, "login")] == ["tnguyen"]


def test_wrong_password_is_counted_and_audited(engine: Engine, user: UserAccount) -> None:
    with pytest.raises(SignInFailed, match="wrong username or password"):
        authenticate(engine, "tnguyen", "wrong")
    with pytest.raises(SignInFailed, match="wrong username or password"):
        authenticate(engine, "nobody", "wrong")  # same message: no user enumeration
    assert len(events(engine, "login_failed")) == 2
    with Session(engine) as s:
        assert s.get(UserAccount, user.id).failed_logins == 1


def test_five_failures_lock_the_account_for_15_minutes(engine: Engine,
                                                       user: UserAccount) -> None:
    for _ in range(MAX_FAILED_LOGINS - 1):
        with pytest.raises(SignInFailed, match="wrong username or password"):
            authenticate(engine, "tnguyen", "wrong")
    with pytest.raises(SignInFailed, match="the account is locked"):
        authenticate(engine, "tnguyen", "wrong")
    with Session(engine) as s:
        until = s.get(UserAccount, user.id).locked_until
    assert until is not None and timedelta(minutes=14) < until - utcnow() <= LOCKOUT
    assert [e.reason for e in events(engine, "login_failed")][-1] == "locked for 15 min"
    with pytest.raises(SignInFailed, match="the account is locked"):
        authenticate(engine, "tnguyen", PASSWORD)  # even the right password
    assert [e.reason for e in events(engine, "login_failed")][-1] == "locked"
    with Session(engine) as s, s.begin():  # 15 minutes later
        s.get(UserAccount, user.id).locked_until = utcnow() - timedelta(seconds=1)
    assert authenticate(engine, "tnguyen", PASSWORD).username == "tnguyen"


def test_accounts_without_password_cannot_sign_in(engine: Engine) -> None:
    add_user(engine, cli_actor(), "imported", Role.TECHNOLOGIST, None)
    with pytest.raises(SignInFailed):
        authenticate(engine, "imported", "")


def test_account_rules(engine: Engine, user: UserAccount) -> None:
    with pytest.raises(ValidationFailed, match="username: 'tnguyen' already exists"):
        add_user(engine, cli_actor(), "tnguyen", Role.RSO, PASSWORD)
    with pytest.raises(ValidationFailed, match="password: must be at least 10"):
        add_user(engine, cli_actor(), "short", Role.RSO, "abc")
    with pytest.raises(ValidationFailed, match="role: 'wizard' is not allowed"):
        add_user(engine, cli_actor(), "wz", "wizard", PASSWORD)
    with pytest.raises(ValidationFailed, match="username: must be 2-80"):
        add_user(engine, cli_actor(), "bad name!", Role.RSO, PASSWORD)
    with pytest.raises(PermissionDenied):
        add_user(engine, Actor("tnguyen", Role.TECHNOLOGIST), "x1", Role.ADMIN, PASSWORD)


@pytest.mark.parametrize(
    ("role", "allowed", "refused"),
    [
        (Role.TECHNOLOGIST, Permission.LOG_PROCEDURE, Permission.VIEW_DASHBOARDS),
        (Role.PHYSICIAN, Permission.VIEW_RECORDS, Permission.LOG_PROCEDURE),
        (Role.QUALITY_OFFICER, Permission.VIEW_DASHBOARDS, Permission.VIEW_PHI),
        (Role.RSO, Permission.EXPORT_PHI, Permission.ADMIN),
        (Role.ADMIN, Permission.ADMIN, Permission.EXPORT_PHI),
    ],
)
def test_roles(role: Role, allowed: Permission, refused: Permission) -> None:
    actor = Actor("someone", role)
    require(actor, allowed)
    with pytest.raises(PermissionDenied, match=f"\\({role.value}\\) may not"):
        require(actor, refused)


# --- constant-time sign-in (issue 10) -----------------------------------------------------------
# Found: an unknown username was refused in 2 ms, a wrong password in 205 ms, and a locked
# account had a message of its own: both told an attacker which usernames exist.

def _deactivated_and_locked(engine: Engine) -> None:
    """`gone` (deactivated) and `locked` (locked now), both with PASSWORD."""
    add_user(engine, cli_actor(), "gone", Role.TECHNOLOGIST, PASSWORD)
    add_user(engine, cli_actor(), "locked", Role.TECHNOLOGIST, PASSWORD)
    with Session(engine) as s, s.begin():
        s.scalar(select(UserAccount).where(UserAccount.username == "gone")).active = False
        s.scalar(select(UserAccount).where(UserAccount.username == "locked")).locked_until = (
            utcnow() + LOCKOUT)


def refusal(engine: Engine, username: str, password: str) -> str:
    with pytest.raises(SignInFailed) as caught:
        authenticate(engine, username, password)
    return str(caught.value)


def test_every_refusal_shows_the_same_message(engine: Engine, user: UserAccount) -> None:
    _deactivated_and_locked(engine)
    add_user(engine, cli_actor(), "imported", Role.TECHNOLOGIST, None)
    messages = {
        "unknown user": refusal(engine, "nobody", PASSWORD),
        "wrong password": refusal(engine, "tnguyen", "wrong"),
        "deactivated, right password": refusal(engine, "gone", PASSWORD),
        "locked, right password": refusal(engine, "locked", PASSWORD),
        "locked, wrong password": refusal(engine, "locked", "wrong"),
        "cannot sign in": refusal(engine, "imported", PASSWORD),
        "NUL in the name": refusal(engine, "tng\x00uyen", PASSWORD),
        "lone surrogate": refusal(engine, "tnguyen\udc80", "x\ud800"),
    }
    assert set(messages.values()) == {lockout.FAILED}, messages
    assert "wrong username or password, or the account is locked" in lockout.FAILED
    reasons = [e.reason for e in events(engine, "login_failed")]
    assert reasons == ["unknown username", "wrong password", "account disabled", "locked",
                       "locked", "account disabled", "unknown username", "unknown username"]


def test_the_lock_is_an_audit_event_of_the_transaction_that_locks(
        engine: Engine, user: UserAccount, monkeypatch: pytest.MonkeyPatch) -> None:
    for _ in range(MAX_FAILED_LOGINS):
        refusal(engine, "tnguyen", "wrong")
    [lock] = [e for e in events(engine, "amend") if e.entity == "user_account"]
    assert lock.actor == lockout.LOCKOUT_ACTOR and lock.entity_id == str(user.id)
    assert lock.reason == f"locked for 15 min after {MAX_FAILED_LOGINS} failed sign-ins"
    assert lock.before == {"locked": False, "failed_logins": MAX_FAILED_LOGINS - 1}
    assert lock.after is not None and lock.after["locked"] is True
    with Session(engine) as s:
        assert verify_chain(s).ok
        # ... written right after the refusal that locked, in the same transaction:
        last_two = s.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(2)).all()
    assert [(e.action, e.reason) for e in reversed(last_two)] == [
        ("login_failed", "locked for 15 min"), ("amend", lock.reason)]

    # If the lock event cannot be written, the lock is not written either (one transaction).
    other = add_user(engine, cli_actor(), "other", Role.TECHNOLOGIST, PASSWORD)
    real = lockout.record_event

    def failing(session: Session, **event: object) -> AuditEvent:
        if event.get("actor") == lockout.LOCKOUT_ACTOR:
            raise RuntimeError("audit write failed")
        return real(session, **event)  # type: ignore[arg-type]

    for _ in range(MAX_FAILED_LOGINS - 1):
        refusal(engine, "other", "wrong")
    monkeypatch.setattr(lockout, "record_event", failing)
    with pytest.raises(RuntimeError, match="audit write failed"):
        authenticate(engine, "other", "wrong")
    with Session(engine) as s:
        account = s.get(UserAccount, other.id)
        assert account.locked_until is None
        assert account.failed_logins == MAX_FAILED_LOGINS - 1


def test_nul_or_surrogate_in_the_username_is_an_unknown_user(engine: Engine,
                                                             user: UserAccount) -> None:
    """PostgreSQL refuses NUL in text and no driver encodes a lone surrogate: such a name is
    refused like any unknown user (same message, recorded escaped), not with a crash."""
    for name in ("\x00", "tnguyen\x00", "\udc80admin", "a\ud800b"):
        assert refusal(engine, name, PASSWORD) == lockout.FAILED
    actors = [e.actor for e in events(engine, "login_failed")]
    assert actors == ["\\x00", "tnguyen\\x00", "\\udc80admin", "a\\ud800b"]
    with Session(engine) as s:
        assert verify_chain(s).ok
        assert s.get(UserAccount, user.id).failed_logins == 0


SAMPLES = 7


def test_refusals_take_as_long_as_a_wrong_password(
        engine: Engine, user: UserAccount, monkeypatch: pytest.MonkeyPatch) -> None:
    """Medians of interleaved attempts: an unknown user, a deactivated and a locked account
    each cost about what a wrong password does (one Argon2id verify, ~0.2 s here). The band
    is wide (0.5x-2x) so a loaded machine cannot fail it; the old code was 100x apart."""
    _deactivated_and_locked(engine)
    monkeypatch.setattr(auth, "MAX_FAILED_LOGINS", 10_000)  # wrong passwords never lock here
    refusal(engine, "warm-up", PASSWORD)  # the dummy hash is computed once per process
    kinds = {"unknown": ("nobody-here", PASSWORD), "wrong password": ("tnguyen", "wrong"),
             "deactivated": ("gone", PASSWORD), "locked": ("locked", PASSWORD)}
    samples: dict[str, list[float]] = {kind: [] for kind in kinds}
    for _ in range(SAMPLES):
        for kind, (name, password) in kinds.items():
            start = time.perf_counter()
            refusal(engine, name, password)
            samples[kind].append(time.perf_counter() - start)
    medians = {kind: statistics.median(times) for kind, times in samples.items()}
    wrong = medians["wrong password"]
    ratios = {kind: median / wrong for kind, median in medians.items()}
    assert all(0.5 <= r <= 2.0 for r in ratios.values()), (ratios, medians)
