"""`update_setting`: only an admin changes a setting, only to a value of the setting's kind (a
number for a number, yes/no for yes/no: never 1 for yes or True for 3), audited."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from audit.auth import Actor, cli_actor
from audit.errors import PermissionDenied, ValidationFailed
from audit.settings import update_setting
from audit.storage.engine import read_session
from audit.storage.models import Setting
from audit.vocab import Role


def stored(engine: Engine, key: str) -> object:
    with read_session(engine) as s:
        return s.get(Setting, key).value  # type: ignore[union-attr]


@pytest.mark.parametrize(("key", "wrong"), [("receiver_enabled", 1),
                                            ("receiver_enabled", 0.0),
                                            ("session_idle_minutes", True),
                                            ("investigation_factor", "4")])
def test_a_value_of_another_kind_is_refused_naming_the_setting(engine: Engine, key: str,
                                                               wrong: object) -> None:
    before = stored(engine, key)
    with pytest.raises(ValidationFailed) as refused:
        update_setting(engine, cli_actor(), key, wrong)
    assert refused.value.errors[0].field == key
    assert stored(engine, key) == before


def test_numbers_of_either_kind_and_yes_no_for_yes_no_are_taken(engine: Engine) -> None:
    update_setting(engine, cli_actor(), "session_idle_minutes", 12)
    update_setting(engine, cli_actor(), "session_idle_minutes", 12.5)
    update_setting(engine, cli_actor(), "receiver_enabled", True)
    assert (stored(engine, "session_idle_minutes"), stored(engine, "receiver_enabled")) == (
        12.5, True)


def test_only_an_admin_changes_a_setting(engine: Engine) -> None:
    with pytest.raises(PermissionDenied):
        update_setting(engine, Actor("rso1", Role.RSO), "session_idle_minutes", 5)
