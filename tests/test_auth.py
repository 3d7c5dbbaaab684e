"""Accounts: Argon2id hashes, lockout after repeated failures, every sign-in audited."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from audit.auth import (
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
    with pytest.raises(SignInFailed, match="Wrong username or password"):
        authenticate(engine, "tnguyen", "wrong")
    with pytest.raises(SignInFailed, match="Wrong username or password"):
        authenticate(engine, "nobody", "wrong")  # same message: no user enumeration
    assert len(events(engine, "login_failed")) == 2
    with Session(engine) as s:
        assert s.get(UserAccount, user.id).failed_logins == 1


def test_five_failures_lock_the_account_for_15_minutes(engine: Engine,
                                                       user: UserAccount) -> None:
    for _ in range(MAX_FAILED_LOGINS - 1):
        with pytest.raises(SignInFailed, match="Wrong"):
            authenticate(engine, "tnguyen", "wrong")
    with pytest.raises(SignInFailed, match="locked for 15 minutes"):
        authenticate(engine, "tnguyen", "wrong")
    with pytest.raises(SignInFailed, match="locked"):
        authenticate(engine, "tnguyen", PASSWORD)  # even the right password
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
