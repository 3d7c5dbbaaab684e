"""Committee report: the radiation safety committee's quarterly PDF (quality officer, rso,
admin).

The page gathers the period, sites and whether physicians are named, then shows progress while
the library gathers every figure from the dashboards' figure source and typesets it
(audit.documents.committee): SQL on a PostgreSQL site that chose it (no analysis frame read,
issue 16), else the frame; the PDF is offered for download and its SHA-256 is in the audit
trail.
"""

from __future__ import annotations

from datetime import date, timedelta

import streamlit as st

from audit.analytics import uses_sql
from audit.auth import Permission
from audit.documents import committee_document
from audit.errors import AuditError, ValidationFailed
from audit.filters import filter_choices
from dashboard import analytics, state
from dashboard.widgets import plain

REPORT_KEY = "committee_report_pdf"


def last_quarter(today: date) -> tuple[date, date]:
    """The last whole calendar quarter before `today`."""
    start_month = 3 * ((today.month - 1) // 3) + 1
    this_quarter = date(today.year, start_month, 1)
    end = this_quarter - timedelta(days=1)
    return date(end.year, 3 * ((end.month - 1) // 3) + 1, 1), end


actor = state.require(Permission.VIEW_DASHBOARDS)
st.title("Committee report")
st.caption("One PDF for the radiation safety committee: the period and sites with data "
           "completeness; contrast-confirmation compliance with its 95% interval, the p-chart "
           "and breakdowns; dose per procedure against reference levels and published values; "
           "the physician scorecard; alerts and their follow-up; safety flags; definitions and "
           "sources. Every figure is the dashboards' own, from one snapshot of the log.")

default_first, default_last = last_quarter(date.today())
left, right = st.columns(2)
first = left.date_input("From (UTC day)", value=default_first, format="YYYY-MM-DD")
last = right.date_input("To (UTC day, included)", value=default_last, format="YYYY-MM-DD")
sites = st.multiselect("Sites", filter_choices(state.engine())["site"],
                       placeholder="All sites")
pseudonymise = st.checkbox("Pseudonymise physicians (Physician A, B, ...)")

if st.button("Prepare report", type="primary"):
    bar = st.progress(0.0, text="Starting...")

    def progress(step: str, done: int, total: int) -> None:
        bar.progress(min(1.0, done / total) if total else 1.0,
                     text=f"Step {min(done + 1, total)} of {total}: {step}")

    sql = uses_sql(state.engine())  # then the frame cache is never started
    try:
        pdf, info = committee_document(state.engine(), actor, first=first, last=last,
                                       sites=tuple(sites), pseudonymise=pseudonymise,
                                       progress=progress,
                                       frames=None if sql else analytics.frame_cache(),
                                       source=analytics.figures() if sql else None)
        state.data_changed()  # the report is an audit event
        st.session_state[REPORT_KEY] = (pdf, info)
    except ValidationFailed as exc:
        for error in exc.errors:
            st.error(plain(error.message))
    except AuditError as exc:
        st.error(plain(exc))
if REPORT_KEY in st.session_state:
    pdf, info = st.session_state[REPORT_KEY]
    st.download_button("Download the report (PDF)", pdf,
                       file_name=f"committee-report-{info['period'].replace(' ', '-')}.pdf",
                       mime="application/pdf", type="primary")
    st.caption(plain(f"{info['records']:,} records, {info['period']}. SHA-256 "
                     f"{info['sha256']}, recorded in the audit trail."))
