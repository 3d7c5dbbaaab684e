"""The Data quality and Complications pages' counts (and the Dose page's share of injections
done without radiation) from a summary (`count_summary`) instead of
a scan of the record facts, where the summary answers the filters exactly.

Why: every figure of those pages is a count (records, missing values, safety flags, records with
a complication, complications by kind and severity) by room, technologist, procedure,
physician or month, or overall. At 5M records a scan of the facts took 3.5 s (completeness and
flags) and 4 s (complications, joined to their records), and as much after any filter change.
Counts add up: the summary holds them per UTC day x site x room x procedure type x physician x
technologist (1.4M rows at 5M records), and again per month (the sum of the month's days, a
few thousand rows a month), so a period of whole months reads the month rows and only the days
of a partial month are read as days. One GROUPING SETS query over those rows gives every
grouping of both pages (cached once for both), and the tables are made by the scan's own code
(groups.decorate, counts.quality_tables, counts._complication_rates).

What it counts is what the scan counts: the rows are computed by the same expressions
(counts._quality_sums, _flag_sums, _complication_sums) over the same records subquery of the
facts, grouped by the stored instant's UTC day. The safety flags read the SRDL settings, the
rooms' KAP factors and the catalog's code and maximum of levels: their fingerprint is part of
the summary's `rules`, so a change of any of them rebuilds the table at the next refresh.

How it stays current: by the refresh protocol of the daily summary and the facts
(audit.analytics.derived): the facts are refreshed first (the rows are computed from them),
then the days the procedure and complication events after the summary's version name (now and
before an amend) are recomputed, day rows then their months' rows; an event that names no
records, more than INCREMENTAL_LIMIT of them, a catalog change or new rules rebuild it all.
A row changed behind the app's back stays wrong until its day changes: `fluoro-audit db
rebuild-facts` rebuilds this summary too. PostgreSQL only, as the facts.

When it answers (`answerable`, then SqlSource._summary_exact): no patient, record-id or
voided-status filter; a period of whole UTC days; no final record in the half second before a
month's start or the period's bounds (the frame rounds instants to whole seconds, the summary's
days do not). Otherwise the scan, as before.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import (
    Connection,
    Date,
    Engine,
    cast,
    delete,
    false,
    func,
    insert,
    select,
    text,
    tuple_,
)
from sqlalchemy.sql import ColumnElement

from audit.analytics._lookup_tables import read_lookup_tables
from audit.analytics._packing import COLUMNS
from audit.analytics.daily_summary import (
    _days_to_redo,
    insert_months,
    next_month,
    period_rows,
)
from audit.analytics.derived import refresh_versioned
from audit.analytics.snapshot import Snapshot, _frame
from audit.analytics.sql import counts, drill, groups
from audit.analytics.sql.facts import refresh_facts
from audit.analytics.sql.scope import Scope
from audit.analytics.sql.summary_counts import period_edges_clear
from audit.errors import NeedsPostgreSQL
from audit.filters import Filters, Target
from audit.storage.engine import without_jit
from audit.storage.models import CountSummary, CountSummaryState
from audit.vocab import RecordStatus

#: Bumped when what a row holds changes meaning: the next refresh rebuilds the table.
RULES = 3
_LOCK = 0x436E7453  # "CntS"
KEYS = ("site_id", "room_id", "procedure_type_id", "physician_id", "technologist_id")
QUALITY = ("records", *counts.QUALITY)
FLAGS = ("particulate_cervical_tfesi", "uptake_not_repositioned", "levels_over_limit",
         "pregnant", "srdl_reached")
COMPLICATIONS = ("with_complication", "complications", "severe", *counts.KINDS)
#: The Dose page's Case mix tab: injections done without radiation (counts.radiation_free_share).
CASE_MIX = ("ultrasound",)
#: The Dose page's physician scorecard: contrast compliance and C-arm technique
#: (counts.compliance_sums, technique_sums).
SCORECARD = (*counts.COMPLIANCE_COUNTS, "pulsed_recorded", "pulsed", "low_dose_recorded",
             "low_dose")
COUNTS = (*QUALITY, *FLAGS, *COMPLICATIONS, *CASE_MIX, *SCORECARD)
TARGET = Target(CountSummary.day, None, CountSummary.site_id, CountSummary.room_id,
                CountSummary.physician_id, CountSummary.procedure_type_id,
                CountSummary.technologist_id)
#: The groupings the two pages show (the summary's column or the month of its day).
GROUPINGS = {"room": "room_id", "technologist": "technologist_id",
             "procedure": "procedure_type_id", "physician": "physician_id", "month": None}
QUALITY_PAGE = ("room", "technologist")
COMPLICATIONS_PAGE = ("procedure", "physician", "month")


def _check(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        raise NeedsPostgreSQL(f"the count summary is kept on PostgreSQL only (the SQL figures' "
                              f"database); {engine.dialect.name} computes from the frame")


def _lookups(conn: Connection) -> Snapshot:
    empty = _frame({k: np.empty(0, dtype=v) for k, v in COLUMNS.items()})
    return Snapshot(records=empty, token=0, loaded_at=datetime.now(UTC),
                    **read_lookup_tables(conn))


def _rules(lookups: Snapshot) -> int:
    """RULES and the inputs the flags read, as one number (a change rebuilds the table). Rooms
    and catalog entries that change no flag (a KAP factor of 1, no maximum of levels and not
    the TFESI) are left out, so adding one (the log's create_missing) rebuilds nothing, while
    any change of a value that matters, to or from its default, changes the number."""
    s, types = lookups.settings, lookups.types
    inputs = (RULES, float(s.srdl_air_kerma_mgy), float(s.srdl_kap_gycm2),
              float(s.srdl_fluoro_time_s),
              sorted((int(i), float(f)) for i, f in lookups.rooms["kap_factor"].items()
                     if float(f) != 1.0),
              sorted((int(i), str(c), int(m)) for i, c, m in
                     zip(types.index, types["code"], types["max_levels"], strict=True)
                     if str(c) == "TFESI" or int(m) >= 0))
    return zlib.crc32(repr(inputs).encode()) & 0x7FFFFFFF


def utc_day(column: Any) -> ColumnElement[Any]:
    """An instant's UTC day (the summaries' day key)."""
    return cast(func.timezone("UTC", column), Date)


def _day_select(conn: Connection, lookups: Snapshot, days: list[date] | None) -> Any:
    """The day rows of these days (None: all), computed as the scan counts."""
    scope = Scope.open(conn, lookups, Filters(), unit=days is None)
    joined, complication_sums = counts._complication_sums(scope)
    flags = counts._flag_sums(scope)
    sums = {**counts._quality_sums(scope), **{f: flags[f] for f in FLAGS},
            **{c: complication_sums[c] for c in COMPLICATIONS},
            "ultrasound": scope.total("ultrasound"),
            **{c: scope.total(c) for c in SCORECARD}}
    day = utc_day(scope.col("performed_at"))
    keys = [scope.col("site_id"), scope.col("room_id"), scope.col("type_id"),
            scope.col("physician_id"), scope.col("technologist_id")]
    query = (select(false().label("whole_month"), day.label("day"),
                    *(k.label(n) for k, n in zip(keys, KEYS, strict=True)),
                    *(sums[c].label(c) for c in COUNTS)).select_from(joined)
             .group_by(day, *keys))
    if days is not None:
        at = scope.col("performed_at")
        query = query.where(  # the index on performed_at finds them, the day picks them
            at >= datetime.combine(days[0], datetime.min.time(), UTC),
            at < datetime.combine(days[-1] + timedelta(days=1), datetime.min.time(), UTC),
            utc_day(at).in_(days))
    return query


def _insert_days(conn: Connection, lookups: Snapshot, days: list[date] | None) -> None:
    s = CountSummary
    names = ["whole_month", "day", *KEYS, *COUNTS]
    if days is None:  # in day order: a month's day rows are read together (newest_day)
        conn.execute(delete(s))
        query = _day_select(conn, lookups, None)
        conn.execute(insert(s).from_select(names, query.order_by(query.selected_columns.day)))
        return
    for lo in range(0, len(days), 100):
        chunk = days[lo:lo + 100]
        conn.execute(delete(s).where(s.whole_month.is_(False), s.day.in_(chunk)))
        conn.execute(insert(s).from_select(names, _day_select(conn, lookups, chunk)))


def _redo(engine: Engine, lookups: Snapshot) -> Callable[[Connection, int | None, int], None]:
    def redo(conn: Connection, synced: int | None, now: int) -> None:
        refresh_facts(engine)  # the rows come from the facts: at least at this version
        days = None if synced is None else _days_to_redo(
            conn, synced, now, ("procedure", "procedure_type", "complication"))
        if days == []:
            return
        _insert_days(conn, lookups, days)
        months = None if days is None else sorted({d.replace(day=1) for d in days})
        insert_months(conn, months, CountSummary, KEYS, COUNTS)
        if days is None:
            conn.execute(text("ANALYZE count_summary"))
    return redo


def refresh_counts(engine: Engine, force: bool = False,
                   lookups: Snapshot | None = None) -> int:
    """Bring the count summary to the current data version (module doc); returns it. force:
    recompute every row whatever the state says (`db rebuild-facts`). `lookups`: the lookup
    tables as the caller read them (SqlSource's, of the figures version), else read here."""
    _check(engine)
    if lookups is None:
        with engine.connect() as conn:
            lookups = _lookups(conn)
    return refresh_versioned(engine, CountSummaryState, _rules(lookups), _LOCK,
                             _redo(engine, lookups), force=force)


def answerable(filters: Filters) -> bool:
    """Whether the summary holds what the filters select: names of what it groups by, final
    records, a period of whole UTC days."""
    if filters.patient_id or filters.record_ids is not None or \
            filters.record_status != RecordStatus.FINAL.value:
        return False
    return all(moment is None or moment.timestamp() % 86400 == 0
               for moment in (filters.start, filters.before))


def computation(engine: Engine, filters: Filters,
                summary_exact: Callable[[Connection, Filters], bool],
                ) -> tuple[tuple[Any, ...], Callable[[Connection, Snapshot], Any]]:
    """(cache key, compute) for SqlSource._cached: the Data quality and Complications pages'
    counts in one read for both, or None where the summary cannot answer exactly (cached too,
    so a fallback to the scan costs the probe once). `summary_exact`: the month and period
    edges probe (SqlSource._summary_exact)."""
    def compute(conn: Connection, lookups: Snapshot) -> dict[str, Any] | None:
        filters.mask(lookups)  # unknown names, an inverted period: ValidationFailed
        if not answerable(filters) or not summary_exact(conn, filters):
            return None
        return page_counts(engine, lookups, filters)
    return ("count_summary", filters), compute


def page_counts(engine: Engine, lookups: Snapshot,
                filters: Filters) -> dict[str, dict[str | None, pd.DataFrame]]:
    """Both pages' tables (the caller checked that the summary answers): "quality" (overall,
    room, technologist and counts.SAFETY, as counts.completeness_together gives them) and
    "complications" (overall, procedure, physician, month, as complication_rates_together),
    made from the grouped counts by the scan's own code."""
    refresh_counts(engine, lookups=lookups)
    s = CountSummary
    raw = {by: (func.to_char(s.day, "YYYY-MM") if column is None else getattr(s, column))
           for by, column in GROUPINGS.items()}
    names = [f"k{i}" for i in range(len(raw))]
    with engine.connect() as conn:  # after the refresh's commit
        without_jit(conn)
        found = filters.id_conditions(conn, TARGET)
        query = (select(func.grouping(*raw.values()).label("gset"),
                        *(c.label(n) for c, n in zip(raw.values(), names, strict=True)),
                        *(func.coalesce(func.sum(getattr(s, c)), 0).label(c) for c in COUNTS))
                 .where(period_rows(filters, CountSummary), *(found or []))
                 .group_by(func.grouping_sets(*(tuple_(c) for c in raw.values()))))
        rows = [] if found is None else conn.execute(query).all()
    # Made with numpy, not a pandas pipeline per grouping: building these few small tables
    # took 60-100 ms of a filter change at 10M (session 12), more than reading the counts.
    gset = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    values = np.array([r[1 + len(raw):] for r in rows], dtype=np.int64).reshape(
        len(rows), len(COUNTS))
    column = {c: i for i, c in enumerate(COUNTS)}
    every = (1 << len(raw)) - 1

    def tables(bys: tuple[str, ...], sums: dict[str, str], keep: str | None,
               overall: str) -> dict[str | None, pd.DataFrame]:
        """Per grouping: the label column (object) first, then `sums` renamed, int64, the
        groups in code order (groups.decorate's), those with no `keep` left out."""
        out: dict[str | None, pd.DataFrame] = {}
        for by in bys:
            at = list(raw).index(by)
            chosen = np.flatnonzero(gset == every - (1 << (len(raw) - 1 - at)))
            if keep:
                chosen = chosen[values[chosen, column[keep]] > 0]
            codes = [rows[j][1 + at] for j in chosen]
            if by != "month":
                codes = [int(code) for code in codes]
            order = sorted(range(len(codes)), key=codes.__getitem__)
            chosen = chosen[order]
            labels = pd.Series([groups.label_of(lookups, by, codes[i]) for i in order],
                               dtype=object)  # as decorate's (not pandas' inferred str)
            out[by] = pd.DataFrame({by: labels, **{name: values[chosen, column[c]]
                                                  for c, name in sums.items()}})
        first = out[bys[0]]
        out[None] = pd.DataFrame({overall: ["all"], **{n: [int(first[n].sum())
                                                            if len(first) else 0]
                                                        for n in sums.values()}})
        return out

    quality = {c: c for c in QUALITY} | {f: f"flag:{f}" for f in FLAGS}
    complications = {"records": "procedures"} | {c: c for c in COMPLICATIONS}
    found = tables(COMPLICATIONS_PAGE, complications, None, "group")
    free = tables(("procedure",), {"records": "records", "ultrasound": "radiation_free"},
                  "records", "group")["procedure"]
    return {"quality": counts.quality_tables(tables(QUALITY_PAGE, quality, "records", "scope")),
            "complications": {by: counts._complication_rates(frame, by)
                              for by, frame in found.items()},
            "radiation_free": counts.radiation_free_table(free)}


def newest_day(engine: Engine, lookups: Snapshot, filters: Filters, column: str,
               wanted: int) -> date | None:
    """The latest UTC day D such that the summary counts at least `wanted` of `column` under
    the filters from D on (None: fewer in all, or it cannot tell: list_window): where a
    drill-down of the newest `wanted` may start looking (a hint: the drill checks it found
    them)."""
    found = list_window(engine, lookups, filters, column, wanted)
    return found[0] if found is not None and found[1] >= wanted else None


def list_window(engine: Engine, lookups: Snapshot, filters: Filters, column: str,
                wanted: int) -> tuple[date | None, int] | None:
    """Where a drill-down's list of the records counted in `column` may look, as
    summary_counts.newest_day answers for the compliance lists: (D, n), the summary counts n
    of them from UTC day D on, n >= `wanted` or all there are (D then the oldest day holding
    one); (None, 0) for none; None when it cannot tell (filters it does not hold, a final
    record within half a second of the period's bounds). Why: a list whose newest records hold
    too few read every record of the filters: at 10M the SRDL list under a physician's MBBs,
    none of them at the SRDL, took 16 s for an empty list. Two small reads: per month (the
    period's rows), then the days of one month."""
    if column not in COUNTS or not answerable(filters):
        return None
    refresh_counts(engine, lookups=lookups)
    s, count = CountSummary, func.sum(getattr(CountSummary, column))
    month = cast(func.date_trunc("month", s.day), Date)
    with engine.connect() as conn:
        without_jit(conn)
        found = filters.id_conditions(conn, TARGET)
        if found is None or not period_edges_clear(conn, filters):
            return None
        months = conn.execute(select(month, count).where(period_rows(filters, CountSummary), *found)
                              .group_by(month).having(count > 0)
                              .order_by(month.desc())).all()
        if not months:
            return None, 0
        seen, at = 0, 0
        while at < len(months) and seen + months[at][1] < wanted:
            seen, at = seen + months[at][1], at + 1
        fewer = at == len(months)  # all there are: from the oldest day holding one
        first = _as_date(months[-1 if fewer else at][0])
        start = None if filters.start is None else filters.start.astimezone(UTC).date()
        before = None if filters.before is None else filters.before.astimezone(UTC).date()
        days = conn.execute(
            select(s.day, count).where(
                s.whole_month.is_(False), s.day >= max(first, start or first),
                s.day < min(next_month(first), before or next_month(first)), *found)
            .group_by(s.day).having(count > 0)
            .order_by(s.day if fewer else s.day.desc())).all()
        if fewer:
            return (_as_date(days[0][0]), seen) if days else None
        for day, n in days:
            seen += n
            if seen >= wanted:
                return _as_date(day), seen
    return None


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def complication_list(engine: Engine) -> Callable[[Scope, int | None], pd.DataFrame]:
    """drill.complication_list, its window from the summary (newest_day) when it can tell."""
    def work(scope: Scope, limit: int | None = None) -> pd.DataFrame:
        day = None if limit is None else newest_day(engine, scope.lookups, scope.filters,
                                                    "complications", limit)
        return drill.complication_list(scope, limit, day)
    return work
