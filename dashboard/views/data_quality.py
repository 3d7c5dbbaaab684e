"""Data quality: is the log complete enough to trust the other pages?"""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from audit.analytics import SAFETY_FLAGS, completeness, flagged_records, safety_flags
from audit.auth import Permission
from audit.errors import ValidationFailed
from dashboard import analytics, state
from dashboard.analytics import chart_and_table, percent
from dashboard.widgets import plain

state.require(Permission.VIEW_DASHBOARDS)
st.title("Data quality")
snap = analytics.snapshot()
chosen = analytics.filters(snap)
analytics.caption(snap, chosen)

try:
    overall = completeness(snap, chosen).iloc[0]
except ValidationFailed as exc:
    st.error(plain(exc))
    st.stop()

cols = st.columns(5)
cols[0].metric("Records", f"{overall['records']:,}")
cols[1].metric("No KAP", f"{overall['missing_dap']:,}",
               help=f"{overall['missing_dap_documented']:,} with a documented reason")
cols[2].metric("No Ka,r", percent(overall["missing_air_kerma_share"]))
cols[3].metric("Saved with warnings", percent(overall["with_warnings_share"]))
cols[4].metric("Dose from a dose report", percent(overall["from_dose_report_share"]))

shares = ["missing_dap_share", "missing_air_kerma_share", "with_warnings_share",
          "from_dose_report_share"]
for by, title in (("room", "By room"), ("technologist", "By technologist")):
    st.subheader(title)
    table = completeness(snap, chosen, by)
    long = table.melt(id_vars=[by], value_vars=shares, var_name="measure", value_name="share")
    chart = alt.Chart(long).mark_bar().encode(
        y=alt.Y(f"{by}:N", title=None), x=alt.X("share:Q", axis=alt.Axis(format="%")),
        color=alt.Color("measure:N"), yOffset="measure:N",
        tooltip=[by, "measure", alt.Tooltip("share:Q", format=".1%")],
    ).properties(height=max(140, 60 * len(table)))
    chart_and_table(chart, table)

st.subheader("Safety flags")
flags = safety_flags(snap, chosen).iloc[0]
flag_table = pd.DataFrame([{"flag": name, "meaning": meaning, "records": int(flags[name])}
                           for name, meaning in SAFETY_FLAGS.items()])
chart = alt.Chart(flag_table).mark_bar(color="#f58518").encode(
    y=alt.Y("meaning:N", title=None, sort="-x", axis=alt.Axis(labelLimit=320)),
    x=alt.X("records:Q", title="Records"),
    tooltip=["flag:N", "records:Q"]).properties(height=200)
chart_and_table(chart, flag_table)
flag = st.selectbox("Records with", list(SAFETY_FLAGS),
                    format_func=SAFETY_FLAGS.get, key="q_flag")
st.dataframe(flagged_records(snap, chosen, flag, limit=2000), hide_index=True,
             height=300)
