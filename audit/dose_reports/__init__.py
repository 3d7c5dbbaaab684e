"""Dose reports from the C-arm (DICOM RDSR): reading, storing, matching to the log.

The public names below load lazily (audit/_lazy.py), so importing this package loads neither
pydicom nor pandas. review.completeness() (log completeness by device: of the procedures the
C-arm recorded, how many were logged) is published as `log_completeness`, beside its
`log_completeness_rate`, so that it is not mistaken for the analytics' field completeness.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from audit._lazy import lazy_names

if TYPE_CHECKING:
    from audit.dose_reports.reader import read_dose_report as read_dose_report
    from audit.dose_reports.report import RdsrError as RdsrError
    from audit.dose_reports.review import completeness as log_completeness
    from audit.dose_reports.review import completeness_rate as log_completeness_rate
    from audit.dose_reports.review import count_reports as count_reports
    from audit.dose_reports.review import list_discrepancies as list_discrepancies
    from audit.dose_reports.review import list_duplicates as list_duplicates
    from audit.dose_reports.review import list_missing as list_missing
    from audit.dose_reports.review import logged_without_report as logged_without_report
    from audit.dose_reports.review import report_for_record as report_for_record
    from audit.dose_reports.review import review_discrepancy as review_discrepancy
    from audit.dose_reports.review import without_report_total as without_report_total
    from audit.dose_reports.store import DoseImporter as DoseImporter
    from audit.dose_reports.store import ImportResult as ImportResult
    from audit.dose_reports.stored_events import EVENT_COLUMNS as EVENT_COLUMNS
    from audit.dose_reports.stored_events import list_reports as list_reports
    from audit.dose_reports.stored_events import report_events as report_events
    from audit.dose_reports.watch import PathsMissing as PathsMissing
    from audit.dose_reports.watch import Watcher as Watcher
    from audit.dose_reports.watch import expand_paths as expand_paths

__all__ = [
    "EVENT_COLUMNS",
    "DoseImporter",
    "ImportResult",
    "PathsMissing",
    "RdsrError",
    "Watcher",
    "count_reports",
    "expand_paths",
    "list_discrepancies",
    "list_duplicates",
    "list_missing",
    "list_reports",
    "log_completeness",
    "log_completeness_rate",
    "logged_without_report",
    "read_dose_report",
    "report_events",
    "report_for_record",
    "review_discrepancy",
    "without_report_total",
]

#: Public name -> where it lives ("module:attribute" where the public name differs).
_PUBLIC = {
    # reading and storing
    "read_dose_report": "audit.dose_reports.reader",
    "RdsrError": "audit.dose_reports.report",
    "DoseImporter": "audit.dose_reports.store",
    "ImportResult": "audit.dose_reports.store",
    "Watcher": "audit.dose_reports.watch",
    "expand_paths": "audit.dose_reports.watch",
    "PathsMissing": "audit.dose_reports.watch",
    # what a stored report holds, event by event
    "EVENT_COLUMNS": "audit.dose_reports.stored_events",
    "list_reports": "audit.dose_reports.stored_events",
    "report_events": "audit.dose_reports.stored_events",
    # reconciliation with the log
    "list_discrepancies": "audit.dose_reports.review",
    "review_discrepancy": "audit.dose_reports.review",
    "list_missing": "audit.dose_reports.review",
    "list_duplicates": "audit.dose_reports.review",
    "log_completeness": "audit.dose_reports.review:completeness",
    "log_completeness_rate": "audit.dose_reports.review:completeness_rate",
    "logged_without_report": "audit.dose_reports.review",
    "without_report_total": "audit.dose_reports.review",
    "report_for_record": "audit.dose_reports.review",
    "count_reports": "audit.dose_reports.review",
}

__getattr__, __dir__ = lazy_names(__name__, _PUBLIC)
