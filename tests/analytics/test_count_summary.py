"""The count summary (audit.analytics.sql.count_summary): the Data quality and Complications
pages' counts read from it, without a scan of the record facts, wherever it answers the filters
exactly, and then equal to the scan's tables exactly (columns, dtypes, order, labels); the scan
where it cannot (record ids, a record at a half-second edge); after every kind of write (log,
amend across a month, void, complications added and voided, a catalog, SRDL setting or room
factor change) the table equals a fresh recompute; a row changed behind the app's back stays
until `db rebuild-facts`; the migration fills it. PostgreSQL only (the SQL figures' database),
asked for directly."""

from __future__ import annotations

import re
from datetime import date

import pandas as pd
import pytest
from sqlalchemy import Engine, event, select, text, update

from audit.analytics.sql import counts
from audit.analytics.sql.count_summary import (
    COUNTS,
    KEYS,
    _day_select,
    _lookups,
    refresh_counts,
)
from audit.analytics.sql.facts import refresh_facts
from audit.analytics.sql.scope import Scope
from audit.analytics.sql.source import COMPLICATIONS_PAGE, QUALITY_PAGE, SqlSource
from audit.auth import cli_actor
from audit.cli import main
from audit.demo import generate
from audit.errors import NeedsPostgreSQL
from audit.filters import Filters
from audit.log.complications import record_complication, void_complication
from audit.log.service import ProcedureLog
from audit.reference_data import list_rooms, update_procedure_type, update_room
from audit.settings import update_setting
from audit.storage.engine import make_engine, migrate, read_session
from audit.storage.models import Complication, CountSummary, CountSummaryState, RecordFactState
from tests.analytics.sql_figures import FACT_SCAN, statements
from tests.analytics.test_sql_figures import CASES
from tests.conftest import Databases, valid_record

COUNT_READ = re.compile(r"\bFROM count_summary\b", re.IGNORECASE)
#: Periods of whole months, partial months, both, and a technologist (the summary's key).
MORE = [
    Filters.days(date(2026, 1, 15), date(2026, 3, 9)),
    Filters.days(date(2026, 2, 1), date(2026, 3, 31), rooms=("R1",)),
    Filters.days(None, date(2026, 2, 27)),
    Filters(technologists=("tech1",), procedures=("TFESI",)),
]


def scanned(engine: Engine, sql: SqlSource, filters: Filters) -> dict[str, pd.DataFrame]:
    """Both pages' tables as a scan of the record facts computes them."""
    refresh_facts(engine)
    with engine.connect() as conn:
        scope = Scope.open(conn, sql.lookups, filters)
        quality = counts.completeness_together(scope, QUALITY_PAGE)
        found = counts.complication_rates_together(scope, COMPLICATIONS_PAGE)
    tables = {f"completeness by {by}": quality[by] for by in (None, *QUALITY_PAGE)}
    tables["safety flags"] = quality[counts.SAFETY]
    tables.update({f"complications by {by}": found[by] for by in (None, *COMPLICATIONS_PAGE)})
    return tables


def asked(sql: SqlSource, filters: Filters) -> dict[str, pd.DataFrame]:
    """Both pages' tables as the pages ask for them."""
    tables = {f"completeness by {by}": sql.completeness(filters, by)
              for by in (None, *QUALITY_PAGE)}
    tables["safety flags"] = sql.safety_flags(filters)
    tables.update({f"complications by {by}": sql.complication_rates(filters, by)
                   for by in (None, *COMPLICATIONS_PAGE)})
    return tables


def assert_count_source(engine: Engine, filters: Filters, from_summary: bool) -> None:
    """From the summary (no scan of the facts) or from the scan, and the scan's tables."""
    refresh_counts(engine)  # a refresh reads the facts: not the figure's own reading
    sql = SqlSource(engine, shared=False)  # nothing cached: computed
    with statements(engine) as seen:
        found = asked(sql, filters)
    where = f"under {filters.describe()}"
    scans = [s for s in seen if FACT_SCAN.search(s)]
    if from_summary:
        assert not scans and any(COUNT_READ.search(s) for s in seen), where
    else:
        assert scans and not any(COUNT_READ.search(s) for s in seen), where
    for name, table in scanned(engine, sql, filters).items():
        pd.testing.assert_frame_equal(found[name], table, obj=f"{name} {where}")


def test_the_pages_counts_come_from_the_summary(pg_engine: Engine) -> None:
    for filters in [*CASES, *MORE]:
        assert_count_source(pg_engine, filters, from_summary=True)
    assert_count_source(pg_engine, Filters(record_ids=(1, 2, 3)), from_summary=False)


def test_one_read_serves_both_pages(pg_engine: Engine) -> None:
    refresh_counts(pg_engine)
    sql = SqlSource(pg_engine, shared=False)
    with statements(pg_engine) as seen:
        asked(sql, Filters())
    assert sum(bool(COUNT_READ.search(s)) for s in seen) == 1


def stored(engine: Engine) -> pd.DataFrame:
    with engine.connect() as conn:
        frame = pd.read_sql(select(CountSummary), conn)
    return frame.sort_values(["whole_month", "day", *KEYS]).reset_index(drop=True)


def recomputed(engine: Engine) -> pd.DataFrame:
    """What the summary should hold: the day rows computed afresh from the facts, and each
    month's rows as the sums of its days'."""
    refresh_facts(engine)
    with engine.connect() as conn:
        days = pd.read_sql(_day_select(conn, _lookups(conn), None), conn)
    days["day"] = pd.to_datetime(days["day"]).dt.date
    months = days.assign(day=[d.replace(day=1) for d in days["day"]], whole_month=True)
    months = months.groupby(["whole_month", "day", *KEYS], as_index=False)[list(COUNTS)].sum()
    frame = pd.concat([days, months], ignore_index=True)
    frame = frame[[c.name for c in CountSummary.__table__.columns]]
    return frame.sort_values(["whole_month", "day", *KEYS]).reset_index(drop=True)


def assert_current(engine: Engine) -> None:
    refresh_counts(engine)
    found, expected = stored(engine), recomputed(engine)
    found["day"] = pd.to_datetime(found["day"]).dt.date
    pd.testing.assert_frame_equal(found, expected, check_dtype=False)


def _rules_now(engine: Engine) -> int:
    with read_session(engine) as session:
        state = session.get(CountSummaryState, 1)
    assert state is not None
    return state.rules


def test_the_summary_follows_every_write(pg: Engine) -> None:
    generate(pg, procedures=400, seed=3, until=date(2026, 6, 30))
    assert_current(pg)
    log, actor = ProcedureLog(pg), cli_actor()
    rules = _rules_now(pg)
    created = log.log(valid_record(accession_number="C1",
                                   performed_at="2026-05-31T23:30:00+00:00"),
                      actor, confirm_warnings=True, create_missing=True).record_id
    assert_current(pg)
    assert _rules_now(pg) == rules  # a new room and physician: its day, no rebuild
    log.amend(created, {"performed_at": "2026-06-01T10:00:00+00:00"}, actor, version=1,
              reason="wrong date", confirm_warnings=True)  # into another month
    complication = record_complication(pg, actor, created, "hematoma", "severe")
    assert_current(pg)
    void_complication(pg, actor, complication, "recorded on the wrong record")
    assert_current(pg)
    with read_session(pg) as session:
        other = session.scalar(select(Complication.procedure_id)
                               .where(Complication.status == "final").limit(1))
    assert other is not None
    log.void(other, actor, version=1, reason="duplicate")  # its complications leave too
    assert_current(pg)
    update_procedure_type(pg, actor, "TFESI", max_levels=1)  # flags the catalog decides
    assert_current(pg)
    update_setting(pg, actor, "srdl_kap_gycm2", 5)
    assert_current(pg)
    update_room(pg, actor, list_rooms(pg)[0]["room_id"], kap_correction_factor=0.5)
    assert_current(pg)
    version = refresh_counts(pg)
    assert refresh_counts(pg) == version  # nothing new: nothing done


def test_a_row_changed_behind_the_apps_back_stays_until_rebuild_facts(
        pg: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    generate(pg, procedures=200, seed=6, until=date(2026, 6, 30))
    refresh_counts(pg)
    with pg.begin() as conn:
        conn.execute(update(CountSummary).values(records=CountSummary.records + 100))
    ProcedureLog(pg).log(valid_record(accession_number="T1"), cli_actor(),
                         confirm_warnings=True, create_missing=True)
    refresh_counts(pg)  # follows events: the altered rows of other days stay altered
    assert not stored(pg).equals(recomputed(pg))
    assert main(["--db", pg.url.render_as_string(hide_password=False),
                 "db", "rebuild-facts"]) == 0
    assert "count_summary_rows" in capsys.readouterr().out
    assert_current(pg)


def test_the_first_refresh_after_the_upgrade_fills_the_summary(databases: Databases) -> None:
    """The migrations create the table and leave it to the first refresh (they run their own
    SQL, not the application's code, whose table may have later columns)."""
    url = databases.empty("postgresql")
    migrate(url, "0022")
    engine = make_engine(url)
    try:
        generate(engine, procedures=150, seed=2, until=date(2026, 6, 30))
        refresh_facts(engine)
        migrate(url)
        with read_session(engine) as session:
            assert session.get(CountSummaryState, 1) is None
        refresh_counts(engine)
        with read_session(engine) as session:
            state = session.get(CountSummaryState, 1)
            facts = session.get(RecordFactState, 1)
        assert state is not None and facts is not None
        assert state.data_version == facts.data_version
        assert len(stored(engine)) > 0
        assert_current(engine)
    finally:
        engine.dispose()


def test_sqlite_has_no_count_summary(databases: Databases) -> None:
    engine = make_engine(databases.sqlite())
    try:
        with pytest.raises(NeedsPostgreSQL, match="PostgreSQL only"):
            refresh_counts(engine)
        with engine.connect() as conn:
            assert conn.scalar(text("SELECT count(*) FROM count_summary")) == 0
    finally:
        engine.dispose()


def test_a_record_at_a_months_edge_is_counted_from_the_facts(pg: Engine) -> None:
    """23:59:59.7 on 31 January is February in the frame (it rounds to whole seconds), January
    in the summary's days: the pages' counts are scanned, the scan's tables."""
    log = ProcedureLog(pg)
    for n, moment in enumerate(("2026-01-31T23:59:59.700+00:00",
                                "2026-02-10T12:00:00+00:00"), start=1):
        log.log(valid_record(performed_at=moment, accession_number=f"EDGE{n}"),
                cli_actor(), confirm_warnings=True, create_missing=True)
    # the month edges are probed over the whole log (SqlSource._summary_exact, the p-chart's
    # rule): a period clear of the edge is scanned too
    for filters in (Filters(), Filters.days(date(2026, 2, 1), None),
                    Filters.days(date(2026, 1, 1), date(2026, 1, 20))):
        assert_count_source(pg, filters, from_summary=False)


def test_the_complication_list_reads_a_recent_window_and_equals_the_frames(pg: Engine) -> None:
    """The newest complications: from the day the summary says holds enough of them, or from
    the filters' n-th newest record (filters it does not hold: record ids), or every record
    when a window holds too few; always the frame's list, in order."""
    from audit.analytics.snapshot import load_snapshot
    from audit.analytics.source import FrameSource

    generate(pg, procedures=600, seed=8, until=date(2026, 6, 30))
    frame, sql = FrameSource(load_snapshot(pg), pg), SqlSource(pg, shared=False)
    physician = sql.options()["physicians"][0]
    with read_session(pg) as session:
        ids = tuple(session.scalars(select(Complication.procedure_id)).all())
    windowed = 0
    for filters in (Filters(), Filters(physicians=(physician,)),
                    Filters.days(date(2026, 1, 1), date(2026, 3, 31)),
                    Filters(record_ids=tuple(range(1, 601)))):
        for limit in (1, 3, 10, len(ids) + 5):
            with statements(pg) as seen:
                found = sql.complication_list(filters, limit)
            windowed += any("JOIN complication" in s and "rec.performed_at >=" in s
                            for s in seen)
            pd.testing.assert_frame_equal(
                found, frame.complication_list(filters, limit), check_dtype=False,
                obj=f"the newest {limit} under {filters.describe()}")
    assert windowed >= 8


def test_a_rare_flags_drill_down_reads_its_partial_index(pg: Engine) -> None:
    """The records flagged pregnant (a few in a thousand) are read through the partial index
    of the facts on the flag (migration 0023), not by a walk over every record."""
    generate(pg, procedures=200, seed=9, until=date(2026, 6, 30))
    sql = SqlSource(pg, shared=False)
    seen: list[tuple[str, object]] = []

    def note(conn: object, cursor: object, statement: str, parameters: object,
             *rest: object) -> None:
        if FACT_SCAN.search(statement) and "LIMIT" in statement:
            seen.append((statement, parameters))
    event.listen(pg, "before_cursor_execute", note)
    try:
        sql.flagged_records(Filters(), "pregnant", limit=5)
    finally:
        event.remove(pg, "before_cursor_execute", note)
    assert len(seen) == 1  # no first look at the newest records
    statement, parameters = seen[0]
    with pg.connect() as conn:
        conn.exec_driver_sql("SET enable_seqscan = off")  # a few rows: force the choice
        plan = "\n".join(str(r[0]) for r in conn.exec_driver_sql(
            "EXPLAIN " + statement, parameters))  # type: ignore[arg-type]
    assert "ix_record_fact_pregnant" in plan, plan


def test_the_compliance_lists_look_where_the_summary_says_when_the_newest_hold_too_few(
        pg: Engine) -> None:
    """When the filters' newest records hold fewer non-compliant (or excepted) records than the
    list shows, the rest are looked for from the day the daily summary names
    (summary_counts.newest_day), or not at all where it counts none: at 10M, a physician's MBBs
    (recommended contrast, so never non-compliant) read every one of the physician's 1.4M
    records for an empty list. The list is always the frame's, in order; no statement reads the
    facts without a bound."""
    from audit.analytics.snapshot import load_snapshot
    from audit.analytics.source import FrameSource

    generate(pg, procedures=600, seed=8, until=date(2026, 6, 30))
    frame, sql = FrameSource(load_snapshot(pg), pg), SqlSource(pg, shared=False)
    physician = sql.options()["physicians"][0]
    refresh_facts(pg)  # the facts' first build is no read of the list's
    everyone = len(frame.compliance_records(Filters(), "non_compliant", None, 10_000))
    assert everyone > 20
    hinted = 0
    for filters, group in ((Filters(), None), (Filters(physicians=(physician,)), None),
                           (Filters(procedures=("MBB", "RFA")), None),
                           (Filters.days(date(2026, 1, 1), date(2026, 3, 31)), None),
                           (Filters(), ("physician", physician)),
                           (Filters(), ("procedure", "TFESI"))):
        for which, limit in ((w, n) for w in ("non_compliant", "excepted")
                             for n in (1, 10, everyone - 1, everyone + 5)):
            with statements(pg) as seen:
                found = sql.compliance_records(filters, which, group, limit)
            where = f"the newest {limit} {which} under {filters.describe()}, {group}"
            pd.testing.assert_frame_equal(
                found, frame.compliance_records(filters, which, group, limit),
                check_dtype=False, obj=where)
            reads = [s for s in seen if FACT_SCAN.search(s) and s.lstrip().startswith("SELECT")]
            # the first look ("newest"), the summary's window, or nothing: never every record
            assert all(any(b in s for b in ("newest", "performed_at >=", "false"))
                       for s in reads), where
            hinted += any("performed_at >=" in s or "false" in s for s in reads)
    assert hinted >= 12


def test_the_flag_lists_look_where_the_count_summary_says_when_the_newest_hold_too_few(
        pg: Engine) -> None:
    """The SRDL and levels-over-limit lists (flags without a partial index), as the compliance
    lists: nothing read where the count summary counts none, the records from the day it names
    when the newest hold too few (count_summary.list_window). At 10M the SRDL list under a
    physician's MBBs, none at the SRDL, walked the SRDL candidates of every record: 16 s for
    an empty list. Always the frame's list; no read of the facts without a bound."""
    from audit.analytics.snapshot import load_snapshot
    from audit.analytics.source import FrameSource

    update_setting(pg, cli_actor(), "srdl_kap_gycm2", 10)  # some records at the SRDL
    generate(pg, procedures=600, seed=8, until=date(2026, 6, 30))
    refresh_facts(pg)
    frame, sql = FrameSource(load_snapshot(pg), pg), SqlSource(pg, shared=False)
    physician = sql.options()["physicians"][0]
    windows = 0
    for flag in ("srdl_reached", "levels_over_limit"):
        every = len(frame.flagged_records(Filters(), flag, 10_000))
        assert every > 3, flag
        for filters in (Filters(), Filters(physicians=(physician,)),
                        Filters(procedures=("RFA",)),
                        Filters.days(date(2026, 1, 1), date(2026, 3, 31))):
            for limit in (1, every - 1, every + 5):
                with statements(pg) as seen:
                    found = sql.flagged_records(filters, flag, limit)
                where = f"the newest {limit} {flag} under {filters.describe()}"
                pd.testing.assert_frame_equal(
                    found, frame.flagged_records(filters, flag, limit), check_dtype=False,
                    obj=where)
                reads = [s for s in seen
                         if FACT_SCAN.search(s) and s.lstrip().startswith("SELECT")]
                assert all(any(b in s for b in ("newest", "performed_at >=", "false"))
                           for s in reads), where
                windows += any("performed_at >=" in s or "false" in s for s in reads)
    assert windows >= 6
