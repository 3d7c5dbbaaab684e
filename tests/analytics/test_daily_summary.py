"""The daily summary: its monthly counts equal the analysis frame's (the p-chart's eligible,
compliant and excepted records per month, and the records per month) under several filter
combinations, after the migration's backfill and after creates, amends that move a record to
another month, and voids; on both databases."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine, func, select

from audit.analytics.compliance import compliance, p_chart
from audit.analytics.daily_summary import monthly_counts, refresh_summary
from audit.analytics.snapshot import load_snapshot, options
from audit.auth import cli_actor
from audit.demo import generate
from audit.filters import Filters
from audit.log.service import ProcedureLog
from audit.storage.engine import read_session
from audit.storage.models import DailySummary, Procedure
from tests.conftest import valid_record


def frame_counts(engine: Engine, filters: Filters) -> pd.DataFrame:
    """Per month with eligible records: eligible, compliant, excepted, from the frame."""
    snap = load_snapshot(engine)
    table = compliance(snap, filters, by="month")
    return table[["month", "eligible", "compliant", "excepted"]].reset_index(drop=True)


def summary_counts(engine: Engine, filters: Filters) -> pd.DataFrame:
    found = monthly_counts(engine, filters)
    found = found[found["eligible"] > 0]
    return found[["month", "eligible", "compliant", "excepted"]].reset_index(drop=True)


def cases(engine: Engine) -> list[Filters]:
    names = options(load_snapshot(engine))
    return [Filters(), Filters(sites=(names["sites"][0],)),
            Filters(procedures=tuple(names["procedures"][:2])),
            Filters(rooms=(names["rooms"][-1],), physicians=tuple(names["physicians"][:3])),
            Filters.days(date(2025, 9, 1), date(2026, 2, 28)),
            Filters.days(date(2026, 1, 1), None, sites=(names["sites"][-1],),
                         procedures=(names["procedures"][0],)),
            # months cut at both ends (their days), whole ones between (month rows), and a
            # period inside one month (days only)
            Filters.days(date(2025, 10, 17), date(2026, 3, 9)),
            Filters.days(None, date(2026, 2, 13), physicians=tuple(names["physicians"][:2])),
            Filters.days(date(2026, 4, 2), date(2026, 4, 29))]


def assert_months_are_their_days(engine: Engine) -> None:
    """Every month row is the sum of its month's day rows, key by key, and no month lacks
    its row or keeps one whose days are gone."""
    refresh_summary(engine)
    with read_session(engine) as session:
        rows = pd.DataFrame(session.execute(select(DailySummary.__table__)).all(),
                            columns=[c.key for c in DailySummary.__table__.columns])
    keys = ["site_id", "room_id", "procedure_type_id", "physician_id"]
    rows["month"] = pd.to_datetime(rows["day"]).dt.to_period("M").astype(str)
    sums = [c for c in rows.columns if c not in ("whole_month", "day", "month", *keys)]
    days = rows[~rows["whole_month"].astype(bool)]
    months = rows[rows["whole_month"].astype(bool)]
    assert (pd.to_datetime(months["day"]).dt.day == 1).all()
    expected = days.groupby(["month", *keys])[sums].sum(min_count=1)
    found = months.set_index(["month", *keys])[sums].sort_index()
    assert len(days) > len(months) > 0
    pd.testing.assert_frame_equal(found.astype(float), expected.astype(float), rtol=1e-12)


def assert_equal_everywhere(engine: Engine) -> None:
    assert_months_are_their_days(engine)
    for filters in cases(engine):
        expected, found = frame_counts(engine, filters), summary_counts(engine, filters)
        counts = {c: np.int64 for c in found.columns[1:]}
        pd.testing.assert_frame_equal(found.astype(counts), expected.astype(counts),
                                      check_dtype=False, obj=repr(filters))
    snap = load_snapshot(engine)
    chart = p_chart(snap, Filters())
    found = monthly_counts(engine).set_index("month")
    assert (found.loc[chart["month"], "eligible"] - found.loc[chart["month"], "excepted"]
            ).tolist() == chart["n"].tolist()
    per_month = snap.records.groupby("month").size()
    assert found["procedures"].sum() == int(per_month.sum()) == len(snap.records)


def test_monthly_counts_equal_the_frames(engine: Engine) -> None:
    generate(engine, procedures=1500, seed=4, until=date(2026, 6, 30))
    assert_equal_everywhere(engine)

    log = ProcedureLog(engine)
    created = log.log(valid_record(accession_number="D1",
                                   performed_at="2026-05-03T23:30:00+00:00",
                                   confirmation_views=["AP"]),
                      cli_actor(), confirm_warnings=True, create_missing=True).record_id
    with read_session(engine) as session:
        first, second = session.scalars(select(Procedure.id).order_by(Procedure.id).limit(2))
    log.amend(first, {"performed_at": "2026-06-15T10:00:00+00:00"}, cli_actor(), version=1,
              reason="wrong date", confirm_warnings=True)
    log.void(second, cli_actor(), version=1, reason="duplicate")
    log.amend(created, {"contrast_confirmation": "not_confirmed", "confirmation_views": None},
              cli_actor(), version=1, reason="no contrast after all", confirm_warnings=True)
    assert_equal_everywhere(engine)


def test_refresh_is_incremental_and_the_filters_it_cannot_answer_are_refused(
        engine: Engine) -> None:
    generate(engine, procedures=300, seed=5, until=date(2026, 6, 30))
    refresh_summary(engine)
    with read_session(engine) as session:
        rows = session.scalar(select(func.count()).select_from(DailySummary))
    assert rows > 0
    version = refresh_summary(engine)
    assert refresh_summary(engine) == version  # nothing new: nothing done
    with pytest.raises(ValueError, match="summary"):
        monthly_counts(engine, Filters(technologists=("tech1",)))
    assert monthly_counts(engine, Filters(physicians=("No such physician",))).empty
