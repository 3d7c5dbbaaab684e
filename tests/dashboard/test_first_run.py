"""First start: the administrator's password rules are stated before it is typed, and every rule
a try breaks is listed at once (issue 12: a short password typed differently twice was told
only that the two passwords differ)."""

from __future__ import annotations

from dashboard import state
from tests.dashboard.conftest import PASSWORD, AppFactory, messages_after, texts


def test_the_password_rules_are_stated_and_every_unmet_one_is_listed(app: AppFactory) -> None:
    at = app().run()
    assert any("at least 10 characters, typed the same twice" in c for c in texts(at.caption))
    at.text_input(key="fr_username").input("x")
    at.text_input(key="fr_password").input("short")
    at.text_input(key="fr_repeat").input("shorter")
    at.button[0].click().run()
    assert "2-80 characters" in messages_after(at, "fr_username")[0]
    assert messages_after(at, "fr_password") == ["must be at least 10 characters"]
    assert messages_after(at, "fr_repeat") == [
        "the two passwords differ: type the same password twice"]
    assert state.ACTOR_KEY not in at.session_state

    at.text_input(key="fr_username").input("admin")
    at.text_input(key="fr_password").input(PASSWORD)
    at.text_input(key="fr_repeat").input(PASSWORD)
    at.button[0].click().run()
    assert state.ACTOR_KEY in at.session_state
