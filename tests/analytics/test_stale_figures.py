"""The last finished figure while the newest is computed (audit.analytics.sql.stale, as_of), on
PostgreSQL: a page's source allowed to (AsOf) gets, after a write, the older version's result at
once without computing, marked as of that version, and the current one after the background
worker; a source used directly is always exact; a tampered older row, a figure never computed,
and a call whose inputs would mix versions are computed in the request; prune keeps each key's
newest row."""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import Engine, func, select, update

from audit.analytics.figure_changes import changes_since
from audit.analytics.sql import counts
from audit.analytics.sql.as_of import AsOf
from audit.analytics.sql.shared import KEEP_VERSIONS, STALE_KEEP_DAYS, prune
from audit.analytics.sql.source import SqlSource
from audit.analytics.sql.warm import background_held, computing_behind, wait_for_warmer
from audit.auth import cli_actor
from audit.filters import Filters
from audit.log.service import ProcedureLog
from audit.settings import update_setting
from audit.storage.engine import make_engine
from audit.storage.models import FigureResult
from tests.analytics import analytics_data
from tests.analytics.test_shared_figures import RAN, _Boom
from tests.conftest import Databases

F = Filters()
NARROW = Filters.days(date(2026, 2, 1), date(2026, 3, 31), physicians=("Dr. A",))


@pytest.fixture
def pg(databases: Databases) -> Iterator[Engine]:
    engine = make_engine(databases.postgresql())
    analytics_data.load(ProcedureLog(engine), cli_actor())
    yield engine
    wait_for_warmer(120)
    engine.dispose()


def a_new_record(engine: Engine, n: int = 1) -> None:
    """A write that changes the figures: one more final record."""
    record = analytics_data.RECORDS[0] | {"accession_number": f"NEW{n}",
                                          "patient_id": f"HB90{n}"}
    ProcedureLog(engine).log(record, cli_actor(), confirm_warnings=True)


def exact(engine: Engine) -> SqlSource:
    return SqlSource(engine, shared=False)


@pytest.mark.parametrize("shared", [True, False], ids=["shared table", "process memory"])
def test_after_a_write_a_page_gets_the_last_finished_figure_then_the_current_one(
        pg: Engine, shared: bool) -> None:
    """shared: a new process finds the older result in figure_result; process memory: the
    same process (no key ring, say) keeps its own older result."""
    before = SqlSource(pg, shared=shared)
    old = [before.compliance_rates(F), before.record_count()]
    old_version = before.token
    a_new_record(pg)
    source = SqlSource(pg) if shared else before
    computed = source.queries
    page = AsOf(source)
    with background_held():  # what the page shows before the worker has caught up
        found = [page.compliance_rates(F), page.record_count()]
        assert source.queries == computed  # nothing computed in the request
        assert computing_behind(source)
    pd.testing.assert_frame_equal(found[0], old[0])
    assert found[1] == old[1] == 9
    assert page.served.oldest == old_version and page.served.stale == 2
    assert page.served.current == source.token > old_version
    wait_for_warmer(120)
    assert not computing_behind(source)
    again = AsOf(source)  # the next rerun
    current = [again.compliance_rates(F), again.record_count()]
    assert again.served.oldest is None and again.served.stale == 0
    fresh = exact(pg)
    pd.testing.assert_frame_equal(current[0], fresh.compliance_rates(F))
    assert current[1] == fresh.record_count() == 10
    if shared:  # computed in the background for a person: stored, marked asked (the warmer
        with pg.connect() as conn:  # replays it after the next write)
            asked = conn.scalars(select(FigureResult.asked_at).where(
                FigureResult.figures_version == source.token)).all()
        assert asked and all(a is not None for a in asked)


def test_a_source_used_directly_is_exact(pg: Engine) -> None:
    """The default (CLI reports, exports, the committee report, the alert refresh): the
    same process with the older result in memory and in the table computes the current one."""
    source = SqlSource(pg)
    source.compliance_rates(F)
    AsOf(source).compliance_rates(F)  # the page's wrapper does not change the source
    a_new_record(pg)
    with background_held():
        found = source.compliance_rates(F)
        assert source.queries == 2
    pd.testing.assert_frame_equal(found, exact(pg).compliance_rates(F))
    assert source.record_count() == 10


def test_a_tampered_older_row_is_never_served(pg: Engine) -> None:
    SqlSource(pg).compliance_rates(NARROW, "physician")
    a_new_record(pg)
    with pg.begin() as conn:
        conn.execute(update(FigureResult).values(payload=pickle.dumps(_Boom())))
    RAN.clear()
    source = SqlSource(pg)
    page = AsOf(source)
    with background_held():
        found = page.compliance_rates(NARROW, "physician")
    assert not RAN.is_set()
    assert source.queries == 1 and page.served.oldest is None  # computed in the request
    pd.testing.assert_frame_equal(found, exact(pg).compliance_rates(NARROW, "physician"))


def test_a_figure_never_computed_is_computed_in_the_request(pg: Engine) -> None:
    SqlSource(pg).compliance_rates(F)
    a_new_record(pg)
    source = SqlSource(pg)
    page = AsOf(source)
    with background_held():
        found = page.technique_use(NARROW)
    assert source.queries == 1 and page.served.oldest is None
    assert not computing_behind(source)
    pd.testing.assert_frame_equal(found, exact(pg).technique_use(NARROW))


def test_a_call_never_mixes_an_older_input_into_a_current_figure(pg: Engine) -> None:
    """The scorecard reads the local DRLs: only those were computed before the write, so the
    call would serve them older and compute the scorecard from them; it runs again exactly."""
    SqlSource(pg).local_drls(NARROW, ("dap_gycm2",))
    a_new_record(pg)
    source = SqlSource(pg)
    page = AsOf(source)
    with background_held():
        found = page.physician_scorecard(NARROW)
    assert page.served.oldest is None and page.served.stale == 0
    # the local DRLs, the records' period (its counts' probe) and the scorecard, all current
    assert source.queries == 3
    pd.testing.assert_frame_equal(found, exact(pg).physician_scorecard(NARROW))


def test_a_call_that_failed_in_the_background_is_computed_in_the_request(
        pg: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """The page then shows the error it would show without older figures, not older figures
    forever; once the computation works again, it is computed."""
    expected = SqlSource(pg).technique_use(F)
    a_new_record(pg)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise ValueError("a figure that cannot be computed now")
    monkeypatch.setattr(counts, "technique_use", broken)
    source = SqlSource(pg)
    page = AsOf(source)
    pd.testing.assert_frame_equal(page.technique_use(F), expected)  # older, at once
    wait_for_warmer(120)  # the background computation fails (logged)
    again = AsOf(source)
    with pytest.raises(ValueError, match="cannot be computed now"):
        again.technique_use(F)
    monkeypatch.undo()
    pd.testing.assert_frame_equal(AsOf(source).technique_use(F),
                                  exact(pg).technique_use(F))


def test_a_figure_read_while_computing_another_is_exact(pg: Engine) -> None:
    """The p-chart's computation reads the period (date_range): exact, not older."""
    SqlSource(pg).date_range()
    a_new_record(pg)
    source = SqlSource(pg)
    page = AsOf(source)
    with background_held():
        chart = page.p_chart(F)
    assert page.served.oldest is None
    pd.testing.assert_frame_equal(chart, exact(pg).p_chart(F))


def test_what_the_page_says_of_an_older_version(pg: Engine) -> None:
    old = SqlSource(pg).token
    a_new_record(pg, 1)
    update_setting(pg, cli_actor(), "duplicate_window_minutes", 45)
    with pg.connect() as conn:
        when, since = changes_since(conn, old, SqlSource(pg).token)
    assert since == 2 and when is not None
    assert abs(when.replace(tzinfo=when.tzinfo or UTC) - datetime.now(UTC)) < timedelta(hours=1)


def rows(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(FigureResult.figures_version,
                                        FigureResult.key_sha256)))


def test_prune_keeps_each_keys_newest_row_for_a_while(pg: Engine) -> None:
    SqlSource(pg).compliance_rates(NARROW, "room")  # asked once, long ago
    first = SqlSource(pg).token
    for n in range(KEEP_VERSIONS + 1):
        SqlSource(pg).compliance_rates(F, "room")  # asked at every version
        a_new_record(pg, n)
    with pg.connect() as conn:
        prune(conn)
    kept = rows(pg)
    later = {key for version, key in kept if version > first}
    assert len({v for v, _ in kept}) == KEEP_VERSIONS + 1  # the latest three, and the first
    oldest = [key for version, key in kept if version == first]
    assert oldest and not set(oldest) & later  # of it, only what was asked nowhere since
    page = AsOf(SqlSource(pg))
    with background_held():
        page.compliance_rates(NARROW, "room")
        assert page.served.oldest == first
        with pg.begin() as conn:  # computed longer ago than STALE_KEEP_DAYS: pruned
            conn.execute(update(FigureResult).where(FigureResult.figures_version == first)
                         .values(computed_at=datetime.now(UTC)
                                 - timedelta(days=STALE_KEEP_DAYS + 1)))
        with pg.connect() as conn:
            prune(conn)
            assert not conn.scalar(select(func.count()).where(
                FigureResult.figures_version == first))
