"""The figures version (audit.analytics.figure_changes) moves when a figure can change (a
record logged, amended, voided or imported, a setting, a name, a reference level) and not for a
sign-in, its session (created, its cookie issued, ended), a failed one, a sign-out or an
export; on both databases. Its read is a probe of the
partial index over those actions."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from audit import sessions
from audit.alerts.store import refresh_alerts
from audit.analytics.figure_changes import _QUERY, figures_version
from audit.analytics.reference_levels import add_reference_level
from audit.analytics.snapshot import load_snapshot
from audit.auth import Actor, SignInFailed, add_user, authenticate, sign_out
from audit.export.runner import export
from audit.log.csv_import import import_csv
from audit.log.service import ProcedureLog
from audit.settings import update_setting
from audit.storage.engine import make_engine
from audit.vocab import AuditAction, Role
from tests.conftest import Databases, valid_record

PASSWORD = "correct horse battery staple 9"


def version(engine: Engine) -> int:
    with engine.connect() as conn:
        return figures_version(conn)


def wrong_password(engine: Engine) -> None:
    with pytest.raises(SignInFailed):
        authenticate(engine, "qo1", "wrong password entirely")


def test_only_what_can_change_a_figure_moves_it(engine: Engine, service: ProcedureLog,
                                               admin: Actor, tmp_path: Path) -> None:
    moves = []

    def step(what: str, work: object) -> None:
        before = version(engine)
        work()  # type: ignore[operator]
        moves.append((what, version(engine) > before))

    step("add a user", lambda: add_user(engine, admin, "qo1", Role.RSO, PASSWORD))
    record = service.log(valid_record(), admin, create_missing=True).record_id
    step("sign in", lambda: authenticate(engine, "qo1", PASSWORD))
    session_id, handoff = sessions.start(engine, "qo1")  # the dashboard's session: a create
    step("session cookie", lambda: sessions.redeem(engine, handoff))  # an amend
    step("session ends", lambda: sessions.end(engine, session_id, sessions.SIGNED_OUT))
    step("failed sign-in", lambda: wrong_password(engine))
    step("sign out", lambda: sign_out(engine, Actor("qo1", Role.RSO)))
    step("export", lambda: export(engine, Actor("qo1", Role.RSO), tmp_path / "x"))
    step("log", lambda: service.log(valid_record(accession_number="A2"), admin,
                                    confirm_warnings=True))
    step("amend", lambda: service.amend(record, {"saved_images": 3}, admin, version=1,
                                        reason="PACS count", confirm_warnings=True))
    step("void", lambda: service.void(record, admin, version=2, reason="entered twice"))
    csv = tmp_path / "legacy.csv"
    csv.write_text("Date,Site,Room,Physician,Tech,MRN,Pregnancy,Procedure,Level,Side,Guidance,"
                   "Fluoro time,DAP (Gy·cm²),Images,Contrast confirmation,Contrast,Contrast volume,"
                   "Views,Realtime contrast\n"
                   "2026-04-20T09:30:00-05:00,Riverside,OR 1,Dr. Chen,tech1,MRN9,not_pregnant,"
                   "TFESI,L4;L5,left,fluoroscopy,0:40,0.9,2,confirmed,iohexol 240,1.5,AP;LAT,yes\n",
                   encoding="utf-8")
    step("import", lambda: import_csv(service, admin, csv, create_missing=True).committed)
    step("setting", lambda: update_setting(engine, admin, "duplicate_window_minutes", 45))
    step("reference level", lambda: add_reference_level(
        engine, admin, procedure="TFESI", quantity="dap_gycm2", kind="drl", value=9.5,
        source="local committee", effective_from=date(2026, 1, 1)))
    step("alert refresh", lambda: refresh_alerts(engine, load_snapshot(engine), full=True))
    assert moves == [("add a user", True), ("sign in", False), ("session cookie", False),
                     ("session ends", False), ("failed sign-in", False),
                     ("sign out", False),
                     ("export", False), ("log", True), ("amend", True), ("void", True),
                     ("import", True), ("setting", True), ("reference level", True),
                     ("alert refresh", False)]
    with engine.connect() as conn:  # the trail did grow: the data version moved meanwhile
        actions = set(conn.scalars(text("SELECT DISTINCT action FROM audit_event")))
    assert {AuditAction.LOGIN.value, AuditAction.LOGIN_FAILED.value, AuditAction.LOGOUT.value,
            AuditAction.EXPORT.value} <= actions
    with engine.connect() as conn:  # the refresh did write its event (a bulk_create)
        assert conn.scalar(text("SELECT count(*) FROM audit_event WHERE entity = 'alert'"))
        # and the session's create and amend are in the trail, of actions that count for a
        # record: left out by their entity
        assert conn.scalar(text("SELECT count(*) FROM audit_event WHERE entity = "
                                "'user_session' AND action IN ('create', 'amend')")) == 2


def test_the_version_is_one_probe_of_the_partial_index(databases: Databases) -> None:
    engine = make_engine(databases.postgresql())
    try:
        with engine.connect() as conn:
            sql = str(_QUERY.compile(engine, compile_kwargs={"literal_binds": True}))
            conn.execute(text("SET enable_seqscan = off"))
            plan = "\n".join(conn.scalars(text(f"EXPLAIN {sql}")))
        assert "ix_audit_event_figures" in plan, plan
    finally:
        engine.dispose()
