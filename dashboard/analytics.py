"""What the audit pages share: where the figures come from (`figures()`), the analysis frame (one
per process) and the common filters.

On PostgreSQL the figures come from SQL (audit.analytics.sql.source.SqlSource, one per process:
it keeps the lookup tables and recent results, and shares results with every app process through
a table), and the Compliance, Dose, Data quality and Complications pages never load the frame
(issue 16); when a rerun sees the figures version move, the warmer computes ahead, in a daemon
thread (at most one per process, the page never waits for it), what people looked at before.
On SQLite they come from the frame. The frame (audit.analytics.snapshot.FrameCache) is a
per-process resource like the engine: it refreshes itself from the audit trail, so a saved
record shows on the next rerun without clearing anything. It starts loading in the background
when someone who can open the audit pages signs in (dashboard/app.py; never for the sign-in
page, which imports none of this), so the first audit page they open usually finds it ready.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import date
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from audit import Filters
from audit.analytics import (
    AsOf,
    FigureSource,
    FrameCache,
    FrameSource,
    Served,
    Snapshot,
    changes_since,
    frame_store_dir,
    uses_sql,
    warm_when_moved,
)
from audit.vocab import DoseQuantity
from dashboard import state, tables
from dashboard.widgets import plain

#: The dose quantities in the order the Dose page offers them, with their labels.
QUANTITY_LABELS = {q.value: q.label for q in (DoseQuantity.DAP_GYCM2, DoseQuantity.FLUORO_TIME_S,
                                              DoseQuantity.AIR_KERMA_MGY)}




@st.cache_resource
def frame_cache() -> FrameCache:
    cache = FrameCache(state.engine(), store=frame_store_dir())
    threading.Thread(target=_warm, args=(cache,), daemon=True, name="frame-warmup").start()
    return cache


def _warm(cache: FrameCache) -> None:
    try:
        cache.get()
    except Exception:  # the page's own call reports it
        return


def snapshot() -> Snapshot:
    return frame_cache().get()


@st.cache_resource
def _sql_source(url: str) -> FigureSource:
    from audit.analytics import SqlSource

    return SqlSource(state.engine())


def figures(*, as_of: bool = False) -> FigureSource:
    """The figures for this rerun: SQL on PostgreSQL (no frame), the frame on SQLite.
    `as_of`: a page that may show the last finished figures of an older figures version while
    the newest are computed in the background (audit.analytics.sql.stale; `caption` says so on
    the page); never for what is printed, exported or refreshed (the committee report, the
    alerts), which take the exact figures."""
    engine = state.engine()
    if uses_sql(engine):
        source = _sql_source(str(engine.url))
        warm_when_moved(engine, source.token)  # returns at once; a thread warms if it moved
        return AsOf(source) if as_of else source  # type: ignore[return-value]
    return FrameSource(snapshot(), engine)


def ahead(source: FigureSource, *calls: Callable[[Any], Any]) -> None:
    """Ask for a tab's independent figures at once (SqlSource.ahead: each in a worker thread
    on a connection of its own, so PostgreSQL computes them on several cores); the page's own
    calls then find them or wait for them. Nothing on SQLite, whose figures come from the
    frame in this process."""
    found = getattr(source, "source", source)  # a page's AsOf wraps the SqlSource
    if isinstance(found, FrameSource):
        return
    from audit.analytics import SqlSource  # loaded where the figures are SQL's only

    if isinstance(found, SqlSource):
        found.ahead(*calls)


def computing(what: str) -> Any:
    """A spinner with the time elapsed around figures that may take seconds: on PostgreSQL
    each dose figure under new filters is a sort of the selected records (at 10M records the
    Dose page's first tab took 8-16 s). Shown only when the figures are not at hand:
    st.spinner waits half a second before it appears."""
    return st.spinner(f"Computing {what} for these filters…", show_time=True)


def warm() -> None:
    """What a sign-in starts in the background (dashboard.state): the frame on SQLite; on
    PostgreSQL only the SQL source's lookup tables (the frame is never read there)."""
    engine = state.engine()
    if uses_sql(engine):
        _sql_source(str(engine.url)).lookups  # noqa: B018 - read now, kept for the pages
    else:
        frame_cache()


def _source(found: FigureSource | Snapshot) -> FigureSource:
    return FrameSource(found) if isinstance(found, Snapshot) else found


#: The period presets of whole calendar months, and how many.
MONTHS_BACK = {"Last 12 months": 12, "Last 3 months": 3}


def months_back(last: date, months: int) -> date:
    """The first day of the calendar month `months` - 1 before `last`'s: the start of the last
    `months` whole months, `last`'s own the last of them. Whole months read the summaries'
    month rows and give the p-chart no partial first month (a 365-day year began with one
    day of a month)."""
    index = last.year * 12 + last.month - 1 - (months - 1)
    return date(index // 12, index % 12 + 1, 1)


def filters(found: FigureSource | Snapshot) -> Filters:
    """The common filters in the sidebar: period, site, room, physician, procedure (choices
    from the figures' source, or a snapshot)."""
    source = _source(found)
    choices = source.options()
    span = source.date_range()
    sidebar = st.sidebar
    sidebar.header("Filters")
    start = end = None
    if span:
        first, last = span
        preset = sidebar.selectbox(
            "Period", ["All", "Last 12 months", "Last 3 months", "Custom"], key="f_period",
            help="The last 12 or 3 calendar months, whole, up to the newest record's day "
                 "(the month it is in counts as the last).")
        if preset in MONTHS_BACK:
            start, end = max(first, months_back(last, MONTHS_BACK[preset])), last
        elif preset == "Custom":
            picked = sidebar.date_input("From / to (UTC)", value=(first, last),
                                        min_value=first, max_value=last, key="f_dates")
            if isinstance(picked, tuple | list) and len(picked) == 2:
                start, end = picked
            elif isinstance(picked, tuple | list) and len(picked) == 1:
                start = picked[0]
    chosen = {}
    for key, label in (("sites", "Site"), ("rooms", "Room"), ("physicians", "Physician"),
                       ("procedures", "Procedure")):
        chosen[key] = tuple(sidebar.multiselect(label, choices[key], key=f"f_{key}"))
    return Filters.days(_as_date(start), _as_date(end), **chosen)


def _as_date(value: object) -> date | None:
    return value if isinstance(value, date) else None


def caption(found: FigureSource | Snapshot, chosen: Filters) -> None:
    """The filters, the records and the version the figures are of; on an `as_of` page, a
    notice under it as soon as a figure of an older version is shown (`as_of_notice`)."""
    source = _source(found)
    zone = tables.display_zone()[1]
    count = source.record_count()
    older = found.served.oldest if isinstance(found, AsOf) else None
    st.caption(f"{plain(chosen.describe())} · {count:,} final records in the log · data as of "
               f"audit event {source.token if older is None else older} · months and dates in "
               f"UTC, times of day in {zone}")
    if isinstance(found, AsOf):
        box = st.container()
        slot, shown = box.empty(), []  # the older version the notice names

        def notice(served: Served) -> None:
            if shown and shown[0] == served.oldest:
                return  # the same older version: the notice stands
            as_of_notice(slot, served)
            if not shown:  # one Refresh button, under the notice however often it changes
                box.button("Refresh", key="as_of_refresh", help="Show the newest figures")
            shown[:] = [served.oldest]
        found.on_stale = notice
        if found.served.oldest is not None:
            notice(found.served)


def from_every_record(found: FigureSource, chosen: Filters, by_physician: bool = False) -> None:
    """Say when the open view's dose figures will sort every selected record instead of
    reading the dose buckets (SQL figures only; audit.analytics.sql.bucket_quantiles): when
    the buckets cannot answer the filters (scanned_because names why; `by_physician`: for
    the figures per physician, whose buckets hold rooms with physicians too). At millions of
    records that is seconds, not a fraction of one: the wait is explained, and its cause
    named."""
    source = getattr(found, "source", found)  # a page's AsOf wraps the SqlSource
    from audit.analytics import SqlSource, scanned_because  # SQL figures' only

    if not isinstance(source, SqlSource):
        return
    if (why := scanned_because(chosen, by_physician)) is not None:
        st.caption(f"{why}: these dose figures are computed from every selected record, not "
                   "from the dose buckets (seconds at millions of records).")


def as_of_notice(slot: Any, served: Served) -> None:
    """Says which figures the page shows: as of the write that made the oldest version served,
    how many writes followed, and that the newest are being computed (a rerun shows them)."""
    if served.oldest is None or served.current is None:
        return
    with state.engine().connect() as conn:
        when, since = changes_since(conn, served.oldest, served.current)
    zone, zone_name = tables.display_zone()
    moment = tables.local_text(when, zone) if when else "an earlier write"
    later = f"{since:,} later change{'s' if since != 1 else ''} not included yet"
    slot.info(plain(f"Figures as of {moment} ({zone_name}, audit event {served.oldest}; "
                    f"{later}). The newest figures are being computed in the background: "
                    f"press Refresh in a moment to see them."))


def percent(value: float | None) -> str:
    return "–" if value is None or pd.isna(value) else f"{value:.1%}"


def chart_and_table(chart: alt.TopLevelMixin, table: pd.DataFrame, *, side: bool = True,
                    height: int | None = None, caption: str | None = None,
                    **table_options: Any) -> None:
    """Every chart with its "how to read this" caption under it and its numbers beside (or
    below) it, the table drawn by dashboard.tables.show (`table_options` go there)."""
    size = height if height is not None else "auto"
    # small multiples keep their panels' size; single charts fill the column
    width = "content" if isinstance(chart, alt.FacetChart) else "stretch"
    left, right = st.columns([3, 2]) if side else (st.container(), st.container())
    left.altair_chart(chart, width=width)
    if caption:
        left.caption(caption)
    tables.show(table, container=right, height=size, **table_options)
