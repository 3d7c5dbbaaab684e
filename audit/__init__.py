"""fluoro-audit: fluoroscopy procedure log and radiation audit (the library; no UI code here).

This is the public face: the entry points the command line, the dashboard and outside scripts
use, importable as `from audit import ProcedureLog, make_engine, run_export`. Each subpackage
(audit.log, audit.analytics, audit.alerts, audit.export, audit.dose_reports, audit.dicom_net,
audit.storage) declares its own public names the same way, and the shared modules (audit.auth,
audit.vocab, audit.errors, audit.settings, ...) are public as they are.

Every name loads lazily (PEP 562, audit/_lazy.py): `import audit` imports none of the modules
below, so a command pays only for what it uses (`import audit.export.runner` loads no pandas;
bench/bench_export.py measures the start). A name is the same object, under the same name, as
in its subpackage's face; where a module's own name would be ambiguous here (export() beside
the audit.export package, demo.generate()) the public name says what it does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from audit._lazy import lazy_names
from audit._version import __version__

if TYPE_CHECKING:
    from sqlalchemy import Engine as Engine

    from audit.alerts.store import refresh_alerts as refresh_alerts
    from audit.analytics.reports import build as build_report
    from audit.analytics.reports import render as render_report
    from audit.analytics.snapshot import FrameCache as FrameCache
    from audit.analytics.snapshot import Snapshot as Snapshot
    from audit.analytics.snapshot import load_snapshot as load_snapshot
    from audit.auth import Actor as Actor
    from audit.auth import Permission as Permission
    from audit.demo import generate as generate_demo
    from audit.dose_reports.reader import read_dose_report as read_dose_report
    from audit.dose_reports.store import DoseImporter as DoseImporter
    from audit.dose_reports.watch import Watcher as Watcher
    from audit.errors import AuditError as AuditError
    from audit.errors import ValidationFailed as ValidationFailed
    from audit.export.registry import KINDS as EXPORT_KINDS
    from audit.export.registry import SECTIONS as EXPORT_SECTIONS
    from audit.export.runner import export as run_export
    from audit.export.verify import verify_export as verify_export
    from audit.filters import Filters as Filters
    from audit.log.csv_import import import_csv as import_csv
    from audit.log.service import ProcedureLog as ProcedureLog
    from audit.log.summary import log_summary as log_summary
    from audit.settings import Settings as Settings
    from audit.storage.backup import backup as backup_database
    from audit.storage.engine import ENV_DB as ENV_DB
    from audit.storage.engine import current_revision as current_revision
    from audit.storage.engine import default_url as default_url
    from audit.storage.engine import head_revision as head_revision
    from audit.storage.engine import make_engine as make_engine
    from audit.storage.engine import migrate as migrate
    from audit.storage.types import utcnow as utcnow
    from audit.trail import verify_chain as verify_chain

__all__ = [
    "ENV_DB",
    "EXPORT_KINDS",
    "EXPORT_SECTIONS",
    "Actor",
    "AuditError",
    "DoseImporter",
    "Engine",
    "Filters",
    "FrameCache",
    "Permission",
    "ProcedureLog",
    "Settings",
    "Snapshot",
    "ValidationFailed",
    "Watcher",
    "__version__",
    "backup_database",
    "build_report",
    "current_revision",
    "default_url",
    "generate_demo",
    "head_revision",
    "import_csv",
    "load_snapshot",
    "log_summary",
    "make_engine",
    "migrate",
    "read_dose_report",
    "refresh_alerts",
    "render_report",
    "run_export",
    "utcnow",
    "verify_chain",
    "verify_export",
]

#: Public name -> where it lives ("module:attribute" where the public name differs).
_PUBLIC = {
    # the database
    "Engine": "sqlalchemy",
    "Filters": "audit.filters",
    "ENV_DB": "audit.storage.engine",
    "default_url": "audit.storage.engine",
    "make_engine": "audit.storage.engine",
    "migrate": "audit.storage.engine",
    "current_revision": "audit.storage.engine",
    "head_revision": "audit.storage.engine",
    "utcnow": "audit.storage.types",
    "backup_database": "audit.storage.backup:backup",
    "verify_chain": "audit.trail",
    # who is acting, the settings, the errors every caller handles
    "Actor": "audit.auth",
    "Permission": "audit.auth",
    "Settings": "audit.settings",
    "AuditError": "audit.errors",
    "ValidationFailed": "audit.errors",
    # the procedure log
    "ProcedureLog": "audit.log.service",
    "import_csv": "audit.log.csv_import",
    "log_summary": "audit.log.summary",
    "generate_demo": "audit.demo:generate",
    # dose reports
    "read_dose_report": "audit.dose_reports.reader",
    "DoseImporter": "audit.dose_reports.store",
    "Watcher": "audit.dose_reports.watch",
    # analytics and alerts
    "Snapshot": "audit.analytics.snapshot",
    "FrameCache": "audit.analytics.snapshot",
    "load_snapshot": "audit.analytics.snapshot",
    "build_report": "audit.analytics.reports:build",
    "render_report": "audit.analytics.reports:render",
    "refresh_alerts": "audit.alerts.store",
    # exports
    "run_export": "audit.export.runner:export",
    "verify_export": "audit.export.verify",
    "EXPORT_SECTIONS": "audit.export.registry:SECTIONS",
    "EXPORT_KINDS": "audit.export.registry:KINDS",
}

__getattr__, __dir__ = lazy_names(__name__, _PUBLIC)
