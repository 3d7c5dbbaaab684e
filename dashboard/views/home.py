"""Overview: the state of the log at a glance, and where each role goes next in the app.

Each role is pointed to the page of its next action (a technologist to Log procedure, a
physician to Records, ...) with a link, never to a command line: everyone here uses the app.
Links are drawn only to pages the role may open (dashboard.navigation decides).
"""

from __future__ import annotations

import streamlit as st

from audit.auth import Actor, Permission
from audit.log import log_summary
from audit.vocab import Role
from dashboard import state
from dashboard.navigation import PAGES, VIEWS

#: Per role, what to do next in the app: (sentence, page module under dashboard/views/).
NEXT_STEPS: dict[Role, tuple[tuple[str, str], ...]] = {
    Role.TECHNOLOGIST: (
        ("Log the case you have just finished: one form, Enter saves.", "log_procedure.py"),
        ("Correct one of your entries: open it in Records and amend it.", "records.py"),
    ),
    Role.PHYSICIAN: (
        ("Look up your patients' procedures, their dose and their history.", "records.py"),
    ),
    Role.QUALITY_OFFICER: (
        ("See how often contrast confirmed the needle placement, and the records that did "
         "not.", "compliance.py"),
        ("Compare the log with the C-arm's dose reports: cases missing on either side.",
         "reconciliation.py"),
    ),
    Role.RSO: (
        ("Follow up the open dose alerts and acknowledge them with a note.", "alerts.py"),
        ("Check dose per procedure against the reference levels.", "dose.py"),
    ),
    Role.ADMIN: (
        ("Add the people who use fluoro-audit, and the rooms and physicians.", "admin.py"),
        ("Log a procedure.", "log_procedure.py"),
    ),
}
#: When the log is empty: the first step for roles that may log, and for those who may not.
FIRST_CASE = ("No procedures yet. Log the first one: the form adds a new site, room or "
              "physician as you go.")
NO_CASES = ("No procedures yet. Technologists log them on the Log procedure page; the figures "
            "appear here as they do.")


def page_link(actor: Actor, module: str) -> None:
    """A link to a page of the app, drawn only when this role may open it (and once)."""
    spec = next(s for s in PAGES if s.module == module)
    if actor.can(spec.permission) and module not in linked:
        st.page_link(str(VIEWS / module), label=spec.title, icon=spec.icon)
        linked.add(module)


linked: set[str] = set()


actor = state.require(Permission.VIEW_RECORDS)
st.title("fluoro-audit")
st.caption("Fluoroscopy procedure log and radiation audit")
summary = log_summary(state.engine())
left, middle, right = st.columns(3)
left.metric("Procedures logged", f"{summary['procedures']:,}")
middle.metric("Voided", f"{summary['voided']:,}")
right.metric("Audit events", f"{summary['audit_events']:,}")
if summary["latest"]:
    st.write(f"Latest procedure: {summary['latest']:%Y-%m-%d %H:%M} UTC")
elif actor.can(Permission.LOG_PROCEDURE):
    st.info(FIRST_CASE, icon=":material/edit_note:")
    page_link(actor, "log_procedure.py")
else:
    st.info(NO_CASES, icon=":material/info:")

st.subheader("Next")
with st.container(border=True):
    for sentence, module in NEXT_STEPS[actor.role]:
        if module not in linked:
            st.write(sentence)
            page_link(actor, module)
if actor.role is Role.ADMIN and not summary["latest"]:
    st.caption("To try the app on sample data, run `fluoro-audit serve --demo`: it serves a "
               "separate demo database, so no demo record ever lands in this log.")
