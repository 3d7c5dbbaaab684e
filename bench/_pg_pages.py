"""bench_analytics.py --url postgresql://...: each audit page's figures from SQL (issue 16),
cold (a new process: a new SqlSource, nothing cached, nothing shared) and warm (the same
process, a filter changed: nothing cached for those filters), the process's peak RSS, beside a
plain GROUP BY of the same run. The calls are the pages' own (dashboard/views/*, through the
FigureSource).

Then the figures shared by every app process (audit.analytics.sql.shared): a person's process
asks for each page under the default and the warm filters (stored in figure_result), a write
moves the figures version (the duplicate_window_minutes setting set to its own value: one
audited event, no figure changes), the warmer replays what was asked (`warm_figures`, timed), and
a new process opens each page: "after warm" is what a restart or a second app process sees,
"filter" the same with the first warm filter.

Then a page right after a write with "as of" figures allowed (audit.analytics.sql.stale, what
the dashboard's pages do): a second write, and a new process opens each page through AsOf before
any warm: the page's time, how many of its figures were the older version's and how many were
computed in the request (the background worker held meanwhile, so that it counts the page's
own); then the time the background worker took to compute the current ones,
and each page again (its figures current, from memory)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import date
from typing import Any

from sqlalchemy.orm import Session

from audit.analytics import AsOf, SqlSource, drl_thresholds, reference_table, warm_figures
from audit.analytics.sql import month_cells, month_sums
from audit.analytics.sql.warm import background_held, wait_for_warmer
from audit.auth import cli_actor
from audit.filters import Filters
from audit.settings import update_setting
from audit.storage.engine import make_engine
from audit.storage.models import Setting
from bench._common import group_by_s, peak_rss_mb

QUANTITY = "dap_gycm2"


def compliance_page(s: SqlSource, f: Filters) -> None:
    _ahead(s, lambda x: x.compliance_rates(f), lambda x: x.p_chart(f),
           lambda x: x.compliance_records(f, "non_compliant", None, limit=2000))
    s.compliance_rates(f)
    s.p_chart(f)
    for by in ("physician", "room", "procedure"):
        s.compliance_rates(f, by)
    s.compliance_records(f, "non_compliant", None, limit=2000)


#: Ask each tab's independent figures ahead, as the page does (SqlSource.ahead); False:
#: one after another (bench_analytics.py --no-ahead), as before.
AHEAD = True


def _ahead(s: SqlSource, *calls: Callable[[SqlSource], Any]) -> None:
    if AHEAD:
        s.ahead(*calls)


#: The procedure whose histogram the Dose page showed last (its session's "d_procedure").
_KEPT: dict[str, str] = {}


def dose_page(s: SqlSource, f: Filters) -> None:
    """The Dose page as it opens: its first tab, "Per procedure" (only the open tab is
    computed, dashboard/views/dose.py), with the histogram of the procedure it showed last
    asked ahead too, as the page does after its first view."""
    kept = _KEPT.get("procedure")
    _ahead(s, lambda x: x.dose_distribution(f, "kap_corrected_gycm2"),
           lambda x: x.local_drls(f, (QUANTITY,)),
           *([lambda x: x.dose_histogram(f, kept, "kap_corrected_gycm2")] if kept else []))
    drl_thresholds(s.lookups)
    distribution = s.dose_distribution(f, "kap_corrected_gycm2")
    s.local_drls(f, (QUANTITY,))
    if len(distribution):
        procedure = kept if kept in set(distribution["procedure"]) else \
            distribution["procedure"].iloc[0]
        s.dose_histogram(f, procedure, "kap_corrected_gycm2")
        _KEPT["procedure"] = procedure


def dose_physicians_tab(s: SqlSource, f: Filters) -> None:
    _ahead(s, lambda x: x.physician_scorecard(f), lambda x: x.adjusted_scorecard(f, QUANTITY))
    s.physician_scorecard(f)
    s.adjusted_scorecard(f, QUANTITY)


def dose_case_mix_tab(s: SqlSource, f: Filters) -> None:
    _ahead(s, lambda x: x.dose_statistics(f, by=("procedure", "levels"), quantities=(QUANTITY,)),
           lambda x: x.radiation_free_share(f))
    s.dose_statistics(f, by=("procedure", "levels"), quantities=(QUANTITY,))
    s.dose_statistics(f, by=("procedure", "levels"), quantities=(QUANTITY,), per_level=True)
    s.dose_statistics(f, by=("procedure", "weight_band"), quantities=(QUANTITY,))
    s.radiation_free_share(f)
    s.dose_statistics(f, by=("procedure", "bmi_band"), quantities=(QUANTITY,))
    s.dose_statistics(f, by=("procedure", "operator"), quantities=(QUANTITY,))


def dose_over_time_tab(s: SqlSource, f: Filters) -> None:
    s.monthly_medians(f, QUANTITY)


def dose_reference_tab(s: SqlSource, f: Filters) -> None:
    s.local_drls(f)
    reference_table(s.lookups)


def data_quality_page(s: SqlSource, f: Filters) -> None:
    _ahead(s, lambda x: x.completeness(f),
           lambda x: x.flagged_records(f, "particulate_cervical_tfesi", limit=2000))
    s.completeness(f)
    s.completeness(f, "room")
    s.completeness(f, "technologist")
    s.safety_flags(f)
    s.flagged_records(f, "particulate_cervical_tfesi", limit=2000)


def complications_page(s: SqlSource, f: Filters) -> None:
    _ahead(s, lambda x: x.complication_rates(f), lambda x: x.complication_list(f, limit=1000))
    s.complication_rates(f)
    for by in ("procedure", "physician", "month"):
        s.complication_rates(f, by)
    s.complication_list(f, limit=1000)  # the page lists the newest 1,000 (LISTED)


PAGES: dict[str, Callable[[SqlSource, Filters], None]] = {
    "Compliance": compliance_page, "Dose": dose_page, "Dose/Physicians": dose_physicians_tab,
    "Dose/Case mix": dose_case_mix_tab, "Dose/Over time": dose_over_time_tab,
    "Dose/Reference": dose_reference_tab, "Data quality": data_quality_page,
    "Complications": complications_page,
}
WARM_FILTERS = [
    Filters(physicians=("Dr. Demo Weiss",)),
    Filters.days(date(2025, 11, 1), date(2026, 10, 31)),
    Filters(rooms=("Demo OR 2", "Demo Suite A"), procedures=("TFESI", "ILESI")),
]


def _timed(work: Callable[[], Any]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def main(url: str, label: str = "",
         pages: dict[str, Callable[[SqlSource, Filters], None]] | None = None,
         shared: bool = True) -> int:
    """`pages`: only these (bench_analytics.py --pages), all when None. shared=False: no
    shared results (nothing stored, no setting written: --read-only)."""
    pages = PAGES if pages is None else pages
    engine = make_engine(url)
    group_by = min(group_by_s(engine) for _ in range(3))
    # also brings the daily summary up to date
    records = SqlSource(engine, shared=shared).record_count()
    print(f"\nfluoro-audit analytics benchmark, figures from SQL: {records:,} final records "
          f"(PostgreSQL{label})")
    print(f"plain GROUP BY over the table: {group_by:.2f} s")
    print("cold: a new process (nothing cached, nothing shared); warm: a filter change (slowest "
          f"of {len(WARM_FILTERS)}: a physician, a year, rooms with procedures; each in "
          "brackets); repeat: the same filters again")
    print(f"\n{'page':<16}{'cold s':>8}{'warm s':>8}{'repeat s':>9}{'cold/GB':>9}{'warm/GB':>9}")
    for name, page in pages.items():
        source = SqlSource(engine, shared=False)
        month_cells.clear()  # a new process keeps no cells, nor their sums
        month_sums.clear()
        cold = _timed(lambda page=page, s=source: page(s, Filters()))
        each = [_timed(lambda page=page, s=source, f=f: page(s, f)) for f in WARM_FILTERS]
        warm = max(each)
        repeat = _timed(lambda page=page, s=source: page(s, WARM_FILTERS[0]))
        print(f"{name:<16}{cold:>8.2f}{warm:>8.3f}{repeat:>9.3f}{cold / group_by:>9.1f}"
              f"{warm / group_by:>9.2f}   ({', '.join(f'{x:.3f}' for x in each)})", flush=True)
    if shared:
        shared_pages(engine, pages)
    print(f"\npeak RSS of this process: {peak_rss_mb():.0f} MB (the frame is never read)")
    print("targets (issue 16, 5M and 10M): cold <= 3 s, warm <= 0.3 s, RSS < 1 GB")
    engine.dispose()
    return 0


def shared_pages(engine: Any,
                 pages: dict[str, Callable[[SqlSource, Filters], None]]) -> None:
    """Asked, written, warmed, opened by a new process (the module docstring)."""
    asker = SqlSource(engine)
    asking = _timed(lambda: [page(asker, f) for page in pages.values()
                             for f in (Filters(), *WARM_FILTERS)])
    _a_write(engine)
    report = warm_figures(engine)
    print(f"\nshared results: asked for {len(pages)} pages x {1 + len(WARM_FILTERS)} filters "
          f"in {asking:.1f} s ({asker.queries} figures stored); after a write the warmer "
          f"replayed {report.replayed} calls in {report.seconds:.1f} s ({report.computed} "
          f"figures computed, {report.failed} failed)")
    print(f"\n{'page':<16}{'after warm s':>13}{'filter s':>9}{'computed':>9}")
    for name, page in pages.items():
        fresh = SqlSource(engine)  # a new process after the warm
        after = _timed(lambda page=page, s=fresh: page(s, Filters()))
        filtered = _timed(lambda page=page, s=fresh: page(s, WARM_FILTERS[0]))
        print(f"{name:<16}{after:>13.3f}{filtered:>9.3f}{fresh.queries:>9}", flush=True)
    as_of_pages(engine, pages)


def _a_write(engine: Any) -> None:
    """One audited event that moves the figures version and changes no figure."""
    with Session(engine) as session:  # the stored value as it is (an int stays an int)
        window = session.get(Setting, "duplicate_window_minutes").value  # type: ignore[union-attr]
    update_setting(engine, cli_actor(), "duplicate_window_minutes", window)


def as_of_pages(engine: Any, pages: dict[str, Callable[[SqlSource, Filters], None]]) -> None:
    """A page right after a write, "as of" figures allowed (the module docstring)."""
    _a_write(engine)
    source = SqlSource(engine)  # a new process, right after the write: no warm yet
    print("\nright after a write, older figures allowed (a new process, before any warm)")
    print(f"{'page':<16}{'page s':>8}{'older':>7}{'computed':>9}")
    with background_held():  # the worker waits, so that "computed" counts the page's own
        for name, page in pages.items():
            view, computed = AsOf(source), source.queries
            took = _timed(lambda page=page, s=view: page(s, Filters()))  # type: ignore[arg-type]
            print(f"{name:<16}{took:>8.3f}{view.served.stale:>7}"
                  f"{source.queries - computed:>9}", flush=True)
    behind = _timed(wait_for_warmer)
    print(f"the background worker computed the current figures in {behind:.1f} s more "
          f"({source.queries} figures computed by this process in all)")
    for name, page in pages.items():
        view = AsOf(source)
        took = _timed(lambda page=page, s=view: page(s, Filters()))  # type: ignore[arg-type]
        print(f"{name:<16}{took:>8.3f}{view.served.stale:>7}  (the next rerun)", flush=True)
