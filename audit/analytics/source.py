"""Where the dashboards' figures come from: the analysis frame, or SQL (issue 16).

Why two sources: the frame (audit.analytics.snapshot) holds every final record in each app
process, which is fast and right for SQLite (one process serves it) but grows with the data in
every process of a multi-user PostgreSQL site; there `SqlSource` (audit.analytics.sql.source)
computes the same figures in PostgreSQL (grouped counts, percentile_cont) and the process holds
only results. The pages call the `FigureSource` methods, named as the audit.analytics functions
they stand for, with the same arguments minus the snapshot; `figure_source` picks the source by
the database. The two give equal figures (tests/analytics/test_sql_figures*.py).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from datetime import date
from typing import TYPE_CHECKING, Any, Protocol

from audit.errors import FieldError, ValidationFailed

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy import Engine

    from audit.analytics.snapshot import FrameCache, ReadProgress, Snapshot
    from audit.filters import Filters

QUANTITIES = ("fluoro_time_s", "dap_gycm2", "air_kerma_mgy")


class FigureSource(Protocol):
    """The figures the audit pages show, under any Filters."""

    @property
    def lookups(self) -> Snapshot:
        """Names, catalog, settings and reference levels (a Snapshot; its records are the
        frame's, or none at all for SQL): for drl_thresholds, reference_table, ..."""

    @property
    def token(self) -> int:
        """The data version (highest audit event id) the figures are as of."""

    @property
    def frame(self) -> Snapshot | None:
        """The analysis frame the figures come from; None when they come from SQL (then
        nothing may read the frame: audit.alerts.refresh computes from SQL too)."""

    def record_count(self) -> int: ...
    def procedure_count(self, filters: Filters) -> int:
        """The final records the filters select (the Alerts page's rates per 100)."""
    def procedures_by(self, filters: Filters, by: str) -> pd.Series:
        """Final records under the filters per id of `by` ("physician", "room", "site",
        "procedure", "technologist"): id -> count, ids with records only, by id."""
    def investigation_levels(self) -> pd.DataFrame:
        """audit.alerts.detection.investigation_levels of every final record."""
    def options(self) -> dict[str, list[str]]: ...
    def date_range(self) -> tuple[date, date] | None: ...
    def compliance_rates(self, filters: Filters, by: str | None = None) -> pd.DataFrame: ...
    def p_chart(self, filters: Filters) -> pd.DataFrame: ...
    def compliance_records(self, filters: Filters, which: str = "non_compliant",
                           group: tuple[str, str] | None = None,
                           limit: int = 1000) -> pd.DataFrame: ...
    def dose_statistics(self, filters: Filters, by: Sequence[str] = ("procedure",),
                        quantities: Sequence[str] = QUANTITIES,
                        per_level: bool = False) -> pd.DataFrame: ...
    def dose_distribution(self, filters: Filters, quantity: str = "dap_gycm2",
                          by: str = "procedure") -> pd.DataFrame: ...
    def dose_histogram(self, filters: Filters, procedure: str, quantity: str = "dap_gycm2",
                       bins: int = 40) -> pd.DataFrame: ...
    def monthly_medians(self, filters: Filters,
                        quantity: str = "dap_gycm2") -> pd.DataFrame: ...
    def technique_use(self, filters: Filters, by: str | None = None) -> pd.DataFrame: ...
    def local_drls(self, filters: Filters, quantities: Sequence[str] = QUANTITIES,
                   min_room_records: int | None = None,
                   min_rooms: int | None = None) -> pd.DataFrame: ...
    def share_above_reference(self, filters: Filters, by: str | None = None,
                              quantity: str = "dap_gycm2") -> pd.DataFrame: ...
    def physician_scorecard(self, filters: Filters) -> pd.DataFrame: ...
    def adjusted_scorecard(self, filters: Filters,
                           quantity: str = "dap_gycm2") -> pd.DataFrame: ...
    def radiation_free_share(self, filters: Filters) -> pd.DataFrame: ...
    def completeness(self, filters: Filters, by: str | None = None) -> pd.DataFrame: ...
    def safety_flags(self, filters: Filters, by: str | None = None) -> pd.DataFrame: ...
    def flagged_records(self, filters: Filters, flag: str,
                        limit: int = 1000) -> pd.DataFrame: ...
    def complication_rates(self, filters: Filters, by: str | None = None) -> pd.DataFrame: ...
    def complication_list(self, filters: Filters,
                          limit: int | None = None) -> pd.DataFrame: ...


class FrameSource:
    """The figures from the analysis frame: today's functions on one snapshot (SQLite)."""

    def __init__(self, snap: Snapshot, engine: Engine | None = None) -> None:
        self.snap = snap
        self.engine = engine
        self._complications: pd.DataFrame | None = None

    @classmethod
    def current(cls, cache: FrameCache) -> FrameSource:
        return cls(cache.get(), cache.engine)

    @property
    def lookups(self) -> Snapshot:
        return self.snap

    @property
    def token(self) -> int:
        return self.snap.token

    @property
    def frame(self) -> Snapshot:
        return self.snap

    def record_count(self) -> int:
        return len(self.snap.records)

    def procedure_count(self, filters: Filters) -> int:
        return int(filters.mask(self.snap).sum())

    def procedures_by(self, filters: Filters, by: str) -> pd.Series:
        import numpy as np
        import pandas as pd

        from audit.analytics.grouping import ID_COLUMNS
        column = ID_COLUMNS.get(by)
        if column is None:
            raise ValueError(f"cannot count by {by!r}; allowed: {', '.join(ID_COLUMNS)}")
        ids = self.snap.records[column].to_numpy()[filters.mask(self.snap)].astype(np.int64)
        counts = pd.Series(np.bincount(ids) if len(ids) else [], dtype=np.int64)
        return counts[counts > 0]

    def investigation_levels(self) -> pd.DataFrame:
        from audit.alerts.detection import investigation_levels
        return investigation_levels(self.snap)

    def options(self) -> dict[str, list[str]]:
        from audit.analytics.snapshot import options
        return options(self.snap)

    def date_range(self) -> tuple[date, date] | None:
        from audit.analytics.snapshot import date_range
        return date_range(self.snap)

    def __getattr__(self, name: str) -> Any:
        """A figure: the audit.analytics function of that name, on this snapshot."""
        if name not in _FRAME_FIGURES:
            raise AttributeError(name)
        module, attribute = _FRAME_FIGURES[name].split(":")
        from importlib import import_module
        function = getattr(import_module(module), attribute)

        def figure(filters: Filters, *args: Any, **kwargs: Any) -> Any:
            return function(self.snap, filters, *args, **kwargs)
        return figure

    def complication_rates(self, filters: Filters, by: str | None = None) -> pd.DataFrame:
        from audit.analytics.complications import complication_rates
        return complication_rates(self.snap, filters, self._read_complications(), by)

    def complication_list(self, filters: Filters, limit: int | None = None) -> pd.DataFrame:
        from audit.analytics.complications import complication_list
        return complication_list(self.snap, filters, self._read_complications(), limit)

    def _read_complications(self) -> pd.DataFrame:
        if self._complications is None:
            from audit.analytics.complications import read_complications
            if self.engine is None:
                raise ValueError("complication figures need the engine")
            self._complications = read_complications(self.engine)
        return self._complications


_FRAME_FIGURES = {
    "compliance_rates": "audit.analytics.compliance:compliance",
    "p_chart": "audit.analytics.compliance:p_chart",
    "compliance_records": "audit.analytics.compliance:compliance_records",
    "dose_statistics": "audit.analytics.dose_stats:dose_stats",
    "dose_distribution": "audit.analytics.dose_stats:dose_distribution",
    "dose_histogram": "audit.analytics.dose_stats:dose_histogram",
    "monthly_medians": "audit.analytics.dose_stats:monthly_medians",
    "technique_use": "audit.analytics.dose_stats:technique_use",
    "local_drls": "audit.analytics.reference_levels:local_drls",
    "share_above_reference": "audit.analytics.reference_levels:share_above_reference",
    "physician_scorecard": "audit.analytics.scorecard:physician_scorecard",
    "adjusted_scorecard": "audit.analytics.case_mix:adjusted_scorecard",
    "radiation_free_share": "audit.analytics.case_mix:radiation_free_share",
    "completeness": "audit.analytics.data_quality:completeness",
    "safety_flags": "audit.analytics.safety:safety_flags",
    "flagged_records": "audit.analytics.safety:flagged_records",
}


#: Where a PostgreSQL site's dashboard figures come from: "auto" (the default: SQL from
#: SQL_FROM_RECORDS records, the frame below), "frame" or "sql".
ENV_FIGURES = "FLUORO_AUDIT_FIGURES"
#: The values ENV_FIGURES allows.
FIGURE_SOURCES = ("auto", "frame", "sql")
#: With "auto", the figures come from SQL from this many procedure records (PostgreSQL's own
#: estimate): at 2M the frame is about 7 s to read and 0.9 GB in every app process, while the
#: SQL figures keep each process under 0.5 GB and are shared by all of them (docs/design.md
#: "Figures from SQL on PostgreSQL", measured at 1M and 5M).
SQL_FROM_RECORDS = 2_000_000
#: How long a process trusts its estimate of the number of records (seconds).
ESTIMATE_SECONDS = 600.0
_estimates: dict[str, tuple[float, int]] = {}


def figures_choice() -> str:
    """The site's choice in ENV_FIGURES; a value it does not allow is refused by name."""
    chosen = os.environ.get(ENV_FIGURES, "").strip().lower() or "auto"
    if chosen not in FIGURE_SOURCES:
        raise ValidationFailed([FieldError(
            ENV_FIGURES, f"{chosen!r} is not allowed; allowed: {', '.join(FIGURE_SOURCES)}")])
    return chosen


def uses_sql(engine: Engine) -> bool:
    """Whether the figures come from SQL: on PostgreSQL, where the site chose it, or by
    default ("auto") from SQL_FROM_RECORDS records; SQLite always uses the frame.

    Why by size (docs/design.md "Figures from SQL on PostgreSQL"): both give equal figures.
    Below about 2M records the frame opens a page nobody opened before faster (the Dose page
    3 s cold at 1M against 16 s from SQL); above it the frame costs every app process seconds
    per restart and gigabytes (17.7 s and 2.1 GB at 5M) where the SQL figures stay under 0.5 GB
    and, computed once per change and shared by every process (the warmer computing ahead what
    people looked at), open in under 0.3 s.
    """
    if engine.dialect.name != "postgresql":
        return False
    chosen = figures_choice()
    if chosen != "auto":
        return chosen == "sql"
    return record_estimate(engine) >= SQL_FROM_RECORDS


def record_estimate(engine: Engine) -> int:
    """About how many procedure records a PostgreSQL database holds: its planner's estimate
    (pg_class.reltuples, kept by ANALYZE and autovacuum: no scan), an exact count where the
    table was never analysed; kept ESTIMATE_SECONDS per process."""
    from sqlalchemy import text

    key = engine.url.render_as_string(hide_password=True)
    found = _estimates.get(key)
    now = time.monotonic()
    if found is not None and now - found[0] < ESTIMATE_SECONDS:
        return found[1]
    with engine.connect() as conn:
        estimate = conn.scalar(text("SELECT reltuples FROM pg_class "
                                    "WHERE oid = to_regclass('procedure')"))
        if estimate is None or estimate < 0:  # never analysed: count (small, or once)
            estimate = conn.scalar(text("SELECT count(*) FROM procedure"))
    _estimates[key] = (now, int(estimate or 0))
    return int(estimate or 0)


def figure_source(engine: Engine, cache: FrameCache | None = None,
                  progress: ReadProgress | None = None) -> FigureSource:
    """SQL where the site's choice takes it (uses_sql); else the frame (of `cache`, or read
    now), `progress` hearing how far a full read has come."""
    if uses_sql(engine):
        from audit.analytics.sql.source import SqlSource
        return SqlSource(engine)
    if cache is not None:
        return FrameSource(cache.get(progress), cache.engine)
    from audit.analytics.snapshot import load_snapshot
    return FrameSource(load_snapshot(engine, progress), engine)
