"""The Compliance page's counts from the daily summary (audit.analytics.daily_summary) instead of
a scan of the record facts, where the summary answers the filters exactly.

Why: the page's figures are counts (eligible, compliant, excepted) by physician, room and
procedure and overall; the summary holds them per day x site x room x procedure type x
physician, about 17 times fewer rows than records (288k at 5M), and per month (the sum of the
month's days: a period's whole months are read as month rows, only the days of a month it cuts
as days, `daily_summary.period_rows`), and a GROUP BY of the rows with an eligible record
collapses them to one row per site x room x procedure x physician (a few hundred) in a tenth
of the time a scan of the facts takes. Each grouping and the overall are
sums of those rows in pandas; the rates and Wilson intervals, the labels, the row order and
the dtypes come from the scan's own code (groups.decorate, counts._compliance_rates), so the
tables are the scan's, exactly.

When the summary answers exactly (`answerable`, then `period_edges_clear`):
- no filter the summary has no column for: a technologist, a patient, record ids, voided
  records (those fall back to the scan, as monthly_counts refuses them);
- a period of whole UTC days (the dashboards' periods), the summary holds nothing finer;
- no final record in the last half second before the period's bounds: the frame (and the
  scan, which is held to it) rounds an instant to whole seconds, so such a record is inside the
  period there and outside it in the summary, whose days are not rounded. One indexed probe of
  the (status, performed_at) index. Month edges do not matter here (no grouping by month:
  by="month" is the p-chart's monthly counts, SqlSource._summary_exact checks those edges).

The summary's compliance rule is the facts' (audit.contrast_rule in SQL, the same catalog
columns; tests/analytics/test_daily_summary.py and test_sql_figures.py hold both equal to the
frame's), and the summary is refreshed to the data version before it is read.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, and_, func, or_, select

from audit.analytics.daily_summary import (
    SUMMARY,
    day_conditions,
    monthly_counts,
    period_rows,
    refresh_summary,
)
from audit.analytics.snapshot import Snapshot
from audit.analytics.sql import groups
from audit.analytics.sql.counts import COMPLIANCE_COUNTS, _compliance_rates
from audit.analytics.sql.records import HALF_SECOND
from audit.filters import Filters
from audit.storage.engine import without_jit
from audit.storage.models import DailySummary, Procedure, RecordFact
from audit.vocab import RecordStatus

#: Grouping name -> the summary's column.
KEYS = {"physician": "physician_id", "room": "room_id", "procedure": "procedure_type_id",
        "site": "site_id"}


#: What compliance_rates takes from the summary (month: the p-chart's monthly counts).
GROUPINGS = (None, *KEYS, "month")
Compute = Callable[[Connection, Snapshot], Any]


def computation(engine: Engine, filters: Filters, by: str | None,
                summary_exact: Callable[[Connection, Filters], bool]
                ) -> tuple[tuple[Any, ...], Compute]:
    """(cache key, compute) for SqlSource._cached: the overall and every grouping but month
    in one read of the summary; by month, the monthly counts under the p-chart's rule
    (`summary_exact`: the month edges too). Either result is a dict by grouping, or None where
    the summary cannot answer (cached too, so a fallback to the scan costs the probe once)."""
    if by == "month":
        def monthly(conn: Connection, lookups: Snapshot) -> dict[str, pd.DataFrame] | None:
            filters.mask(lookups)  # unknown names, an inverted period: ValidationFailed
            if not answerable(filters) or not summary_exact(conn, filters):
                return None
            found = monthly_counts(engine, filters)
            found = found[found["eligible"] > 0][["month", *COMPLIANCE_COUNTS]]
            # month labels as the scan's (object, not pandas' inferred string dtype)
            found = found.astype({"month": object, **{c: np.int64 for c in COMPLIANCE_COUNTS}})
            return {"month": _compliance_rates(found.reset_index(drop=True), "month")}
        return ("compliance_summary_month", filters), monthly

    def grouped(conn: Connection, lookups: Snapshot) -> dict[str | None, pd.DataFrame] | None:
        filters.mask(lookups)
        return compliance_counts(engine, conn, lookups, filters)
    return ("compliance_summary", filters), grouped


def answerable(filters: Filters) -> bool:
    """Whether the summary holds what the filters select: names of what it groups by, final
    records, a period of whole UTC days."""
    if filters.technologists or filters.patient_id or filters.record_ids is not None or \
            filters.record_status != RecordStatus.FINAL.value:
        return False
    return all(moment is None or moment.timestamp() % 86400 == 0
               for moment in (filters.start, filters.before))


def edges_clear(conn: Connection, filters: Filters, first: date, last: date,
                facts: bool = False) -> bool:
    """No final record in the half second before a month's start (the months from `first`'s
    to the one after `last`'s) or before the period's bounds: the frame rounds an instant to
    whole seconds, so such a record counts in the next month there, while a summary's days
    put it in this one. One indexed probe; `facts`: of the record facts (final records
    only) instead of the procedure table."""
    edges = [datetime(y, m, 1, tzinfo=UTC) for y in range(first.year, last.year + 2)
             for m in range(1, 13)
             if (first.year, first.month) <= (y, m) <= (last.year + (last.month == 12),
                                                       last.month % 12 + 1)]
    edges += [moment for moment in (filters.start, filters.before) if moment is not None]
    at = RecordFact.performed_at if facts else Procedure.performed_at
    near = or_(*(and_(at >= e - HALF_SECOND, at < e) for e in edges))
    found = select(RecordFact.procedure_id).where(near) if facts else \
        select(Procedure.id).where(Procedure.status == RecordStatus.FINAL.value, near)
    return not conn.scalar(select(func.count()).select_from(found.limit(1).subquery()))


def period_edges_clear(conn: Connection, filters: Filters) -> bool:
    """No final record in the half second before the period's start or end (module doc)."""
    edges = [moment for moment in (filters.start, filters.before) if moment is not None]
    if not edges:
        return True
    p = Procedure
    near = or_(*(and_(p.performed_at >= e - HALF_SECOND, p.performed_at < e) for e in edges))
    found = conn.scalar(select(func.count()).select_from(
        select(p.id).where(p.status == RecordStatus.FINAL.value, near).limit(1).subquery()))
    return not found


def compliance_counts(engine: Engine, conn: Connection, lookups: Snapshot,
                      filters: Filters) -> dict[str | None, pd.DataFrame] | None:
    """counts.compliance for the overall (None) and each of KEYS, from the summary; None when
    the summary cannot answer the filters exactly (the caller scans the facts). `conn` reads
    the edge probe; the summary is refreshed, then read on a new connection (after the
    refresh's commit)."""
    if not answerable(filters) or not period_edges_clear(conn, filters):
        return None
    refresh_summary(engine)
    rows = _rows(engine, filters)
    found: dict[str | None, pd.DataFrame] = {}
    for by, column in KEYS.items():
        part = (rows.groupby(column, sort=True)[list(COMPLIANCE_COUNTS)].sum()
                .reset_index().rename(columns={column: "g0"}))
        part = part[part["eligible"] > 0].reset_index(drop=True)
        found[by] = _compliance_rates(groups.decorate(part, lookups, [by]), by)
    total = pd.DataFrame({"scope": ["all"],
                          **{n: [int(rows[n].sum())] for n in COMPLIANCE_COUNTS}})
    found[None] = _compliance_rates(total, None)
    return found


def _rows(engine: Engine, filters: Filters) -> pd.DataFrame:
    """The summary's counts per site x room x procedure x physician under the filters, only
    rows with an eligible record (the others add 0 to every count and make no group)."""
    s = DailySummary
    columns = [*KEYS.values(), *COMPLIANCE_COUNTS]
    with engine.connect() as conn:
        without_jit(conn)
        found = filters.id_conditions(conn, SUMMARY)
        if found is None:  # a name that matches no id: nothing
            return pd.DataFrame({c: np.empty(0, dtype=np.int64) for c in columns})
        keys = [getattr(s, c) for c in KEYS.values()]
        query = (select(*keys, *(func.sum(getattr(s, c)) for c in COMPLIANCE_COUNTS))
                 .where(s.eligible > 0, period_rows(filters, s), *found).group_by(*keys))
        rows: list[Any] = [tuple(r) for r in conn.execute(query).all()]
    return pd.DataFrame(rows, columns=columns).astype(np.int64) if rows else \
        pd.DataFrame({c: np.empty(0, dtype=np.int64) for c in columns})


#: How many of the summary's day rows (those with a non-compliant record) `newest_day` reads,
#: newest first, before it gives up and the drill-down looks as it does without a hint.
NEWEST_DAY_ROWS = 20_000


def newest_day(engine: Engine, filters: Filters, which: str, wanted: int,
               group: tuple[str, list[Any]] | None = None) -> tuple[date | None, int] | None:
    """Where the list of `which` records (non_compliant, excepted) under the filters (and
    `group`: a KEYS grouping and its codes) may start looking, from the summary: (D, n), the
    latest UTC day D from which it counts n >= `wanted` of them; when it counts fewer in all,
    (the oldest day holding one, n), or (None, 0) for none. None when it cannot tell: filters
    it does not hold, a final record within half a second of the period's bounds
    (period_edges_clear), more than NEWEST_DAY_ROWS rows read.

    Why: where the filters' newest records (20 times the list's length) held too few, the list
    read every record of the filters, so at 10M an empty list, a physician's MBBs (contrast
    recommended, not required: never non-compliant), took 2.5-5 s. For none the list reads
    nothing; else drill._rows checks that the day's window holds what the summary says (else it
    reads every record, as before). The summary's day rows are read newest first through its
    primary key (whole_month, day, ...) on a server-side cursor, and the reading stops at the
    day that makes the count."""
    if not answerable(filters) or (group is not None and group[0] not in KEYS):
        return None
    refresh_summary(engine)
    s = DailySummary
    counted = s.excepted if which == "excepted" else s.eligible - s.compliant - s.excepted
    with engine.connect() as conn:
        found = filters.id_conditions(conn, SUMMARY)
        if found is None or not period_edges_clear(conn, filters):
            return None
        where = [s.whole_month.is_(False), counted > 0, *day_conditions(filters), *found]
        if group is not None:
            where.append(getattr(s, KEYS[group[0]]).in_(group[1]))
        query = select(s.day, counted).where(*where).order_by(s.day.desc()) \
            .limit(NEWEST_DAY_ROWS + 1)
        seen, read, day = 0, 0, None
        rows = conn.execution_options(stream_results=True, max_row_buffer=2_000).execute(query)
        for row_day, n in rows:
            seen, read, day = seen + n, read + 1, row_day
            if seen >= wanted or read > NEWEST_DAY_ROWS:
                rows.close()
                break
        if read > NEWEST_DAY_ROWS:
            return None
    if day is not None and not isinstance(day, date):
        day = date.fromisoformat(str(day))
    return day, seen
