"""Sign-in input no account can have (issue 10): a NUL or a lone surrogate in the username, a
lone surrogate in the password, is refused with the one sign-in message, never a crash
(PostgreSQL refuses a NUL even in a WHERE clause). A malformed username is an unknown user, so
no account changes; a malformed password is a wrong password for the account it names."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from audit.auth import SignInFailed, add_user, authenticate, cli_actor
from audit.lockout import FAILED
from audit.storage.models import UserAccount
from audit.vocab import Role

PASSWORD = "correct horse battery"


@pytest.mark.parametrize(
    ("username", "password", "failures"),
    [("tnguyen\x00", PASSWORD, 0), ("\x00", PASSWORD, 0), ("tn\ud800", PASSWORD, 0),
     ("tnguyen", "correct horse\ud800", 1), ("t" * 10_000, PASSWORD, 0)],
)
def test_malformed_sign_in_is_refused_not_a_crash(
        engine: Engine, username: str, password: str, failures: int) -> None:
    user = add_user(engine, cli_actor(), "tnguyen", Role.TECHNOLOGIST, PASSWORD)
    with pytest.raises(SignInFailed, match=re.escape(FAILED)):
        authenticate(engine, username, password)
    with Session(engine) as session:
        assert session.get(UserAccount, user.id).failed_logins == failures
    assert authenticate(engine, "tnguyen", PASSWORD).username == "tnguyen"
