"""On PostgreSQL the dashboards' figures come from SQL (audit.analytics.sql): on the
hand-checked records (analytics_data) they equal the analysis frame's for every figure, every
grouping and several filter combinations, including an empty one, and say the same about
unknown names. PostgreSQL only (percentile_cont): the database is asked for directly, so the
test runs, never skips, wherever the suite's PostgreSQL is configured."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest
from sqlalchemy import Engine, text

from audit.analytics import source as source_module
from audit.analytics.snapshot import load_snapshot
from audit.analytics.source import (
    ENV_FIGURES,
    FrameSource,
    figure_source,
    record_estimate,
    uses_sql,
)
from audit.analytics.sql import summary_counts
from audit.analytics.sql.source import SqlSource
from audit.auth import cli_actor
from audit.errors import ValidationFailed
from audit.filters import Filters
from audit.log.service import ProcedureLog
from audit.storage.engine import make_engine
from tests.analytics import analytics_data
from tests.analytics.sql_figures import (
    FIGURES,
    assert_compliance_source,
    assert_every_figure_equal,
    assert_same,
)
from tests.conftest import Databases, valid_record

CASES = [
    Filters(),
    Filters.days(date(2026, 2, 1), date(2026, 2, 28)),
    Filters(rooms=("R3",), physicians=("Dr. B",)),
    Filters(procedures=("TFESI",)),
    Filters(sites=(analytics_data.SITE,), rooms=("R1", "R2")),
    Filters.days(date(2026, 3, 1), None, physicians=("Dr. A",)),
    Filters.days(date(2025, 1, 1), date(2025, 12, 31)),  # no records at all
    Filters(technologists=("tech1",)),
]


@pytest.fixture(scope="module")
def sources(pg_engine: Engine) -> tuple[FrameSource, SqlSource]:
    return FrameSource(load_snapshot(pg_engine), pg_engine), SqlSource(pg_engine)


def test_every_figure_equals_the_frames(sources: tuple[FrameSource, SqlSource]) -> None:
    frame, sql = sources
    assert assert_every_figure_equal(frame, sql, CASES) == len(CASES) * len(FIGURES)


def test_investigation_levels_equal_the_frames(sources: tuple[FrameSource, SqlSource]) -> None:
    frame, sql = sources
    pd.testing.assert_frame_equal(sql.investigation_levels(), frame.investigation_levels(),
                                  check_exact=True)
    assert sql.frame is None and frame.frame is frame.snap


def test_hand_checked_values_from_sql(sources: tuple[FrameSource, SqlSource]) -> None:
    _, sql = sources
    overall = sql.compliance_rates(Filters()).iloc[0]
    assert overall[["eligible", "compliant", "excepted", "non_compliant"]].tolist() == \
        [8, 3, 1, 4]
    assert overall["rate"] == pytest.approx(3 / 7)
    tfesi = sql.dose_statistics(Filters()).set_index("procedure").loc["TFESI"]
    assert tfesi["dap_gycm2_median"] == 3.5 and tfesi["dap_gycm2_n"] == 6
    assert sql.record_count() == 9
    assert sql.date_range() == (date(2026, 1, 10), date(2026, 3, 10))
    assert sql.options()["rooms"] == ["R1", "R2", "R3"]
    assert sql.p_chart(Filters())["n"].tolist() == [2, 2, 3]


def test_unknown_names_and_inverted_periods_are_the_same_errors(
        sources: tuple[FrameSource, SqlSource]) -> None:
    frame, sql = sources
    for bad in (Filters(physicians=("Dr. Nobody",)), Filters(rooms=("R9",)),
                Filters.days(date(2026, 3, 1), date(2026, 2, 1))):
        with pytest.raises(ValidationFailed) as on_frame:
            frame.compliance_rates(bad)
        with pytest.raises(ValidationFailed) as on_sql:
            sql.compliance_rates(bad)
        assert on_sql.value.errors == on_frame.value.errors


def test_results_are_reused_until_the_data_changes(pg_engine: Engine) -> None:
    sql = SqlSource(pg_engine)
    first = sql.compliance_rates(Filters(), "physician")
    computed = sql.queries
    first.loc[0, "eligible"] = -1  # a page changing its copy changes nothing cached
    again = sql.compliance_rates(Filters(), "physician")
    assert sql.queries == computed and again["eligible"].min() > 0
    analytics_data_record = analytics_data.RECORDS[0] | {"accession_number": "NEW1",
                                                          "patient_id": "HB900"}
    ProcedureLog(pg_engine).log(analytics_data_record, cli_actor(), confirm_warnings=True)
    after = sql.compliance_rates(Filters(), "physician")
    assert sql.queries == computed + 1
    assert after["eligible"].sum() == again["eligible"].sum() + 1
    frame = FrameSource(load_snapshot(pg_engine), pg_engine)
    assert_same("after a new record", Filters(), frame.compliance_rates(Filters(), "physician"),
                after)
    pd.testing.assert_frame_equal(sql.p_chart(Filters()), frame.p_chart(Filters()),
                                  check_dtype=False)


def test_a_pages_groupings_are_one_query(pg_engine: Engine) -> None:
    # this process's computations only (the table every process shares may hold them)
    frame = FrameSource(load_snapshot(pg_engine), pg_engine)
    sql = SqlSource(pg_engine, shared=False)
    f = Filters(procedures=("TFESI",))
    found = {by: sql.dose_statistics(f, by=("procedure", by), quantities=("dap_gycm2",))
             for by in ("levels", "weight_band", "bmi_band", "operator")}
    per_level = sql.dose_statistics(f, by=("procedure", "levels"), quantities=("dap_gycm2",),
                                    per_level=True)
    monthly = sql.monthly_medians(f, "dap_gycm2")
    # one computation for the Case mix tab's five tables, one for the Over time tab's
    assert sql.queries == 2
    one = sql.local_drls(f, ("dap_gycm2",))  # the Dose page's first tab: that quantity only
    sql.local_drls(Filters(physicians=("Dr. A",), procedures=("TFESI",)), ("dap_gycm2",))
    assert sql.queries == 3  # per period, whatever the other filters: computed once
    every = sql.local_drls(f)  # its Reference levels tab: every quantity in one scan
    assert sql.queries == 4
    assert_same("local DRLs, one quantity", f, frame.local_drls(f, ("dap_gycm2",)), one)
    assert_same("per level", f, frame.dose_statistics(
        f, by=("procedure", "levels"), quantities=("dap_gycm2",), per_level=True), per_level)
    assert_same("monthly", f, frame.monthly_medians(f, "dap_gycm2"), monthly)
    assert_same("by BMI band", f, frame.dose_statistics(
        f, by=("procedure", "bmi_band"), quantities=("dap_gycm2",)), found["bmi_band"])
    assert_same("local DRLs", f, frame.local_drls(f), every)
    for by in (None, "room", "technologist"):
        sql.completeness(f, by)
    flags = sql.safety_flags(f)
    # the Data quality page's tables and safety flags: one read of the count summary (and the
    # daily summary's period, for the month edges' probe; tests/analytics/test_count_summary)
    assert sql.queries == 6
    assert_same("safety flags", f, frame.safety_flags(f), flags)


def test_by_default_the_source_follows_the_size_and_the_site_may_choose(
        pg_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_FIGURES, raising=False)
    monkeypatch.setattr(source_module, "_estimates", {})
    with pg_engine.begin() as conn:  # what autovacuum does after many writes
        conn.execute(text("ANALYZE procedure"))
        stored = conn.scalar(text("SELECT count(*) FROM procedure"))
    records = record_estimate(pg_engine)
    assert records == stored > 0  # the planner's estimate, exact after ANALYZE
    assert not uses_sql(pg_engine) and isinstance(figure_source(pg_engine), FrameSource)
    monkeypatch.setattr(source_module, "SQL_FROM_RECORDS", records)  # a site this size
    assert uses_sql(pg_engine) and isinstance(figure_source(pg_engine), SqlSource)
    monkeypatch.setenv(ENV_FIGURES, "frame")
    assert not uses_sql(pg_engine)
    monkeypatch.setenv(ENV_FIGURES, "SQL")
    assert uses_sql(pg_engine) and isinstance(figure_source(pg_engine), SqlSource)
    monkeypatch.setenv(ENV_FIGURES, "duckdb")
    with pytest.raises(ValidationFailed) as refused:
        uses_sql(pg_engine)
    assert refused.value.errors[0].field == ENV_FIGURES
    assert "'duckdb' is not allowed; allowed: auto, frame, sql" in refused.value.errors[0].message


def test_the_source_follows_the_database(pg_engine: Engine, databases: Databases,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_FIGURES, "sql")
    assert uses_sql(pg_engine) and isinstance(figure_source(pg_engine), SqlSource)
    lite = make_engine(databases.sqlite())
    try:
        assert not uses_sql(lite) and isinstance(figure_source(lite), FrameSource)
        with pytest.raises(ValueError, match="PostgreSQL"):
            SqlSource(lite)
    finally:
        lite.dispose()


def test_records_in_the_last_half_second_of_a_month_count_as_the_frame_counts_them(
        databases: Databases) -> None:
    # The frame rounds an instant to whole seconds: 23:59:59.7 on 31 January is February
    # there (its month and its period); the SQL figures, the p-chart included (which then does
    # not read the daily summary, whose days are not rounded), say the same.
    engine = make_engine(databases.postgresql())
    try:
        log = ProcedureLog(engine)
        for n, moment in enumerate(("2026-01-31T23:59:59.700+00:00",
                                    "2026-01-31T23:59:59.200+00:00",
                                    "2026-02-10T12:00:00+00:00"), start=1):
            log.log(valid_record(performed_at=moment, accession_number=f"EDGE{n}"),
                    cli_actor(), confirm_warnings=True, create_missing=True)
        frame, sql = FrameSource(load_snapshot(engine), engine), SqlSource(engine)
        for filters in (Filters(), Filters.days(None, date(2026, 1, 31)),
                        Filters.days(date(2026, 2, 1), None)):
            for name, call in FIGURES:
                assert_same(name, filters, call(frame, filters), call(sql, filters))
        assert sql.p_chart(Filters())["n"].tolist() == [1, 2]
        # The summary answers the groupings without a month (a month's edge is no period's
        # edge there); by month, and for a period starting or ending at that edge, the
        # facts are scanned.
        assert_compliance_source(engine, Filters(), ("physician", "room", "procedure",
                                                     "site", None))
        for filters in (Filters.days(None, date(2026, 1, 31)),
                        Filters.days(date(2026, 2, 1), None)):
            assert_compliance_source(engine, filters, ())
    finally:
        engine.dispose()


def test_the_compliance_counts_come_from_the_daily_summary(pg_engine: Engine) -> None:
    # Every case but the technologist's is one the summary answers (names it groups by, whole
    # days, no record at a half-second edge): no scan of the record facts, the scan's tables.
    for filters in CASES:
        assert_compliance_source(pg_engine, filters,
                                 () if filters.technologists else summary_counts.GROUPINGS)
    assert_compliance_source(pg_engine, Filters(record_ids=(1, 2, 3)), ())
