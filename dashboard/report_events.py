"""The Dose reports page's look at one stored report: its irradiation events and warnings.

Apart from the page (dashboard/views/dose_reports.py calls :func:`section` once) so that the
page stays a list of sections. The events are what the C-arm recorded, event by event (type,
fluoro mode, pulse rate, kVp, tube current, field area, dose, times, angles); the warnings say
which figures the reader left out because their unit was not understood.
"""

from __future__ import annotations

import streamlit as st

from audit import Actor
from audit.dose_reports import list_reports, report_events
from dashboard import state, tables
from dashboard.widgets import plain


def _choice(row: dict[str, object]) -> str:
    when = tables.local_text(row["study_datetime"], tables.display_zone()[0]) or "no study time"
    return f"Report {row['report_id']}: {row['source_file']} ({when}, {row['events']} events)"


def section(actor: Actor) -> None:
    """A stored report chosen from the newest 500, its warnings, then its events."""
    st.subheader("A report's irradiation events")
    reports = list_reports(state.engine(), actor)
    if reports.empty:
        st.info("No dose report stored yet.")
        return
    rows = reports.to_dict("records")
    labels = {int(row["report_id"]): _choice(row) for row in rows}
    chosen = st.selectbox("Dose report", list(labels), format_func=labels.get,
                          key="report_events_report")
    events, warnings = report_events(state.engine(), actor, int(chosen))
    for warning in warnings:
        st.warning(plain(f"Left out: {warning}"))
    if events.empty:
        st.info("No events stored for this report: it was imported before fluoro-audit kept "
                "irradiation events (the file itself was not kept).")
        return
    st.caption("Each irradiation event as the C-arm recorded it: fluoroscopy or an "
               "acquisition (a stationary image or run, stepping or rotational), whether "
               "fluoroscopy was pulsed, and the technique and dose of that event. An empty "
               "cell: the report does not say.")
    tables.show(events)
