"""The stored rule findings counted per UTC day and per month (`rule_finding_count`), so the
report of a period of whole UTC days sums a few thousand rows instead of grouping every
finding (14M at 5M records: over 10 s).

As the count summary of the Data quality page (audit.analytics.sql.count_summary, whose
`period_rows` picks the rows here too): a row per UTC day x site x room x procedure type x
physician x rule with the eligible records and the exceptions, and the same per month (the sum
of its days), so a period reads month rows for its whole months and day rows for the rest.
Kept with the findings, in the same transaction (audit.rules.findings_store): the days whose
findings changed are recounted from `rule_finding`, then their months. Answers no patient,
record-id or technologist filter (no such key: `answerable`), nor a bound that is not a UTC
midnight; the report then groups `rule_finding` itself.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    case,
    delete,
    false,
    func,
    insert,
    select,
)

from audit.analytics.daily_summary import insert_months
from audit.analytics.sql.count_summary import utc_day
from audit.filters import Filters
from audit.storage.models import RuleFinding, RuleFindingCount
from audit.vocab import RecordStatus

KEYS = ("site_id", "room_id", "procedure_type_id", "physician_id", "rule")
_NAMES = ["whole_month", "day", *KEYS, "eligible", "exceptions"]


def _days_select(days: list[date] | None) -> Any:
    f = RuleFinding
    day = utc_day(f.performed_at)
    keys = [getattr(f, k) for k in KEYS]
    query = (select(false(), day, *keys, func.count(),
                    func.sum(case((f.exception, 1), else_=0)))
             .group_by(day, *keys))
    if days is not None:  # the index on performed_at finds them, the day picks them
        query = query.where(
            f.performed_at >= datetime.combine(days[0], datetime.min.time(), UTC),
            f.performed_at < datetime.combine(days[-1] + timedelta(days=1),
                                              datetime.min.time(), UTC),
            day.in_(days))
    return query


def recount(conn: Connection, days: list[date] | None) -> None:
    """Recount these UTC days (sorted; None: every day) from `rule_finding`, then their
    months' rows from the day rows."""
    c = RuleFindingCount
    if days is None:
        conn.execute(delete(c))
        conn.execute(insert(c).from_select(_NAMES, _days_select(None)))
    else:
        if not days:
            return
        for lo in range(0, len(days), 100):
            chunk = days[lo:lo + 100]
            conn.execute(delete(c).where(c.whole_month.is_(False), c.day.in_(chunk)))
            conn.execute(insert(c).from_select(_NAMES, _days_select(chunk)))
    months = None if days is None else sorted({d.replace(day=1) for d in days})
    insert_months(conn, months, c, KEYS, ("eligible", "exceptions"))


def answerable(filters: Filters) -> bool:
    """Whether the counts hold what the filters select: names of what they are kept by, final
    records, a period of whole UTC days."""
    if filters.patient_id or filters.record_ids is not None or filters.technologists or \
            filters.record_status not in (None, RecordStatus.FINAL.value):
        return False
    return all(moment is None or moment.timestamp() % 86400 == 0
               for moment in (filters.start, filters.before))
