"""The procedure log: recording, validating, amending and importing procedures.

The public names below load lazily (audit/_lazy.py), so importing this package loads nothing
else. The entry form's helpers are here because the dashboard's form and `fluoro-audit log`
must build the same input (docs/design.md §2); entry_form.zone() is published as
`browser_zone`, which says whose zone it is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from audit._lazy import lazy_names

if TYPE_CHECKING:
    from audit.log.complications import list_complications as list_complications
    from audit.log.complications import record_complication as record_complication
    from audit.log.complications import void_complication as void_complication
    from audit.log.csv_import import CsvImportResult as CsvImportResult
    from audit.log.csv_import import import_csv as import_csv
    from audit.log.entry_form import AMENDABLE as AMENDABLE
    from audit.log.entry_form import CONTRAST_LABELS as CONTRAST_LABELS
    from audit.log.entry_form import FormLayout as FormLayout
    from audit.log.entry_form import amend_changes as amend_changes
    from audit.log.entry_form import as_text as as_text
    from audit.log.entry_form import build_record as build_record
    from audit.log.entry_form import dose_in_words as dose_in_words
    from audit.log.entry_form import layout_for as layout_for
    from audit.log.entry_form import performed_at_iso as performed_at_iso
    from audit.log.entry_form import tri_state as tri_state
    from audit.log.entry_form import zone as browser_zone
    from audit.log.history import HistoryEntry as HistoryEntry
    from audit.log.history import record_history as record_history
    from audit.log.merge import MergeResult as MergeResult
    from audit.log.merge import merge_names as merge_names
    from audit.log.name_entry import FORM_KINDS as FORM_KINDS
    from audit.log.name_entry import NameAdded as NameAdded
    from audit.log.name_entry import add_name as add_name
    from audit.log.near_names import NAME_KINDS as NAME_KINDS
    from audit.log.near_names import near_matches as near_matches
    from audit.log.service import LogResult as LogResult
    from audit.log.service import ProcedureLog as ProcedureLog
    from audit.log.summary import log_summary as log_summary

__all__ = [
    "AMENDABLE",
    "CONTRAST_LABELS",
    "FORM_KINDS",
    "NAME_KINDS",
    "CsvImportResult",
    "FormLayout",
    "HistoryEntry",
    "LogResult",
    "MergeResult",
    "NameAdded",
    "ProcedureLog",
    "add_name",
    "amend_changes",
    "as_text",
    "browser_zone",
    "build_record",
    "dose_in_words",
    "import_csv",
    "layout_for",
    "list_complications",
    "log_summary",
    "merge_names",
    "near_matches",
    "performed_at_iso",
    "record_complication",
    "record_history",
    "tri_state",
    "void_complication",
]

#: Public name -> where it lives ("module:attribute" where the public name differs).
_PUBLIC = {
    # the service: log, amend, void, read
    "ProcedureLog": "audit.log.service",
    "LogResult": "audit.log.service",
    "record_history": "audit.log.history",
    "record_complication": "audit.log.complications",
    "list_complications": "audit.log.complications",
    "void_complication": "audit.log.complications",
    "HistoryEntry": "audit.log.history",
    "log_summary": "audit.log.summary",
    "import_csv": "audit.log.csv_import",
    "CsvImportResult": "audit.log.csv_import",
    # names: adding one on purpose, near matches, merging duplicates (issue 11)
    "add_name": "audit.log.name_entry",
    "NameAdded": "audit.log.name_entry",
    "FORM_KINDS": "audit.log.name_entry",
    "NAME_KINDS": "audit.log.near_names",
    "near_matches": "audit.log.near_names",
    "merge_names": "audit.log.merge",
    "MergeResult": "audit.log.merge",
    # the entry and amend forms
    "FormLayout": "audit.log.entry_form",
    "layout_for": "audit.log.entry_form",
    "build_record": "audit.log.entry_form",
    "amend_changes": "audit.log.entry_form",
    "as_text": "audit.log.entry_form",
    "dose_in_words": "audit.log.entry_form",
    "performed_at_iso": "audit.log.entry_form",
    "tri_state": "audit.log.entry_form",
    "browser_zone": "audit.log.entry_form:zone",
    "AMENDABLE": "audit.log.entry_form",
    "CONTRAST_LABELS": "audit.log.entry_form",
}

__getattr__, __dir__ = lazy_names(__name__, _PUBLIC)
