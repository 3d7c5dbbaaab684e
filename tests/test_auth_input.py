"""Sign-in input no account can have (issue 10): a NUL or a lone surrogate in the username, a
lone surrogate in the password, is refused as a wrong password before any query (PostgreSQL
refuses a NUL even in a WHERE clause; a surrogate cannot be encoded), and the account is left
as it was."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from audit.auth import SignInFailed, add_user, authenticate, cli_actor
from audit.lockout import WRONG
from audit.storage.models import UserAccount
from audit.vocab import Role

PASSWORD = "correct horse battery"


@pytest.mark.parametrize(
    ("username", "password"),
    [("tnguyen\x00", PASSWORD), ("\x00", PASSWORD), ("tn\ud800", PASSWORD),
     ("tnguyen", "correct horse\ud800"), ("t" * 10_000, PASSWORD)],
)
def test_malformed_sign_in_is_a_wrong_password_not_a_crash(
        engine: Engine, username: str, password: str) -> None:
    user = add_user(engine, cli_actor(), "tnguyen", Role.TECHNOLOGIST, PASSWORD)
    with pytest.raises(SignInFailed, match=WRONG):
        authenticate(engine, username, password)
    with Session(engine) as session:
        assert session.get(UserAccount, user.id).failed_logins == 0
    assert authenticate(engine, "tnguyen", PASSWORD).username == "tnguyen"
