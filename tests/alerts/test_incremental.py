"""Incremental alert refresh: after creates, amends, voids, threshold and setting changes and
investigation levels that move, the stored alerts equal a recomputation from every record
(audit.alerts.detection.compute_alerts), a full pass finds nothing left to change, only the
changed records are evaluated, acknowledgements survive, and two refreshes racing on two
PostgreSQL connections store each alert once. On both databases, from the analysis frame; and
on PostgreSQL from SQL (FLUORO_AUDIT_FIGURES=sql: audit.alerts.from_sql), with every way of
reading the frame made to fail during the refresh, after which a full refresh from the frame
finds nothing to change (the same keys, values, evidence, context and statuses)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from audit.alerts.detection import compute_alerts
from audit.alerts.refresh import levels_in_force
from audit.alerts.store import acknowledge, list_alerts, refresh_alerts
from audit.analytics import snapshot
from audit.analytics.snapshot import load_snapshot
from audit.analytics.sql.source import SqlSource
from audit.auth import Actor, cli_actor
from audit.demo import generate
from audit.log.service import ProcedureLog
from audit.reference_data import list_rooms, update_room
from audit.settings import update_setting
from audit.storage.engine import make_engine, read_session
from audit.storage.models import Alert, AuditEvent, Patient, Procedure
from tests.alerts.test_alerts import RSO, tfesi
from tests.conftest import Databases, race

PLACES = ("site_id", "room_id", "physician_id", "procedure_type_id")
#: (database, where the refresh reads every record from): SQL is PostgreSQL's only.
PATHS = [("sqlite", "frame"), ("postgresql", "frame"), ("postgresql", "sql")]


@contextmanager
def frame_refused() -> Iterator[None]:
    """Every way to the analysis frame fails while inside."""
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the analysis frame was read by a refresh from SQL")

    with pytest.MonkeyPatch.context() as patch:
        for name in ("_read_records", "read_snapshot", "load_snapshot"):
            patch.setattr(snapshot, name, refuse)
        patch.setattr(snapshot.FrameCache, "get", refuse)
        yield


def refresh(engine: Engine, path: str, *, full: bool = False) -> Any:
    """refresh_alerts from the frame, or from SQL with the frame refused."""
    if path == "frame":
        return refresh_alerts(engine, load_snapshot(engine), full=full)
    with frame_refused():
        return refresh_alerts(engine, SqlSource(engine), full=full)


def _epoch(value: datetime | None) -> int | None:
    return None if value is None else int(value.astimezone(UTC).timestamp())


def stored(engine: Engine) -> set[tuple]:
    """The alerts in force (open or acknowledged), by content."""
    with read_session(engine) as session:
        rows = session.execute(select(Alert).where(Alert.status != "withdrawn")).scalars().all()
        return {(a.key, a.kind, a.quantity, a.patient_id, a.procedure_id,
                 _epoch(a.performed_at), round(a.value, 6), a.threshold, a.threshold_source,
                 _epoch(a.window_start), _epoch(a.window_end), tuple(sorted(a.record_ids)),
                 *(getattr(a, c) for c in PLACES)) for a in rows}


def computed(engine: Engine) -> set[tuple]:
    """Every alert recomputed from all final records under the investigation levels in force,
    in the same shape."""
    in_force = levels_in_force(engine)
    alerts = compute_alerts(load_snapshot(engine), None if in_force is None else in_force.table)

    def when(value: Any) -> int | None:
        return None if value != value else int(value)  # nan: no window

    return {(a.key, a.kind, a.quantity, int(a.patient_id), int(a.procedure_id), int(a.t),
             round(float(a.value), 6), float(a.threshold), a.threshold_source,
             when(a.window_start), when(a.window_end), tuple(sorted(int(i) for i in a.record_ids)),
             *(int(getattr(a, c)) for c in PLACES)) for a in alerts.itertuples()}


def last_scope(engine: Engine) -> Any:
    with read_session(engine) as session:
        return session.execute(select(AuditEvent.after).where(AuditEvent.entity == "alert")
                               .order_by(AuditEvent.id.desc()).limit(1)).scalar()["scope"]


def refresh_and_compare(engine: Engine, path: str = "frame") -> Any:
    """Refresh incrementally, check the stored alerts against a recomputation; the scope.
    From SQL, also a full refresh from the frame finds nothing to change."""
    refresh(engine, path)
    assert stored(engine) == computed(engine)
    scope = last_scope(engine)
    if path == "sql":
        result = refresh_alerts(engine, load_snapshot(engine), full=True)
        assert not result.changed, result
    return scope


def record_id(engine: Engine, accession: str) -> int:
    with read_session(engine) as session:
        return session.scalar(select(Procedure.id).where(Procedure.accession_number == accession))


def a_demo_patient(engine: Engine) -> str:
    with read_session(engine) as session:
        return session.scalar(select(Patient.mrn)
                              .join(Procedure, Procedure.patient_id == Patient.id)
                              .order_by(Procedure.id).limit(1))


@pytest.mark.parametrize("backend,path", PATHS)
def test_incremental_refresh_equals_a_full_recompute(engine: Engine, admin: Actor,
                                                     path: str) -> None:
    update_setting(engine, admin, "investigation_min_records", 20)
    generate(engine, procedures=1500, seed=11, until=date(2026, 6, 30))
    assert refresh_and_compare(engine, path) == "all records"  # the first refresh: everything
    assert sum(1 for a in stored(engine) if a[1] == "investigation") > 0

    # creates: an SRDL case, a new patient's cumulative episode, and a demo patient's record
    log = ProcedureLog(engine)
    demo_patient = a_demo_patient(engine)
    for record in (tfesi("N1", "PAT-N", "06-01", 600.0, fluoro_time_s=3700),
                   tfesi("N2", "PAT-M", "06-02", 150.0), tfesi("N3", "PAT-M", "06-20", 90.0),
                   tfesi("N4", demo_patient, "06-21", 240.0)):
        log.log(record, cli_actor(), confirm_warnings=True, create_missing=True)
    scope = refresh_and_compare(engine, path)
    assert scope != "all records" and scope["records"] == 4  # only the new records

    # acknowledge the SRDL alerts of N1 and one of N4's, then amend, void, move to a patient
    alerts = list_alerts(engine, RSO, status="open")
    n1, n4 = record_id(engine, "N1"), record_id(engine, "N4")
    srdl_n1 = alerts[(alerts["procedure_id"] == n1) & (alerts["kind"] == "srdl")]
    kept = alerts[(alerts["procedure_id"] == n4) & (alerts["kind"] != "cumulative")]
    acknowledge(engine, RSO, [int(i) for i in srdl_n1["alert_id"]], "patient informed")
    acknowledge(engine, RSO, [int(kept["alert_id"].iloc[0])], "reviewed")
    log.amend(n1, {"dap_value": 700.0}, cli_actor(), version=1, reason="read again",
              confirm_warnings=True)
    log.amend(record_id(engine, "N2"), {"patient_id": "PAT-Q"}, cli_actor(), version=1,
              reason="wrong patient", confirm_warnings=True, create_missing=True)
    log.void(record_id(engine, "N3"), cli_actor(), version=1, reason="duplicate")
    scope = refresh_and_compare(engine, path)
    assert scope != "all records"
    after = list_alerts(engine, RSO).set_index("alert_id")
    kap_n1 = srdl_n1[srdl_n1["quantity"] == "dap_gycm2"]["alert_id"].iloc[0]
    time_n1 = srdl_n1[srdl_n1["quantity"] == "fluoro_time_s"]["alert_id"].iloc[0]
    assert after.loc[kap_n1, "status"] == "open"  # its evidence changed: reopened
    assert after.loc[kap_n1, "value"] == pytest.approx(700.0)
    assert after.loc[time_n1, "status"] == "acknowledged"  # unchanged: stays acknowledged
    assert after.loc[int(kept["alert_id"].iloc[0]), "status"] == "acknowledged"
    assert after.loc[int(kept["alert_id"].iloc[0]), "note"] == "reviewed"
    assert "PAT-M" not in set(after[after["status"] != "withdrawn"]["patient"])

    # a threshold setting: everything re-evaluated; investigation settings: the moved levels
    update_setting(engine, admin, "srdl_kap_gycm2", 300)
    assert refresh_and_compare(engine, path) == "all records"
    update_setting(engine, admin, "investigation_percentile", 95)
    scope = refresh_and_compare(engine, path)
    assert scope != "all records" and scope["level_types"] > 0
    update_setting(engine, admin, "srdl_kap_gycm2", 500)
    refresh_and_compare(engine, path)

    # a room's KAP correction factor scales every KAP: everything re-evaluated
    room = next(r for r in list_rooms(engine) if r["name"] == "OR 1")
    update_room(engine, admin, room["room_id"], kap_correction_factor=0.5)
    assert refresh_and_compare(engine, path) == "all records"

    # a full pass over every record finds nothing left to change
    result = refresh(engine, path, full=True)
    assert not result.changed, result


@pytest.mark.parametrize("backend,path", PATHS)
def test_acknowledgement_survives_refreshes_after_unrelated_records(engine: Engine,
                                                                   path: str) -> None:
    log = ProcedureLog(engine)
    log.log(tfesi("S1", "PAT-S", "03-01", 600.0), cli_actor(), confirm_warnings=True,
            create_missing=True)
    refresh(engine, path)
    alert = int(list_alerts(engine, RSO, kind="srdl")["alert_id"].iloc[0])
    acknowledge(engine, RSO, [alert], "skin check booked", patient_informed=True)
    for k in range(3):
        log.log(tfesi(f"U{k}", f"PAT-U{k}", f"04-0{k + 1}", 1.0), cli_actor(),
                confirm_warnings=True, create_missing=True)
        assert not refresh(engine, path).changed
    row = list_alerts(engine, RSO).set_index("alert_id").loc[alert]
    assert (row["status"], row["note"], row["patient_informed"]) == \
        ("acknowledged", "skin check booked", True)


@pytest.mark.parametrize("path", ["frame", "sql"])
def test_two_refreshes_racing_on_postgresql_store_each_alert_once(
        databases: Databases, path: str) -> None:
    # PostgreSQL only: the advisory lock is PostgreSQL's; SQLite has one writer at a time.
    db_url = databases.postgresql()
    engines = [make_engine(db_url), make_engine(db_url)]
    try:
        log = ProcedureLog(engines[0])
        for round_ in range(2):  # a first refresh, then an incremental one
            for k in range(3):
                log.log(tfesi(f"R{round_}{k}", f"PAT-R{k}", f"0{round_ + 3}-0{k + 1}", 400.0),
                        cli_actor(), confirm_warnings=True, create_missing=True)
            snaps = [load_snapshot(e) if path == "frame" else SqlSource(e) for e in engines]
            outcomes = race([lambda e=e, s=s: refresh_alerts(e, s)
                             for e, s in zip(engines, snaps, strict=True)])
            assert outcomes == [None, None]
            assert stored(engines[0]) == computed(engines[0])
            with read_session(engines[0]) as session:
                keys = session.execute(select(Alert.key, func.count()).group_by(Alert.key)
                                       .having(func.count() > 1)).all()
                refreshes = session.scalar(select(func.count()).select_from(AuditEvent)
                                           .where(AuditEvent.entity == "alert"))
            assert keys == [] and refreshes == round_ + 1  # one refresh each round did it
    finally:
        for e in engines:
            e.dispose()


@pytest.mark.parametrize("backend,path", PATHS)
def test_an_episode_whose_records_all_moved_to_another_patient_is_withdrawn(
        engine: Engine, path: str) -> None:
    """Both records of patient C's episode move to patient D: no record in scope names C any
    more, only C's stored episode does (found by the database in its list of record ids)."""
    log = ProcedureLog(engine)
    for record in (tfesi("C1", "PAT-C", "03-01", 100.0), tfesi("C2", "PAT-C", "03-01", 100.0),
                   tfesi("E1", "PAT-E", "03-05", 1.0)):
        log.log(record, cli_actor(), confirm_warnings=True, create_missing=True)
    refresh_and_compare(engine, path)
    before = list_alerts(engine, RSO, kind="cumulative")
    assert set(before["patient"]) == {"PAT-C"}
    for accession in ("C1", "C2"):
        log.amend(record_id(engine, accession), {"patient_id": "PAT-D"}, cli_actor(),
                  version=1, reason="wrong patient", confirm_warnings=True,
                  create_missing=True)
    scope = refresh_and_compare(engine, path)
    assert scope != "all records" and scope["records"] == 2
    after = list_alerts(engine, RSO, kind="cumulative").set_index("patient")
    assert after.loc["PAT-C", "status"] == "withdrawn" and after.loc["PAT-D", "status"] == "open"


@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_refresh_of_everyone_sums_patients_while_it_computes_the_levels(
        engine: Engine, admin: Actor, monkeypatch: pytest.MonkeyPatch) -> None:
    """From SQL, a refresh of everyone looks for the patients reaching a cumulative threshold
    on a connection of its own while its own computes the investigation levels: both scans are
    in flight at once (each waits, up to 10 s, until the other has begun), and the alerts
    stored are those of a recomputation."""
    from audit.alerts import from_sql

    update_setting(engine, admin, "investigation_min_records", 20)
    generate(engine, procedures=600, seed=12, until=date(2026, 6, 30))
    log = ProcedureLog(engine)
    for record in (tfesi("C1", "PAT-C", "06-02", 150.0), tfesi("C2", "PAT-C", "06-20", 90.0)):
        log.log(record, cli_actor(), confirm_warnings=True, create_missing=True)  # an episode
    begun = {"levels": threading.Event(), "reaching": threading.Event()}
    met: dict[str, tuple[str, bool]] = {}

    def meeting(name: str, other: str, real: Any) -> Any:
        def spy(*args: Any) -> Any:
            begun[name].set()
            met[name] = (threading.current_thread().name, begun[other].wait(10))
            return real(*args)
        return spy
    monkeypatch.setattr(from_sql, "type_quantiles",
                        meeting("levels", "reaching", from_sql.type_quantiles))
    monkeypatch.setattr(from_sql, "_reaching_patients",
                        meeting("reaching", "levels", from_sql._reaching_patients))
    refresh(engine, "sql")
    assert met["levels"] == (threading.main_thread().name, True)
    assert met["reaching"][0].startswith("alerts-ahead") and met["reaching"][1]
    assert stored(engine) == computed(engine)
    assert sum(1 for a in stored(engine) if a[1] == "cumulative") > 0
