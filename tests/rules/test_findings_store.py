"""The rule report from the stored findings (audit.rules.findings_store, stored_report) equals
the batched report (audit.rules.report, which checks the records) table for table, frame for
frame: on the hand-checked fixture and a demo set, for periods, a physician, a room, a
procedure, every exception or the newest of each rule; and after an amend, a new record of an
existing patient (a later record's finding changes), a follow-up, a void, a record moved to
another patient and a pack switched off, the table being kept current incrementally (a
tampered row of another patient stays) until `db rebuild-facts` repairs it. PostgreSQL only
(the stored findings' database)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, date, datetime

import pandas as pd
import pytest
from sqlalchemy import Engine, func, select, text, update

from audit.analytics.derived import RefreshBusy
from audit.auth import cli_actor
from audit.cli import main
from audit.demo.loading import generate
from audit.errors import NeedsPostgreSQL
from audit.filters import Filters
from audit.log.service import ProcedureLog
from audit.rules import findings_store
from audit.rules.finding_counts import answerable, recount
from audit.rules.findings_store import FindingsNotReady, findings_ready, refresh_findings
from audit.rules.follow_up import record_follow_up
from audit.rules.report import rule_report
from audit.rules.store import set_enabled
from audit.storage.engine import make_engine, read_session
from audit.storage.models import Procedure, RuleFinding, RuleFindingState
from tests.conftest import Databases
from tests.rules.helpers import logged, packs_on, session
from tests.rules.test_report_rules import fixture_history

TABLES = ("rules", "by_physician", "by_month", "exceptions")
YEAR = Filters.days(date(2025, 7, 1), date(2026, 6, 30))
#: Periods, a physician, a room, a procedure, and a name that matches nothing.
DEMO_FILTERS = [
    Filters(),
    YEAR,
    Filters.days(date(2026, 3, 1), date(2026, 3, 31)),
    Filters.days(date(2026, 1, 1), date(2026, 6, 30), physicians=("Dr. Demo Chen",)),
    Filters(procedures=("TFESI",)),
    Filters(rooms=("Demo OR 2",), sites=("Demo Riverside Spine Center",)),
    Filters(physicians=("Nobody",)),
    # not held by the day and month counts: every finding grouped
    Filters(start=datetime(2026, 2, 3, 12, 30, tzinfo=UTC), procedures=("TFESI", "ILESI")),
    Filters.days(date(2026, 1, 1), date(2026, 6, 30), technologists=("demo-tech1",)),
]


@pytest.fixture
def pg(databases: Databases) -> Iterator[Engine]:
    engine = make_engine(databases.postgresql())
    yield engine
    engine.dispose()


def same_tables(engine: Engine, filters: Filters,
                limit: int | None = None) -> dict[str, pd.DataFrame]:
    """The stored report equals the batched one, every table, types and order included."""
    checked = rule_report(engine, cli_actor(), filters, exceptions_per_rule=limit,
                          stored=False)
    read = rule_report(engine, cli_actor(), filters, exceptions_per_rule=limit, stored=True)
    for name in TABLES:
        pd.testing.assert_frame_equal(read[name], checked[name], check_dtype=True,
                                      obj=f"{name} under {filters.describe()}")
    return read


def stored_rows(engine: Engine) -> int:
    with read_session(engine) as s:
        return int(s.scalar(select(func.count()).select_from(RuleFinding)) or 0)


def test_the_hand_checked_fixture_reads_the_same_tables(pg: Engine) -> None:
    packs_on(pg)
    fixture_history(pg, ProcedureLog(pg))
    shown = same_tables(pg, Filters.days(date(2026, 1, 1), date(2026, 12, 31)))
    assert len(shown["exceptions"]) == 7  # tests/rules/test_report_rules.py's hand count
    same_tables(pg, Filters())
    same_tables(pg, Filters(patient_id="MRN0200"))
    same_tables(pg, Filters(physicians=("Nobody",)))
    same_tables(pg, Filters(status="void"))
    same_tables(pg, Filters(record_ids=(1, 2)))


def test_demo_data_reads_the_same_tables_under_every_filter(pg: Engine) -> None:
    generate(pg, procedures=1500, seed=7, until=date(2026, 6, 30))
    packs_on(pg)
    for filters in DEMO_FILTERS:
        shown = same_tables(pg, filters)
        same_tables(pg, filters, limit=5)
        assert len(shown["rules"]) or filters.physicians == ("Nobody",)
    assert {answerable(f) for f in DEMO_FILTERS} == {True, False}  # both ways are compared
    assert same_tables(pg, YEAR)["rules"]["exceptions"].sum() > 100


def test_every_kind_of_change_keeps_the_stored_findings_equal(pg: Engine) -> None:
    generate(pg, procedures=600, seed=3, until=date(2026, 6, 30))
    packs_on(pg)
    log = ProcedureLog(pg)
    same_tables(pg, Filters())
    # a row of another patient changed behind the app's back: the refreshes below follow the
    # events only (the row stays wrong), `db rebuild-facts` repairs it
    with pg.begin() as conn:
        other = conn.execute(select(RuleFinding.record_id, RuleFinding.rule)
                             .where(RuleFinding.exception.is_(False))
                             .order_by(RuleFinding.record_id).limit(1)).one()
        conn.execute(update(RuleFinding).where(RuleFinding.record_id == other[0],
                                               RuleFinding.rule == other[1])
                     .values(exception=True, message="tampered"))
        recount(conn, None)  # and the day and month counts with it
    first, *_ = logged(log, [session("2026-02-10", mrn="MRN9100"),
                             session("2026-04-10", mrn="MRN9100")])
    later = first + 1
    before = _finding(pg, later, "esi_repeat_relief")
    assert before == (True,)  # a repeat without relief: an exception
    record_follow_up(pg, cli_actor(), first, "2026-03-30", 80, 45)  # relief > 50% / 45 days
    assert _finding(pg, later, "esi_repeat_relief") == (True,)  # 45 days: still short
    record_follow_up(pg, cli_actor(), first, "2026-06-10", 70, 110)
    assert _finding(pg, later, "esi_repeat_relief") == (False,)  # the follow-up counts
    # a record between the two of the same patient: the later one's previous session now
    # has no relief; the first moved earlier; then the middle one voided
    middle, = logged(log, [session("2026-03-01", mrn="MRN9100")])
    assert _finding(pg, later, "esi_repeat_relief") == (True,)
    log.amend(first, {"performed_at": "2026-01-15T10:00:00+00:00"}, cli_actor(), version=1,
              reason="the date was wrong", confirm_warnings=True)
    log.void(middle, cli_actor(), version=1, reason="entered twice")
    assert _finding(pg, later, "esi_repeat_relief") == (False,)
    assert _finding(pg, middle, "esi_repeat_relief") is None
    # a record moved to another patient: both patients' findings change
    moved, = logged(log, [session("2026-05-20", mrn="MRN9200")])
    assert _finding(pg, moved, "esi_repeat_relief") is None  # MRN9200's first session
    log.amend(moved, {"patient_id": "MRN9100"}, cli_actor(), version=1,
              reason="the wrong patient", confirm_warnings=True, create_missing=True)
    assert _finding(pg, moved, "esi_repeat_relief") == (True,)  # after MRN9100's sessions
    same_tables(pg, Filters(patient_id="MRN9200"))
    _same_but_tampered(pg, Filters(), other)
    _same_but_tampered(pg, YEAR, other)
    same_tables(pg, Filters(patient_id="MRN9100"), limit=3)
    set_enabled(pg, cli_actor(), "lcd_esi", False)  # the rules change: all rebuilt
    same_tables(pg, Filters())
    same_tables(pg, YEAR, limit=5)
    set_enabled(pg, cli_actor(), "lcd_esi", True)
    with pg.begin() as conn:  # tampered again, then repaired by the command
        conn.execute(update(RuleFinding).where(RuleFinding.record_id == other[0])
                     .values(exception=True, message="tampered"))
        recount(conn, None)
    assert main(["--db", pg.url.render_as_string(hide_password=False), "db",
                 "rebuild-facts"]) == 0
    same_tables(pg, Filters())
    same_tables(pg, YEAR)


def _finding(engine: Engine, record_id: int, rule: str) -> tuple[bool] | None:
    refresh_findings(engine)
    with read_session(engine) as s:
        row = s.execute(select(RuleFinding.exception).where(
            RuleFinding.record_id == record_id, RuleFinding.rule == rule)).first()
    return None if row is None else (bool(row[0]),)


def _same_but_tampered(engine: Engine, filters: Filters, tampered: tuple[int, str]) -> None:
    """Equal but for the tampered row: one exception more for its rule (and still there)."""
    checked = rule_report(engine, cli_actor(), filters, stored=False)["rules"]
    read = rule_report(engine, cli_actor(), filters, stored=True)["rules"]
    with read_session(engine) as s:
        at = s.scalar(select(Procedure.performed_at).where(Procedure.id == tampered[0]))
    inside = (filters.start is None or at >= filters.start) and \
        (filters.before is None or at < filters.before)
    extra = read.set_index("rule")["exceptions"] - checked.set_index("rule")["exceptions"]
    assert extra.to_dict() == {r: int(inside and r == tampered[1]) for r in extra.index}


def test_a_full_rebuild_is_done_in_patient_batches_and_sqlite_is_refused(
        pg: Engine, databases: Databases) -> None:
    generate(pg, procedures=300, seed=5, until=date(2026, 6, 30))
    packs_on(pg)
    with pytest.raises(ValueError, match="batch size 0"):
        refresh_findings(pg, batch_patients=0)
    seen: list[tuple[int, int]] = []
    version = refresh_findings(pg, batch_patients=7,
                               progress=lambda done, total: seen.append((done, total)))
    total = seen[-1][1]
    assert total > 3 and seen == [(n, total) for n in range(1, total + 1)]
    rows = stored_rows(pg)
    assert rows > 300
    seen.clear()
    assert refresh_findings(pg, progress=lambda *a: seen.append(a)) == version
    assert seen == []  # current: nothing recomputed
    assert refresh_findings(pg, force=True, batch_patients=1000) == version
    assert stored_rows(pg) == rows
    with read_session(pg) as s:
        assert s.get(RuleFindingState, 1).data_version == version
    lite = make_engine(databases.sqlite())
    with pytest.raises(NeedsPostgreSQL):
        refresh_findings(lite)
    lite.dispose()


def test_the_warmer_keeps_built_findings_current_and_never_builds_them(pg: Engine) -> None:
    """After a write, the dashboard's warmer (`figures warm`) brings the stored findings up to
    date once they were built, so the Coverage page does not pay the refresh; a site that
    never built them (never opened the Coverage page) does not get a first build in the
    background."""
    from audit.analytics.sql.warm import warm_figures
    from audit.rules.findings_store import findings_built

    generate(pg, procedures=200, seed=5, until=date(2026, 6, 30))
    packs_on(pg)
    assert not findings_built(pg)
    assert warm_figures(pg).findings_version is None
    with read_session(pg) as s:
        assert s.get(RuleFindingState, 1) is None  # not built by the warmer
    built = refresh_findings(pg)  # the Coverage page's first visit
    assert findings_built(pg)
    first, = logged(ProcedureLog(pg), [session("2026-04-10", mrn="MRN9300")])
    report = warm_figures(pg)
    assert report.findings_version is not None and report.findings_version > built
    with read_session(pg) as s:
        assert s.get(RuleFindingState, 1).data_version == report.findings_version
        assert s.scalar(select(func.count()).select_from(RuleFinding)
                        .where(RuleFinding.record_id == first)) > 0


def test_a_full_build_is_never_done_in_a_pages_request_but_in_the_background(
        pg: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """build=False (the Coverage page): FindingsNotReady while the findings were never built
    or the packs changed since, nothing written; wait=False: RefreshBusy at once while another
    process holds the lock, never a wait of minutes; the background build then makes them
    ready, and a catch-up after a new record is done in the request."""
    generate(pg, procedures=300, seed=7, until=date(2026, 6, 30))
    packs_on(pg)
    with pytest.raises(FindingsNotReady, match="not built"):
        rule_report(pg, cli_actor(), YEAR, build=False)
    assert stored_rows(pg) == 0 and not findings_ready(pg)
    with read_session(pg) as s:
        assert s.get(RuleFindingState, 1) is None
    with pg.connect() as other:  # another process builds: the lock is held
        other.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": findings_store._LOCK})
        started = time.monotonic()
        with pytest.raises(RefreshBusy, match="rule_finding_state"):
            refresh_findings(pg, wait=False)
        assert time.monotonic() - started < 5
        assert findings_store.build_in_background(pg)
        assert findings_store.wait_for_build(60)  # it found the lock taken and left it
        assert stored_rows(pg) == 0
        other.rollback()
    assert findings_store.build_in_background(pg)
    assert findings_store.wait_for_build(300)
    assert findings_ready(pg) and stored_rows(pg) > 0
    assert findings_store.build_progress() is None
    same_tables(pg, YEAR)
    logged(ProcedureLog(pg), [session("2026-04-10", mrn="MRN9400")])
    same = rule_report(pg, cli_actor(), YEAR, build=False)  # a catch-up: done here
    pd.testing.assert_frame_equal(same["rules"], rule_report(pg, cli_actor(), YEAR,
                                                             stored=False)["rules"])
    monkeypatch.setattr(findings_store, "INCREMENTAL_LIMIT", 1)  # so many changes: all redone
    logged(ProcedureLog(pg), [session("2026-04-11", mrn="MRN9401"),
                              session("2026-04-12", mrn="MRN9402")])
    with pytest.raises(FindingsNotReady, match="more than 1 changes"):
        rule_report(pg, cli_actor(), YEAR, build=False)
    monkeypatch.undo()
    set_enabled(pg, cli_actor(), "lcd_facet", False)  # the packs changed: a full build again
    assert not findings_ready(pg)
    with pytest.raises(FindingsNotReady):
        rule_report(pg, cli_actor(), YEAR, build=False)
