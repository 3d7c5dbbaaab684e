"""Overview: the state of the log at a glance."""

from __future__ import annotations

import streamlit as st

from audit.auth import Permission
from audit.log import log_summary
from dashboard import state

state.require(Permission.VIEW_RECORDS)
st.title("fluoro-audit")
st.caption("Fluoroscopy procedure log and radiation audit")
summary = log_summary(state.engine())
left, middle, right = st.columns(3)
left.metric("Procedures logged", f"{summary['procedures']:,}")
middle.metric("Voided", f"{summary['voided']:,}")
right.metric("Audit events", f"{summary['audit_events']:,}")
if summary["latest"]:
    st.write(f"Latest procedure: {summary['latest']:%Y-%m-%d %H:%M} UTC")
else:
    st.info("No procedures yet. Log one with `fluoro-audit log`. To try the app on sample "
            "data, run `fluoro-audit serve --demo`: it serves a separate demo database, so "
            "no demo record ever lands in this log.")
