"""Single sign-on's account rule (audit.sso) on SQLite and PostgreSQL: an identity signs in only
as an existing, active, unlocked account whose username is its e-mail address (any case), and
every outcome is in the audit trail with the provider's issuer and subject. The browser half,
against a real OpenID Connect provider, is tests/e2e/test_sso.py."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from audit import auth, sso
from audit.auth import Actor, SignInFailed, cli_actor
from audit.storage.models import AuditEvent, UserAccount, utcnow
from audit.trail import verify_chain
from audit.vocab import AuditAction, Role

PASSWORD = "correct horse battery"
ISSUER = "https://login.example.org"


def identity(email: str | None, verified: bool | None = None) -> sso.Identity:
    return sso.Identity(issuer=ISSUER, subject="abc-123", email=email, email_verified=verified)


def last_event(engine: Engine) -> AuditEvent:
    with Session(engine) as session:
        return session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc())).first()


@pytest.fixture
def officer(engine: Engine) -> str:
    auth.add_user(engine, cli_actor(), "Ann.Lee@Clinic.org", Role.QUALITY_OFFICER, PASSWORD)
    return "Ann.Lee@Clinic.org"


def test_an_identity_signs_in_as_the_account_its_address_names_in_any_case(
        engine: Engine, officer: str) -> None:
    actor = sso.sign_in(engine, identity("ann.lee@clinic.ORG", verified=True))
    assert actor == Actor(officer, Role.QUALITY_OFFICER)
    event = last_event(engine)
    assert (event.actor, event.action) == (officer, AuditAction.LOGIN)
    assert event.reason == f"single sign-on: issuer {ISSUER}, subject abc-123"
    with Session(engine) as session:
        account = session.scalar(select(UserAccount).where(UserAccount.username == officer))
        assert account.last_login_at is not None and account.failed_logins == 0
    with Session(engine) as session:
        assert verify_chain(session).ok


@pytest.mark.parametrize(("email", "verified", "words", "why"), [
    ("nobody@clinic.org", True, "No fluoro-audit account can sign in as nobody@clinic.org",
     "no account for this e-mail"),
    ("ann.lee@clinic.org", False, "did not confirm the e-mail address", "e-mail not verified"),
    (None, None, "gave no e-mail address", "no e-mail claim"),
])
def test_a_refused_identity_is_told_why_in_words_and_audited(
        engine: Engine, officer: str, email: str | None, verified: bool | None, words: str,
        why: str) -> None:
    with pytest.raises(SignInFailed, match=words):
        sso.sign_in(engine, identity(email, verified))
    event = last_event(engine)
    assert event.action == AuditAction.LOGIN_FAILED
    assert why in event.reason and "subject abc-123" in event.reason


def test_a_deactivated_account_cannot_sign_in_through_the_provider(
        engine: Engine, officer: str) -> None:
    auth.add_user(engine, cli_actor(), "boss", Role.ADMIN, PASSWORD)
    auth.deactivate_user(engine, Actor("boss", Role.ADMIN), officer)
    with pytest.raises(SignInFailed, match="No fluoro-audit account"):
        sso.sign_in(engine, identity(officer))


def test_a_locked_account_stays_locked_for_the_provider_too(engine: Engine, officer: str) -> None:
    with Session(engine) as session, session.begin():
        session.execute(update(UserAccount).where(UserAccount.username == officer)
                        .values(locked_until=utcnow() + timedelta(minutes=10)))
    with pytest.raises(SignInFailed, match="is locked"):
        sso.sign_in(engine, identity(officer))
    assert last_event(engine).reason.startswith("account locked")


def test_accounts_that_differ_only_in_case_are_never_guessed_between(engine: Engine) -> None:
    auth.add_user(engine, cli_actor(), "kim@clinic.org", Role.TECHNOLOGIST, PASSWORD)
    auth.add_user(engine, cli_actor(), "Kim@clinic.org", Role.ADMIN, PASSWORD)
    with pytest.raises(SignInFailed):
        sso.sign_in(engine, identity("KIM@clinic.org"))
    assert "several accounts match" in last_event(engine).reason


@settings(max_examples=40, deadline=None)
@given(claims=st.dictionaries(st.sampled_from(["iss", "sub", "email", "email_verified", "name"]),
                              st.one_of(st.none(), st.booleans(), st.integers(), st.text())))
def test_any_claims_make_an_identity_or_nothing_else(claims: dict[str, object]) -> None:
    """Whatever a provider sends (a missing, empty, numeric or boolean claim), the identity is
    built and its e-mail is a non-empty string or None."""
    made = sso.Identity.from_claims(claims)
    assert made.email is None or (isinstance(made.email, str) and made.email.strip())
    assert made.email_verified in (True, False, None)
