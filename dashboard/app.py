"""fluoro-audit dashboard entry point (`fluoro-audit serve` runs this with Streamlit).

Until sign-in and the role-based pages land, this page shows the state of the log.
"""

from __future__ import annotations

import os

import streamlit as st

from audit.db import make_engine
from audit.summary import log_summary


@st.cache_resource
def _engine():  # type: ignore[no-untyped-def]
    """One engine per process: the app is stateless, so several processes can share a DB."""
    return make_engine(os.environ.get("FLUORO_AUDIT_DB"))


st.set_page_config(page_title="fluoro-audit", page_icon="☢", layout="wide")
st.title("fluoro-audit")
st.caption("Fluoroscopy procedure log and radiation audit")
summary = log_summary(_engine())
left, middle, right = st.columns(3)
left.metric("Procedures logged", f"{summary['procedures']:,}")
middle.metric("Voided", f"{summary['voided']:,}")
right.metric("Audit events", f"{summary['audit_events']:,}")
if summary["latest"]:
    st.write(f"Latest procedure: {summary['latest']:%Y-%m-%d %H:%M} UTC")
else:
    st.info("No procedures yet. Log one with `fluoro-audit log`, or load sample data with "
            "`fluoro-audit demo`.")
