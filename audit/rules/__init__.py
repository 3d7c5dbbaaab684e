"""Practice rules (issue 15, part B): the rule packs kept as data (Medicare LCD coverage limits,
the 2015 multisociety safeguards), checked at entry against the patient's history and measured
over a period; follow-ups (a procedure's outcome) that the repeat rules read.

The public names below load lazily (audit/_lazy.py), as every face does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from audit._lazy import lazy_names

if TYPE_CHECKING:
    from audit.rules.findings_store import build_status as build_status
    from audit.rules.follow_up import list_follow_ups as list_follow_ups
    from audit.rules.follow_up import record_follow_up as record_follow_up
    from audit.rules.packs import PACKS as PACKS
    from audit.rules.report import EXCEPTIONS_LISTED as EXCEPTIONS_LISTED
    from audit.rules.report import rule_report as rule_report
    from audit.rules.report import rule_report_meanwhile as rule_report_meanwhile
    from audit.rules.store import list_packs as list_packs
    from audit.rules.store import set_enabled as set_enabled
    from audit.rules.store import set_parameter as set_parameter

__all__ = [
    "EXCEPTIONS_LISTED",
    "PACKS",
    "build_status",
    "list_follow_ups",
    "list_packs",
    "record_follow_up",
    "rule_report",
    "rule_report_meanwhile",
    "set_enabled",
    "set_parameter",
]

#: Public name -> where it lives.
_PUBLIC = {
    "PACKS": "audit.rules.packs",
    "list_packs": "audit.rules.store",
    "set_enabled": "audit.rules.store",
    "set_parameter": "audit.rules.store",
    "record_follow_up": "audit.rules.follow_up",
    "list_follow_ups": "audit.rules.follow_up",
    "rule_report": "audit.rules.report",
    "EXCEPTIONS_LISTED": "audit.rules.report",
    "build_status": "audit.rules.findings_store",
    "rule_report_meanwhile": "audit.rules.report",
}

__getattr__, __dir__ = lazy_names(__name__, _PUBLIC)
