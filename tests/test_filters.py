"""audit.filters: one Filters gives the same records through SQL (where, the Records list's
index-aware plan) and through the mask over the analysis frame, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import Engine, select

from audit.analytics.snapshot import load_snapshot
from audit.auth import cli_actor
from audit.errors import ValidationFailed
from audit.filters import Filters, check_names, parse_period
from audit.log.service import ProcedureLog
from audit.storage.engine import read_session
from audit.storage.models import Procedure
from tests.conftest import valid_record


@pytest.fixture
def mixed(service: ProcedureLog) -> list[int]:
    """16 records over two sites that both have an "OR 1", two physicians, technologists and
    procedure types, eight days; three voided."""
    first = datetime(2026, 1, 5, 23, 30, tzinfo=timezone(timedelta(hours=-5)))  # 04:30Z
    records = []
    for i in range(16):
        extra: dict[str, Any] = {}
        if i % 3 == 0:
            extra = {"procedure_code": "CAUDAL", "levels": None, "laterality": None,
                     "realtime_contrast": False}
        records.append(valid_record(
            performed_at=(first + timedelta(days=i // 2, hours=i % 2)).isoformat(),
            site="Hillside" if i % 4 == 3 else "Riverside",
            room="OR 1" if i % 2 else "OR 2", physician="Dr. Chen" if i < 8 else "Dr. Weiss",
            technologist="tech1" if i % 4 else "tech2", patient_id=f"MRN{i % 5}", **extra))
    ids = [r.record_id for r in service.log_many(records, cli_actor(), create_missing=True)]
    for rid in (ids[3], ids[4], ids[11]):
        service.void(rid, cli_actor(), version=1, reason="duplicate")
    return ids


CASES = [
    Filters(),
    Filters.days(date(2026, 1, 7), date(2026, 1, 9)),
    Filters.days(last=date(2026, 1, 6)),
    Filters(start=datetime(2026, 1, 7, 5, tzinfo=UTC)),
    Filters(rooms=("OR 1",)),
    Filters(rooms=("Hillside · OR 1",)),
    Filters(rooms=("Riverside · OR 1", "OR 2")),
    Filters(sites=("Hillside",), rooms=("OR 1",)),
    Filters(physicians=("Dr. Weiss",), procedures=("CAUDAL",)),
    Filters(technologists=("tech2",)),
    Filters.days(date(2026, 1, 6), date(2026, 1, 10), physicians=("Dr. Chen", "Dr. Weiss"),
                 procedures=("TFESI",)),
    Filters(status="final", rooms=("OR 2",)),
    Filters(status="void"),
    Filters(include_voided=True),
    Filters(include_voided=True, technologists=("tech1",), rooms=("OR 1",)),
]


def _sql(engine: Engine, f: Filters) -> list[int]:
    with read_session(engine) as s:
        return sorted(s.scalars(select(Procedure.id).where(*f.where())))


def _listed(service: ProcedureLog, f: Filters) -> list[int]:
    rows, total = service.list(cli_actor(), f, limit=100)
    assert total == len(rows)
    return sorted(r["record_id"] for r in rows)


def _final(engine: Engine) -> set[int]:
    with read_session(engine) as s:
        return set(s.scalars(select(Procedure.id).where(Procedure.status == "final")))


@pytest.mark.parametrize("f", CASES, ids=lambda f: f.describe() + (
    f"; status {f.status}" if f.status else "") + ("; voided" if f.include_voided else ""))
def test_sql_the_records_list_and_the_mask_give_the_same_records(
    service: ProcedureLog, mixed: list[int], f: Filters
) -> None:
    engine = service.engine
    in_sql = _sql(engine, f)
    assert _listed(service, f) == in_sql
    snap = load_snapshot(engine)
    masked = sorted(int(i) for i in snap.records["id"][f.mask(snap)])
    assert masked == sorted(set(in_sql) & _final(engine))  # the frame holds final records


def test_the_cases_select_different_records(service: ProcedureLog, mixed: list[int]) -> None:
    found = {tuple(_sql(service.engine, f)) for f in CASES}
    assert len(found) >= 10
    assert _sql(service.engine, Filters(rooms=("Hillside · OR 1",))) == [
        mixed[3 + 4 * k] for k in range(4) if 3 + 4 * k not in (3, 11)]


def test_voided_records_come_only_when_asked(service: ProcedureLog, mixed: list[int]) -> None:
    engine = service.engine
    voided = sorted([mixed[3], mixed[4], mixed[11]])
    assert _sql(engine, Filters(status="void")) == voided
    assert _sql(engine, Filters(include_voided=True)) == sorted(mixed)
    assert _sql(engine, Filters()) == sorted(set(mixed) - set(voided))
    snap = load_snapshot(engine)
    assert not Filters(status="void").mask(snap).any()


def test_record_ids_and_patient_select_in_sql(service: ProcedureLog, mixed: list[int]) -> None:
    engine = service.engine
    chosen = Filters(record_ids=[mixed[0], mixed[3], mixed[5]])
    assert chosen.record_ids == (mixed[0], mixed[3], mixed[5])
    assert _sql(engine, chosen) == [mixed[0], mixed[5]]
    assert _listed(service, replace(chosen, include_voided=True)) == sorted(
        [mixed[0], mixed[3], mixed[5]])
    snap = load_snapshot(engine)
    assert sorted(snap.records["id"][chosen.mask(snap)]) == [mixed[0], mixed[5]]
    assert _sql(engine, Filters(record_ids=[])) == []
    patient = Filters(patient_id="MRN1", include_voided=True)
    assert _sql(engine, patient) == _listed(service, patient) == [mixed[1], mixed[6],
                                                                  mixed[11]]
    with pytest.raises(ValueError, match="medical record numbers"):
        patient.mask(snap)


def test_unknown_names(service: ProcedureLog, mixed: list[int]) -> None:
    engine = service.engine
    nowhere = Filters(rooms=("Nowhere",), physicians=("Dr. Nobody",))
    assert _sql(engine, nowhere) == [] and _listed(service, nowhere) == []
    with pytest.raises(ValidationFailed) as mask_error:
        nowhere.mask(load_snapshot(engine))
    messages = {e.field: e.message for e in mask_error.value.errors}
    assert messages["room"] == ("no room named 'Nowhere'; known: Hillside · OR 1, OR 2, "
                                "Riverside · OR 1")
    assert messages["physician"].startswith("no physician named 'Dr. Nobody'; known: ")
    with engine.connect() as connection, pytest.raises(ValidationFailed) as check_error:
        check_names(connection, replace(nowhere, sites=("Elsewhere",)))
    assert [e.field for e in check_error.value.errors] == ["site", "room", "physician"]
    assert check_error.value.errors[0].message == ("no site named 'Elsewhere'; known: "
                                                   "'Hillside', 'Riverside'")
    with engine.connect() as connection:
        checked = check_names(connection, Filters(rooms=("Hillside · OR 1",),
                                                  procedures=(" caudal",)))
    assert checked.procedures == ("CAUDAL",)


def test_a_period_ending_before_it_starts_is_an_error_naming_to(
    service: ProcedureLog, mixed: list[int]
) -> None:
    with pytest.raises(ValidationFailed) as info:
        Filters.days(date(2026, 1, 9), date(2026, 1, 7)).mask(load_snapshot(service.engine))
    assert [(e.field, e.message) for e in info.value.errors] == [
        ("to", "2026-01-07 is before the start 2026-01-09")]


# --- without a database ----------------------------------------------------------------------

def test_days_are_whole_utc_days() -> None:
    f = Filters.days(date(2026, 3, 1), date(2026, 3, 31), rooms=["OR 1"])
    assert (f.start, f.before) == parse_period("2026-03-01", "2026-03-31")
    assert (f.first_day, f.last_day) == (date(2026, 3, 1), date(2026, 3, 31))
    assert f.rooms == ("OR 1",)
    assert f.bounds() == (int(datetime(2026, 3, 1, tzinfo=UTC).timestamp()),
                          int(datetime(2026, 4, 1, tzinfo=UTC).timestamp()))
    assert f.period == Filters.days(date(2026, 3, 1), date(2026, 3, 31))
    assert f.describe() == "2026-03-01 to 2026-03-31; room: OR 1"
    assert Filters().describe() == "start to latest"
    assert Filters(before=datetime(2026, 3, 1, 12, tzinfo=UTC)).last_day == date(2026, 3, 1)


def test_names_are_tuples_and_instants_carry_an_offset() -> None:
    with pytest.raises(TypeError, match="tuple of names"):
        Filters(rooms="OR 1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timezone-aware"):
        Filters(start=datetime(2026, 3, 1))
    assert hash(Filters(record_ids=[3, 1])) == hash(Filters(record_ids=(3, 1)))


def test_the_manifest_record_keeps_its_keys_and_single_names() -> None:
    f = Filters(*parse_period("2026-03-15", "2026-03-17"), sites=("A",), procedures=("MBB",))
    assert json.dumps(f.as_dict()) == (
        '{"from": "2026-03-15T00:00:00Z", "before": "2026-03-18T00:00:00Z", "site": "A", '
        '"room": null, "physician": null, "procedure_code": "MBB", "include_voided": false}')
    assert list(Filters().as_dict()) == ["from", "before", "site", "room", "physician",
                                         "procedure_code", "include_voided"]
    assert Filters(rooms=("R1", "R2"), status="final").as_dict()["room"] == ["R1", "R2"]
    assert Filters(status="final").as_dict()["status"] == "final"
