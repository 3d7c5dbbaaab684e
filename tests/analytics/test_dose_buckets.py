"""The dose buckets (audit.analytics.sql.dose_buckets, read by bucket_quantiles): the Dose
page's per-procedure distribution, the local DRLs' medians and the histogram read from the
buckets (and the few
records of the buckets a quantile falls in) wherever they answer the filters, and then equal
to the scan's percentile_cont exactly (every digit, not the printed precision); the scan
where they cannot (a technologist, a room and a physician, record ids, a record at a
half-second edge, a write between the refresh and the read); after every kind of write (log,
amend across a month, void, a room's KAP factor) still equal. With 4 buckets a type, most
quantiles fall in a bucket of many different values (the records read and ranked); with
512, most in a bucket of one value (nothing read). PostgreSQL only, asked for directly."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import date
from functools import partial

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine, delete, func, select

from audit.analytics.sql import (
    bucket_quantiles,
    bucket_snapshot,
    dose,
    dose_buckets,
    month_cells,
    reference,
)
from audit.analytics.sql.facts import refresh_facts
from audit.analytics.sql.scope import Scope
from audit.analytics.sql.source import SqlSource
from audit.auth import cli_actor
from audit.cli import main
from audit.demo import generate
from audit.errors import NeedsPostgreSQL
from audit.filters import Filters
from audit.log.service import ProcedureLog
from audit.reference_data import list_rooms, update_room
from audit.storage.engine import make_engine
from audit.storage.models import DoseBucket, DoseBucketState, Procedure, RecordFact
from tests.analytics.sql_figures import FACT_SCAN, statements
from tests.analytics.test_sql_figures import CASES
from tests.conftest import Databases, valid_record

BUCKET_READ = re.compile(r"\bFROM dose_bucket\b", re.IGNORECASE)
QUANTITIES = tuple(dose_buckets.QUANTITIES)
#: The hand-checked fixture's filters the buckets answer, and periods cut inside months.
ANSWERED = [f for f in CASES if bucket_snapshot.answerable(f, QUANTITIES[0])] + [
    Filters.days(date(2026, 1, 15), date(2026, 3, 9)),
    Filters.days(date(2026, 2, 1), date(2026, 3, 31), rooms=("R1",)),
    Filters.days(None, date(2026, 2, 27), physicians=("Dr. A",)),
    Filters.days(date(2026, 2, 3), date(2026, 2, 20)),  # no whole month
]


def scanned(engine: Engine, sql: SqlSource, filters: Filters,
            quantity: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The distribution (with its span) and the local DRLs as the scan computes them."""
    refresh_facts(engine)
    with engine.connect() as conn:
        scope = Scope.open(conn, sql.lookups, filters)
        return (dose.dose_distribution(scope, quantity),
                reference.local_drls(scope, (quantity,)))


def from_buckets(engine: Engine, sql: SqlSource, filters: Filters,
                 quantity: str) -> tuple[tuple[pd.DataFrame, pd.DataFrame], list[bool]]:
    """The distribution and the DRLs as SqlSource computes them, and whether each read the
    buckets and no scan of the facts (the DRLs are over the period alone)."""
    found, read = [], []
    with engine.connect() as conn:
        scope = Scope.open(conn, sql.lookups, filters)
        medians = partial(bucket_quantiles.medians, engine)
        for work in (lambda: sql._distribution(scope, quantity, "procedure"),
                     lambda: reference.local_drls(scope, (quantity,), medians=medians)):
            with statements(engine) as seen:
                found.append(work())
            # the period's cut days are counted from the facts, not sorted
            sorted_ = [s for s in seen if FACT_SCAN.search(s) and "percentile" in s]
            read.append(any(BUCKET_READ.search(s) for s in seen) and not sorted_)
    return (found[0], found[1]), read


def assert_same_figures(engine: Engine, filters: Filters, answered: bool = True,
                        levels_answered: bool | None = None) -> None:
    """Every quantity's distribution, DRLs and a histogram per procedure: from the buckets
    (no scan of the facts) or from the scan (`answered`; `levels_answered`: the DRLs, by
    default the same), and equal to the scan's, exactly."""
    dose_buckets.refresh_buckets(engine)  # a refresh reads the facts: not the figure's own
    sql = SqlSource(engine, shared=False)
    where = f"under {filters.describe()}"
    for quantity in QUANTITIES:
        found, read = from_buckets(engine, sql, filters, quantity)
        expected = scanned(engine, sql, filters, quantity)
        assert read == [answered, answered if levels_answered is None else levels_answered], \
            where
        for got, exact, name in zip(found, expected, ("distribution", "DRLs"), strict=True):
            pd.testing.assert_frame_equal(got.reset_index(drop=True),
                                          exact.reset_index(drop=True), check_exact=True,
                                          obj=f"{name} of {quantity} {where}")
        for code in expected[0]["procedure"]:
            narrowed = replace(filters, procedures=(code,))
            with engine.connect() as conn:
                exact = dose.dose_histogram(Scope.open(conn, sql.lookups, narrowed), quantity)
            got = bucket_quantiles.histogram(engine, sql.lookups, narrowed, quantity, 40, None)
            assert (got is not None) == answered, where
            if got is not None:
                pd.testing.assert_frame_equal(got, exact, check_exact=True, check_dtype=False,
                                              obj=f"histogram of {code} {quantity} {where}")


@pytest.mark.parametrize("buckets", [4, 512])
def test_the_figures_from_the_buckets_equal_the_scans(pg_engine: Engine, buckets: int,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dose_buckets, "BUCKETS", buckets)  # in the rules: a rebuild
    for filters in ANSWERED:
        assert_same_figures(pg_engine, filters)


@pytest.mark.parametrize("buckets", [3, 64, 512])
def test_a_demo_sets_figures_equal_the_scans(pg: Engine, buckets: int,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """3,000 demo records over a year: ties, zeros, rooms with KAP factors, every filter the
    buckets answer, periods whole and cut."""
    monkeypatch.setattr(dose_buckets, "BUCKETS", buckets)
    generate(pg, procedures=3000, seed=11, until=date(2026, 6, 30))
    for filters in demo_filters(SqlSource(pg, shared=False)):
        assert_same_figures(pg, filters)


def demo_filters(sql: SqlSource) -> list[Filters]:
    """The filters the demo-set tests ask (of a year of demo records up to June 2026): none,
    whole and cut periods, physicians, a room from a day on, a site with procedures."""
    options = sql.options()
    return [Filters(), Filters.days(date(2025, 9, 1), date(2026, 2, 28)),
            Filters.days(date(2025, 10, 17), date(2026, 5, 3)),
            Filters(physicians=tuple(options["physicians"][:2])),
            Filters.days(date(2026, 1, 1), None, rooms=tuple(options["rooms"][:1])),
            Filters(sites=tuple(options["sites"][:1]),
                    procedures=tuple(options["procedures"][:3]))]


def test_what_the_buckets_cannot_answer_is_scanned(pg_engine: Engine) -> None:
    for filters in [Filters(technologists=("tech1",)),
                    Filters(rooms=("R3",), physicians=("Dr. B",)),
                    Filters(record_ids=(1, 2, 3)),
                    Filters(include_voided=True)]:
        assert not bucket_snapshot.answerable(filters, QUANTITIES[0])
        # the DRLs are the period's, whatever the other filters: from the buckets
        assert_same_figures(pg_engine, filters, answered=False, levels_answered=True)
    assert not bucket_snapshot.answerable(Filters(), "weight_kg")  # not a dose quantity


def test_a_record_at_a_half_second_edge_is_scanned(pg: Engine) -> None:
    """The frame rounds instants to whole seconds: a record at 23:59:59.7 on the last day of
    a month is in the next month there, in this one by the buckets' month."""
    ProcedureLog(pg).log(valid_record(accession_number="E1",
                                      performed_at="2026-02-28T23:59:59.700+00:00"),
                         cli_actor(), confirm_warnings=True, create_missing=True)
    ProcedureLog(pg).log(valid_record(accession_number="E2", dap_value=3.3,
                                      performed_at="2026-03-02T10:00:00+00:00"),
                         cli_actor(), confirm_warnings=True, create_missing=True)
    assert_same_figures(pg, Filters.days(date(2026, 3, 1), None), answered=False)


def test_a_write_between_the_refresh_and_the_read_is_scanned(pg: Engine) -> None:
    generate(pg, procedures=300, seed=5, until=date(2026, 6, 30))
    sql = SqlSource(pg, shared=False)
    dose_buckets.refresh_buckets(pg)
    ProcedureLog(pg).log(valid_record(accession_number="W1"), cli_actor(),
                         confirm_warnings=True, create_missing=True)
    lookups = sql.lookups
    refresh_facts(pg)  # the facts move on; the buckets' refresh is skipped below
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(bucket_snapshot, "refresh_buckets", lambda *a, **k: 0)
        found = bucket_quantiles.quantiles(pg, lookups, Filters(), QUANTITIES[0], False, (0.5,))
    assert found is None  # their versions differ: the caller scans
    assert_same_figures(pg, Filters())  # refreshed: from the buckets again, and equal


def test_the_buckets_follow_every_write(pg: Engine) -> None:
    generate(pg, procedures=400, seed=3, until=date(2026, 6, 30))
    assert_same_figures(pg, Filters())
    log, actor = ProcedureLog(pg), cli_actor()
    created = log.log(valid_record(accession_number="C1", dap_value=250.0,
                                   performed_at="2026-05-31T23:30:00+00:00"),
                      actor, confirm_warnings=True, create_missing=True).record_id
    assert_same_figures(pg, Filters())
    assert_same_figures(pg, Filters.days(date(2026, 5, 1), date(2026, 5, 31)))
    log.amend(created, {"performed_at": "2026-06-01T10:00:00+00:00"}, actor, version=1,
              reason="wrong date", confirm_warnings=True)  # into another month
    assert_same_figures(pg, Filters.days(date(2026, 5, 1), date(2026, 5, 31)))
    assert_same_figures(pg, Filters.days(date(2026, 6, 1), None))
    log.void(created, actor, version=2, reason="duplicate")
    assert_same_figures(pg, Filters())
    update_room(pg, actor, list_rooms(pg)[0]["room_id"], kap_correction_factor=0.5)
    assert_same_figures(pg, Filters())  # the rules changed: rebuilt
    version = dose_buckets.refresh_buckets(pg)
    assert dose_buckets.refresh_buckets(pg) == version  # nothing new: nothing done
    with pg.connect() as conn:  # every final record with a value is counted once per grain
        counted: dict[tuple[int, int], int] = {}
        for q, g, records in conn.execute(select(DoseBucket.quantity, DoseBucket.grain,
                                                 DoseBucket.records)
                                          .where(DoseBucket.dimension == 0)):
            counted[(q, g)] = counted.get((q, g), 0) + int(
                np.frombuffer(records, dtype="<i4").sum())
        values = {code: int(conn.scalar(select(func.count(getattr(RecordFact, column))))
                                  or 0)
                  for column, code in (("dap_gycm2", 0), ("air_kerma_mgy", 1),
                                       ("fluoro_time_s", 2), ("dap_gycm2", 3))}
    assert counted == {**{(q, g): values[q] for q in values for g in (0, 1, 2)},
                       (0, dose_buckets.GRAIN_ROOM_PHYSICIAN): values[0]}  # KAP corrected's


def test_a_row_changed_behind_the_apps_back_stays_until_rebuild_facts(
        pg: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    generate(pg, procedures=300, seed=6, until=date(2026, 6, 30))
    assert_same_figures(pg, Filters())
    with pg.begin() as conn:  # a cell of every grain and quantity gone
        first = conn.scalar(select(func.min(DoseBucket.month)))
        conn.execute(delete(DoseBucket).where(DoseBucket.month == first))
    assert_same_figures(pg, Filters())  # this process answers from the cells it keeps
    month_cells.clear()  # a process started after the change reads the table
    with pytest.raises(AssertionError):
        assert_same_figures(pg, Filters())
    assert main(["--db", pg.url.render_as_string(hide_password=False),
                 "db", "rebuild-facts"]) == 0
    assert '"dose_bucket_rows"' in capsys.readouterr().out
    assert_same_figures(pg, Filters())  # the repair rewrote the state: the kept cells too


def test_the_warmer_builds_the_buckets_before_anyone_asks(pg: Engine) -> None:
    """`figures warm` (and the dashboard's background warmer) pays the buckets' build, not the
    next person who opens the Dose page."""
    from audit.analytics.sql.warm import warm_figures

    generate(pg, procedures=300, seed=8, until=date(2026, 6, 30))
    with pg.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(DoseBucket)) == 0
    warm_figures(pg)
    with pg.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(DoseBucket)) > 0
        built = conn.scalar(select(DoseBucketState.data_version))
    assert built == dose_buckets.refresh_buckets(pg)  # current: nothing left to do


def test_the_buckets_are_postgresql_only(databases: Databases) -> None:
    engine = make_engine(databases.sqlite())
    try:
        with pytest.raises(NeedsPostgreSQL, match="PostgreSQL only"):
            dose_buckets.refresh_buckets(engine)
    finally:
        engine.dispose()


def test_an_empty_database_answers_with_empty_tables(pg: Engine) -> None:
    sql = SqlSource(pg, shared=False)
    found = bucket_quantiles.quantiles(pg, sql.lookups, Filters(), QUANTITIES[0], False, (0.5,))
    assert found is not None and found.empty
    with pg.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(Procedure)) == 0
