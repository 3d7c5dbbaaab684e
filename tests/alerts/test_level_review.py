"""Investigation levels in force (audit.alerts.level_review): set at a review, kept in the
refresh's audit event, not moved by a few new records; reviewed when a tenth of a type's records
changed, when a type reaches the minimum, when a threshold changes, or by the RSO (dashboard
and command line, permission checked); the stored alerts always equal a recomputation under the
levels in force; the levels are covered by the trail's hash chain. From the frame on both
databases and from SQL on PostgreSQL."""

from __future__ import annotations

import json
from datetime import date

import pandas as pd
import pytest
from sqlalchemy import Engine, select, update

from audit.alerts import levels_in_force, review_levels
from audit.alerts.detection import investigation_levels
from audit.alerts.refresh import FIRST_REVIEW
from audit.analytics.snapshot import load_snapshot
from audit.auth import Actor, Role, add_user, cli_actor
from audit.cli import main
from audit.demo import generate
from audit.errors import PermissionDenied
from audit.log.service import ProcedureLog
from audit.settings import update_setting
from audit.storage.engine import read_session
from audit.storage.models import AuditEvent
from audit.trail import verify_chain
from tests.alerts.test_alerts import RSO, tfesi
from tests.alerts.test_incremental import PATHS, computed, refresh, stored
from tests.test_trail_tamper import guard_off

TECH = Actor("tech1", Role.TECHNOLOGIST)
LEVEL_KEYS = ["type_id", "quantity", "level", "source"]


def last_refresh(engine: Engine) -> tuple[int, str, dict]:
    with read_session(engine) as session:
        row = session.execute(select(AuditEvent.id, AuditEvent.actor, AuditEvent.after)
                              .where(AuditEvent.entity == "alert")
                              .order_by(AuditEvent.id.desc()).limit(1)).one()
    return row.id, row.actor, row.after


def log(engine: Engine, records: list[dict]) -> None:
    service = ProcedureLog(engine)
    for record in records:
        service.log(record, cli_actor(), confirm_warnings=True, create_missing=True)


def type_of(in_force: object, code: str) -> int:
    table = in_force.table  # type: ignore[attr-defined]
    return int(table.loc[table["procedure"] == code, "type_id"].iloc[0])


@pytest.mark.parametrize("backend,path", PATHS)
def test_a_few_new_records_apply_the_levels_in_force(engine: Engine, admin: Actor,
                                                      path: str) -> None:
    update_setting(engine, admin, "investigation_min_records", 20)
    generate(engine, procedures=1500, seed=11, until=date(2026, 6, 30))
    refresh(engine, path)
    first = levels_in_force(engine)
    assert first is not None and first.reason == FIRST_REVIEW
    assert first.table["level"].notna().any()
    # the levels set equal the ones computed from every record at that moment
    pd.testing.assert_frame_equal(first.table, investigation_levels(load_snapshot(engine)))

    # three TFESIs far above every level: they would move the type's percentile
    log(engine, [tfesi(f"X{k}", f"PAT-X{k}", f"06-0{k + 1}", 900.0 + k) for k in range(3)])
    refresh(engine, path)
    now = levels_in_force(engine)
    assert now is not None and now.event_id == first.event_id  # no review
    pd.testing.assert_frame_equal(now.table, first.table)
    tfesi_type = type_of(first, "TFESI")
    assert now.changed == {tfesi_type: 3}
    _, _, after = last_refresh(engine)
    assert after["review_event"] == first.event_id and "review" not in after
    assert after["scope"]["records"] == 3 and after["scope"]["level_types"] == 0
    # recomputed from every record the level would have moved: the rule is what holds it
    fresh = investigation_levels(load_snapshot(engine)).set_index(["type_id", "quantity"])
    kept = first.table.set_index(["type_id", "quantity"])
    assert fresh.loc[(tfesi_type, "dap_gycm2"), "level"] != \
        kept.loc[(tfesi_type, "dap_gycm2"), "level"]
    # the new records are judged against the levels in force, and nothing else differs
    assert stored(engine) == computed(engine)
    investigation = {a[4] for a in stored(engine) if a[1] == "investigation"
                     and a[2] == "dap_gycm2"}
    assert len(investigation & {a[4] for a in stored(engine) if a[6] >= 900}) == 3

    # a threshold (the investigation percentile) changes: reviewed at once
    update_setting(engine, admin, "investigation_percentile", 95)
    refresh(engine, path)
    reviewed = levels_in_force(engine)
    assert reviewed is not None and reviewed.event_id != first.event_id
    assert reviewed.reason == "threshold changed: investigation_percentile"
    assert reviewed.changed == {}
    pd.testing.assert_frame_equal(reviewed.table, investigation_levels(load_snapshot(engine)))
    assert stored(engine) == computed(engine)


@pytest.mark.parametrize("backend,path", PATHS)
def test_a_tenth_of_a_type_changed_reviews_its_levels(engine: Engine, admin: Actor,
                                                      path: str) -> None:
    update_setting(engine, admin, "investigation_min_records", 20)
    log(engine, [tfesi(f"T{k}", f"PAT-T{k % 7}", f"03-{k % 28 + 1:02d}", 10.0 + k)
                 for k in range(40)])
    refresh(engine, path)
    first = levels_in_force(engine)
    assert first is not None
    tfesi_type = type_of(first, "TFESI")
    assert int(first.table.loc[first.table["type_id"] == tfesi_type, "records"].max()) == 40
    log(engine, [tfesi(f"U{k}", f"PAT-U{k}", f"04-{k + 1:02d}", 50.0) for k in range(3)])
    refresh(engine, path)
    assert levels_in_force(engine).event_id == first.event_id  # 3 of 40: under a tenth
    log(engine, [tfesi("U3", "PAT-U3", "04-10", 52.0)])
    refresh(engine, path)
    reviewed = levels_in_force(engine)
    assert reviewed is not None and reviewed.event_id != first.event_id
    assert reviewed.reason == ("TFESI: 4 records changed since the levels were set from 40 "
                               "(a review at 10%)")
    assert int(reviewed.table.loc[reviewed.table["type_id"] == tfesi_type,
                                  "records"].max()) == 44
    pd.testing.assert_frame_equal(reviewed.table, investigation_levels(load_snapshot(engine)))
    assert stored(engine) == computed(engine)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_type_reaching_the_minimum_gets_its_level(engine: Engine, admin: Actor) -> None:
    update_setting(engine, admin, "investigation_min_records", 5)
    log(engine, [tfesi(f"M{k}", f"PAT-M{k}", f"02-0{k + 1}", 10.0 * (k + 1)) for k in range(4)])
    refresh(engine, "frame")
    first = levels_in_force(engine)
    assert first is not None and first.table["level"].isna().all()  # 4 of 5 needed
    log(engine, [tfesi("M4", "PAT-M4", "02-09", 45.0)])
    refresh(engine, "frame")
    reviewed = levels_in_force(engine)
    assert reviewed is not None and reviewed.event_id != first.event_id
    assert reviewed.reason == ("TFESI: 4 records when the levels were set, 1 changed since: "
                               "5 are needed for a level")
    assert reviewed.table["level"].notna().all()
    assert stored(engine) == computed(engine)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_rso_reviews_by_hand_and_a_technologist_cannot(engine: Engine, admin: Actor) -> None:
    update_setting(engine, admin, "investigation_min_records", 20)
    generate(engine, procedures=600, seed=5, until=date(2026, 6, 30))
    refresh(engine, "frame")
    first = levels_in_force(engine)
    log(engine, [tfesi("H1", "PAT-H1", "06-10", 800.0)])
    with pytest.raises(PermissionDenied):
        review_levels(engine, TECH, load_snapshot(engine))
    assert levels_in_force(engine).event_id == first.event_id  # nothing done
    review_levels(engine, RSO, load_snapshot(engine))
    reviewed = levels_in_force(engine)
    assert reviewed.event_id != first.event_id and reviewed.reason == "requested by rso1"
    event_id, actor, _ = last_refresh(engine)
    assert (event_id, actor) == (reviewed.event_id, "rso1")
    pd.testing.assert_frame_equal(reviewed.table, investigation_levels(load_snapshot(engine)))
    assert stored(engine) == computed(engine)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_command_line_shows_and_reviews_the_levels(
        db_url: str, engine: Engine, admin: Actor, capsys: pytest.CaptureFixture[str]) -> None:
    update_setting(engine, admin, "investigation_min_records", 20)
    generate(engine, procedures=400, seed=8, until=date(2026, 6, 30))
    assert main(["--db", db_url, "alerts", "levels"]) == 0
    assert "no investigation levels in force yet" in capsys.readouterr().out
    refresh(engine, "frame")
    assert main(["--db", db_url, "alerts", "levels", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    in_force = levels_in_force(engine)
    assert shown["event_id"] == in_force.event_id and len(shown["levels"]) == len(in_force.table)
    log(engine, [tfesi("L1", "PAT-L1", "06-10", 5.0)])
    refresh(engine, "frame")
    assert main(["--db", db_url, "alerts", "levels"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("in force since ") and "records changed since: TFESI 1" in out
    in_force = levels_in_force(engine)
    # a technologist's account cannot review: refused, named, nothing recorded
    add_user(engine, admin, "tech9", Role.TECHNOLOGIST, "a-long-enough-passphrase-9")
    code = main(["--db", db_url, "alerts", "review-levels", "--as", "tech9"])
    assert code != 0 and "tech9 (technologist) may not manage alerts" in capsys.readouterr().err
    assert levels_in_force(engine).event_id == in_force.event_id
    assert main(["--db", db_url, "alerts", "review-levels"]) == 0
    out = capsys.readouterr().out
    assert "investigation levels reviewed" in out and "requested by" in out
    assert levels_in_force(engine).event_id != in_force.event_id


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_levels_edited_behind_the_app_break_the_trail(engine: Engine, admin: Actor,
                                                      backend: str) -> None:
    update_setting(engine, admin, "investigation_min_records", 20)
    generate(engine, procedures=400, seed=9, until=date(2026, 6, 30))
    refresh(engine, "frame")
    in_force = levels_in_force(engine)
    with read_session(engine) as session:
        assert verify_chain(session).ok
    with read_session(engine) as session:
        after = session.scalar(select(AuditEvent.after).where(AuditEvent.id == in_force.event_id))
    for row in after["review"]["table"]:
        if row["level"] is not None:
            row["level"] = row["level"] * 10  # fewer investigation alerts
    with guard_off(engine, backend) as conn:  # the append-only triggers, as an owner would
        conn.execute(update(AuditEvent).where(AuditEvent.id == in_force.event_id)
                     .values(after=after))
    assert levels_in_force(engine).table["level"].max() > in_force.table["level"].max()
    with read_session(engine) as session:
        report = verify_chain(session)
    assert not report.ok and report.broken_at == in_force.event_id


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_after_the_upgrade_the_first_refresh_sets_the_levels(engine: Engine,
                                                             admin: Actor) -> None:
    from audit.storage.engine import write_session
    from audit.trail import record_event
    from audit.vocab import AuditAction

    update_setting(engine, admin, "investigation_min_records", 20)
    generate(engine, procedures=400, seed=3, until=date(2026, 6, 30))
    refresh(engine, "frame")
    before = stored(engine)
    _, _, after = last_refresh(engine)
    with write_session(engine) as session:  # what the release before kept: no levels
        record_event(session, actor="system", action=AuditAction.BULK_CREATE, entity="alert",
                     after={k: v for k, v in after.items()
                            if k not in ("review", "review_event", "changed_since_review")})
    assert levels_in_force(engine) is None
    assert not refresh(engine, "frame").changed  # nothing else to do, but the levels are set
    in_force = levels_in_force(engine)
    assert in_force is not None and in_force.reason == FIRST_REVIEW
    pd.testing.assert_frame_equal(in_force.table, investigation_levels(load_snapshot(engine)))
    assert stored(engine) == before == computed(engine)
