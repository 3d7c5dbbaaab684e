"""Follow-ups (audited as an amendment of the outcome only) and the rule packs' switches and
parameters (administrators only, audited, validated naming the parameter)."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, select

from audit.auth import Actor, cli_actor
from audit.errors import PermissionDenied, ValidationFailed
from audit.log.service import ProcedureLog
from audit.rules.follow_up import list_follow_ups, record_follow_up
from audit.rules.store import list_packs, set_enabled, set_parameter
from audit.storage.engine import read_session
from audit.storage.models import AuditEvent
from audit.vocab import Role
from tests.rules.helpers import logged, session


def _events(engine: Engine, entity: str) -> list[AuditEvent]:
    with read_session(engine) as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.entity == entity)
                              .order_by(AuditEvent.id)))


def test_a_follow_up_is_audited_as_an_outcome_amendment_and_leaves_the_record_alone(
        engine: Engine, service: ProcedureLog) -> None:
    record, = logged(service, [session("2026-01-10")], Actor("tech1", Role.TECHNOLOGIST))
    before = service.get(record, cli_actor())
    fid = record_follow_up(engine, Actor("tech1", Role.TECHNOLOGIST), record, "2026-05-15",
                           "60", "120", "phone call")
    event, = _events(engine, "follow_up")
    assert (event.action, event.entity_id, event.actor) == ("amend", str(record), "tech1")
    assert event.after and event.after["relief_percent"] == 60
    assert event.after["follow_up_id"] == fid
    assert service.get(record, cli_actor())["version"] == before["version"]
    rows = list_follow_ups(engine, cli_actor(), record)
    assert [(r["relief_percent"], r["relief_days"], r["note"]) for r in rows] == \
        [(60, 120, "phone call")]


def test_a_quality_officer_may_not_record_a_follow_up(engine: Engine,
                                                      service: ProcedureLog) -> None:
    record, = logged(service, [session("2026-01-10")])
    with pytest.raises(PermissionDenied):
        record_follow_up(engine, Actor("qo", Role.QUALITY_OFFICER), record, "2026-02-10", 60,
                         120)
    assert not _events(engine, "follow_up")


def test_follow_up_errors_name_the_field(engine: Engine, service: ProcedureLog) -> None:
    record, = logged(service, [session("2026-01-10")])
    with pytest.raises(ValidationFailed) as caught:
        record_follow_up(engine, cli_actor(), record, "10/02/2026", 150, -1)
    fields = {e.field: e.message for e in caught.value.errors}
    assert set(fields) == {"followed_up_on", "relief_percent", "relief_days"}
    assert "from 0 to 100" in fields["relief_percent"]
    with pytest.raises(ValidationFailed) as caught:
        record_follow_up(engine, cli_actor(), record, "2026-01-01", 50, 30)
    assert caught.value.errors[0].field == "followed_up_on"
    assert "before the procedure" in caught.value.errors[0].message
    # Relief cannot have lasted longer than the time since the procedure.
    with pytest.raises(ValidationFailed) as caught:
        record_follow_up(engine, cli_actor(), record, "2026-02-10", 50, 120)
    assert caught.value.errors[0].field == "relief_days"
    assert "allowed: 0 to 32" in caught.value.errors[0].message
    assert not list_follow_ups(engine, cli_actor(), record)


def test_only_an_administrator_changes_a_pack_and_every_change_is_audited(
        engine: Engine) -> None:
    for role in (Role.QUALITY_OFFICER, Role.RSO, Role.PHYSICIAN, Role.TECHNOLOGIST):
        with pytest.raises(PermissionDenied):
            set_enabled(engine, Actor("someone", role), "lcd_esi", True)
        with pytest.raises(PermissionDenied):
            set_parameter(engine, Actor("someone", role), "lcd_esi",
                          "max_sessions_per_region", 6)
    set_enabled(engine, cli_actor(), "lcd_esi", True)
    pack = set_parameter(engine, cli_actor(), "lcd_esi", "max_sessions_per_region", "6")
    assert pack["parameters"]["max_sessions_per_region"] == 6
    events = _events(engine, "rule_pack")
    assert [(e.action, e.entity_id) for e in events] == [("setting", "lcd_esi")] * 2
    assert events[0].before == {"enabled": False} and events[0].after == {"enabled": True}
    assert events[1].after and events[1].after["parameters"]["max_sessions_per_region"] == 6
    listed = {p["key"]: p for p in list_packs(engine, cli_actor())}
    assert listed["lcd_esi"]["enabled"] and not listed["lcd_facet"]["enabled"]


@pytest.mark.parametrize(("pack", "param", "value", "wanted"), [
    ("lcd_esi", "max_sessions_per_region", "0", "allowed: a whole number from 1 to 52"),
    ("lcd_esi", "repeat_relief_percent", "50.5", "not a whole number"),
    ("lcd_facet", "block_relief_percent", "many", "not a number"),
    ("safeguards_2015", "cervical_ilesi_highest_level", "C3-C4", "allowed: C7-T1, C6-C7"),
])
def test_a_parameter_out_of_range_is_refused_naming_it(engine: Engine, pack: str, param: str,
                                                       value: str, wanted: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        set_parameter(engine, cli_actor(), pack, param, value)
    error, = caught.value.errors
    assert error.field == param and wanted in error.message
    assert not _events(engine, "rule_pack")


def test_an_unknown_pack_or_parameter_is_named(engine: Engine) -> None:
    with pytest.raises(ValidationFailed) as caught:
        set_enabled(engine, cli_actor(), "lcd_knee", True)
    assert "allowed: lcd_esi, lcd_facet, safeguards_2015" in caught.value.errors[0].message
    with pytest.raises(ValidationFailed) as caught:
        set_parameter(engine, cli_actor(), "lcd_esi", "max_sessions", 3)
    assert caught.value.errors[0].field == "max_sessions"
    assert "max_sessions_per_region" in caught.value.errors[0].message
