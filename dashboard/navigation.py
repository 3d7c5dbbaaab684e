"""Which pages exist and who may open them: the single registry the app builds st.navigation
from. Each page module (dashboard/views/*.py) also calls state.require() itself, so a page that
is reached by URL or switch_page is still refused to a role that may not see it.

Deep links (issue 12): every page's address (/compliance, /records?record=7) exists in every
navigation, so Streamlit never answers "Page not found" for one. Signed out, each is the sign-in
form (hidden from the menu), and signing in there goes on to that page: Streamlit keeps the
page's address (its script hash is the URL path) and query parameters through the rerun. Signed
in, a page the role may not open is a hidden stand-in (`refused()` names it), which app.py turns
into "not available for your role" on the role's start page."""

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
    PageSpec("complications.py", "Complications", ":material/personal_injury:",
             Permission.VIEW_DASHBOARDS, "Audit"),
    PageSpec("coverage.py", "Coverage and safeguards", ":material/policy:",
             Permission.VIEW_DASHBOARDS, "Audit"),
    PageSpec("export.py", "Export", ":material/download:", Permission.EXPORT, "Audit"),
    PageSpec("committee_report.py", "Committee report", ":material/summarize:",
             Permission.VIEW_DASHBOARDS, "Audit"),
    PageSpec("patient_history.py", "Patient history", ":material/person_search:",
             Permission.PATIENT_HISTORY, "Log"),
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


def url_path(spec: PageSpec) -> str:
    """The page's address below the app's root (Streamlit's default: the module's name)."""
    return spec.module.removesuffix(".py")


def signed_out_pages() -> list[st.Page]:
    """Signed out: the sign-in form at the root and at every page's address (hidden)."""
    form = str(VIEWS / "sign_in.py")
    return [st.Page(form, title="Sign in", default=True),
            *(st.Page(form, title="Sign in", url_path=url_path(spec), visibility="hidden")
              for spec in PAGES)]


def _not_available() -> None:  # app.py redirects before a stand-in would run
    st.stop()


def pages_for(actor: Actor) -> dict[str, list[st.Page]]:
    """The navigation of one user: the pages their role may open, and a hidden stand-in at the
    address of each other page (see `refused`)."""
    start = start_page(actor)
    sections: dict[str, list[st.Page]] = {}
    stand_ins: list[st.Page] = []
    for spec in PAGES:
        if actor.can(spec.permission):
            page = st.Page(str(VIEWS / spec.module), title=spec.title, icon=spec.icon,
                           default=spec is start)
            sections.setdefault(spec.section, []).append(page)
        else:
            stand_ins.append(st.Page(_not_available, title=f"{spec.title} (not available)",
                                     url_path=url_path(spec), visibility="hidden"))
    if stand_ins:
        sections.setdefault(next(iter(sections), ""), []).extend(stand_ins)
    return sections


def refused(page: st.Page, actor: Actor) -> PageSpec | None:
    """The page at `page`'s address if `actor` may not open it (`page` is its stand-in)."""
    spec = next((spec for spec in PAGES if url_path(spec) == page.url_path), None)
    return spec if spec is not None and not actor.can(spec.permission) else None
