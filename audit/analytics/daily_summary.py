"""The per-day summary table: counts, contrast-compliance numerators and denominators and dose
sums per UTC day, site, room, procedure type and physician, kept current from the data version.

Why a summary: the monthly trend charts and the p-chart need only counts per month, and a
GROUP BY over a few thousand summary rows answers them without reading a million records. Each
month has its rows too (`whole_month`, the month's first day: the sum of its day rows, rewritten
whenever one of its days is), so a period reads its whole months as month rows and only the
days of the months it cuts as days (`period_rows`): at 10M records a year is 146,000 day rows.
Medians and other quantiles cannot be pre-aggregated (the median of medians is not the median):
they still come from the records.

How it stays current (docs/design.md "The daily summary"): by refresh, not by the write path.
`refresh_summary` reads the audit events after the data version the summary reflects
(`daily_summary_state`), finds the days the named records fall on (now, and before an amend
moved them), and recomputes those days' rows from the procedure table in one DELETE and one
INSERT ... SELECT ... GROUP BY. A recomputed day is absolute, never an increment, so a refresh
that sees a record twice does no harm, and nothing in the write path (the log, CSV import, the
demo loader, merges) has to know the summary exists. A catalog change (a policy, a minimum of
views) or an event that does not name its records rebuilds the whole table (one GROUP BY). On
PostgreSQL an advisory lock makes concurrent refreshes take turns (audit.analytics.derived, the
protocol the record facts share). Compliance is
audit.contrast_rule's rule written in SQL; tests/analytics/test_daily_summary.py holds the
monthly counts equal to the analysis frame's p-chart counts on both databases.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import (
    Connection,
    Date,
    Engine,
    and_,
    case,
    cast,
    delete,
    false,
    func,
    insert,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.sql import ColumnElement

from audit.analytics.derived import refresh_versioned
from audit.analytics.snapshot import INCREMENTAL_LIMIT, _changed_records
from audit.filters import Filters, Target
from audit.storage.engine import read_session, without_jit
from audit.storage.models import (
    AuditEvent,
    DailySummary,
    DailySummaryState,
    Procedure,
    ProcedureType,
)
from audit.storage.scans import every_final
from audit.vocab import (
    AuditAction,
    ContrastConfirmation,
    ContrastPolicy,
    Guidance,
    RecordStatus,
)

#: Bumped when what a row holds changes meaning: the next refresh rebuilds the table.
RULES = 1
_PG_SUMMARY_LOCK = 0x44617953  # "DayS"
MAX_VIEWS = 7  # the analysis frame counts confirmation views up to 7 (audit.analytics._packing)
SUMMARY = Target(DailySummary.day, None, DailySummary.site_id, DailySummary.room_id,
                 DailySummary.physician_id, DailySummary.procedure_type_id)
COUNT_COLUMNS = ["procedures", "eligible", "compliant", "excepted"]


def day_of(dialect: str) -> ColumnElement[Any]:
    """A record's UTC day, in SQL."""
    if dialect == "sqlite":  # stored as UTC text "YYYY-MM-DD HH:MM:SS.ffffff"
        return func.date(Procedure.performed_at)
    return cast(func.timezone("UTC", Procedure.performed_at), Date)


def summary_select(dialect: str, where: Any = None) -> Any:
    """The summary rows of the final records `where` selects, by GROUP BY."""
    p, t = Procedure, ProcedureType
    views = func.coalesce(p.confirmation_views, "")
    n_views = case((views == "", 0),
                   else_=func.length(views) - func.length(func.replace(views, ";", "")) + 1)
    n_views = case((n_views > MAX_VIEWS, MAX_VIEWS), else_=n_views)
    # The contrast rule's eligibility (audit.contrast_rule): an ultrasound-guided record is
    # eligible only where the catalog requires real-time contrast (TFESI).
    eligible = and_(t.contrast_policy == ContrastPolicy.REQUIRED.value,
                    or_(p.guidance != Guidance.ULTRASOUND.value,
                        func.coalesce(t.realtime_contrast_required, False).is_(True)))
    compliant = and_(eligible, p.contrast_confirmation == ContrastConfirmation.CONFIRMED.value,
                     p.saved_images >= 1, n_views >= func.coalesce(t.min_views, 0),
                     or_(func.coalesce(t.realtime_contrast_required, False).is_(False),
                         p.realtime_contrast.is_(True)))
    excepted = and_(eligible,
                    p.contrast_confirmation == ContrastConfirmation.CONTRAINDICATED.value,
                    p.contrast_exception_reason.is_not(None))
    # Ultrasound-guided records store a fluoro time of 0 that is no measurement (the frame
    # reads it as missing): left out of the sums and counts.
    fluoro_time = case((p.guidance != Guidance.ULTRASOUND.value, p.fluoro_time_s))
    day = day_of(dialect)
    keys = [day, p.site_id, p.room_id, p.procedure_type_id, p.physician_id]

    def count(condition: Any) -> Any:
        return func.sum(case((condition, 1), else_=0))

    query = (select(false(), *keys, func.count(), count(eligible), count(compliant),
                    count(excepted),
                    func.sum(p.dap_gycm2), func.count(p.dap_gycm2),
                    func.sum(p.air_kerma_mgy), func.count(p.air_kerma_mgy),
                    func.sum(fluoro_time), func.count(fluoro_time))
             .select_from(p).join(t, t.id == p.procedure_type_id)
             )
    if where is None:  # the whole table: scanned on SQLite (audit.storage.scans)
        query = query.where(every_final(dialect))
    else:  # some days: the (status, performed_at) index finds them
        query = query.where(p.status == RecordStatus.FINAL.value, where)
    return query.group_by(*keys)


_KEYS = ("site_id", "room_id", "procedure_type_id", "physician_id")
_SUMS = (*COUNT_COLUMNS, "kap_sum", "kap_n", "air_kerma_sum", "air_kerma_n", "fluoro_time_sum",
         "fluoro_time_n")
_COLUMNS = ["whole_month", "day", *_KEYS, *_SUMS]


def rebuild(conn: Connection, days: list[date] | None = None) -> None:
    """Recompute the rows of `days` (None: the whole table) from the procedure table, then
    their months' rows from the day rows."""
    dialect = conn.dialect.name
    if days is None:
        conn.execute(delete(DailySummary))
        conn.execute(insert(DailySummary).from_select(_COLUMNS, summary_select(dialect)))
        insert_months(conn, None, DailySummary, _KEYS, _SUMS)
        return
    for lo in range(0, len(days), 200):
        chunk = days[lo:lo + 200]
        conn.execute(delete(DailySummary).where(DailySummary.whole_month.is_(False),
                                                DailySummary.day.in_(chunk)))
        periods = [Procedure.performed_at.between(
            datetime.combine(d, datetime.min.time(), UTC),
            datetime.combine(d, datetime.max.time(), UTC)) for d in chunk]
        conn.execute(insert(DailySummary).from_select(
            _COLUMNS, summary_select(dialect, or_(*periods))))
    if days:
        insert_months(conn, sorted({d.replace(day=1) for d in days}), DailySummary, _KEYS,
                      _SUMS)


def _days_to_redo(conn: Connection, synced: int, head: int,
                  entities: tuple[str, ...] = ("procedure", "procedure_type"),
                  ) -> list[date] | None:
    """The days whose rows the events in (synced, head] may have changed; None: all.
    `entities`: the events that change rows ("complication": its entity_id is the record's,
    for the count summary, audit.analytics.sql.count_summary)."""
    rows = conn.execute(
        select(AuditEvent.entity, AuditEvent.entity_id, AuditEvent.action, AuditEvent.before)
        .where(AuditEvent.id > synced, AuditEvent.id <= head,
               AuditEvent.entity.in_(entities))
        .order_by(AuditEvent.id).limit(INCREMENTAL_LIMIT + 1)).all()
    if len(rows) > INCREMENTAL_LIMIT or any(
            e == "procedure_type" and a != AuditAction.CREATE.value for e, _, a, _ in rows):
        return None
    changed = _changed_records([("procedure" if e == "complication" else e, i)
                                for e, i, _, _ in rows])
    if changed is None:
        return None
    ids, ranges = changed
    days: set[date] = set()
    for _, _, _, before in rows:  # an amended record's day before the amendment
        moment = (before or {}).get("performed_at")
        if moment:
            try:
                days.add(datetime.fromisoformat(str(moment)).astimezone(UTC).date())
            except ValueError:
                return None  # an unreadable time: rebuild rather than miss the old day
    conditions = [Procedure.id.between(lo, hi) for lo, hi in ranges]
    listed = sorted(ids)
    conditions += [Procedure.id.in_(listed[i:i + 500]) for i in range(0, len(listed), 500)]
    if conditions:
        found = conn.execute(select(day_of(conn.dialect.name)).distinct()
                             .where(or_(*conditions))).scalars()
        days |= {d if isinstance(d, date) else date.fromisoformat(str(d)) for d in found}
    return sorted(days)


def refresh_summary(engine: Engine) -> int:
    """Bring the summary up to the current data version (see module doc); returns it."""
    def redo(conn: Connection, synced: int | None, now: int) -> None:
        days = None if synced is None else _days_to_redo(conn, synced, now)
        if days != []:
            rebuild(conn, days)

    return refresh_versioned(engine, DailySummaryState, RULES, _PG_SUMMARY_LOCK, redo)


def day_conditions(filters: Filters) -> list[ColumnElement[bool]]:
    """The filters' period on whole days (the summary holds days, nothing finer)."""
    conditions = []
    for moment, op in ((filters.start, "ge"), (filters.before, "lt")):
        if moment is None:
            continue
        utc = moment.astimezone(UTC)
        if utc.time() != datetime.min.time():
            raise ValueError("the daily summary holds whole UTC days: give a period of days")
        conditions.append(DailySummary.day >= utc.date() if op == "ge"
                          else DailySummary.day < utc.date())
    return conditions


def monthly_counts(engine: Engine, filters: Filters | None = None) -> pd.DataFrame:
    """Per month ("YYYY-MM", UTC, as the frame's month groups are labelled): procedures, eligible,
    compliant and excepted records under the filters, from the summary (refreshed first): what
    the p-chart and the monthly trend charts count. Filters the summary cannot answer (a
    technologist, a patient, record ids, voided records) raise ValueError."""
    filters = filters or Filters()
    if filters.technologists or filters.patient_id or filters.record_ids is not None or \
            filters.record_status not in (None, RecordStatus.FINAL.value):
        raise ValueError("the daily summary counts final records by site, room, physician, "
                         "procedure and day only")
    day_conditions(filters)  # a period of whole UTC days, else ValueError
    refresh_summary(engine)
    columns = ["month", *COUNT_COLUMNS]
    with read_session(engine) as session:
        without_jit(session)
        found = filters.id_conditions(session, SUMMARY)
        if found is None:
            return pd.DataFrame(columns=columns)
        rows = session.execute(
            select(DailySummary.day, *(func.sum(getattr(DailySummary, c))
                                       for c in COUNT_COLUMNS))
            .where(period_rows(filters, DailySummary), *found)
            .group_by(DailySummary.day)).all()
    if not rows:
        return pd.DataFrame(columns=columns)
    days = np.array([d if isinstance(d, date) else date.fromisoformat(str(d))
                     for d, *_ in rows], dtype="datetime64[D]")
    frame = pd.DataFrame([r[1:] for r in rows], columns=COUNT_COLUMNS).astype(np.int64)
    frame["month"] = days.astype("datetime64[M]").astype(str)  # "YYYY-MM", as month_label
    return (frame.groupby("month", sort=True)[COUNT_COLUMNS].sum().reset_index()[columns])


# --- month rows (this summary, the count summary, the rule findings' counts) -----------------
def month_start(day: date) -> date:
    return day.replace(day=1)


def next_month(day: date) -> date:
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1)


def month_of(dialect: str, day: Any) -> ColumnElement[Any]:
    """A day column's month (its first day), in SQL."""
    if dialect == "sqlite":  # stored as text "YYYY-MM-DD"
        return func.date(day, "start of month")
    return cast(func.date_trunc("month", day), Date)


def insert_months(conn: Connection, months: list[date] | None, table: Any,
                  keys: Sequence[str], counts: Sequence[str]) -> None:
    """The month rows (whole_month, the month's first day) of these months (None: every
    month), summed from their day rows, in a table kept that way: this summary, the count
    summary (audit.analytics.sql.count_summary), the rule findings' counts
    (audit.rules.finding_counts). A month row is the sum of its days, so a period's whole
    months read one row per key instead of thirty."""
    s = table
    first = month_of(conn.dialect.name, s.day)
    key_columns = [getattr(s, k) for k in keys]
    where: list[Any] = [s.whole_month.is_(False)]
    drop: list[Any] = [s.whole_month.is_(True)]
    if months is not None:  # by day ranges: the primary key's (whole_month, day) finds them
        where.append(or_(*(and_(s.day >= m, s.day < next_month(m)) for m in months)))
        drop.append(s.day.in_(months))
    conn.execute(delete(s).where(*drop))
    conn.execute(insert(s).from_select(
        ["whole_month", "day", *keys, *counts],
        select(true(), first, *key_columns, *(func.sum(getattr(s, c)) for c in counts))
        .where(*where).group_by(first, *key_columns)))


def period_rows(filters: Filters, s: Any) -> ColumnElement[bool]:
    """The rows of a table kept with month rows (`insert_months`) that add up to the filters'
    period: month rows for the whole months inside it, day rows for the rest."""
    start = None if filters.start is None else filters.start.astimezone(UTC).date()
    before = None if filters.before is None else filters.before.astimezone(UTC).date()
    first = None if start is None else (start if start.day == 1 else next_month(start))
    last = None if before is None else month_start(before)  # months in [first, last)
    months = [c for c in [None if first is None else s.day >= first,
                          None if last is None else s.day < last] if c is not None]
    days = [c for c in [None if start is None else s.day >= start,
                        None if before is None else s.day < before] if c is not None]
    if first is not None and last is not None and first >= last:  # no whole month
        return and_(s.whole_month.is_(False), *days)
    covered = and_(true(), *months)
    return (and_(s.whole_month.is_(True), *months) |
            and_(s.whole_month.is_(False), *days, not_(covered)))
