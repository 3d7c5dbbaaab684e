"""On a demo set (audit.demo: eight physicians, two sites, ultrasound-guided injections, BMI,
C-arm operators, complications) the SQL figures equal the analysis frame's for every figure
and filter combination: period, site, room, physician, procedure, their combinations and an
empty result; and the counts the Alerts page divides by, and the SRDL alerts the stored alerts
hold, are the records SQL counts. PostgreSQL only (percentile_cont), asked for directly."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import date

import pytest
from sqlalchemy import Engine, event, func, select

from audit.alerts.refresh import refresh_alerts
from audit.analytics.snapshot import Snapshot, load_snapshot, options
from audit.analytics.source import FrameSource
from audit.analytics.sql import summary_counts
from audit.analytics.sql.source import SqlSource
from audit.demo import generate
from audit.errors import ValidationFailed
from audit.filters import Filters
from audit.storage.engine import make_engine, read_session
from audit.storage.models import Alert
from audit.vocab import AlertKind, AlertStatus
from tests.analytics.sql_figures import (
    FIGURES,
    assert_compliance_source,
    assert_every_figure_equal,
    assert_same,
)
from tests.conftest import Databases

pytestmark = pytest.mark.slow  # 2500 demo procedures, every figure under 8 filters


@pytest.fixture(scope="module")
def demo(databases: Databases) -> Iterator[tuple[Engine, Snapshot]]:
    engine = make_engine(databases.postgresql())
    generate(engine, procedures=2500, seed=21, until=date(2026, 6, 30))
    yield engine, load_snapshot(engine)
    engine.dispose()


def cases(snap: Snapshot) -> list[Filters]:
    names = options(snap)
    return [
        Filters(),
        Filters.days(date(2025, 10, 1), date(2026, 3, 31)),
        Filters(sites=(names["sites"][0],)),
        Filters(rooms=(names["rooms"][-1],), physicians=tuple(names["physicians"][:3])),
        Filters(procedures=("TFESI", "SIJ", "FACET")),
        Filters.days(date(2026, 1, 1), None, sites=(names["sites"][-1],),
                     procedures=(names["procedures"][0],)),
        Filters(physicians=(names["physicians"][1],), procedures=("MBB",)),
        # months cut at both ends: the summaries' day rows there, month rows between
        Filters.days(date(2025, 11, 12), date(2026, 4, 20), rooms=(names["rooms"][0],)),
        Filters.days(date(2030, 1, 1), date(2030, 12, 31)),  # empty
    ]


def test_every_figure_equals_the_frames_on_the_demo(demo: tuple[Engine, Snapshot]) -> None:
    engine, snap = demo
    frame, sql = FrameSource(snap, engine), SqlSource(engine)
    found = cases(snap)
    assert assert_every_figure_equal(frame, sql, found) == len(found) * len(FIGURES)
    assert sql.options() == frame.options() and sql.date_range() == frame.date_range()
    assert sql.record_count() == frame.record_count() == len(snap.records)


def test_the_compliance_counts_come_from_the_summary_on_the_demo(
        demo: tuple[Engine, Snapshot]) -> None:
    # Each case's compliance tables read from the daily summary, no scan of the record facts,
    # exactly the scan's tables; a technologist filter scans.
    engine, snap = demo
    for filters in cases(snap):
        assert_compliance_source(engine, filters, summary_counts.GROUPINGS)
    technologist = str(snap.technologists.iloc[0])  # a username, as the filter takes
    assert_compliance_source(engine, Filters(technologists=(technologist,)), ())


def test_the_demo_has_what_the_figures_must_handle(demo: tuple[Engine, Snapshot]) -> None:
    sql = SqlSource(demo[0])
    free = sql.radiation_free_share(Filters())
    assert free["radiation_free"].sum() > 0  # ultrasound-guided records, in no dose figure
    assert sql.complication_rates(Filters()).iloc[0]["complications"] > 0
    bands = sql.dose_statistics(Filters(), by=("bmi_band",), quantities=("dap_gycm2",))
    assert len(bands) >= 4
    card = sql.adjusted_scorecard(Filters())
    assert card["adjusted_ratio"].notna().sum() >= 6


def test_alert_counts_rest_on_the_same_records(demo: tuple[Engine, Snapshot]) -> None:
    engine, snap = demo
    refresh_alerts(engine, snap)
    sql = SqlSource(engine)
    for filters in cases(snap):
        flags = sql.safety_flags(filters).iloc[0]
        # what alert_rates divides by: the final records under the filters
        assert flags["records"] == int(filters.mask(snap).sum())
    with read_session(engine) as session:
        srdl = session.scalar(
            select(func.count(func.distinct(Alert.procedure_id)))
            .where(Alert.kind == AlertKind.SRDL.value,
                   Alert.status != AlertStatus.WITHDRAWN.value))
    assert srdl == sql.safety_flags(Filters()).iloc[0]["srdl_reached"] > 0


def test_narrowing_the_dose_page_to_procedures_computes_nothing(
        demo: tuple[Engine, Snapshot]) -> None:
    # The Dose page's figures grouped by procedure, asked without a procedure filter, are
    # cut to the procedures a filter then names: no new computation, and the frame's figures
    # under that filter. The histogram of one procedure is kept under the filters narrowed to
    # it, so a filter that includes it finds it too.
    engine, snap = demo
    frame, sql = FrameSource(snap, engine), SqlSource(engine, shared=False)
    period = Filters.days(date(2025, 10, 1), date(2026, 3, 31))
    asks = [("dose distribution", lambda s, f: s.dose_distribution(f, "kap_corrected_gycm2")),
            ("by levels", lambda s, f: s.dose_statistics(f, ("procedure", "levels"),
                                                         ("dap_gycm2",))),
            ("per level", lambda s, f: s.dose_statistics(f, ("procedure", "levels"),
                                                         ("dap_gycm2",), per_level=True)),
            ("monthly medians", lambda s, f: s.monthly_medians(f, "dap_gycm2")),
            ("by physician, every quantity",
             lambda s, f: s.dose_statistics(f, ("procedure", "physician"))),
            ("TFESI histogram", lambda s, f: s.dose_histogram(f, "TFESI"))]
    for _, ask in asks:
        ask(sql, period)
    computed = sql.queries
    narrowed = replace(period, procedures=("TFESI", "MBB"))
    for name, ask in asks:
        shown = ask(sql, narrowed)
        assert len(shown), name
        assert_same(name, narrowed, ask(frame, narrowed), shown)
    assert sql.queries == computed  # every one cut or found, none computed
    assert sql.dose_histogram(replace(period, procedures=("MBB",)), "TFESI").empty
    with pytest.raises(ValidationFailed):
        sql.dose_distribution(replace(period, procedures=("TFESI", "NOSUCH")))
    other = replace(period, procedures=("SIJ",), physicians=(snap.physicians.iloc[0],))
    assert_same("not held: computed", other, frame.dose_distribution(other),
                sql.dose_distribution(other))
    assert sql.queries == computed + 1


def test_a_histogram_takes_its_edges_from_the_distribution_held(
        demo: tuple[Engine, Snapshot]) -> None:
    # The Dose page shows the distribution, then one procedure's histogram: its edges come
    # from the distribution's least and greatest positive value of that procedure (the same
    # records), so the histogram reads the records once, not twice; the bins are those of a
    # source that never held the distribution, and of the frame.
    engine, snap = demo
    frame = FrameSource(snap, engine)
    period = Filters.days(date(2025, 10, 1), date(2026, 3, 31))
    cases = [(Filters(), "TFESI", "kap_corrected_gycm2"), (period, "MBB", "fluoro_time_s"),
             (replace(period, procedures=("TFESI", "SIJ")), "SIJ", "kap_corrected_gycm2"),
             (Filters(physicians=(snap.physicians.iloc[0],)), "CAUDAL", "air_kerma_mgy")]
    for filters, procedure, quantity in cases:
        held, fresh = SqlSource(engine, shared=False), SqlSource(engine, shared=False)
        shown = held.dose_distribution(filters, quantity)
        assert "positive_low" not in shown.columns  # what the page shows: the frame's table
        assert_same("distribution", filters, frame.dose_distribution(filters, quantity), shown)
        before = held.queries
        statements: list[str] = []

        def note(conn: object, cursor: object, statement: str, *rest: object,
                 statements: list[str] = statements) -> None:
            statements.append(statement)
        event.listen(engine, "before_cursor_execute", note)
        try:
            bins = held.dose_histogram(filters, procedure, quantity)
        finally:
            event.remove(engine, "before_cursor_execute", note)
        assert held.queries == before + 1 and len(bins) == 40 and bins["count"].sum() > 0
        # no second pass over the records for the positive span (min/max FILTER (WHERE v > 0))
        assert not [s for s in statements if "min(" in s and "max(" in s and "FILTER" in s], \
            (procedure, quantity)
        # counted by the scan's width_bucket, or from the dose buckets (bucket_quantiles.histogram)
        assert [s for s in statements if "width_bucket" in s or "dose_bucket" in s]
        assert_same("histogram", filters, fresh.dose_histogram(filters, procedure, quantity),
                    bins)
        assert_same("histogram", filters, frame.dose_histogram(filters, procedure, quantity),
                    bins)
