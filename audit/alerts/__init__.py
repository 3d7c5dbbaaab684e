"""Dose alerts: detection and the stored, acknowledgeable alerts.

The public names below load lazily (audit/_lazy.py), so importing this package loads no pandas.
`acknowledge_alerts` is store.acknowledge under a name that says what it acknowledges.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from audit._lazy import lazy_names

if TYPE_CHECKING:
    from audit.alerts.detection import KINDS_BY_PRIORITY as KINDS_BY_PRIORITY
    from audit.alerts.detection import THRESHOLD_SETTINGS as THRESHOLD_SETTINGS
    from audit.alerts.detection import compute_alerts as compute_alerts
    from audit.alerts.detection import investigation_levels as investigation_levels
    from audit.alerts.store import RefreshResult as RefreshResult
    from audit.alerts.store import acknowledge as acknowledge_alerts
    from audit.alerts.store import acknowledgements as acknowledgements
    from audit.alerts.store import alert_counts as alert_counts
    from audit.alerts.store import list_alerts as list_alerts
    from audit.alerts.store import refresh_alerts as refresh_alerts

__all__ = [
    "KINDS_BY_PRIORITY",
    "THRESHOLD_SETTINGS",
    "RefreshResult",
    "acknowledge_alerts",
    "acknowledgements",
    "alert_counts",
    "compute_alerts",
    "investigation_levels",
    "list_alerts",
    "refresh_alerts",
]

#: Public name -> where it lives ("module:attribute" where the public name differs).
_PUBLIC = {
    # which alerts the records call for
    "compute_alerts": "audit.alerts.detection",
    "investigation_levels": "audit.alerts.detection",
    "KINDS_BY_PRIORITY": "audit.alerts.detection",
    "THRESHOLD_SETTINGS": "audit.alerts.detection",
    # the stored alerts and their follow-up
    "refresh_alerts": "audit.alerts.store",
    "RefreshResult": "audit.alerts.store",
    "list_alerts": "audit.alerts.store",
    "alert_counts": "audit.alerts.store",
    "acknowledge_alerts": "audit.alerts.store:acknowledge",
    "acknowledgements": "audit.alerts.store",
}

__getattr__, __dir__ = lazy_names(__name__, _PUBLIC)
