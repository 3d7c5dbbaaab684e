"""On PostgreSQL with figures from SQL (issue 16), the committee report's figures equal the
analysis frame's, table by table, on a demo set (named and pseudonymised, all sites and one), and
the report as printed (its Typst source and the p-chart's SVG) is the same apart from what is
inherently different: the data version it names and when it was prepared."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pandas as pd
import pytest
from sqlalchemy import Engine

from audit.analytics.snapshot import load_snapshot
from audit.analytics.source import FrameSource
from audit.analytics.sql.source import SqlSource
from audit.auth import Actor
from audit.demo import generate
from audit.documents.committee import committee_source
from audit.documents.committee_figures import CommitteeFigures, gather
from audit.storage.engine import make_engine
from audit.vocab import Role
from tests.conftest import Databases

QUALITY = Actor("quality", Role.QUALITY_OFFICER)
FIRST, LAST = date(2026, 1, 1), date(2026, 6, 30)
TABLES = ("completeness", "compliance", "p_chart", "dose", "drl", "scorecard", "alerts",
          "alert_rates", "safety")


@pytest.fixture(scope="module")
def pg_demo(databases: Databases) -> Iterator[Engine]:
    engine = make_engine(databases.postgresql())
    generate(engine, procedures=1500, seed=5, until=date(2026, 11, 30))
    yield engine
    engine.dispose()


def assert_same_figures(sql: CommitteeFigures, frame: CommitteeFigures) -> None:
    assert (sql.records, sql.sites, sql.filters) == (frame.records, frame.sites, frame.filters)
    assert sql.physician_names == frame.physician_names
    tables = [(name, getattr(sql, name), getattr(frame, name)) for name in TABLES]
    tables += [(f"compliance by {by}", sql.breakdowns[by], frame.breakdowns[by])
               for by in frame.breakdowns]
    for name, from_sql, from_frame in tables:
        assert len(from_frame), name  # the demo set fills every table
        pd.testing.assert_frame_equal(
            from_sql.reset_index(drop=True), from_frame.reset_index(drop=True),
            check_dtype=False, check_index_type=False, check_column_type=False, rtol=1e-9,
            atol=0, obj=name)


@pytest.mark.parametrize("pseudonymise", [False, True])
def test_the_reports_figures_from_sql_equal_the_frames(pg_demo: Engine,
                                                       pseudonymise: bool) -> None:
    frame_source = FrameSource(load_snapshot(pg_demo), pg_demo)
    sites = ((), (str(frame_source.lookups.sites.sort_values().iloc[0]),))
    for chosen in sites:
        frame = gather(pg_demo, QUALITY, FIRST, LAST, sites=chosen, pseudonymise=pseudonymise,
                       source=frame_source)
        sql = gather(pg_demo, QUALITY, FIRST, LAST, sites=chosen, pseudonymise=pseudonymise,
                     source=SqlSource(pg_demo, shared=False))
        assert_same_figures(sql, frame)


def test_the_printed_report_is_the_same(pg_demo: Engine) -> None:
    frame = gather(pg_demo, QUALITY, FIRST, LAST,
                   source=FrameSource(load_snapshot(pg_demo), pg_demo))
    sql = gather(pg_demo, QUALITY, FIRST, LAST, source=SqlSource(pg_demo, shared=False))
    # inherently different: the version the figures are of (SQL: the last event that can change
    # a figure; the frame: the last event of any kind) and the time the report was prepared
    sql.token, sql.generated_at = frame.token, frame.generated_at
    (text_sql, files_sql), (text_frame, files_frame) = committee_source(sql), \
        committee_source(frame)
    assert "pchart.svg" in files_frame
    assert text_sql == text_frame
    assert files_sql == files_frame


def test_without_a_source_a_site_that_chose_sql_gets_sql(pg_demo: Engine,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's `report committee` and a call without a source follow FLUORO_AUDIT_FIGURES."""
    monkeypatch.setenv("FLUORO_AUDIT_FIGURES", "sql")
    made: list[SqlSource] = []
    original = SqlSource.__init__

    def recording(self: SqlSource, *args: object, **kwargs: object) -> None:
        original(self, *args, **kwargs)  # type: ignore[arg-type]
        made.append(self)

    monkeypatch.setattr(SqlSource, "__init__", recording)
    sql = gather(pg_demo, QUALITY, FIRST, LAST)
    assert made and made[0].queries > 0
    monkeypatch.undo()
    frame = gather(pg_demo, QUALITY, FIRST, LAST)
    assert_same_figures(sql, frame)
