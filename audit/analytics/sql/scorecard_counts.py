"""The physician scorecard's counts from the summaries instead of a scan of the record facts:
per physician the records, contrast compliance (eligible, compliant, excepted) and pulsed and
low-dose use (recorded, used) from the count summary (audit.analytics.sql.count_summary), and
the records above their procedure's reference level from the dose buckets
(scorecard_buckets.above_counts).

Why: those counts were one GROUP BY over every selected record's facts, 1.2-4.6 s at 10M records
before any median. They add up: the count summary holds them per day, room, procedure,
physician and technologist, and a month's rows where the period holds it whole.

When they answer: where the count summary answers the filters exactly (count_summary.answerable
and the half-second probe of the month and period edges) and the dose buckets answer the
physicians' figures (bucket_snapshot.scanned_because with `by_physician`: a room or site is
answered, by the room x physician cells). Otherwise None: the caller scans.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, func, select

from audit.analytics.daily_summary import period_rows
from audit.analytics.snapshot import Snapshot
from audit.analytics.sql import count_summary, counts, scorecard, scorecard_buckets
from audit.analytics.sql.bucket_snapshot import scanned_because
from audit.analytics.sql.scope import Scope
from audit.filters import Filters
from audit.storage.engine import without_jit
from audit.storage.models import CountSummary

#: Each part of the scorecard's counts (counts.counted_parts' parts) and the groups it keeps.
KEEPS: dict[str, str | None] = {"all": None, "above": "records", "technique": "records",
                                "compliance": "eligible"}
TECHNIQUE = ("pulsed_recorded", "pulsed", "low_dose_recorded", "low_dose")


def physician_counts(engine: Engine, summary_exact: Callable[[Connection, Filters], bool],
                     lookups: Snapshot, filters: Filters, levels: pd.DataFrame,
                     sums: Callable[[], pd.DataFrame | None] | None = None
                     ) -> tuple[np.ndarray, dict[str, pd.DataFrame]] | None:
    """counts.counted_parts' answer for the physician scorecard (the physicians' codes and
    each part's frame), or None where the summaries do not answer (module doc). `sums`: the
    count summary's part (summary_sums) where another thread reads it, else read here."""
    summed = sums() if sums is not None else summary_sums(engine, summary_exact, lookups,
                                                          filters)
    if summed is None:
        return None
    above = scorecard_buckets.above_counts(engine, lookups, filters, levels)
    if above is None:
        return None
    frame = summed.merge(above.rename(columns={"records": "measured"}), on="g0",
                         how="left").fillna(0).astype(np.int64)
    parts = pd.DataFrame({
        "g0": frame["g0"], "all__records": frame["records"],
        "above__records": frame["measured"], "above__above": frame["above"],
        "technique__records": frame["records"],
        **{f"technique__{n}": frame[n] for n in TECHNIQUE},
        **{f"compliance__{n}": frame[n] for n in counts.COMPLIANCE_COUNTS}})
    return counts.split_parts(parts, KEEPS, lookups, "physician")


def summary_sums(engine: Engine, summary_exact: Callable[[Connection, Filters], bool],
                 lookups: Snapshot, filters: Filters) -> pd.DataFrame | None:
    """Per physician (g0) the count summary's records, compliance and technique counts; None
    where the summaries do not answer (module doc). Independent of the reference levels: it
    is read while they are computed."""
    if not count_summary.answerable(filters) or \
            scanned_because(filters, by_physician=True) is not None:
        return None
    with engine.connect() as conn:
        if not summary_exact(conn, filters):
            return None
    count_summary.refresh_counts(engine, lookups=lookups)
    s = CountSummary
    names = ("records", *counts.COMPLIANCE_COUNTS, *TECHNIQUE)
    with engine.connect() as conn:  # after the refresh's commit
        without_jit(conn)
        found = filters.id_conditions(conn, count_summary.TARGET)
        rows = [] if found is None else conn.execute(
            select(s.physician_id, *(func.sum(getattr(s, n)) for n in names))
            .where(period_rows(filters, CountSummary), *found)
            .group_by(s.physician_id).having(func.sum(s.records) > 0)).all()
    return pd.DataFrame([tuple(r) for r in rows], columns=["g0", *names]).astype(np.int64)


def physician_work(engine: Engine, summary_exact: Callable[[Connection, Filters], bool],
                   levels_of: Callable[[], pd.DataFrame]) -> Callable[[Scope], pd.DataFrame]:
    """SqlSource's computation of the physician scorecard: its medians and counts from the
    buckets and summaries where they answer, else the scans (scorecard.physician_scorecard).
    The medians are picked in other threads (scorecard_buckets.per_level_medians) while this
    one reads the reference levels in force (`levels_of`: the local DRLs of the period, a
    figure of their own) and the counts: at 10M records each is a tenth of a second or two."""
    def work(scope: Scope) -> pd.DataFrame:
        with ThreadPoolExecutor(2) as pool:
            medians = pool.submit(scorecard_buckets.per_level_medians, engine, scope.lookups,
                                  scope.filters)
            sums = pool.submit(summary_sums, engine, summary_exact, scope.lookups,
                               scope.filters)
            levels = levels_of()
            return scorecard.physician_scorecard(scope, levels, lambda *_: medians.result(),
                                                 partial(physician_counts, engine,
                                                         summary_exact, sums=sums.result))
    return work


def adjusted_work(engine: Engine) -> Callable[[Scope, str], pd.DataFrame]:
    """SqlSource's computation of the case-mix-adjusted scorecard (the buckets' medians where
    they answer, else the scan)."""
    medians = partial(scorecard_buckets.adjusted_medians, engine)
    return lambda scope, quantity: scorecard.adjusted_scorecard(scope, quantity, medians)
