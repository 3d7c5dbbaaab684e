"""Which pages exist and who may open them: the single registry the app builds st.navigation
from. Each page module (dashboard/views/*.py) also calls state.require() itself, so a page that
is reached by URL or switch_page is still refused to a role that may not see it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from audit.auth import Actor, Permission
from audit.vocab import Role

VIEWS = Path(__file__).parent / "views"


@dataclass(frozen=True)
class PageSpec:
    module: str  # file name under dashboard/views/
    title: str
    icon: str
    permission: Permission
    section: str
    default: bool = False
    #: Start page for these roles (takes precedence over `default`): a technologist lands on
    #: the entry form, everyone else on the overview.
    default_for: frozenset[Role] = frozenset()


PAGES: tuple[PageSpec, ...] = (
    PageSpec("home.py", "Overview", ":material/home:", Permission.VIEW_RECORDS, "Log",
             default=True),
    PageSpec("log_procedure.py", "Log procedure", ":material/edit_note:",
             Permission.LOG_PROCEDURE, "Log", default_for=frozenset({Role.TECHNOLOGIST})),
    PageSpec("records.py", "Records", ":material/table_rows:", Permission.VIEW_RECORDS, "Log"),
    PageSpec("compliance.py", "Compliance", ":material/fact_check:", Permission.VIEW_DASHBOARDS,
             "Audit"),
    PageSpec("dose.py", "Dose", ":material/radiology:", Permission.VIEW_DASHBOARDS, "Audit"),
    PageSpec("alerts.py", "Alerts", ":material/notification_important:",
             Permission.VIEW_DASHBOARDS, "Audit"),
    PageSpec("data_quality.py", "Data quality", ":material/rule:", Permission.VIEW_DASHBOARDS,
             "Audit"),
    PageSpec("export.py", "Export", ":material/download:", Permission.EXPORT, "Audit"),
    PageSpec("dose_reports.py", "Dose reports", ":material/upload_file:", Permission.IMPORT,
             "Dose"),
    PageSpec("reconciliation.py", "Reconciliation", ":material/rule:",
             Permission.VIEW_DASHBOARDS, "Dose"),
    PageSpec("admin.py", "Admin", ":material/admin_panel_settings:", Permission.ADMIN, "Admin"),
)


def start_page(actor: Actor, specs: tuple[PageSpec, ...] = PAGES) -> PageSpec | None:
    """The page a user lands on after signing in."""
    allowed = [s for s in specs if actor.can(s.permission)]
    for spec in allowed:
        if actor.role in spec.default_for:
            return spec
    return next((s for s in allowed if s.default), allowed[0] if allowed else None)


def pages_for(actor: Actor) -> dict[str, list[st.Page]]:
    """The navigation of one user: only the pages their role may open."""
    start = start_page(actor)
    sections: dict[str, list[st.Page]] = {}
    for spec in PAGES:
        if actor.can(spec.permission):
            page = st.Page(str(VIEWS / spec.module), title=spec.title, icon=spec.icon,
                           default=spec is start)
            sections.setdefault(spec.section, []).append(page)
    return sections
