"""`SqlSource`: the dashboards' figures computed by PostgreSQL (audit.analytics.source).

What the process keeps: the small lookup tables (names, catalog, settings, reference levels)
and the last few hundred results, both keyed by the figures version (the last audit event that
can change a figure, audit.analytics.figure_changes: one index read per figure), so a rerun with
the same filters costs no query and any write shows on the next one. A result not in memory is
looked up in the table every app process shares (audit.analytics.sql.shared), and only then
computed, and stored there for the others; each public call's recipe goes with it, for the
warmer (audit.analytics.sql.warm). That order, and the last finished figure a dashboard page may
be shown instead of a computation, are in audit.analytics.sql.caching.

Where they answer the filters exactly, counts come from the summaries (summary_counts,
count_summary) and dose quantiles from the dose buckets (bucket_quantiles, bucket_groups,
scorecard_buckets); otherwise a GROUP BY over the filtered records' facts (refreshed before a
figure is computed). Only drill-down lists fetch records, with a LIMIT.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from datetime import date
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, func, select

from audit.analytics.compliance import _rates, p_chart_rows
from audit.analytics.daily_summary import monthly_counts, refresh_summary
from audit.analytics.grouping import ID_COLUMNS, QUANTITIES
from audit.analytics.reference_levels import levels_in_force
from audit.analytics.snapshot import Snapshot
from audit.analytics.sql import (
    bucket_groups,
    bucket_quantiles,
    counts,
    dose,
    drill,
    groups,
    reference,
    scorecard_counts,
    summary_counts,
)
from audit.analytics.sql import count_summary as count_pages
from audit.analytics.sql.caching import CachedFigures
from audit.analytics.sql.facts import refresh_facts
from audit.analytics.sql.scope import Scope
from audit.analytics.sql.shared import (
    SharedResults,
    public,
)
from audit.filters import Filters
from audit.storage.models import DailySummary

#: The groupings a page shows together (computed in one scan, GROUPING SETS).
COMPLIANCE_PAGE = ("physician", "room", "procedure")
QUALITY_PAGE = ("room", "technologist")
COMPLICATIONS_PAGE = ("procedure", "physician", "month")
#: Results kept per process (a page shows about 20; a few filter combinations per user).
CACHE_SIZE = 512
#: Worker threads computing figures asked ahead (SqlSource.ahead), shared by the process: each
#: holds one database connection while it computes.
AHEAD_WORKERS = 3
_ahead_pool: ThreadPoolExecutor | None = None
_ahead_lock = threading.Lock()


def _ahead_workers() -> ThreadPoolExecutor:
    global _ahead_pool
    with _ahead_lock:
        if _ahead_pool is None:
            _ahead_pool = ThreadPoolExecutor(AHEAD_WORKERS, thread_name_prefix="figures-ahead")
        return _ahead_pool


class SqlSource(CachedFigures):
    """The figures of FigureSource, in SQL (PostgreSQL only: percentile_cont)."""

    def __init__(self, engine: Engine, cache_size: int = CACHE_SIZE, *, shared: bool = True,
                 warming: bool = False) -> None:
        """`shared`: look in and store to the table every app process shares (False: this
        process's memory only, as a test of one computation wants). `warming`: the warmer's
        source (its results are not marked as asked for by a person)."""
        if engine.dialect.name != "postgresql":
            raise ValueError(f"figures in SQL need PostgreSQL (percentile_cont), not "
                             f"{engine.dialect.name}: use the analysis frame there")
        self.engine = engine
        self.cache_size = cache_size
        self.shared = shared
        self.warming = warming
        self._shared: SharedResults | None = None
        self._lookups: Snapshot | None = None
        #: key -> (figures version, result): the newest this process has of each key
        self._results: OrderedDict[Any, tuple[int, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self._pending: dict[tuple[Any, int], Future[Any]] = {}
        self.queries = 0  # figures computed (not served from a cache): for tests, benches
        self.shared_hits = 0  # figures found in the shared table (computed by another source)
        #: the investigation levels and the version they are of (investigation_levels)
        self._investigation: tuple[int, pd.DataFrame] | None = None

    # --- the figures version, the lookups and the result caches ------------------------------
    @property
    def token(self) -> int:
        return self.lookups.token

    @property
    def lookups(self) -> Snapshot:
        """The lookup tables as of the current figures version (re-read when it moved)."""
        with self.engine.connect() as conn:
            return self._lookups_on(conn)

    def _figure(self, name: str, filters: Filters, work: Callable[..., Any],
                *args: Any) -> Any:
        """One figure under the filters: names checked as the frame checks them (the same
        errors), then computed in one connection."""
        def compute(conn: Connection, lookups: Snapshot) -> Any:
            filters.mask(lookups)  # unknown names, an inverted period: ValidationFailed
            refresh_facts(self.engine)  # the records' facts at (at least) this version
            return work(Scope.open(conn, lookups, filters), *args)
        return self._cached((name, filters, args), compute)

    def _together(self, name: str, filters: Filters, work: Callable[..., Any],
                  bys: tuple[str, ...], by: str | None) -> pd.DataFrame:
        """One of several groupings a page shows together, all computed in one scan."""
        found = self._figure(name, filters, work, bys)
        return found[by].copy()  # type: ignore[no-any-return]

    # --- from the daily summary ---------------------------------------------------------------
    def _summary(self) -> dict[str, Any]:
        def compute(conn: Connection, lookups: Snapshot) -> dict[str, Any]:
            refresh_summary(self.engine)
            s = DailySummary
            months = s.whole_month.is_(True)  # the month rows: a few per month, the same ids
            with self.engine.connect() as fresh:  # after the refresh's commit
                used = {key: sorted({int(i) for i in fresh.scalars(
                            select(column).where(months).distinct())})
                        for key, column in (("sites", s.site_id), ("rooms", s.room_id),
                                            ("physicians", s.physician_id),
                                            ("procedures", s.procedure_type_id))}
                total = fresh.scalar(select(func.sum(s.procedures)).where(months))
                first, last = fresh.execute(select(func.min(s.day), func.max(s.day))
                                            .where(s.whole_month.is_(False))).one()
            names = {"sites": lookups.sites, "rooms": lookups.rooms["label"],
                     "physicians": lookups.physicians, "procedures": lookups.types["code"]}
            options = {k: sorted(str(names[k][i]) for i in ids if i in names[k].index)
                       for k, ids in used.items()}
            return {"options": options, "count": int(total or 0),
                    "range": None if first is None else (_day(first), _day(last))}
        return self._cached(("summary",), compute)  # type: ignore[no-any-return]

    def ahead(self, *calls: Callable[[SqlSource], Any]) -> list[Future[Any]]:
        """Start these figure calls (each given this source) in worker threads, each on a
        connection of its own, and return at once; the caller's own calls of the same figures
        then find them computed or wait for them (one computation per key: `_pending`).

        Why: PostgreSQL runs one statement on one core, and a dashboard tab's figures are
        independent sorts of the same records. Asked one after another they take the sum of
        their times; asked together, the database server's cores share them. The workers ask
        for exact figures (no "as of"). An error is for the caller's own call to raise: the
        returned futures hold it too."""
        return [_ahead_workers().submit(call, self) for call in calls]

    @public
    def record_count(self) -> int:
        return int(self._summary()["count"])

    @public
    def options(self) -> dict[str, list[str]]:
        return dict(self._summary()["options"])

    @public
    def date_range(self) -> tuple[date, date] | None:
        return self._summary()["range"]  # type: ignore[no-any-return]

    @public
    def p_chart(self, filters: Filters) -> pd.DataFrame:
        """Monthly counts from the daily summary where it can answer the filters (names and
        whole days), else by GROUP BY month; the chart from them as the frame draws it."""
        def compute(conn: Connection, lookups: Snapshot) -> pd.DataFrame:
            filters.mask(lookups)
            try:
                if not self._summary_exact(conn, filters):
                    raise ValueError("a record's day differs from the frame's")
                monthly = monthly_counts(self.engine, filters)
            except ValueError:  # a filter the summary does not hold, or not the same days
                refresh_facts(self.engine)
                monthly = counts.compliance(Scope.open(conn, lookups, filters), "month")
            monthly = monthly[monthly["eligible"] > 0][["month", "eligible", "compliant",
                                                        "excepted"]]
            monthly = _rates(monthly.astype({c: np.int64 for c in monthly.columns[1:]})
                             .reset_index(drop=True))
            return p_chart_rows(monthly)
        return self._cached(("p_chart", filters), compute)  # type: ignore[no-any-return]

    def _summary_exact(self, conn: Connection, filters: Filters) -> bool:
        """Whether the summary's days put every record in the frame's month and period: the
        frame rounds an instant to whole seconds, so a record in the last half second before
        a month's start (or the period's bounds) counts in the next month there. One indexed
        probe for such records; where one exists the months are counted from the records."""
        span = self.date_range()
        return span is None or summary_counts.edges_clear(conn, filters, *span)

    # --- what the Alerts page needs (issue 16: it reads no frame either) ----------------------
    @property
    def frame(self) -> None:
        return None

    @public
    def procedure_count(self, filters: Filters) -> int:
        def work(scope: Scope) -> int:
            return int(scope.conn.scalar(select(func.count()).select_from(scope.rec)) or 0)
        return self._figure("procedure_count", filters, work)  # type: ignore[no-any-return]

    @public
    def procedures_by(self, filters: Filters, by: str) -> pd.Series:
        if by not in ID_COLUMNS:
            raise ValueError(f"cannot count by {by!r}; allowed: {', '.join(ID_COLUMNS)}")

        def work(scope: Scope) -> pd.Series:
            key = scope.col(ID_COLUMNS[by])
            rows = scope.conn.execute(select(key, func.count()).select_from(scope.rec)
                                      .group_by(key).order_by(key)).all()
            return pd.Series([int(n) for _, n in rows], index=[int(k) for k, _ in rows],
                             dtype=np.int64)
        found: pd.Series = self._figure(f"procedures_by:{by}", filters, work)
        return found.copy()

    @public
    def investigation_levels(self) -> pd.DataFrame:
        """From PostgreSQL (audit.alerts.from_sql), equal to the frame's. Kept while only
        events that move no level follow (an acknowledgement, a sign-in): a computation sorts
        every value (3 s at 1M records), and the alert refresh hands over its own."""
        def compute(conn: Connection, lookups: Snapshot) -> pd.DataFrame:
            from audit.alerts.from_sql import inputs_changed, investigation_levels
            kept = self._investigation
            if kept is not None and kept[0] <= lookups.token and \
                    not inputs_changed(conn, kept[0], lookups.token):
                return kept[1]
            table = investigation_levels(conn, lookups, kept[1] if kept else None)
            self._investigation = (lookups.token, table)
            return table
        return self._cached(("investigation_levels",), compute)  # type: ignore[no-any-return]

    def keep_investigation_levels(self, token: int, table: pd.DataFrame) -> None:
        """Levels computed as of data version `token` elsewhere (audit.alerts.refresh)."""
        self._investigation = (token, table.copy())

    def last_investigation_levels(self) -> pd.DataFrame | None:
        """The last levels computed in this process, of any data version: where the next
        computation looks first (audit.alerts.from_sql.type_quantiles)."""
        kept = self._investigation
        return None if kept is None else kept[1]

    # --- the figures --------------------------------------------------------------------------
    @public
    def compliance_rates(self, filters: Filters, by: str | None = None) -> pd.DataFrame:
        """From the daily summary where it answers the filters exactly (None: it cannot,
        audit.analytics.sql.summary_counts), else from a scan of the facts: the same table."""
        if by in summary_counts.GROUPINGS:
            found = self._cached(*summary_counts.computation(self.engine, filters, by,
                                                             self._summary_exact))
            if found is not None:
                return found[by].copy()  # type: ignore[no-any-return]
        if by in (None, *COMPLIANCE_PAGE):  # the page's four tables, one scan
            return self._together("compliance_page", filters, counts.compliance_together,
                                  COMPLIANCE_PAGE, by)
        return self._figure("compliance", filters, counts.compliance, by)

    @public
    def compliance_records(self, filters: Filters, which: str = "non_compliant",
                           group: tuple[str, str] | None = None,
                           limit: int = 1000) -> pd.DataFrame:
        return self._figure("compliance_records", filters, self._compliance_records, which,
                            group, limit)

    def _compliance_records(self, scope: Scope, which: str,
                            group: tuple[str, str] | None, limit: int) -> pd.DataFrame:
        """drill.compliance_records; when the newest records hold too few of the list's, the
        rest looked for from the day the daily summary names (summary_counts.newest_day), not
        among every record."""
        hint = None
        if group is None or group[0] in summary_counts.KEYS:  # a few of its rows: ms
            codes = None if group is None else \
                (group[0], groups.codes_for(scope.lookups, group[0], group[1]))
            hint = summary_counts.newest_day(self.engine, scope.filters, which, limit, codes)
        return drill.compliance_records(scope, which, group, limit, hint)

    @public
    def dose_statistics(self, filters: Filters, by: Sequence[str] = ("procedure",),
                        quantities: Sequence[str] = QUANTITIES,
                        per_level: bool = False) -> pd.DataFrame:
        by = tuple(by)
        if len(quantities) == 1 and by in dose.DOSE_PAGE and (by[1] == "levels" or
                                                              not per_level):
            return self._dose_page(filters, quantities[0], by)[(by, per_level)].copy()
        if "procedure" in by:
            found = self._per_procedure("dose_stats", filters, tuple(by), tuple(quantities),
                                        per_level)
            if found is not None:
                return found  # type: ignore[no-any-return]
        return self._figure("dose_stats", filters, dose.dose_stats, tuple(by),
                            tuple(quantities), per_level)

    def _per_procedure(self, name: str, filters: Filters, *args: Any) -> Any:
        """A figure grouped by procedure under a procedure filter, cut from the same figure
        without that filter when this process holds it: each procedure's rows depend on its
        own records only, so they are the same rows, and narrowing the Dose page to a few
        procedures computes nothing (a new scan of every selected record otherwise, 2-7 s
        at 10M). None when it does not hold it, or the names are not all known."""
        if not filters.procedures:
            return None
        lookups = self.lookups  # one read of the version, for the check and the look
        filters.mask(lookups)  # unknown names, an inverted period: ValidationFailed
        whole = self._peek((name, replace(filters, procedures=()), args), lookups.token)
        if whole is None:
            return None

        def cut(frame: pd.DataFrame) -> pd.DataFrame:
            return frame[frame["procedure"].isin(filters.procedures)].reset_index(drop=True)
        return cut(whole) if isinstance(whole, pd.DataFrame) else \
            {key: cut(frame) for key, frame in whole.items()}

    @public
    def dose_distribution(self, filters: Filters, quantity: str = "dap_gycm2",
                          by: str = "procedure") -> pd.DataFrame:
        found = self._per_procedure("dose_distribution", filters, quantity, by) \
            if by == "procedure" else None
        if found is None:
            found = self._figure("dose_distribution", filters, self._distribution, quantity, by)
        return found.drop(columns=list(dose.SPAN))  # type: ignore[no-any-return]

    def _distribution(self, scope: Scope, quantity: str, by: str) -> pd.DataFrame:
        """From the dose buckets where they answer (exact, without sorting the records:
        audit.analytics.sql.dose_buckets), else the scan."""
        if by == "procedure":
            found = bucket_quantiles.quantiles(self.engine, scope.lookups, scope.filters, quantity,
                                           False, dose.DISTRIBUTION_QS)
            if found is not None:
                return dose.distribution_frame(found, scope, by)
        return dose.dose_distribution(scope, quantity, by)

    @public
    def dose_histogram(self, filters: Filters, procedure: str, quantity: str = "dap_gycm2",
                       bins: int = 40) -> pd.DataFrame:
        """Kept under the filters narrowed to the procedure, so a procedure filter that
        includes it (or none) finds the same result."""
        lookups = self.lookups  # one read of the version
        filters.mask(lookups)  # unknown names, an inverted period: ValidationFailed
        if procedure not in set(lookups.types["code"]) or (
                filters.procedures and procedure not in filters.procedures):
            return pd.DataFrame({"low": [], "high": [], "count": []})
        narrowed = replace(filters, procedures=(procedure,))

        def work(scope: Scope) -> pd.DataFrame:
            span = self._span(filters, procedure, quantity, scope.lookups.token)
            found = bucket_quantiles.histogram(self.engine, scope.lookups, scope.filters, quantity,
                                           bins, span)
            return found if found is not None else dose.dose_histogram(scope, quantity, bins,
                                                                       span)
        return self._figure(f"dose_histogram:{quantity}:{bins}", narrowed, work)

    def _span(self, filters: Filters, procedure: str, quantity: str,
              version: int) -> tuple[Any, Any] | None:
        """The procedure's least and greatest positive value under the filters, from the
        distribution this process holds at `version` (under these filters, or without their
        procedures: the same records of the procedure), else None (the histogram reads them)."""
        for held in (filters, replace(filters, procedures=())):
            whole = self._peek(("dose_distribution", held, (quantity, "procedure")), version)
            if whole is None:
                continue
            row = whole[whole["procedure"] == procedure]
            if len(row) == 1:
                return row[dose.SPAN[0]].iloc[0], row[dose.SPAN[1]].iloc[0]
        return None

    def _dose_page(self, filters: Filters, quantity: str,
                   by: tuple[str, ...]) -> dict[tuple[tuple[str, ...], bool], pd.DataFrame]:
        """The groupings of the Dose page's tab showing `by`, together (bucket_groups.page);
        each has the procedure, so a procedure filter cuts them (_per_procedure)."""
        sets = dose.OVER_TIME_PAGE if by in dose.OVER_TIME_PAGE else dose.CASE_MIX_PAGE
        found = self._per_procedure("dose_page", filters, quantity, sets)
        return found if found is not None else self._figure(  # type: ignore[no-any-return]
            "dose_page", filters, partial(bucket_groups.page, self.engine), quantity, sets)

    @public
    def monthly_medians(self, filters: Filters, quantity: str = "dap_gycm2") -> pd.DataFrame:
        frame = self._dose_page(filters, quantity, ("month", "procedure"))[
            (("month", "procedure"), False)]
        return dose.monthly_from(frame, quantity)

    @public
    def technique_use(self, filters: Filters, by: str | None = None) -> pd.DataFrame:
        return self._figure("technique_use", filters, counts.technique_use, by)

    @public
    def local_drls(self, filters: Filters, quantities: Sequence[str] = QUANTITIES,
                   min_room_records: int | None = None,
                   min_rooms: int | None = None) -> pd.DataFrame:
        # over the period only, whatever the other filters (a reference is the organisation's),
        # so a change of physician, room or procedure reuses it. Only the quantities asked:
        # the Dose page's first tab (and the scorecards' levels) ask for one, which costs
        # half of all three (the room medians of each quantity are their own sorts); its
        # Reference levels tab asks for all of them in one scan.
        medians = partial(bucket_quantiles.medians, self.engine)
        return self._figure("local_drls", filters.period,
                            lambda scope, *args: reference.local_drls(scope, *args,
                                                                      medians=medians),
                            tuple(quantities), min_room_records, min_rooms)

    def _levels(self, filters: Filters, quantity: str) -> pd.DataFrame:
        local = self.local_drls(filters, (quantity,))
        return levels_in_force(self.lookups, filters, quantity, local=local)

    @public
    def share_above_reference(self, filters: Filters, by: str | None = None,
                              quantity: str = "dap_gycm2") -> pd.DataFrame:
        levels = self._levels(filters, quantity)
        return self._figure(f"share_above:{by}:{quantity}", filters,
                            lambda s: reference.share_above_reference(s, levels, by, quantity))

    @public
    def physician_scorecard(self, filters: Filters) -> pd.DataFrame:
        levels = partial(self._levels, filters, "dap_gycm2")  # read while medians are picked
        return self._figure("physician_scorecard", filters, scorecard_counts.physician_work(
            self.engine, self._summary_exact, levels))  # the summaries', else the scans

    @public
    def adjusted_scorecard(self, filters: Filters, quantity: str = "dap_gycm2") -> pd.DataFrame:
        return self._figure("adjusted_scorecard", filters,
                            scorecard_counts.adjusted_work(self.engine), quantity)

    @public
    def radiation_free_share(self, filters: Filters) -> pd.DataFrame:
        if (found := self._page_counts(filters)) is not None:  # the count summary's
            return found["radiation_free"].copy()  # type: ignore[no-any-return]
        return self._figure("radiation_free_share", filters, counts.radiation_free_share)

    def _page_counts(self, filters: Filters) -> dict[str, Any] | None:
        """Both count pages' counts from the count summary (None: it cannot answer)."""
        return self._cached(*count_pages.computation(  # type: ignore[no-any-return]
            self.engine, filters, self._summary_exact))

    @public
    def completeness(self, filters: Filters, by: str | None = None) -> pd.DataFrame:
        if by in (None, *QUALITY_PAGE) and (found := self._page_counts(filters)) is not None:
            return found["quality"][by].copy()  # type: ignore[no-any-return]
        if by in (None, *QUALITY_PAGE):  # the page's three tables, one scan
            return self._together("quality_page", filters, counts.completeness_together,
                                  QUALITY_PAGE, by)
        return self._figure("completeness", filters, counts.completeness, by)

    @public
    def safety_flags(self, filters: Filters, by: str | None = None) -> pd.DataFrame:
        if by is None and (found := self._page_counts(filters)) is not None:
            return found["quality"][counts.SAFETY].copy()  # type: ignore[no-any-return]
        if by is None:  # in the Data quality page's scan
            return self._together("quality_page", filters, counts.completeness_together,
                                  QUALITY_PAGE, counts.SAFETY)
        return self._figure("safety_flags", filters, counts.safety_flags, by)

    @public
    def flagged_records(self, filters: Filters, flag: str, limit: int = 1000) -> pd.DataFrame:
        return self._figure("flagged_records", filters, self._flagged_records, flag, limit)

    def _flagged_records(self, scope: Scope, flag: str, limit: int) -> pd.DataFrame:
        """drill.flagged_records, bounded by where the count summary says the flag's records
        lie (count_summary.list_window); not for a flag with a partial index, which reads only
        the flag's own rows already (the summary's read would cost more)."""
        if flag in drill.INDEXED_FLAGS:
            return drill.flagged_records(scope, flag, limit)
        return drill.flagged_records(scope, flag, limit, count_pages.list_window(
            self.engine, scope.lookups, scope.filters, flag, limit))

    @public
    def complication_rates(self, filters: Filters, by: str | None = None) -> pd.DataFrame:
        if by in (None, *COMPLICATIONS_PAGE) and \
                (found := self._page_counts(filters)) is not None:
            return found["complications"][by].copy()  # type: ignore[no-any-return]
        if by in (None, *COMPLICATIONS_PAGE):  # the page's four tables, one scan
            return self._together("complications_page", filters,
                                  counts.complication_rates_together, COMPLICATIONS_PAGE, by)
        return self._figure("complication_rates", filters, counts.complication_rates, by)

    @public
    def complication_list(self, filters: Filters, limit: int | None = None) -> pd.DataFrame:
        return self._figure("complication_list", filters,
                            count_pages.complication_list(self.engine), limit)


def _day(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))
