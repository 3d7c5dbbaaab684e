"""The figures the dashboards show: compliance, dose statistics, reference levels.

The public names below load lazily (audit/_lazy.py), so importing this package loads neither
pandas nor numpy. Two functions are published under a longer name than in their module
because the short one is also a submodule's name (`audit.analytics.compliance` is the module;
its `compliance()` is `compliance_rates` here; likewise `dose_stats()` is `dose_statistics`),
and the report functions say which report they build.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from audit._lazy import lazy_names

if TYPE_CHECKING:
    from audit.analytics._frame_file import store_dir as frame_store_dir
    from audit.analytics.case_mix import adjusted_scorecard as adjusted_scorecard
    from audit.analytics.case_mix import radiation_free_share as radiation_free_share
    from audit.analytics.compliance import compliance as compliance_rates
    from audit.analytics.compliance import compliance_records as compliance_records
    from audit.analytics.compliance import p_chart as p_chart
    from audit.analytics.complications import complication_list as complication_list
    from audit.analytics.complications import complication_rates as complication_rates
    from audit.analytics.complications import read_complications as read_complications
    from audit.analytics.daily_summary import monthly_counts as monthly_counts
    from audit.analytics.daily_summary import refresh_summary as refresh_summary
    from audit.analytics.data_quality import completeness as completeness
    from audit.analytics.dose_stats import dose_distribution as dose_distribution
    from audit.analytics.dose_stats import dose_histogram as dose_histogram
    from audit.analytics.dose_stats import dose_stats as dose_statistics
    from audit.analytics.dose_stats import monthly_medians as monthly_medians
    from audit.analytics.dose_stats import technique_use as technique_use
    from audit.analytics.events import LOW_PULSE_RATE_PPS as LOW_PULSE_RATE_PPS
    from audit.analytics.events import events_per_procedure as events_per_procedure
    from audit.analytics.events import pulse_rates as pulse_rates
    from audit.analytics.events import pulsed_use as pulsed_use
    from audit.analytics.events import split_reports as split_reports
    from audit.analytics.figure_changes import changes_since as changes_since
    from audit.analytics.figure_changes import figures_version as figures_version
    from audit.analytics.reference_levels import drl_thresholds as drl_thresholds
    from audit.analytics.reference_levels import local_drls as local_drls
    from audit.analytics.reference_levels import published_medians as published_medians
    from audit.analytics.reference_levels import reference_column as reference_column
    from audit.analytics.reference_levels import reference_table as reference_table
    from audit.analytics.reports import build as build_report
    from audit.analytics.reports import render as render_report
    from audit.analytics.safety import SAFETY_FLAGS as SAFETY_FLAGS
    from audit.analytics.safety import flagged_records as flagged_records
    from audit.analytics.safety import safety_flags as safety_flags
    from audit.analytics.scorecard import HIGHLIGHT_RATIO as HIGHLIGHT_RATIO
    from audit.analytics.scorecard import physician_scorecard as physician_scorecard
    from audit.analytics.snapshot import FrameCache as FrameCache
    from audit.analytics.snapshot import Snapshot as Snapshot
    from audit.analytics.snapshot import date_range as date_range
    from audit.analytics.snapshot import load_snapshot as load_snapshot
    from audit.analytics.snapshot import options as filter_options
    from audit.analytics.source import FigureSource as FigureSource
    from audit.analytics.source import FrameSource as FrameSource
    from audit.analytics.source import figure_source as figure_source
    from audit.analytics.source import uses_sql as uses_sql
    from audit.analytics.sql.as_of import AsOf as AsOf
    from audit.analytics.sql.bucket_snapshot import scanned_because as scanned_because
    from audit.analytics.sql.source import SqlSource as SqlSource
    from audit.analytics.sql.stale import Served as Served
    from audit.analytics.sql.warm import warm_figures as warm_figures
    from audit.analytics.sql.warm import warm_when_moved as warm_when_moved

__all__ = [
    "HIGHLIGHT_RATIO",
    "LOW_PULSE_RATE_PPS",
    "SAFETY_FLAGS",
    "AsOf",
    "FigureSource",
    "FrameCache",
    "FrameSource",
    "Served",
    "Snapshot",
    "SqlSource",
    "adjusted_scorecard",
    "build_report",
    "changes_since",
    "completeness",
    "compliance_rates",
    "compliance_records",
    "complication_list",
    "complication_rates",
    "date_range",
    "dose_distribution",
    "dose_histogram",
    "dose_statistics",
    "drl_thresholds",
    "events_per_procedure",
    "figure_source",
    "figures_version",
    "filter_options",
    "flagged_records",
    "frame_store_dir",
    "load_snapshot",
    "local_drls",
    "monthly_counts",
    "monthly_medians",
    "p_chart",
    "physician_scorecard",
    "published_medians",
    "pulse_rates",
    "pulsed_use",
    "radiation_free_share",
    "read_complications",
    "reference_column",
    "reference_table",
    "refresh_summary",
    "render_report",
    "safety_flags",
    "scanned_because",
    "split_reports",
    "technique_use",
    "uses_sql",
    "warm_figures",
    "warm_when_moved",
]

#: Public name -> where it lives ("module:attribute" where the public name differs).
_PUBLIC = {
    # the analysis frame
    "Snapshot": "audit.analytics.snapshot",
    "FrameCache": "audit.analytics.snapshot",
    "frame_store_dir": "audit.analytics._frame_file:store_dir",
    "load_snapshot": "audit.analytics.snapshot",
    "date_range": "audit.analytics.snapshot",
    "filter_options": "audit.analytics.snapshot:options",
    # where the figures come from: the frame, or SQL on PostgreSQL (issue 16)
    "FigureSource": "audit.analytics.source",
    "FrameSource": "audit.analytics.source",
    "figure_source": "audit.analytics.source",
    "uses_sql": "audit.analytics.source",
    "SqlSource": "audit.analytics.sql.source",
    # why the Dose page's figures sort every selected record (the dose buckets cannot answer)
    "scanned_because": "audit.analytics.sql.bucket_snapshot",
    # figures shared by every app process, and the warmer (PostgreSQL)
    "figures_version": "audit.analytics.figure_changes",
    "changes_since": "audit.analytics.figure_changes",
    # a dashboard page's figures, "as of" an older version while the newest are computed
    "AsOf": "audit.analytics.sql.as_of",
    "Served": "audit.analytics.sql.stale",
    "warm_figures": "audit.analytics.sql.warm",
    "warm_when_moved": "audit.analytics.sql.warm",
    # contrast compliance
    "compliance_rates": "audit.analytics.compliance:compliance",
    "compliance_records": "audit.analytics.compliance",
    "p_chart": "audit.analytics.compliance",
    # the per-day summary table (counts per month without reading every record)
    "monthly_counts": "audit.analytics.daily_summary",
    "refresh_summary": "audit.analytics.daily_summary",
    # dose
    "dose_statistics": "audit.analytics.dose_stats:dose_stats",
    "dose_distribution": "audit.analytics.dose_stats",
    "dose_histogram": "audit.analytics.dose_stats",
    "monthly_medians": "audit.analytics.dose_stats",
    "technique_use": "audit.analytics.dose_stats",
    "physician_scorecard": "audit.analytics.scorecard",
    # fair comparisons and complications (issue 15)
    "adjusted_scorecard": "audit.analytics.case_mix",
    "radiation_free_share": "audit.analytics.case_mix",
    "complication_rates": "audit.analytics.complications",
    "complication_list": "audit.analytics.complications",
    "read_complications": "audit.analytics.complications",
    "HIGHLIGHT_RATIO": "audit.analytics.scorecard",
    # from the C-arm's irradiation events
    "pulsed_use": "audit.analytics.events",
    "pulse_rates": "audit.analytics.events",
    "events_per_procedure": "audit.analytics.events",
    "split_reports": "audit.analytics.events",
    "LOW_PULSE_RATE_PPS": "audit.analytics.events",
    # reference levels
    "local_drls": "audit.analytics.reference_levels",
    "published_medians": "audit.analytics.reference_levels",
    "reference_table": "audit.analytics.reference_levels",
    "reference_column": "audit.analytics.reference_levels",
    "drl_thresholds": "audit.analytics.reference_levels",
    # safety and data quality
    "SAFETY_FLAGS": "audit.analytics.safety",
    "safety_flags": "audit.analytics.safety",
    "flagged_records": "audit.analytics.safety",
    "completeness": "audit.analytics.data_quality",
    # `fluoro-audit report`
    "build_report": "audit.analytics.reports:build",
    "render_report": "audit.analytics.reports:render",
}

__getattr__, __dir__ = lazy_names(__name__, _PUBLIC)
