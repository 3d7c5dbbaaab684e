"""Alerts: SRDL exceedances, investigation levels and cumulative dose, with the RSO's
follow-up (docs/design.md §3)."""

from __future__ import annotations

from datetime import date

import altair as alt
import pandas as pd
import streamlit as st

from audit.alerts import (
    KINDS_BY_PRIORITY,
    THRESHOLD_SETTINGS,
    acknowledge_alerts,
    alert_counts,
    investigation_levels,
    list_alerts,
    refresh_alerts,
)
from audit.auth import Permission
from audit.errors import AuditError, ValidationFailed
from dashboard import analytics, state
from dashboard.analytics import chart_and_table
from dashboard.widgets import plain

actor = state.require(Permission.VIEW_DASHBOARDS)
st.title("Dose alerts")
snap = analytics.snapshot()
chosen = analytics.filters(snap)
analytics.caption(snap, chosen)
refresh_alerts(state.engine(), snap)  # derived from all records: arrival order cannot matter
try:
    summary = alert_counts(state.engine(), actor, chosen)
except ValidationFailed as exc:
    st.error(plain(exc))
    st.stop()

open_by_kind = summary.groupby("kind")["open"].sum() if len(summary) else {}
cols = st.columns(4)
cols[0].metric("Open", f"{int(summary['open'].sum()) if len(summary) else 0:,}")
for col, kind, name in zip(cols[1:], KINDS_BY_PRIORITY,
                           ("Open SRDL", "Open cumulative", "Open investigation"), strict=True):
    col.metric(name, f"{int(open_by_kind.get(kind, 0)):,}")

if len(summary):
    long = summary.melt(id_vars=["kind", "quantity"], value_vars=["open", "acknowledged",
                                                                  "withdrawn"],
                        var_name="status", value_name="alerts")
    chart = alt.Chart(long).mark_bar().encode(
        y=alt.Y("kind:N", title=None), x=alt.X("sum(alerts):Q", title="Alerts"),
        color=alt.Color("status:N", scale=alt.Scale(
            domain=["open", "acknowledged", "withdrawn"],
            range=["#e45756", "#54a24b", "#bab0ac"])),
        tooltip=["kind", "quantity", "status", "alerts"],
    ).properties(height=50 * summary["kind"].nunique() + 40,
                 title="Alerts by kind and status")
    chart_and_table(chart, summary)
else:
    st.success("No alerts for these filters.")

columns = ["alert_id", "kind", "quantity", "performed_at", "patient", "procedure", "physician",
           "room", "value", "threshold", "records", "window_start", "window_end",
           "threshold_source"]
tabs = st.tabs(["Open", "Acknowledged", "Withdrawn"])
for tab, status in zip(tabs, ("open", "acknowledged", "withdrawn"), strict=True):
    with tab:
        shown = list_alerts(state.engine(), actor, chosen, status=status,
                                             limit=2000)
        extra = {"acknowledged": ["acknowledged_at", "acknowledged_by", "note",
                                  "patient_informed", "skin_check_date"],
                 "withdrawn": ["withdrawn_reason"]}.get(status, [])
        total = int(summary[status].sum()) if len(summary) else 0
        st.caption(f"{len(shown):,} shown of {total:,} {status} (newest first)")
        st.dataframe(shown[columns + extra], hide_index=True, height=300)

st.subheader("Acknowledge")
if not actor.can(Permission.MANAGE_ALERTS):
    st.info("Only the radiation safety officer acknowledges alerts.")
elif not len(summary) or not int(summary["open"].sum()):
    st.write("Nothing to acknowledge.")
else:
    priority = pd.concat([list_alerts(state.engine(), actor, chosen, status="open", kind=kind,
                                      limit=200)
                          for kind in KINDS_BY_PRIORITY])
    labels = {int(r.alert_id): f"#{r.alert_id} {r.kind} {r.quantity} · {r.patient} · "
                               f"{r.performed_at:%Y-%m-%d} · {r.value:.4g} ≥ {r.threshold:.4g}"
              for r in priority.itertuples()}
    with st.form("acknowledge", clear_on_submit=True):
        picked = st.multiselect("Alerts", list(labels), format_func=labels.get, key="a_ids")
        note = st.text_area("Follow-up note", key="a_note",
                            placeholder="e.g. patient informed by phone; skin check booked")
        informed = st.checkbox("Patient informed", key="a_informed")
        check = st.date_input("Skin check date (optional)", value=None, key="a_check")
        submitted = st.form_submit_button("Acknowledge")
    if submitted:
        try:
            done = acknowledge_alerts(state.engine(), actor, picked, note,
                               patient_informed=informed,
                               skin_check_date=check if isinstance(check, date) else None)
        except AuditError as exc:
            st.error(plain(exc))
        else:
            state.data_changed()
            st.success(f"{done} alert(s) acknowledged.")
            st.rerun()

st.subheader("Thresholds")
settings = [(key, getattr(snap.settings, key), snap.setting_sources.get(key))
            for key in THRESHOLD_SETTINGS]
st.dataframe({"setting": [s[0] for s in settings], "value": [s[1] for s in settings],
              "source": [s[2] for s in settings]}, hide_index=True)
st.caption("Investigation levels per procedure (rounded to 3 significant figures):")
st.dataframe(investigation_levels(snap), hide_index=True)
