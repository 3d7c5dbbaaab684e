"""The physician scorecards' medians from the dose buckets (audit.analytics.sql.bucket_mixtures,
scorecard_buckets): KAP and time per level per physician and procedure, each physician's
observed, expected and case-mix-adjusted medians, equal to the scan's percentile_cont exactly
(every digit), read from the stratum cells and the few records of the buckets a median can
fall in, never by sorting the selected records; the scan where the buckets cannot answer;
still equal after writes. PostgreSQL only. The selection's arithmetic alone, against a sort,
is fuzzed in tests/analytics/test_bucket_arithmetic.py."""

from __future__ import annotations

from datetime import date
from functools import partial

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine, select, update

from audit.analytics.sql import (
    bucket_mixtures,
    count_summary,
    dose_buckets,
    scorecard,
    scorecard_buckets,
    scorecard_counts,
)
from audit.analytics.sql.facts import refresh_facts
from audit.analytics.sql.scope import Scope
from audit.analytics.sql.source import SqlSource
from audit.auth import cli_actor
from audit.demo import generate
from audit.filters import Filters
from audit.log.service import ProcedureLog
from audit.storage.models import DoseBucket, RecordFact
from tests.analytics.sql_figures import FACT_SCAN, statements
from tests.analytics.test_dose_buckets import ANSWERED, demo_filters
from tests.conftest import valid_record

SPLIT = dose_buckets.SPLIT


def assert_same_scorecards(engine: Engine, filters: Filters, answered: bool = True) -> None:
    """Both scorecards' medians from the buckets (no sort of the facts; their cells are read
    in PostgreSQL's binary format, past SQLAlchemy's events `statements` sees) or, where not
    `answered`, None; and the scorecards made with them equal to the scan's, exactly (the
    share with a known BMI to the last bit or so: PostgreSQL averages in numeric)."""
    dose_buckets.refresh_buckets(engine)  # a refresh reads the facts: not the figure's own
    sql = SqlSource(engine, shared=False)
    count_summary.refresh_counts(engine, lookups=sql.lookups)
    where = f"under {filters.describe()}"
    asked = [(q, partial(scorecard_buckets.adjusted_medians, engine, sql.lookups, filters, q))
             for q in SPLIT]
    asked.append(("per level", partial(scorecard_buckets.per_level_medians, engine,
                                       sql.lookups, filters)))
    levels = sql._levels(filters, "dap_gycm2")
    asked.append(("counts", partial(scorecard_counts.physician_counts, engine,
                                    sql._summary_exact, sql.lookups, filters, levels)))
    for name, medians in asked:
        with statements(engine) as seen:
            found = medians()
        assert (found is not None) == answered, f"{name} {where}"
        if found is not None:
            assert not [s for s in seen if FACT_SCAN.search(s) and "percentile" in s], where
            if not (filters.start or filters.before):  # no cut days: no count of the facts
                # but within a bucket's value range (the one a reference level cuts)
                assert not [s for s in seen if FACT_SCAN.search(s) and "GROUP BY" in s
                            and "record_fact.dap_gycm2 >=" not in s], where
    refresh_facts(engine)
    with engine.connect() as conn:
        scope = Scope.open(conn, sql.lookups, filters)
        for quantity in SPLIT:
            exact = scorecard.adjusted_scorecard(scope, quantity)
            got = scorecard.adjusted_scorecard(
                scope, quantity, partial(scorecard_buckets.adjusted_medians, engine))
            pd.testing.assert_frame_equal(got.drop(columns=["bmi_known_share"]),
                                          exact.drop(columns=["bmi_known_share"]),
                                          check_exact=True, obj=f"{quantity} {where}")
            np.testing.assert_allclose(got["bmi_known_share"], exact["bmi_known_share"],
                                       rtol=1e-14)
        levels = sql._levels(filters, "dap_gycm2")
        work = scorecard_counts.physician_work(engine, sql._summary_exact, lambda: levels)
        pd.testing.assert_frame_equal(work(scope), scorecard.physician_scorecard(scope, levels),
                                      check_exact=True, obj=f"the scorecard {where}")
        ids = np.array(sorted(sql.lookups.physicians.index), dtype=np.int64)
        exact_ratios = scorecard._per_level_ratios(scope, ids)
        got_ratios = scorecard._per_level_ratios(
            scope, ids, partial(scorecard_buckets.per_level_medians, engine))
        for quantity, ratios in exact_ratios.items():
            np.testing.assert_array_equal(got_ratios[quantity], ratios,
                                          err_msg=f"per level {quantity} {where}")


#: (buckets a type, MERGE_FROM): every group planned on merged rows (0) or the default.
PLANS = [(4, 0), (512, bucket_mixtures.MERGE_FROM)]


@pytest.mark.parametrize(("buckets", "merge_from"), PLANS)
def test_the_scorecards_from_the_buckets_equal_the_scans(
        pg_engine: Engine, buckets: int, merge_from: int,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The hand-checked records: every filter the dose buckets answer, a room with a physician
    (the room x physician grain), periods cut inside months (their days counted from the
    facts); the brackets planned row by row and on merged rows."""
    monkeypatch.setattr(dose_buckets, "BUCKETS", buckets)  # in the rules: a rebuild
    monkeypatch.setattr(bucket_mixtures, "MERGE_FROM", merge_from)
    for filters in [*ANSWERED, Filters(rooms=("R1",), physicians=("Dr. A",)),
                    Filters.days(date(2026, 1, 1), date(2026, 2, 28), sites=("Main",))]:
        assert_same_scorecards(pg_engine, filters)


@pytest.mark.parametrize(("buckets", "merge_from"),
                         [(3, bucket_mixtures.MERGE_FROM), (64, 0), (512, 0)])
def test_a_demo_sets_scorecards_equal_the_scans(pg: Engine, buckets: int, merge_from: int,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """3,000 demo records over a year: mixtures of levels, BMI bands and procedures, ties,
    records without a value, whole and cut periods, physicians, rooms, a site with
    procedures; with 64 and 512 buckets every group's bracket planned on merged rows (the
    rows of a physician's procedure with the same divisor and bucket counted as one)."""
    monkeypatch.setattr(dose_buckets, "BUCKETS", buckets)
    monkeypatch.setattr(bucket_mixtures, "MERGE_FROM", merge_from)
    generate(pg, procedures=3000, seed=12, until=date(2026, 6, 30))
    sql = SqlSource(pg, shared=False)
    options = sql.options()
    for filters in [*demo_filters(sql),
                    Filters.days(date(2025, 11, 9), date(2026, 4, 22),
                                 procedures=tuple(options["procedures"][:2]))]:
        assert_same_scorecards(pg, filters)
    with pg.connect() as conn:  # the strata's cells: per physician, and per room x physician
        grains = set(conn.scalars(select(DoseBucket.grain).where(
            DoseBucket.dimension == dose_buckets.STRATUM).distinct()))
    assert grains == {dose_buckets.GRAIN_PHYSICIAN, dose_buckets.GRAIN_ROOM_PHYSICIAN}


def test_what_the_buckets_cannot_answer_is_scanned(pg_engine: Engine) -> None:
    """A technologist filter, voided records: the scan's figures (the same)."""
    for filters in [Filters(technologists=("tech1",)), Filters(include_voided=True),
                    Filters(rooms=("R3",), technologists=("tech1",))]:
        assert not bucket_mixtures.answerable(filters, "dap_gycm2")
        assert_same_scorecards(pg_engine, filters, answered=False)
    assert bucket_mixtures.answerable(Filters(rooms=("R3",), physicians=("Dr. B",)),
                                      "dap_gycm2")
    assert not bucket_mixtures.answerable(Filters(), "kap_corrected_gycm2")  # no strata


def test_a_stratum_median_of_zero_is_scanned(pg: Engine) -> None:
    """A stratum whose median is 0 makes its records' ratios infinite or no number (0 / 0):
    the scan's rule, so the scan answers."""
    log, actor = ProcedureLog(pg), cli_actor()
    for i, dap in enumerate((0.0, 0.0, 0.0, 1.5, 2.0)):
        log.log(valid_record(accession_number=f"Z{i}", dap_value=dap,
                             fluoro_time_s=20 + i, **({"levels": ["L5"]} if i == 4 else {})),
                actor, confirm_warnings=True, create_missing=True)
    sql = SqlSource(pg, shared=False)
    assert scorecard_buckets.adjusted_medians(pg, sql.lookups, Filters(), "dap_gycm2") is None
    assert scorecard_buckets.adjusted_medians(pg, sql.lookups, Filters(),
                                              "fluoro_time_s") is not None
    for quantity in ("dap_gycm2", "fluoro_time_s"):
        assert_same_scorecards_for(pg, quantity)


def assert_same_scorecards_for(engine: Engine, quantity: str) -> None:
    sql = SqlSource(engine, shared=False)
    with engine.connect() as conn:
        scope = Scope.open(conn, sql.lookups, Filters())
        exact = scorecard.adjusted_scorecard(scope, quantity)
        got = scorecard.adjusted_scorecard(
            scope, quantity, partial(scorecard_buckets.adjusted_medians, engine))
    pd.testing.assert_frame_equal(got.drop(columns=["bmi_known_share"]),
                                  exact.drop(columns=["bmi_known_share"]), check_exact=True)


def test_the_scorecards_follow_writes_and_a_tampered_fact_is_scanned(
        pg: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """After a log, an amend of date and levels, and a void, the medians still equal the
    scan's. The facts changed behind the app's back: a bucket read whose records no longer
    match its count is not picked from (the scan answers); three buckets a type, so that the
    medians' buckets hold several values and are read."""
    monkeypatch.setattr(dose_buckets, "BUCKETS", 3)
    generate(pg, procedures=600, seed=5, until=date(2026, 6, 30))
    log, actor = ProcedureLog(pg), cli_actor()
    assert_same_scorecards(pg, Filters())
    created = log.log(valid_record(accession_number="C1", dap_value=3.3, fluoro_time_s=41,
                                   levels=["L3", "L4", "L5"],
                                   performed_at="2026-05-31T23:30:00+00:00"),
                      actor, confirm_warnings=True, create_missing=True).record_id
    assert_same_scorecards(pg, Filters())
    log.amend(created, {"performed_at": "2026-06-01T10:00:00+00:00", "levels": ["L4"]},
              actor, version=1, reason="wrong date and levels", confirm_warnings=True)
    assert_same_scorecards(pg, Filters.days(date(2026, 6, 1), None))
    log.void(created, actor, version=2, reason="duplicate")
    assert_same_scorecards(pg, Filters())
    with pg.begin() as conn:  # every record's time moved a little: the buckets' bounds lie
        conn.execute(update(RecordFact).values(fluoro_time_s=RecordFact.fluoro_time_s + 0.01))
    sql = SqlSource(pg, shared=False)
    assert scorecard_buckets.per_level_medians(pg, sql.lookups, Filters()) is None
