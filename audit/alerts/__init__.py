"""Dose alerts: detection, the stored, acknowledgeable alerts, and what they add up to.

The public names below load lazily (audit/_lazy.py), so importing this package loads no pandas.
`acknowledge_alerts` is store.acknowledge under a name that says what it acknowledges (also a
later note on an alert already followed up); `acknowledge_many` takes only open alerts ticked
one by one, all or none.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from audit._lazy import lazy_names

if TYPE_CHECKING:
    from audit.alerts.detection import INVESTIGATION_SETTINGS as INVESTIGATION_SETTINGS
    from audit.alerts.detection import KINDS_BY_PRIORITY as KINDS_BY_PRIORITY
    from audit.alerts.detection import THRESHOLD_SETTINGS as THRESHOLD_SETTINGS
    from audit.alerts.detection import compute_alerts as compute_alerts
    from audit.alerts.detection import investigation_levels as investigation_levels
    from audit.alerts.store import RefreshResult as RefreshResult
    from audit.alerts.store import acknowledge as acknowledge_alerts
    from audit.alerts.store import acknowledge_many as acknowledge_many
    from audit.alerts.store import acknowledgement_errors as acknowledgement_errors
    from audit.alerts.store import acknowledgements as acknowledgements
    from audit.alerts.store import alert_counts as alert_counts
    from audit.alerts.store import levels_in_force as levels_in_force
    from audit.alerts.store import list_alerts as list_alerts
    from audit.alerts.store import refresh_alerts as refresh_alerts
    from audit.alerts.store import review_levels as review_levels
    from audit.alerts.summary import alert_rates as alert_rates
    from audit.alerts.summary import open_by_patient as open_by_patient
    from audit.alerts.summary import open_by_physician as open_by_physician

__all__ = [
    "INVESTIGATION_SETTINGS",
    "KINDS_BY_PRIORITY",
    "THRESHOLD_SETTINGS",
    "RefreshResult",
    "acknowledge_alerts",
    "acknowledge_many",
    "acknowledgement_errors",
    "acknowledgements",
    "alert_counts",
    "alert_rates",
    "compute_alerts",
    "investigation_levels",
    "levels_in_force",
    "list_alerts",
    "open_by_patient",
    "open_by_physician",
    "refresh_alerts",
    "review_levels",
]

#: Public name -> where it lives ("module:attribute" where the public name differs).
_PUBLIC = {
    # which alerts the records call for
    "compute_alerts": "audit.alerts.detection",
    "investigation_levels": "audit.alerts.detection",
    "KINDS_BY_PRIORITY": "audit.alerts.detection",
    "THRESHOLD_SETTINGS": "audit.alerts.detection",
    "INVESTIGATION_SETTINGS": "audit.alerts.detection",
    # the stored alerts and their follow-up
    "refresh_alerts": "audit.alerts.store",
    "RefreshResult": "audit.alerts.store",
    "list_alerts": "audit.alerts.store",
    "levels_in_force": "audit.alerts.store",
    "review_levels": "audit.alerts.store",
    "alert_counts": "audit.alerts.store",
    "acknowledge_alerts": "audit.alerts.store:acknowledge",
    "acknowledge_many": "audit.alerts.store",
    "acknowledgement_errors": "audit.alerts.store",
    "acknowledgements": "audit.alerts.store",
    # what the open alerts add up to
    "alert_rates": "audit.alerts.summary",
    "open_by_patient": "audit.alerts.summary",
    "open_by_physician": "audit.alerts.summary",
}

__getattr__, __dir__ = lazy_names(__name__, _PUBLIC)
