"""What tests/analytics/test_sql_figures*.py share: every figure the pages show, asked of the
analysis frame and of SQL (PostgreSQL) alike, compared to 1e-9 (relative)."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from typing import Any

import pandas as pd
from sqlalchemy import Engine, event

from audit.analytics.safety import SAFETY_FLAGS
from audit.analytics.source import FigureSource
from audit.analytics.sql import counts, month_cells, summary_counts
from audit.analytics.sql.facts import refresh_facts
from audit.analytics.sql.scope import Scope
from audit.analytics.sql.source import COMPLIANCE_PAGE, SqlSource
from audit.filters import Filters

Call = Callable[[FigureSource, Filters], pd.DataFrame]
GROUPINGS = ("physician", "room", "procedure", "month", "site", "technologist", "levels",
             "weight_band", "bmi_band", "operator")

def call(method: str, *args: Any, **kwargs: Any) -> Call:
    """A figure of a source: its method under the filters, with these arguments."""
    def run(source: FigureSource, filters: Filters) -> pd.DataFrame:
        return getattr(source, method)(filters, *args, **kwargs)  # type: ignore[no-any-return]
    return run


def _complication_list(source: FigureSource, filters: Filters) -> pd.DataFrame:
    return _sorted(source.complication_list(filters))


def _procedures(by: str | None) -> Call:
    """The Alerts page's procedures under the filters (in all, or per id), as a table."""
    def run(source: FigureSource, filters: Filters) -> pd.DataFrame:
        if by is None:
            return pd.DataFrame({"procedures": [source.procedure_count(filters)]})
        counts = source.procedures_by(filters, by)
        return pd.DataFrame({"id": counts.index.to_numpy(), "procedures": counts.to_numpy()})
    return run


QUANTITIES = ("dap_gycm2", "fluoro_time_s", "air_kerma_mgy")
#: (name, call): every figure, each grouping and quantity the pages use (and more).
FIGURES: list[tuple[str, Call]] = [
    ("compliance", call("compliance_rates")),
    *((f"compliance by {by}", call("compliance_rates", by)) for by in GROUPINGS),
    ("p_chart", call("p_chart")),
    ("non-compliant records", call("compliance_records", limit=40)),
    # a limit the filters' newest records fill: the drill's first look (drill.PROBE) answers
    ("non-compliant records, the newest 2", call("compliance_records", limit=2)),
    ("records flagged pregnant, the newest 1", call("flagged_records", "pregnant", 1)),
    ("non-compliant records of a physician",
     call("compliance_records", group=("physician", "Dr. A"), limit=40)),
    ("excepted records", call("compliance_records", "excepted", limit=40)),
    ("dose by procedure", call("dose_statistics")),
    *((f"dose by procedure x {by}{' per level' if per else ''}",
       call("dose_statistics", by=("procedure", by), per_level=per))
      for by, per in (("levels", False), ("levels", True), ("weight_band", False),
                      ("bmi_band", False), ("bmi_band", True), ("operator", False),
                      ("room", True), ("month", False))),
    *((f"dose of {q} by procedure x {by}{' per level' if per else ''} (the Dose page)",
       call("dose_statistics", by=("procedure", by), quantities=(q,), per_level=per))
      for q in ("dap_gycm2", "fluoro_time_s")
      for by, per in (("levels", False), ("levels", True), ("weight_band", False),
                      ("bmi_band", False), ("operator", False))),
    *((f"distribution of {q}", call("dose_distribution", q))
      for q in ("kap_corrected_gycm2", "fluoro_time_s", "air_kerma_mgy")),
    ("distribution by physician", call("dose_distribution", "dap_gycm2", "physician")),
    ("histogram", call("dose_histogram", "TFESI", "kap_corrected_gycm2")),
    ("histogram of time", call("dose_histogram", "TFESI", "fluoro_time_s", 12)),
    *((f"monthly medians of {q}", call("monthly_medians", q)) for q in QUANTITIES),
    ("technique", call("technique_use")),
    ("technique by room", call("technique_use", "room")),
    ("local DRLs", call("local_drls")),
    ("local DRLs of KAP", call("local_drls", ("dap_gycm2",))),
    ("local DRLs of two", call("local_drls", ("fluoro_time_s", "dap_gycm2"))),
    ("local DRLs, low thresholds", call("local_drls", min_room_records=1, min_rooms=2)),
    ("share above", call("share_above_reference")),
    ("share above by physician", call("share_above_reference", "physician")),
    ("scorecard", call("physician_scorecard")),
    *((f"adjusted scorecard of {q}", call("adjusted_scorecard", q)) for q in QUANTITIES),
    ("radiation-free share", call("radiation_free_share")),
    ("completeness", call("completeness")),
    ("completeness by room", call("completeness", "room")),
    ("completeness by technologist", call("completeness", "technologist")),
    ("safety flags", call("safety_flags")),
    ("safety flags by physician", call("safety_flags", "physician")),
    *((f"records flagged {flag}", call("flagged_records", flag, 30)) for flag in SAFETY_FLAGS),
    ("complication rates", call("complication_rates")),
    *((f"complication rates by {by}", call("complication_rates", by))
      for by in ("procedure", "physician", "month")),
    ("complication list", _complication_list),
    ("complication list, the newest 2 (in order)", call("complication_list", limit=2)),
    ("procedures (the Alerts page)", _procedures(None)),
    *((f"procedures by {by}", _procedures(by))
      for by in ("physician", "room", "site", "procedure", "technologist")),
]


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame's list is sorted by time alone (ties in no set order): compare as sets."""
    return frame.sort_values(list(frame.columns)).reset_index(drop=True)


def assert_same(name: str, filters: Filters, frame: Any, sql: Any) -> None:
    pd.testing.assert_frame_equal(
        sql.reset_index(drop=True), frame.reset_index(drop=True), check_dtype=False,
        check_index_type=False, check_column_type=False, rtol=1e-9, atol=0,
        obj=f"{name} under {filters.describe()}")


def assert_every_figure_equal(frame: FigureSource, sql: FigureSource,
                              cases: list[Filters]) -> int:
    """Every figure under every filter combination; returns how many were compared."""
    compared = 0
    for filters in cases:
        for name, call in FIGURES:
            assert_same(name, filters, call(frame, filters), call(sql, filters))
            compared += 1
    return compared


# --- the Compliance page's counts: from the daily summary, or from a scan of the facts -------
FACT_SCAN = re.compile(r"\bFROM record_fact\b", re.IGNORECASE)
SUMMARY_READ = re.compile(r"\bFROM daily_summary\b", re.IGNORECASE)


#: What `statements` notes for a selection of the dose buckets' cells kept in the process
#: (month_cells: no statement, or one read of every month the first time).
KEPT_CELLS = "SELECT ... FROM dose_bucket (the cells kept in the process, month_cells)"


@contextmanager
def statements(engine: Engine) -> Iterator[list[str]]:
    """The SQL statements run on the engine meanwhile (what a figure read), and KEPT_CELLS for
    each selection of kept dose bucket cells."""
    seen: list[str] = []

    def note(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        seen.append(statement)

    def kept(*args: Any, **kwargs: Any) -> Any:
        seen.append(KEPT_CELLS)
        return cells(*args, **kwargs)
    cells = month_cells.cells
    event.listen(engine, "before_cursor_execute", note)
    month_cells.cells = kept  # type: ignore[assignment]
    try:
        yield seen
    finally:
        month_cells.cells = cells  # type: ignore[assignment]
        event.remove(engine, "before_cursor_execute", note)


def scanned_compliance(engine: Engine, sql: SqlSource, filters: Filters,
                       by: str | None) -> pd.DataFrame:
    """compliance_rates as a scan of the record facts computes it (the page's groupings in
    one scan, the others each in one), whether or not the summary could answer."""
    refresh_facts(engine)
    with engine.connect() as conn:
        scope = Scope.open(conn, sql.lookups, filters)
        if by in (None, *COMPLIANCE_PAGE):
            return counts.compliance_together(scope, COMPLIANCE_PAGE)[by]
        return counts.compliance(scope, by)


def assert_compliance_source(engine: Engine, filters: Filters,
                             from_summary: Collection[str | None]) -> None:
    """Every grouping the summary holds: those in `from_summary` read from the summary without
    a scan of the record facts, the others scanned (the fallback), and all exactly the scan's
    table: columns, dtypes, order, labels."""
    for by in summary_counts.GROUPINGS:
        sql = SqlSource(engine, shared=False)  # nothing cached: the figure is computed
        with statements(engine) as seen:
            found = sql.compliance_rates(filters, by)
        scans = [s for s in seen if FACT_SCAN.search(s)]
        where = f"compliance by {by} under {filters.describe()}"
        if by in from_summary:
            assert not scans and any(SUMMARY_READ.search(s) for s in seen), where
        else:
            assert scans, where
        pd.testing.assert_frame_equal(found, scanned_compliance(engine, sql, filters, by),
                                      obj=where)
