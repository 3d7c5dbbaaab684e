"""Accounts, password hashing and role permissions.

The library checks permissions on every write (`require`), so a page that forgets to hide a
button still cannot act. Passwords: Argon2id (argon2-cffi's defaults, RFC 9106's 2nd profile).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from functools import cache
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from audit import lockout, sessions
from audit.errors import FieldError, NotFound, PermissionDenied, ValidationFailed
from audit.storage.engine import read_session, retrying, write_session
from audit.storage.models import UserAccount, utcnow
from audit.trail import lock_chain, record_event
from audit.vocab import AuditAction, Role

MAX_FAILED_LOGINS = 5
LOCKOUT = timedelta(minutes=15)
MIN_PASSWORD_LENGTH = 10
_USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{1,79}")  # ASCII only: fullmatch
#: The username rule, as every refusal states it.
USERNAME_RULE = ("must be 2-80 characters: letters, digits, '.', '_', '@' or '-', starting "
                 "with a letter or digit")

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
    PATIENT_HISTORY = "patient_history"  # one patient's history and letter: rso, admin
    IMPORT = "import"
    ADMIN = "admin"
    RECORD_COMPLICATION = "record_complication"  # technologist, physician, rso, admin
    RECORD_FOLLOW_UP = "record_follow_up"  # outcomes: technologist, physician, admin


P = Permission
ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.TECHNOLOGIST: frozenset({P.LOG_PROCEDURE, P.AMEND_OWN, P.VOID, P.VIEW_RECORDS, P.VIEW_PHI,
                                  P.IMPORT, P.RECORD_COMPLICATION, P.RECORD_FOLLOW_UP}),
    Role.PHYSICIAN: frozenset({P.VIEW_RECORDS, P.VIEW_PHI, P.RECORD_COMPLICATION,
                               P.RECORD_FOLLOW_UP}),
    Role.QUALITY_OFFICER: frozenset({P.VIEW_RECORDS, P.VIEW_ALL_RECORDS, P.VIEW_DASHBOARDS,
                                     P.EXPORT, P.IMPORT}),
    Role.RSO: frozenset({P.VIEW_RECORDS, P.VIEW_ALL_RECORDS, P.VIEW_PHI, P.VIEW_DASHBOARDS,
                         P.MANAGE_ALERTS, P.EXPORT, P.EXPORT_PHI, P.IMPORT, P.PATIENT_HISTORY,
                         P.RECORD_COMPLICATION}),
    Role.ADMIN: frozenset({P.LOG_PROCEDURE, P.AMEND_OWN, P.AMEND_ANY, P.VOID, P.VIEW_RECORDS,
                           P.VIEW_ALL_RECORDS, P.VIEW_PHI, P.VIEW_DASHBOARDS, P.EXPORT, P.IMPORT,
                           P.ADMIN, P.PATIENT_HISTORY, P.RECORD_COMPLICATION, P.RECORD_FOLLOW_UP}),
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
        raise PermissionDenied(f"{actor.username} ({actor.role.value}) may not "
                               f"{permission.value.replace('_', ' ')}")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def check_password_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationFailed(
            [FieldError("password", f"must be at least {MIN_PASSWORD_LENGTH} characters")]
        )


def validate_username(username: str, field_name: str = "username") -> str:
    """The username without surrounding spaces, or ValidationFailed naming `field_name` and
    USERNAME_RULE. Every path that creates an account calls it (users add, the admin page,
    first-run setup, "create missing" technologists of `log`, the form and CSV import): a bad
    name (a quote, a zero-width space, a newline) would become an account in every list."""
    name = username.strip() if isinstance(username, str) else ""
    if not _USERNAME.fullmatch(name):
        raise ValidationFailed([FieldError(field_name, USERNAME_RULE)])
    return name


def _check_new_account(username: str, role: Role | str, password: str | None) -> tuple[str, Role]:
    """Every problem with a new account at once (username, role, password): one pass fixes."""
    errors: list[FieldError] = []
    name = username.strip()
    try:
        name = validate_username(username)
    except ValidationFailed as exc:
        errors += exc.errors
    parsed: Role | None = None
    try:
        parsed = Role.parse(role)
    except ValueError as exc:
        errors.append(FieldError("role", str(exc)))
    if password is not None:
        try:
            check_password_strength(password)
        except ValidationFailed as exc:
            errors += exc.errors
    if errors:
        raise ValidationFailed(errors)
    assert parsed is not None
    return name, parsed


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
    name, role = _check_new_account(username, role, password)

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
    """Wrong username or password, or a locked/inactive account. The message is safe to show:
    it is the same for every one of those (lockout.FAILED), so it tells nothing about which."""


@cache
def _dummy_hash() -> str:
    """A hash of a random password with the current parameters, computed once per process.

    Why: an unknown, deactivated or locked account is still checked against a hash, so every
    refusal costs one Argon2id verify, like a wrong password. Without it an unknown username
    was refused in 2 ms and a wrong password in 205 ms: the timing told which usernames exist.
    """
    return _hasher.hash(secrets.token_urlsafe(24))


def authenticate(engine: Engine, username: str, password: str) -> Actor:
    """Check a password; count failures, lock after MAX_FAILED_LOGINS, audit every outcome.

    Every refusal looks the same from outside (issue 10): one message (lockout.FAILED) and
    one Argon2id verify, whether the username is unknown, the password wrong, or the account
    deactivated or locked (those verify against _dummy_hash), so neither the text nor the time
    tells an attacker which usernames exist or are locked. The audit trail, which only
    administrators read, records the real reason.

    Argon2 runs before the write transaction (it is slow on purpose; no lock should wait on
    it); audit.lockout then writes the outcome so that concurrent attempts are all counted and
    exactly one locks. A failure commits before SignInFailed is raised: a rolled-back failure
    would let an attacker guess forever.
    """
    name = username.strip() if isinstance(username, str) else ""
    dummy = _dummy_hash()  # the first attempt of a process pays for it, whatever the outcome
    user = None
    if lockout.queryable_name(name):
        with read_session(engine) as session:
            user = session.scalar(select(UserAccount).where(UserAccount.username == name))
    now = utcnow()
    usable = user is not None and user.active and user.can_sign_in and bool(user.password_hash)
    locked = usable and lockout.is_locked(user.locked_until, now)  # type: ignore[union-attr]
    if usable and not locked:
        verified = _verify(user.password_hash, password)  # type: ignore[union-attr,arg-type]
    else:
        _verify(dummy, password)  # the same work as a wrong password; the result is unused
        verified = False
    if user is None or not usable:
        reason = "unknown username" if user is None else "account disabled"
        with write_session(engine) as session:
            failure = lockout.refuse(session, lockout.audit_name(name), user.id if user else None,
                                     reason, lockout.FAILED)
        raise SignInFailed(failure)
    assert user.password_hash is not None
    new_hash = (hash_password(password)
                if verified and _hasher.check_needs_rehash(user.password_hash) else None)
    with write_session(engine) as session:
        lock_chain(session)  # before the account row: the lock order of every audited write
        role = lockout.record_success(session, user, now, new_hash) if verified else None
        if role is not None:
            return Actor(username=user.username, role=Role(role))
        failure = lockout.record_refusal(session, user, now, wrong=not locked,
                                         limit=MAX_FAILED_LOGINS, lock_for=LOCKOUT)
    raise SignInFailed(failure)


def _verify(password_hash: str, password: str) -> bool:
    """One Argon2id verify. The password goes in as bytes ("surrogatepass"), so a typed lone
    surrogate costs the same verify and fails, instead of raising before any work."""
    secret = password.encode("utf-8", "surrogatepass") if isinstance(password, str) else b""
    try:
        return _hasher.verify(password_hash, secret)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def get_user(session: Session, username: str) -> UserAccount:
    user = session.scalar(select(UserAccount).where(UserAccount.username == username))
    if user is None:
        raise NotFound(f"no account named {username!r}")
    return user


# --- first run, sessions ------------------------------------------------------------------------

SETUP_ACTOR = "setup"
#: Preferences a user's screen may remember (UserAccount.preferences); anything else is refused.
PREFERENCE_KEYS = frozenset({"site", "room", "physician", "procedure_code", "carm_operator"})


def needs_first_admin(engine: Engine) -> bool:
    """True on a fresh installation: no account can sign in yet, so the app asks for the
    administrator instead of showing a login. Accounts created by imports or demo data (which
    cannot sign in) do not count: they would otherwise lock everyone out."""
    with Session(engine) as session:
        return session.scalar(select(func.count()).select_from(UserAccount)
                              .where(lockout.can_sign_in_clause())) == 0


def _lock_accounts(session: Session) -> None:
    """Serialise account changes that depend on counting accounts (first admin, last admin).
    SQLite write transactions already begin IMMEDIATE; PostgreSQL needs a table lock."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("LOCK TABLE user_account IN SHARE ROW EXCLUSIVE MODE"))


def create_first_admin(engine: Engine, username: str, password: str,
                       display_name: str | None = None) -> Actor:
    """Create the first administrator, only while no account can sign in (checked in the same
    transaction, so two browsers racing through first-run setup cannot both succeed)."""
    name, _ = _check_new_account(username, Role.ADMIN, password)

    def work() -> Actor:
        with write_session(engine) as session:
            _lock_accounts(session)
            if session.scalar(select(func.count()).select_from(UserAccount)
                              .where(lockout.can_sign_in_clause())):
                raise PermissionDenied("the administrator account already exists: sign in")
            user = session.scalar(select(UserAccount).where(UserAccount.username == name))
            if user is not None:  # e.g. a name created by an import, which cannot sign in
                raise ValidationFailed([FieldError(
                    "username", f"{name!r} already exists (created by an import); choose "
                    "another name")])
            user = UserAccount(username=name, role=Role.ADMIN.value, display_name=display_name,
                               password_hash=hash_password(password), can_sign_in=True,
                               active=True, failed_logins=0, last_login_at=utcnow())
            session.add(user)
            session.flush()
            record_event(session, actor=SETUP_ACTOR, action=AuditAction.CREATE,
                         entity="user_account", entity_id=user.id,
                         after={"username": name, "role": Role.ADMIN.value,
                                "can_sign_in": True},
                         reason="first-run setup: the first administrator")
            return Actor(username=name, role=Role.ADMIN)

    return retrying(work)


def current_actor_state(engine: Engine, actor: Actor) -> Actor | None:
    """The actor as the database sees them now: None if the account was deactivated (or can no
    longer sign in), with the current role if an administrator changed it (the dashboard's
    sessions check the same at every click: audit.sessions)."""
    if actor.system:
        return actor
    with Session(engine) as session:
        row = session.execute(select(UserAccount.role, UserAccount.active,
                                     UserAccount.can_sign_in)
                              .where(UserAccount.username == actor.username)).one_or_none()
    if row is None or not row.active or not row.can_sign_in:
        return None
    role = Role(row.role)
    return actor if role is actor.role else Actor(actor.username, role)


def sign_out(engine: Engine, actor: Actor, reason: str = "signed out") -> None:
    """Record the end of a session (sign-out or idle timeout) in the audit trail."""
    with write_session(engine) as session:
        user_id = session.scalar(select(UserAccount.id)
                                 .where(UserAccount.username == actor.username))
        record_event(session, actor=actor.username, action=AuditAction.LOGOUT,
                     entity="user_account", entity_id=user_id, reason=reason)


def get_preferences(engine: Engine, username: str) -> dict[str, Any]:
    """Remembered choices of one user (last site, room, physician), {} if none."""
    with Session(engine) as session:
        prefs = session.scalar(select(UserAccount.preferences)
                               .where(UserAccount.username == username))
    return dict(prefs or {})


def update_preferences(engine: Engine, actor: Actor, changes: Mapping[str, Any]) -> dict[str, Any]:
    """Merge `changes` into the actor's own preferences and return them.

    Not audited: these are screen defaults (which room the form opens with), not data or
    access; auditing each would add an event to every logged case.
    """
    unknown = sorted(set(changes) - PREFERENCE_KEYS)
    if unknown:
        raise ValidationFailed([FieldError(k, f"not a preference; allowed: "
                                           f"{', '.join(sorted(PREFERENCE_KEYS))}")
                                for k in unknown])
    bad = [k for k, v in changes.items() if v is not None and not isinstance(v, str)]
    if bad:
        raise ValidationFailed([FieldError(k, "expected text") for k in bad])

    def work() -> dict[str, Any]:
        with write_session(engine) as session:
            user = get_user(session, actor.username)
            prefs = dict(user.preferences or {})
            prefs.update({k: v for k, v in changes.items() if v is not None})
            for key in [k for k, v in changes.items() if v is None]:
                prefs.pop(key, None)
            user.preferences = prefs
            return prefs

    return retrying(work)


# --- account administration (admin permission checked here, every change audited) -------------

def list_users(engine: Engine, actor: Actor) -> list[dict[str, Any]]:
    """Every account (never the hash), for the admin page."""
    require(actor, Permission.ADMIN)
    with Session(engine) as session:
        users = session.scalars(select(UserAccount).order_by(UserAccount.username)).all()
        now = utcnow()
        return [{
            "username": u.username, "display_name": u.display_name, "role": u.role,
            "active": u.active, "can_sign_in": u.can_sign_in and u.password_hash is not None,
            "locked": bool(u.locked_until and u.locked_until > now),
            "last_login_at": u.last_login_at, "created_at": u.created_at,
        } for u in users]


def _is_last_admin(session: Session, user: UserAccount) -> bool:
    if user.role != Role.ADMIN.value or not user.active:
        return False
    others = session.scalar(select(func.count()).select_from(UserAccount).where(
        UserAccount.role == Role.ADMIN.value, UserAccount.id != user.id,
        lockout.can_sign_in_clause()))
    return not others


def _change_user(engine: Engine, actor: Actor, username: str, action: AuditAction,
                 reason: str, change: Any, end_sessions: str | None = None) -> None:
    """Apply `change(session, user) -> (before, after)`, audit it; end its sessions if asked."""
    require(actor, Permission.ADMIN)

    def work() -> None:
        with write_session(engine) as session:
            _lock_accounts(session)
            user = get_user(session, username)
            before, after = change(session, user)
            record_event(session, actor=actor.username, action=action,
                         entity="user_account", entity_id=user.id, reason=reason,
                         before={"username": user.username, **before},
                         after={"username": user.username, **after})
            if end_sessions:
                sessions.end_for_user(session, user.id, actor.username, end_sessions)

    retrying(work)


def deactivate_user(engine: Engine, actor: Actor, username: str,
                    reason: str = "deactivated by an administrator") -> None:
    """The account stays (its records name it) but cannot sign in; its sessions end now."""
    def change(session: Session, user: UserAccount) -> tuple[dict[str, Any], dict[str, Any]]:
        if not user.active:
            raise ValidationFailed([FieldError("username", f"{user.username} is already "
                                               "inactive")])
        if user.username == actor.username:
            raise ValidationFailed([FieldError("username", "you cannot deactivate your own "
                                               "account")])
        if _is_last_admin(session, user):
            raise ValidationFailed([FieldError("username", f"{user.username} is the last "
                                               "active administrator; make another first")])
        user.active = False
        return {"active": True}, {"active": False}

    _change_user(engine, actor, username, AuditAction.DEACTIVATE, reason, change,
                 sessions.DEACTIVATED)


def reactivate_user(engine: Engine, actor: Actor, username: str) -> None:
    def change(_: Session, user: UserAccount) -> tuple[dict[str, Any], dict[str, Any]]:
        if user.active:
            raise ValidationFailed([FieldError("username", f"{user.username} is already "
                                               "active")])
        user.active = True
        user.failed_logins = 0
        user.locked_until = None
        return {"active": False}, {"active": True}

    _change_user(engine, actor, username, AuditAction.AMEND, "reactivated", change)


def reset_password(engine: Engine, actor: Actor, username: str, new_password: str) -> None:
    """Set a new password (the administrator tells the user), clear any lockout, allow sign-in
    (so an imported account becomes a real one), end the account's sessions. The trail records
    that the password changed, never the password or its hash."""
    check_password_strength(new_password)

    def change(_: Session, user: UserAccount) -> tuple[dict[str, Any], dict[str, Any]]:
        before = {"password": "(previous)", "can_sign_in": user.can_sign_in,
                  "locked": user.locked_until is not None}
        user.password_hash = hash_password(new_password)
        user.can_sign_in = True
        user.failed_logins = 0
        user.locked_until = None
        return before, {"password": "(reset)", "can_sign_in": True, "locked": False}

    _change_user(engine, actor, username, AuditAction.AMEND, "password reset", change,
                 sessions.PASSWORD_RESET)


def change_role(engine: Engine, actor: Actor, username: str, role: Role | str) -> None:
    try:
        new_role = Role.parse(role)
    except ValueError as exc:
        raise ValidationFailed([FieldError("role", str(exc))]) from None

    def change(session: Session, user: UserAccount) -> tuple[dict[str, Any], dict[str, Any]]:
        if user.role == new_role.value:
            raise ValidationFailed([FieldError("role", f"{user.username} is already "
                                               f"{new_role.value}")])
        if new_role is not Role.ADMIN and _is_last_admin(session, user):
            raise ValidationFailed([FieldError("role", f"{user.username} is the last active "
                                               "administrator; make another first")])
        before = {"role": user.role}
        user.role = new_role.value
        return before, {"role": new_role.value}

    _change_user(engine, actor, username, AuditAction.AMEND, "role changed", change)
