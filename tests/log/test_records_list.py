"""ProcedureLog.list (the Records page's query), record_history and may_change.

list() counts and pages from the procedure table alone; these tests check it returns exactly
what the joined list_query returns, for every filter and role scope."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from audit import auth
from audit import reference_data as admin
from audit.access import may_change
from audit.auth import Actor, cli_actor
from audit.errors import PermissionDenied
from audit.filters import Filters
from audit.log.history import record_history
from audit.log.queries import list_query
from audit.log.service import ProcedureLog
from audit.storage.engine import read_session
from audit.vocab import Role
from tests.conftest import valid_record


@pytest.fixture
def mixed(service: ProcedureLog) -> list[int]:
    """12 records over two rooms, physicians, technologists and types; two voided."""
    first = datetime(2026, 1, 5, 9, 0, tzinfo=timezone(timedelta(hours=-5)))
    records = []
    for i in range(12):
        extra: dict[str, Any] = {}
        if i % 3 == 0:
            extra = {"procedure_code": "CAUDAL", "levels": None, "laterality": None,
                     "realtime_contrast": False}
        records.append(valid_record(
            performed_at=(first + timedelta(days=i // 2, hours=i % 2)).isoformat(),
            room="OR 1" if i % 2 else "OR 2", physician="Dr. Chen" if i < 6 else "Dr. Weiss",
            technologist="tech1" if i % 4 else "tech2", patient_id=f"MRN{i % 5}", **extra))
    ids = [r.record_id for r in service.log_many(records, cli_actor(), create_missing=True)]
    for rid in ids[3:5]:
        service.void(rid, cli_actor(), version=1, reason="duplicate")
    # Dr. Chen signs in as drchen: a physician's scope is the records naming them.
    auth.add_user(service.engine, cli_actor(), "drchen", Role.PHYSICIAN, None)
    chen = next(p for p in admin.list_physicians(service.engine) if p["name"] == "Dr. Chen")
    admin.update_physician(service.engine, cli_actor(), chen["physician_id"], username="drchen")
    return ids


def expected(service: ProcedureLog, actor: Actor, f: Filters) -> list[int]:
    """The reference answer: the joined list_query, in the page order."""
    from audit.storage.models import Procedure

    q = list_query(actor, f).order_by(Procedure.performed_at.desc(), Procedure.id.desc())
    with read_session(service.engine) as s:
        return [r.record_id for r in s.execute(q)]


def records(**chosen: Any) -> Filters:
    """The Records list's filters: every status unless one is chosen."""
    return Filters(include_voided=True, **chosen)


FILTERS = [
    records(),
    records(status="void"),
    records(status="final"),
    records(rooms=("OR 1",)),
    records(rooms=("OR 1",), status="final"),
    records(rooms=("OR 2",), status="void"),
    records(physicians=("Dr. Weiss",), procedures=("CAUDAL",)),
    records(technologists=("tech2",)),
    records(sites=("Riverside",), patient_id="MRN3"),
    records(start=datetime(2026, 1, 6, tzinfo=UTC),
            before=datetime(2026, 1, 8, tzinfo=UTC)),
    records(rooms=("OR 1",), procedures=("TFESI",), status="final"),
    records(start=datetime(2026, 1, 6, tzinfo=UTC), rooms=("OR 2",),
            physicians=("Dr. Chen",), procedures=("CAUDAL",), status="final"),
    records(rooms=("OR 2",), technologists=("tech2",), status="void"),
    records(rooms=("Nowhere",)),
    records(record_ids=[]),
]


@pytest.mark.parametrize("f", FILTERS, ids=lambda f: ",".join(
    f"{k}={v}" for k, v in vars(f).items()
    if v not in (None, (), True) and k != "include_voided") or "all")
def test_list_matches_the_joined_query_for_every_filter(
    service: ProcedureLog, mixed: list[int], f: Filters
) -> None:
    want = expected(service, cli_actor(), f)
    rows, total = service.list(cli_actor(), f, limit=100)
    assert total == len(want)
    assert [r["record_id"] for r in rows] == want
    page, _ = service.list(cli_actor(), f, limit=3, offset=2)
    assert [r["record_id"] for r in page] == want[2:5]


@pytest.mark.parametrize("actor", [Actor("tech1", Role.TECHNOLOGIST),
                                   Actor("drchen", Role.PHYSICIAN),
                                   Actor("nobody", Role.PHYSICIAN),
                                   Actor("quality", Role.QUALITY_OFFICER)],
                         ids=lambda a: a.username)
def test_list_keeps_each_roles_scope(service: ProcedureLog, mixed: list[int],
                                     actor: Actor) -> None:
    want = expected(service, actor, records())
    rows, total = service.list(actor, records(), limit=100)
    assert ([r["record_id"] for r in rows], total) == (want, len(want))
    if actor.role is Role.QUALITY_OFFICER:
        assert total == 12 and all(r["patient_id"] is None for r in rows)
    narrowed = records(rooms=("OR 1",), status="final")
    want = expected(service, actor, narrowed)
    rows, total = service.list(actor, narrowed, limit=100)
    assert ([r["record_id"] for r in rows], total) == (want, len(want))


def test_history_shows_who_changed_what_before_and_after(
    service: ProcedureLog, mixed: list[int]
) -> None:
    rid = mixed[1]
    tech = Actor("tech1", Role.TECHNOLOGIST)
    service.amend(rid, {"fluoro_time_s": 40}, tech, version=1, reason="counter misread")
    history = record_history(service, rid, tech)
    assert [h.action for h in history] == ["create", "amend"]
    amend = history[1]
    assert (amend.actor, amend.reason) == ("tech1", "counter misread")
    assert ("fluoro_time_s", 32.0, 40.0) in amend.changes
    assert ("version", 1, 2) in amend.changes
    assert dict((f, a) for f, _, a in history[0].changes)["patient_id"] == "MRN1"


def test_history_hides_the_mrn_from_roles_without_phi(service: ProcedureLog,
                                                      mixed: list[int]) -> None:
    service.amend(mixed[1], {"patient_id": "MRN9"}, cli_actor(), version=1, reason="wrong pt")
    history = record_history(service, mixed[1], Actor("quality", Role.QUALITY_OFFICER))
    assert ("patient_id", "(hidden)", "(hidden)") in history[1].changes
    assert "MRN" not in repr(history)


def test_history_is_refused_where_the_record_is(service: ProcedureLog,
                                                mixed: list[int]) -> None:
    with pytest.raises(PermissionDenied):
        record_history(service, mixed[0], Actor("tech1", Role.TECHNOLOGIST))  # tech2's


def test_bulk_loaded_records_show_their_load_event(service: ProcedureLog) -> None:
    from audit.demo import generate

    summary = generate(service.engine, procedures=30, seed=3)
    history = record_history(service, summary["first_record_id"] + 5, cli_actor())
    assert [(h.action, h.actor) for h in history] == [("bulk_create", "demo")]


def test_may_change_mirrors_the_service(service: ProcedureLog, mixed: list[int]) -> None:
    own, other, voided = mixed[1], mixed[0], mixed[3]
    tech = Actor("tech1", Role.TECHNOLOGIST)
    assert may_change(tech, service.get(own, cli_actor()))
    assert not may_change(tech, service.get(other, cli_actor()))
    assert not may_change(cli_actor(), service.get(voided, cli_actor()))
    assert not may_change(Actor("rso1", Role.RSO), service.get(own, cli_actor()))
    with pytest.raises(PermissionDenied):
        service.amend(other, {"saved_images": 5}, tech, version=1, reason="x")
