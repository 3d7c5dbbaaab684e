"""Accounts, password hashing and role permissions.

The library checks permissions on every write (`require`), so a page that forgets to hide a
button still cannot perform the action. Passwords are hashed with Argon2id (argon2-cffi's
defaults follow RFC 9106's second recommended profile).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from audit.db import retrying, write_session
from audit.errors import FieldError, NotFound, PermissionDenied, ValidationFailed
from audit.models import UserAccount, utcnow
from audit.trail import record_event
from audit.vocab import AuditAction, Role

MAX_FAILED_LOGINS = 5
LOCKOUT = timedelta(minutes=15)
MIN_PASSWORD_LENGTH = 10
_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{1,79}$")

_hasher = PasswordHasher()  # argon2id


class Permission(StrEnum):
    LOG_PROCEDURE = "log_procedure"
    AMEND_OWN = "amend_own"
    AMEND_ANY = "amend_any"
    VOID = "void"
    VIEW_RECORDS = "view_records"
    VIEW_ALL_RECORDS = "view_all_records"
    VIEW_PHI = "view_phi"
    VIEW_DASHBOARDS = "view_dashboards"
    MANAGE_ALERTS = "manage_alerts"
    EXPORT = "export"
    EXPORT_PHI = "export_phi"
    IMPORT = "import"
    ADMIN = "admin"


P = Permission
ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.TECHNOLOGIST: frozenset({P.LOG_PROCEDURE, P.AMEND_OWN, P.VOID, P.VIEW_RECORDS,
                                  P.VIEW_PHI, P.IMPORT}),
    Role.PHYSICIAN: frozenset({P.VIEW_RECORDS, P.VIEW_PHI}),
    Role.QUALITY_OFFICER: frozenset({P.VIEW_RECORDS, P.VIEW_ALL_RECORDS, P.VIEW_DASHBOARDS,
                                     P.EXPORT, P.IMPORT}),
    Role.RSO: frozenset({P.VIEW_RECORDS, P.VIEW_ALL_RECORDS, P.VIEW_PHI, P.VIEW_DASHBOARDS,
                         P.MANAGE_ALERTS, P.EXPORT, P.EXPORT_PHI, P.IMPORT}),
    Role.ADMIN: frozenset({P.LOG_PROCEDURE, P.AMEND_OWN, P.AMEND_ANY, P.VOID, P.VIEW_RECORDS,
                           P.VIEW_ALL_RECORDS, P.VIEW_PHI, P.VIEW_DASHBOARDS, P.EXPORT, P.IMPORT,
                           P.ADMIN}),
}


@dataclass(frozen=True)
class Actor:
    """Who is acting: a signed-in user, or the command line (`system=True`)."""

    username: str
    role: Role
    system: bool = False

    def can(self, permission: Permission) -> bool:
        return self.system or permission in ROLE_PERMISSIONS[self.role]


def cli_actor() -> Actor:
    """The command line acts with full rights: whoever can run it can already open the
    database. The OS user name goes into the audit trail."""
    import getpass

    try:
        name = getpass.getuser()
    except Exception:  # no passwd entry in some containers
        name = "unknown"
    return Actor(username=f"cli:{name}", role=Role.ADMIN, system=True)


def require(actor: Actor, permission: Permission) -> None:
    if not actor.can(permission):
        raise PermissionDenied(
            f"{actor.username} ({actor.role.value}) may not {permission.value.replace('_', ' ')}"
        )


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def check_password_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationFailed(
            [FieldError("password", f"must be at least {MIN_PASSWORD_LENGTH} characters")]
        )


def _validate_username(username: str) -> str:
    name = username.strip()
    if not _USERNAME.match(name):
        raise ValidationFailed([FieldError(
            "username", "must be 2-80 characters: letters, digits, '.', '_', '@' or '-', "
            "starting with a letter or digit")])
    return name


def account_count(engine: Engine) -> int:
    with Session(engine) as session:
        return session.scalar(select(func.count()).select_from(UserAccount)) or 0


def add_user(
    engine: Engine,
    actor: Actor,
    username: str,
    role: Role | str,
    password: str | None,
    display_name: str | None = None,
) -> UserAccount:
    """Create an account. Without a password the account exists but cannot sign in."""
    require(actor, Permission.ADMIN)
    name = _validate_username(username)
    try:
        role = Role.parse(role)
    except ValueError as exc:
        raise ValidationFailed([FieldError("role", str(exc))]) from None
    if password is not None:
        check_password_strength(password)

    def work() -> UserAccount:
        with write_session(engine) as session:
            if session.scalar(select(UserAccount.id).where(UserAccount.username == name)):
                raise ValidationFailed([FieldError("username", f"{name!r} already exists")])
            user = UserAccount(
                username=name, role=role.value, display_name=display_name,
                password_hash=hash_password(password) if password else None,
                can_sign_in=password is not None, active=True, failed_logins=0,
            )
            session.add(user)
            session.flush()
            record_event(session, actor=actor.username, action=AuditAction.CREATE,
                         entity="user_account", entity_id=user.id,
                         after={"username": name, "role": role.value,
                                "can_sign_in": password is not None})
            return user

    return retrying(work)


class SignInFailed(Exception):
    """Wrong username or password, or a locked/inactive account. The message is safe to show."""


def authenticate(engine: Engine, username: str, password: str) -> Actor:
    """Check a password; count failures, lock after MAX_FAILED_LOGINS, audit both outcomes.

    The failure is committed before SignInFailed is raised: a rolled-back failure would let an
    attacker guess forever.
    """
    now = utcnow()
    failure: str | None = None
    with write_session(engine) as session:
        user = session.scalar(select(UserAccount).where(UserAccount.username == username.strip()))
        if user is None or not user.active or not user.can_sign_in or not user.password_hash:
            record_event(session, actor=username.strip()[:80] or "?",
                         action=AuditAction.LOGIN_FAILED, entity="user_account",
                         entity_id=user.id if user else None, reason="unknown or disabled")
            failure = "Wrong username or password."
        elif user.locked_until and user.locked_until > now:
            minutes = int((user.locked_until - now).total_seconds() // 60) + 1
            record_event(session, actor=user.username, action=AuditAction.LOGIN_FAILED,
                         entity="user_account", entity_id=user.id, reason="locked")
            failure = (f"This account is locked after repeated failures; try again in {minutes} "
                       "min or ask an administrator.")
        elif not _verify(user.password_hash, password):
            user.failed_logins += 1
            locked = user.failed_logins >= MAX_FAILED_LOGINS
            if locked:
                user.locked_until = now + LOCKOUT
                user.failed_logins = 0
            record_event(session, actor=user.username, action=AuditAction.LOGIN_FAILED,
                         entity="user_account", entity_id=user.id,
                         reason="locked for 15 min" if locked else "wrong password")
            failure = ("Too many failed attempts: the account is locked for 15 minutes."
                       if locked else "Wrong username or password.")
        else:
            if _hasher.check_needs_rehash(user.password_hash):
                user.password_hash = hash_password(password)
            user.failed_logins = 0
            user.locked_until = None
            user.last_login_at = now
            record_event(session, actor=user.username, action=AuditAction.LOGIN,
                         entity="user_account", entity_id=user.id)
            actor = Actor(username=user.username, role=Role(user.role))
    if failure:
        raise SignInFailed(failure)
    return actor


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def get_user(session: Session, username: str) -> UserAccount:
    user = session.scalar(select(UserAccount).where(UserAccount.username == username))
    if user is None:
        raise NotFound(f"no account named {username!r}")
    return user
