"""The record facts (audit.analytics.sql.facts): after every kind of write (log, amend, void,
CSV import, a merge of names, a demo load) a refresh leaves the table equal to a fresh
recompute from the procedure rows; a refresh is incremental (a row altered behind the app's
back stays altered until `rebuild_facts`), two refreshers at once end equal, an empty database
has none, and the migration fills them. PostgreSQL (the figures' database); SQLite keeps the
table empty and says why."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import Engine, delete, event, func, select, text, update

from audit.analytics.sql.facts import fact_select, rebuild_facts, refresh_facts
from audit.auth import cli_actor
from audit.cli import main
from audit.demo import generate
from audit.errors import NeedsPostgreSQL
from audit.log.csv_import import import_csv
from audit.log.merge import merge_names
from audit.log.service import ProcedureLog
from audit.storage.engine import make_engine, migrate, read_session
from audit.storage.models import Procedure, RecordFact, RecordFactState
from tests.conftest import Databases, race, valid_record
from tests.log.test_csvlog import COLUMNS, write_csv


def stored(engine: Engine) -> pd.DataFrame:
    with engine.connect() as conn:
        frame = pd.read_sql(select(RecordFact).order_by(RecordFact.procedure_id), conn)
    return frame.reset_index(drop=True)


def recomputed(engine: Engine) -> pd.DataFrame:
    """What the facts should hold: the refresh's own SELECT over every record, run afresh."""
    query, _ = fact_select()
    with engine.connect() as conn:
        frame = pd.read_sql(query.order_by(Procedure.id), conn)
    return frame[[c.name for c in RecordFact.__table__.columns]].reset_index(drop=True)


def assert_current(engine: Engine) -> None:
    refresh_facts(engine)
    found, expected = stored(engine), recomputed(engine)
    pd.testing.assert_frame_equal(found, expected, check_dtype=False)
    with read_session(engine) as session:
        finals = session.scalar(select(func.count()).select_from(Procedure)
                                .where(Procedure.status == "final"))
    assert len(found) == finals


def test_the_facts_follow_every_write(pg: Engine, tmp_path: Path) -> None:
    assert_current(pg)  # an empty database: no rows, and a state
    assert stored(pg).empty
    generate(pg, procedures=400, seed=7, until=date(2026, 6, 30))
    assert_current(pg)
    log, actor = ProcedureLog(pg), cli_actor()
    created = log.log(valid_record(accession_number="F1", confirmation_views=["AP"]), actor,
                      confirm_warnings=True, create_missing=True).record_id
    assert_current(pg)
    with read_session(pg) as session:
        first, second = session.scalars(select(Procedure.id).order_by(Procedure.id).limit(2))
    log.amend(created, {"levels": ["L3", "L4", "L5"], "guidance": "ultrasound",
                        "fluoro_time_s": None, "dap_value": None, "dap_unit": None,
                        "air_kerma_mgy": None, "performed_at": "2026-05-31T23:59:59.7+00:00"},
              actor, version=1,
              reason="three levels, under ultrasound", confirm_warnings=True)
    log.void(second, actor, version=1, reason="duplicate")
    before = stored(pg).set_index("procedure_id")
    assert_current(pg)
    after = stored(pg).set_index("procedure_id")
    assert second in before.index and second not in after.index  # a voided record leaves
    assert after.loc[created, "n_levels"] == 3 and after.loc[created, "ultrasound"]
    assert pd.isna(after.loc[created, "fluoro_time_s"])  # no beam: no fluoroscopy time
    assert after.loc[created, "month"] == "2026-06"  # rounded to the second, as the frame
    assert after.loc[first].equals(before.loc[first])
    path = write_csv(tmp_path / "log.csv", [valid_record(accession_number=f"C{i}",
                                                         patient_id=f"MRN9{i}")
                                            for i in range(3)], [*COLUMNS, "accession_number"])
    result = import_csv(log, actor, path, create_missing=True, confirm_warnings=True)
    assert result.committed
    assert_current(pg)
    typo = log.log(valid_record(physician="Dr. Zed Chenn", accession_number="F2"), actor,
                   confirm_warnings=True, create_missing=True).record_id
    assert_current(pg)
    merge_names(pg, actor, "physician", "Dr. Zed Chenn", "Dr. Chen", "typed short",
                confirm_warnings=True)
    assert_current(pg)
    found = stored(pg).set_index("procedure_id")
    assert found.loc[typo, "physician_id"] == found.loc[created, "physician_id"]


def test_a_refresh_is_incremental_and_rebuild_repairs(pg: Engine,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    generate(pg, procedures=200, seed=3, until=date(2026, 6, 30))
    version = refresh_facts(pg)
    assert refresh_facts(pg) == version  # nothing new: one version read, nothing done
    victim = int(stored(pg)["procedure_id"].iloc[5])
    with pg.begin() as conn:  # behind the app's back: the refresh follows events only
        conn.execute(update(RecordFact).where(RecordFact.procedure_id == victim)
                     .values(dap_gycm2=999.0, n_levels=9))
    ProcedureLog(pg).log(valid_record(), cli_actor(), confirm_warnings=True,
                         create_missing=True)
    refresh_facts(pg)
    found = stored(pg).set_index("procedure_id")
    assert found.loc[victim, "dap_gycm2"] == 999.0  # untouched: no event names it
    capsys.readouterr()
    assert main(["--db", pg.url.render_as_string(hide_password=False),
                 "db", "rebuild-facts"]) == 0
    assert '"records"' in capsys.readouterr().out
    pd.testing.assert_frame_equal(stored(pg), recomputed(pg), check_dtype=False)
    with pg.begin() as conn:  # a row deleted: rebuild_facts puts it back
        conn.execute(delete(RecordFact).where(RecordFact.procedure_id == victim))
    assert rebuild_facts(pg) == refresh_facts(pg)
    pd.testing.assert_frame_equal(stored(pg), recomputed(pg), check_dtype=False)


def test_two_refreshers_at_once_end_equal(pg: Engine, databases: Databases) -> None:
    generate(pg, procedures=300, seed=9, until=date(2026, 6, 30))
    with pg.begin() as conn:  # as if never built: both start a full build
        conn.execute(delete(RecordFactState))
        conn.execute(delete(RecordFact))
    other = make_engine(pg.url.render_as_string(hide_password=False))  # a second app process's pool
    try:
        outcomes = race([lambda: refresh_facts(pg), lambda: refresh_facts(other)])
        assert outcomes == [None, None]
        pd.testing.assert_frame_equal(stored(pg), recomputed(pg), check_dtype=False)
        log = ProcedureLog(pg)
        created = [log.log(valid_record(accession_number=f"R{i}"), cli_actor(),
                           confirm_warnings=True, create_missing=True).record_id
                   for i in range(2)]
        log.void(created[0], cli_actor(), version=1, reason="duplicate")
        outcomes = race([lambda: refresh_facts(pg), lambda: refresh_facts(other),
                         lambda: rebuild_facts(other)])
        assert outcomes == [None, None, None]
        assert_current(pg)
    finally:
        other.dispose()


def test_the_migration_fills_the_facts(databases: Databases) -> None:
    url = databases.empty("postgresql")
    migrate(url, "0019")
    engine = make_engine(url)
    try:
        generate(engine, procedures=150, seed=2, until=date(2026, 6, 30))
        migrate(url)
        with read_session(engine) as session:
            state = session.get(RecordFactState, 1)
            head = session.scalar(text("SELECT max(id) FROM audit_event"))
        assert state is not None and state.data_version == head
        assert len(stored(engine)) == 150
        pd.testing.assert_frame_equal(stored(engine), recomputed(engine), check_dtype=False)
    finally:
        engine.dispose()


def test_sqlite_keeps_the_table_empty_and_says_why(databases: Databases,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    engine = make_engine(databases.sqlite())
    try:
        ProcedureLog(engine).log(valid_record(), cli_actor(), create_missing=True)
        with pytest.raises(NeedsPostgreSQL, match="PostgreSQL only"):
            refresh_facts(engine)
        with pytest.raises(NeedsPostgreSQL, match="PostgreSQL only"):
            rebuild_facts(engine)
        assert stored(engine).empty
        capsys.readouterr()
        assert main(["--db", engine.url.render_as_string(hide_password=False),
                     "db", "rebuild-facts"]) != 0
        err = capsys.readouterr().err
        assert "PostgreSQL only" in err and "internal error" not in err
    finally:
        engine.dispose()


def test_a_drill_down_under_one_physician_reads_that_physicians_newest_facts(
        pg: Engine) -> None:
    """The Compliance page's records list under a physician filter walks the index on
    (physician_id, performed_at) backwards and stops at its LIMIT (migration 0022), instead of
    scanning every fact (0.5-0.9 s at 5M records)."""
    from audit.analytics.sql.source import SqlSource
    from audit.filters import Filters
    from tests.analytics import analytics_data

    analytics_data.load(ProcedureLog(pg), cli_actor())
    source = SqlSource(pg, shared=False)
    physician = source.options()["physicians"][0]
    seen: list[tuple[str, object]] = []

    def note(conn: object, cursor: object, statement: str, parameters: object,
             *rest: object) -> None:
        if "record_fact" in statement and "LIMIT" in statement:
            seen.append((statement, parameters))
    event.listen(pg, "before_cursor_execute", note)
    try:
        source.compliance_records(Filters(physicians=(physician,)), limit=50)
    finally:
        event.remove(pg, "before_cursor_execute", note)
    assert seen, "the drill-down ran no LIMIT query over the record facts"
    statement, parameters = seen[-1]
    with pg.connect() as conn:
        conn.exec_driver_sql("SET enable_seqscan = off")  # a handful of rows: force the choice
        plan = "\n".join(str(r[0]) for r in conn.exec_driver_sql(
            "EXPLAIN " + statement, parameters))  # type: ignore[arg-type]
    assert "ix_record_fact_physician_id_performed_at" in plan, plan


def test_a_drill_down_answers_from_the_newest_records_when_they_suffice(pg: Engine) -> None:
    """Where no summary says where the list's records lie (a technologist filter), the drill's
    first look (the filters' newest records, drill.PROBE times its limit) answers alone when it
    finds `limit` rows, and gives the frame's rows; when it finds fewer the drill looks at
    every record. Where the daily summary says (no such filter), its window is read first and
    alone."""
    from audit.analytics.snapshot import load_snapshot
    from audit.analytics.source import FrameSource
    from audit.analytics.sql.source import SqlSource
    from audit.filters import Filters
    from tests.analytics import analytics_data

    analytics_data.load(ProcedureLog(pg), cli_actor())
    snap = load_snapshot(pg)
    sql, frame = SqlSource(pg, shared=False), FrameSource(snap, pg)
    technologist = Filters(technologists=(str(snap.technologists.iloc[0]),))
    for filters, limit, looks in ((technologist, 2, ["newest"]),
                                  (technologist, 10_000, ["newest", "every"]),
                                  (Filters(), 2, ["window"]), (Filters(), 10_000, ["window"])):
        seen: list[str] = []

        def note(conn: object, cursor: object, statement: str, *rest: object,
                 seen: list[str] = seen) -> None:
            if "record_fact" in statement and "ORDER BY" in statement and "LIMIT" in statement:
                seen.append(statement)  # a list's reads (not the refresh's probe of the table)
        event.listen(pg, "before_cursor_execute", note)
        try:
            found = sql.compliance_records(filters, limit=limit)
        finally:
            event.remove(pg, "before_cursor_execute", note)
        expected = frame.compliance_records(filters, limit=limit)
        read = ["newest" if "newest" in s else "window" if "performed_at >=" in s else "every"
                for s in seen]
        assert read == looks, (filters, limit)
        assert found["record_id"].tolist() == expected["record_id"].tolist()
        assert 2 <= len(found) < 10_000


def test_a_full_build_files_the_facts_in_time_order(pg: Engine) -> None:
    """The demo files records patient by patient, so the procedure table is not in time order;
    a full build writes the facts in time order, so that the drill-downs' newest records of a
    filter, read backwards through the index on performed_at, lie on neighbouring pages."""
    generate(pg, procedures=400, seed=13, until=date(2026, 6, 30))
    with pg.connect() as conn:
        entered = conn.scalars(select(Procedure.performed_at)
                               .where(Procedure.status == "final").order_by(Procedure.id)).all()
    assert entered != sorted(entered)  # the records were not logged in time order
    rebuild_facts(pg)
    with pg.connect() as conn:
        filed = conn.scalars(text("SELECT performed_at FROM record_fact ORDER BY ctid")).all()
    assert len(filed) == len(entered) and filed == sorted(filed)


def test_a_refresh_after_a_bulk_load_files_the_new_facts_in_time_order(pg: Engine) -> None:
    """The first refresh after a bulk load (the demo's COPY, a CSV import) recomputes id ranges,
    not the whole table: those rows are filed in time order too (5M demo records built that way
    lay in id order, and a drill-down list read a page per record)."""
    generate(pg, procedures=300, seed=14, until=date(2026, 3, 31))
    refresh_facts(pg)
    with pg.connect() as conn:
        before = conn.scalar(text("SELECT count(*) FROM record_fact"))
    generate(pg, procedures=300, seed=15, until=date(2026, 6, 30), months=3)
    with pg.connect() as conn:
        loaded = conn.scalars(select(Procedure.performed_at).where(Procedure.status == "final")
                              .order_by(Procedure.id).offset(before)).all()
    assert loaded != sorted(loaded)  # filed patient by patient
    refresh_facts(pg)
    with pg.connect() as conn:
        filed = conn.scalars(text("SELECT performed_at FROM record_fact ORDER BY ctid")).all()
    assert len(filed) == before + len(loaded) and filed[before:] == sorted(loaded)
    assert_current(pg)


def test_the_first_refresh_after_loads_into_an_empty_table_builds_it_whole(pg: Engine) -> None:
    """Two bulk loads before the first refresh name two id ranges: into an empty table the
    facts are built whole, in one insert in time order, not range by range (each range in
    time order only within itself)."""
    refresh_facts(pg)  # the table is kept, and empty
    generate(pg, procedures=300, seed=16, until=date(2026, 3, 31))
    generate(pg, procedures=300, seed=17, until=date(2026, 6, 30), months=5)
    refresh_facts(pg)
    with pg.connect() as conn:
        filed = conn.scalars(text("SELECT performed_at FROM record_fact ORDER BY ctid")).all()
    assert len(filed) > 300 and filed == sorted(filed)
    assert_current(pg)
