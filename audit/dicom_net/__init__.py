"""Dose reports over the DICOM network: the receiver (`fluoro-audit receive`, a Storage SCP)
and query/retrieve from a PACS (`fluoro-audit fetch`), both storing through the inbox and the
dose report importer (audit.dose_reports.store), and the receiving log the Dose reports page
shows.

The public names below load lazily (audit/_lazy.py), so importing this package loads neither
pynetdicom nor pydicom.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from audit._lazy import lazy_names

if TYPE_CHECKING:
    from audit.dicom_net.access import AccessPolicy as AccessPolicy
    from audit.dicom_net.access import parse_rule as parse_rule
    from audit.dicom_net.fetch import fetch_reports as fetch_reports
    from audit.dicom_net.scp import Receiver as Receiver
    from audit.dicom_net.status import ReceiverOverview as ReceiverOverview
    from audit.dicom_net.status import receiver_overview as receiver_overview

__all__ = [
    "AccessPolicy",
    "Receiver",
    "ReceiverOverview",
    "fetch_reports",
    "parse_rule",
    "receiver_overview",
]

#: Public name -> where it lives.
_PUBLIC = {
    "AccessPolicy": "audit.dicom_net.access",
    "parse_rule": "audit.dicom_net.access",
    "fetch_reports": "audit.dicom_net.fetch",
    "Receiver": "audit.dicom_net.scp",
    "ReceiverOverview": "audit.dicom_net.status",
    "receiver_overview": "audit.dicom_net.status",
}

__getattr__, __dir__ = lazy_names(__name__, _PUBLIC)
