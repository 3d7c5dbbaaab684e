"""Account administration in the library: first administrator, deactivate, reactivate, reset
password, change role, preferences; the admin permission is checked here and every change is
in the audit trail."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from audit import auth
from audit.auth import Actor, cli_actor
from audit.errors import NotFound, PermissionDenied, ValidationFailed
from audit.storage.models import AuditEvent, UserAccount
from audit.vocab import Role

PASSWORD = "correct horse battery"


def events(engine: Engine, entity_id: int | None = None) -> list[AuditEvent]:
    with Session(engine) as s:
        q = select(AuditEvent).where(AuditEvent.entity == "user_account")
        if entity_id is not None:
            q = q.where(AuditEvent.entity_id == str(entity_id))
        return list(s.scalars(q.order_by(AuditEvent.id)))


def user(engine: Engine, name: str) -> UserAccount:
    with Session(engine) as s:
        return s.scalars(select(UserAccount).where(UserAccount.username == name)).one()


@pytest.fixture
def boss(engine: Engine) -> Actor:
    auth.add_user(engine, cli_actor(), "boss", Role.ADMIN, PASSWORD)
    auth.add_user(engine, cli_actor(), "tech1", Role.TECHNOLOGIST, PASSWORD)
    return Actor("boss", Role.ADMIN)


# --- first run ----------------------------------------------------------------------------------

def test_a_fresh_database_needs_its_first_administrator(engine: Engine) -> None:
    assert auth.needs_first_admin(engine)
    actor = auth.create_first_admin(engine, "admin", PASSWORD, "Ada Admin")
    assert actor == Actor("admin", Role.ADMIN)
    assert not auth.needs_first_admin(engine)
    assert auth.authenticate(engine, "admin", PASSWORD) == actor
    [event] = [e for e in events(engine) if e.action == "create"]
    assert (event.actor, event.action, event.after["role"]) == ("setup", "create", "admin")


def test_accounts_that_cannot_sign_in_do_not_close_first_run_setup(engine: Engine) -> None:
    auth.add_user(engine, cli_actor(), "imported", Role.TECHNOLOGIST, None)
    assert auth.needs_first_admin(engine)
    with pytest.raises(ValidationFailed, match="created by an import"):
        auth.create_first_admin(engine, "imported", PASSWORD)


def test_the_first_administrator_can_be_created_only_once(engine: Engine) -> None:
    auth.create_first_admin(engine, "admin", PASSWORD)
    with pytest.raises(PermissionDenied, match="already exists"):
        auth.create_first_admin(engine, "second", PASSWORD)


def test_two_racing_first_run_setups_make_one_administrator(db_url: str) -> None:
    from audit.storage.engine import make_engine

    outcomes: list[str] = []

    def attempt(name: str) -> None:
        eng = make_engine(db_url)
        try:
            auth.create_first_admin(eng, name, PASSWORD)
            outcomes.append("created")
        except PermissionDenied:
            outcomes.append("refused")
        finally:
            eng.dispose()

    threads = [threading.Thread(target=attempt, args=(f"admin{i}",)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["created", "refused", "refused"]


def test_first_admin_reports_every_problem_at_once(engine: Engine) -> None:
    with pytest.raises(ValidationFailed) as info:
        auth.create_first_admin(engine, "!", "short")
    assert {e.field for e in info.value.errors} == {"username", "password"}


# --- administration -----------------------------------------------------------------------------

def test_only_an_administrator_may_manage_accounts(engine: Engine, boss: Actor) -> None:
    tech = Actor("tech1", Role.TECHNOLOGIST)
    for call in (lambda: auth.list_users(engine, tech),
                 lambda: auth.deactivate_user(engine, tech, "boss"),
                 lambda: auth.reset_password(engine, tech, "tech1", "a new long password"),
                 lambda: auth.change_role(engine, tech, "tech1", Role.ADMIN),
                 lambda: auth.reactivate_user(engine, tech, "tech1")):
        with pytest.raises(PermissionDenied):
            call()
    assert user(engine, "tech1").role == "technologist"


def test_list_users_never_returns_a_hash(engine: Engine, boss: Actor) -> None:
    rows = auth.list_users(engine, boss)
    assert [r["username"] for r in rows] == ["boss", "tech1"]
    assert all("hash" not in k for row in rows for k in row)
    assert rows[1]["can_sign_in"] is True and rows[1]["locked"] is False


def test_a_deactivated_account_cannot_sign_in_and_reactivation_restores_it(
    engine: Engine, boss: Actor
) -> None:
    auth.deactivate_user(engine, boss, "tech1", reason="left the practice")
    with pytest.raises(auth.SignInFailed):
        auth.authenticate(engine, "tech1", PASSWORD)
    assert auth.current_actor_state(engine, Actor("tech1", Role.TECHNOLOGIST)) is None
    auth.reactivate_user(engine, boss, "tech1")
    assert auth.authenticate(engine, "tech1", PASSWORD).username == "tech1"
    trail = [(e.action, e.reason, e.before, e.after) for e in
             events(engine, user(engine, "tech1").id) if e.action in {"deactivate", "amend"}]
    assert trail == [
        ("deactivate", "left the practice", {"username": "tech1", "active": True},
         {"username": "tech1", "active": False}),
        ("amend", "reactivated", {"username": "tech1", "active": False},
         {"username": "tech1", "active": True}),
    ]


def test_the_last_administrator_cannot_be_removed(engine: Engine, boss: Actor) -> None:
    system = cli_actor()
    with pytest.raises(ValidationFailed, match="last active administrator"):
        auth.deactivate_user(engine, system, "boss")
    with pytest.raises(ValidationFailed, match="last active administrator"):
        auth.change_role(engine, system, "boss", Role.RSO)
    with pytest.raises(ValidationFailed, match="your own account"):
        auth.deactivate_user(engine, boss, "boss")
    auth.add_user(engine, boss, "boss2", Role.ADMIN, PASSWORD)
    auth.change_role(engine, boss, "boss", Role.RSO)
    assert user(engine, "boss").role == "rso"


def test_a_password_reset_unlocks_and_is_audited_without_the_password(
    engine: Engine, boss: Actor
) -> None:
    for _ in range(auth.MAX_FAILED_LOGINS):
        with pytest.raises(auth.SignInFailed):
            auth.authenticate(engine, "tech1", "wrong guess here")
    assert user(engine, "tech1").locked_until is not None
    auth.reset_password(engine, boss, "tech1", "a fresh passphrase")
    assert auth.authenticate(engine, "tech1", "a fresh passphrase").username == "tech1"
    [reset] = [e for e in events(engine) if e.reason == "password reset"]
    assert reset.after == {"username": "tech1", "password": "(reset)", "can_sign_in": True,
                           "locked": False}
    assert "a fresh passphrase" not in str(reset.before) + str(reset.after)
    with pytest.raises(ValidationFailed, match="at least 10"):
        auth.reset_password(engine, boss, "tech1", "short")


def test_a_reset_lets_an_imported_account_sign_in(engine: Engine, boss: Actor) -> None:
    auth.add_user(engine, boss, "imported", Role.TECHNOLOGIST, None)
    auth.reset_password(engine, boss, "imported", "now a real account")
    assert auth.authenticate(engine, "imported", "now a real account").username == "imported"


def test_changing_a_role_takes_effect_for_an_open_session(engine: Engine, boss: Actor) -> None:
    auth.change_role(engine, boss, "tech1", "quality_officer")
    assert auth.current_actor_state(engine, Actor("tech1", Role.TECHNOLOGIST)) == Actor(
        "tech1", Role.QUALITY_OFFICER)
    with pytest.raises(ValidationFailed) as info:
        auth.change_role(engine, boss, "tech1", "wizard")
    assert info.value.errors[0].field == "role" and "allowed:" in info.value.errors[0].message
    with pytest.raises(NotFound):
        auth.change_role(engine, boss, "nobody", Role.RSO)


def test_sign_out_is_audited(engine: Engine, boss: Actor) -> None:
    auth.sign_out(engine, Actor("tech1", Role.TECHNOLOGIST), "idle timeout")
    last = events(engine)[-1]
    assert (last.actor, last.action, last.reason) == ("tech1", "logout", "idle timeout")


def test_add_user_reports_every_problem_at_once(engine: Engine, boss: Actor) -> None:
    with pytest.raises(ValidationFailed) as info:
        auth.add_user(engine, boss, "?", "wizard", "short")
    assert {e.field for e in info.value.errors} == {"username", "role", "password"}


# --- preferences --------------------------------------------------------------------------------

def test_preferences_are_the_users_own_and_merge(engine: Engine, boss: Actor) -> None:
    tech = Actor("tech1", Role.TECHNOLOGIST)
    assert auth.get_preferences(engine, "tech1") == {}
    auth.update_preferences(engine, tech, {"room": "OR 1", "physician": "Dr. Chen"})
    auth.update_preferences(engine, tech, {"room": "OR 2", "site": "Riverside"})
    assert auth.get_preferences(engine, "tech1") == {"room": "OR 2", "physician": "Dr. Chen",
                                                     "site": "Riverside"}
    assert auth.get_preferences(engine, "boss") == {}
    with pytest.raises(ValidationFailed) as info:
        auth.update_preferences(engine, tech, {"role": "admin"})
    assert info.value.errors[0].field == "role"
