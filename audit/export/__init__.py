"""Audit exports: CSV files, manifest, checksums and their verification.

The public names below load lazily (audit/_lazy.py): `import audit.export.runner` must not load
pandas (bench/bench_export.py measures the start). The runner's `export()` and `count_rows()`
are published as `run_export` and `count_export_rows`, and the registry's tables as
EXPORT_SECTIONS and EXPORT_KINDS, so that each name says what it is from `audit` as well, where
`export` is this package and `sections` one of its modules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from audit._lazy import lazy_names

if TYPE_CHECKING:
    from audit.export.registry import KINDS as EXPORT_KINDS
    from audit.export.registry import SECTIONS as EXPORT_SECTIONS
    from audit.export.runner import ExportResult as ExportResult
    from audit.export.runner import ExportTargetExists as ExportTargetExists
    from audit.export.runner import count_rows as count_export_rows
    from audit.export.runner import export as run_export
    from audit.export.verify import VerifyReport as VerifyReport
    from audit.export.verify import verify_export as verify_export

__all__ = [
    "EXPORT_KINDS",
    "EXPORT_SECTIONS",
    "ExportResult",
    "ExportTargetExists",
    "VerifyReport",
    "count_export_rows",
    "run_export",
    "verify_export",
]

#: Public name -> where it lives ("module:attribute" where the public name differs).
_PUBLIC = {
    "run_export": "audit.export.runner:export",
    "count_export_rows": "audit.export.runner:count_rows",
    "ExportResult": "audit.export.runner",
    "ExportTargetExists": "audit.export.runner",
    "EXPORT_SECTIONS": "audit.export.registry:SECTIONS",
    "EXPORT_KINDS": "audit.export.registry:KINDS",
    "verify_export": "audit.export.verify",
    "VerifyReport": "audit.export.verify",
}

__getattr__, __dir__ = lazy_names(__name__, _PUBLIC)
