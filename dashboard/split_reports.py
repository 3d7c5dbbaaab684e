"""The Reconciliation page's look at studies sent as several dose reports (issue 13).

When one procedure's study reaches fluoro-audit as more than one report (two studies under
one accession number, a report per procedure step), each report alone holds only part of the
dose, and comparing each with the log flags a discrepancy that is not one. This section
compares the log with the reports' sum instead (audit.analytics.split_reports);
dashboard/views/reconciliation.py calls :func:`section` once, at the end of the page.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import streamlit as st

from audit import Actor
from audit.analytics import split_reports
from dashboard import state, tables


def section(actor: Actor, days: int | None) -> None:
    """Procedures with more than one current report: the sums beside the logged values."""
    st.subheader("Studies sent as several dose reports")
    since = datetime.now(UTC) - timedelta(days=days) if days else None
    frame = split_reports(state.engine(), actor, date_from=since)
    if frame.empty:
        st.info("No logged procedure has more than one dose report in this period.")
        return
    agree = int(frame["agrees"].sum())
    st.caption(
        f"{len(frame):,} logged procedures have more than one current dose report; for "
        f"{agree:,} of them the log agrees with the reports' sum within the discrepancy "
        "tolerance. Each report alone holds part of the dose, so a discrepancy raised "
        "against one report of such a procedure may not be one: compare with the sum. "
        "Log vs sum: (logged − sum) ÷ sum.")
    tables.show(frame)
