"""Single sign-on: an identity vouched for by the site's OpenID Connect provider, matched to a
fluoro-audit account.

Why accounts stay here: the provider says who someone is, not what they may do in a radiation
audit. Roles, deactivation, the lockout and the audit trail stay with fluoro-audit, so an
identity signs in only as an existing, active account whose username is the e-mail address the
provider vouches for (compared without regard to case, as e-mail domains are). Nobody is created
by signing in: an administrator adds the account first, exactly as for a password.

The dashboard (dashboard/sso.py) reads the identity from Streamlit's st.login / st.user; this
module decides and audits, so the rule is tested without a browser. A refusal says why in words
(an unknown address is no secret to the person the provider has just identified) and is audited
with the issuer and subject, like a refused password.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from audit.auth import Actor, SignInFailed
from audit.lockout import can_sign_in_clause, is_locked, refuse
from audit.storage.engine import read_session, write_session
from audit.storage.models import UserAccount, utcnow
from audit.trail import lock_chain, record_event
from audit.vocab import AuditAction, Role

#: What a refused identity is told, by reason. The audit trail records the reason itself.
NO_ACCOUNT = ("No fluoro-audit account can sign in as {email}. An administrator adds one with "
              "this e-mail address as its username.")
UNVERIFIED = ("Your organisation's sign-in did not confirm the e-mail address {email}. Ask "
              "your IT team, or sign in with your fluoro-audit password.")
NO_EMAIL = ("Your organisation's sign-in gave no e-mail address, so no fluoro-audit account "
            "can be matched. Ask your IT team to release the e-mail claim to this app.")
LOCKED = ("The account {email} is locked after repeated failed sign-ins. Try again later or ask "
          "an administrator.")


@dataclass(frozen=True)
class Identity:
    """What the provider's ID token says about the person (the claims fluoro-audit uses)."""

    issuer: str
    subject: str
    email: str | None
    email_verified: bool | None = None

    @classmethod
    def from_claims(cls, claims: dict[str, object]) -> Identity:
        """From st.user's claims (or any ID-token claims); absent claims become None."""
        email = claims.get("email")
        verified = claims.get("email_verified")
        return cls(issuer=str(claims.get("iss") or ""), subject=str(claims.get("sub") or ""),
                   email=email.strip() if isinstance(email, str) and email.strip() else None,
                   email_verified=verified if isinstance(verified, bool) else None)

    def describe(self) -> str:
        """How the audit trail names the identity."""
        return f"single sign-on: issuer {self.issuer or '?'}, subject {self.subject or '?'}"


def sign_in(engine: Engine, identity: Identity) -> Actor:
    """The account the identity signs in as (its sign-in recorded: count cleared, last sign-in
    set, a LOGIN event naming the provider); SignInFailed with a message in words otherwise."""
    email = identity.email
    if email is None:
        _refuse(engine, "?", None, identity, "no e-mail claim", NO_EMAIL)
    assert email is not None
    if identity.email_verified is False:  # absent is accepted: many providers verify always
        _refuse(engine, email, None, identity, "e-mail not verified",
                UNVERIFIED.format(email=email))
    with read_session(engine) as session:
        found = session.scalars(select(UserAccount)
                                .where(func.lower(UserAccount.username) == email.lower(),
                                       can_sign_in_clause())).all()
    if len(found) != 1:  # none, or accounts differing only in case: never guess which
        why = "no account for this e-mail" if not found else "several accounts match"
        _refuse(engine, email, None, identity, why, NO_ACCOUNT.format(email=email))
    user = found[0]
    now = utcnow()
    with write_session(engine) as session:
        lock_chain(session)  # before the account row: the lock order of every audited write
        account = session.get(UserAccount, user.id, with_for_update=True)
        refusal = None
        if account is None or not (account.active and account.can_sign_in):
            refusal = ("account disabled", NO_ACCOUNT.format(email=email))
        elif is_locked(account.locked_until, now):
            refusal = ("account locked", LOCKED.format(email=email))
        if refusal is None:
            return _record(session, account, now, identity)  # type: ignore[arg-type]
    _refuse(engine, user.username, user.id, identity, *refusal)
    raise AssertionError("unreachable")  # pragma: no cover


def _record(session: Session, account: UserAccount, now: datetime,
            identity: Identity) -> Actor:
    """The sign-in itself: the failure count cleared, last sign-in set, a LOGIN event naming
    the provider."""
    account.failed_logins = 0
    account.last_login_at = now
    record_event(session, actor=account.username, action=AuditAction.LOGIN,
                 entity="user_account", entity_id=account.id, reason=identity.describe())
    return Actor(username=account.username, role=Role(account.role))


def _refuse(engine: Engine, name: str, user_id: int | None, identity: Identity, why: str,
            message: str) -> None:
    with write_session(engine) as session:
        refuse(session, name[:80], user_id, f"{why} ({identity.describe()})", message)
    raise SignInFailed(message)
