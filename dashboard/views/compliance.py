"""Compliance: are we confirming needle placement with contrast? (docs/design.md §3)"""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from audit.analytics import compliance_rates, compliance_records, p_chart
from audit.auth import Permission
from audit.errors import ValidationFailed
from dashboard import analytics, state
from dashboard.analytics import chart_and_table, percent
from dashboard.widgets import plain

state.require(Permission.VIEW_DASHBOARDS)
st.title("Contrast-confirmation compliance")
snap = analytics.snapshot()
chosen = analytics.filters(snap)
analytics.caption(snap, chosen)
st.caption("Eligible: final records whose procedure requires contrast. Compliant: confirmed, "
           "at least one saved image, at least the catalog's views, and real-time contrast "
           "where required (TFESI). Excepted: contraindicated with a documented reason. "
           "Rate = compliant / (eligible − excepted), 95% Wilson interval.")

try:
    overall = compliance_rates(snap, chosen).iloc[0]
except ValidationFailed as exc:
    st.error(plain(exc))
    st.stop()

cols = st.columns(5)
cols[0].metric("Compliance", percent(overall["rate"]),
               help=f"95% CI {percent(overall['ci_low'])} – {percent(overall['ci_high'])}")
cols[1].metric("Eligible", f"{overall['eligible']:,}")
cols[2].metric("Compliant", f"{overall['compliant']:,}")
cols[3].metric("Excepted", f"{overall['excepted']:,}")
cols[4].metric("Non-compliant", f"{overall['non_compliant']:,}")
st.write(f"95% confidence interval: **{percent(overall['ci_low'])} – "
         f"{percent(overall['ci_high'])}**")

# --- monthly p-chart ----------------------------------------------------------------------------
st.subheader("Monthly p-chart")
chart_data = p_chart(snap, chosen)
if chart_data.empty:
    st.info("No eligible records for these filters.")
else:
    base = alt.Chart(chart_data).encode(x=alt.X("month:O", title="Month (UTC)"))
    y_scale = alt.Scale(zero=False, domain=[max(0.0, float(chart_data["lcl"].min()) - 0.05),
                                            min(1.0, float(chart_data["ucl"].max()) + 0.02)])
    limits = base.mark_line(strokeDash=[4, 3], color="#888", interpolate="step-after")
    chart = alt.layer(
        base.mark_line(color="#54a24b").encode(
            y=alt.Y("centre:Q", title="Compliance", scale=y_scale,
                    axis=alt.Axis(format="%"))),
        limits.encode(y="ucl:Q"),
        limits.encode(y="lcl:Q"),
        base.mark_line(color="#4c78a8").encode(y="rate:Q"),
        base.mark_point(filled=True, size=60).encode(
            y="rate:Q",
            color=alt.Color("signal:N", title="Outside limits",
                            scale=alt.Scale(domain=[False, True], range=["#4c78a8", "#e45756"])),
            tooltip=["month", "n", "compliant", alt.Tooltip("rate:Q", format=".1%"),
                     alt.Tooltip("lcl:Q", format=".1%"), alt.Tooltip("ucl:Q", format=".1%")]),
    ).properties(height=280, title="Monthly rate (blue), centre line (green), 3-sigma limits "
                                   "(dashed)")
    chart_and_table(chart, chart_data, height=300)

# --- breakdowns -----------------------------------------------------------------------------
st.subheader("Breakdowns")
tabs = st.tabs(["By physician", "By room", "By procedure"])
for tab, by in zip(tabs, ("physician", "room", "procedure"), strict=True):
    with tab:
        table = compliance_rates(snap, chosen, by).sort_values("rate")
        if table.empty:
            st.info("No eligible records.")
            continue
        base = alt.Chart(table).encode(y=alt.Y(f"{by}:N", sort=None, title=None))
        chart = alt.layer(
            base.mark_bar(color="#4c78a8").encode(
                x=alt.X("rate:Q", title="Compliance", axis=alt.Axis(format="%"),
                        scale=alt.Scale(domain=[0, 1])),
                tooltip=[by, "eligible", "compliant", "excepted", "non_compliant",
                         alt.Tooltip("rate:Q", format=".1%")]),
            base.mark_rule(color="black").encode(x="ci_low:Q", x2="ci_high:Q"),
            alt.Chart(pd.DataFrame({"overall": [overall["rate"]]})).mark_rule(
                color="#e45756", strokeDash=[4, 3]).encode(x="overall:Q"),
        ).properties(height=max(120, 28 * len(table)),
                     title=f"Rate by {by} with 95% intervals (dashed: overall)")
        chart_and_table(chart, table)

# --- the records behind the numbers -------------------------------------------------------------
st.subheader("Records behind the numbers")
left, right = st.columns(2)
which = left.radio("Show", ["Non-compliant", "Excepted"], horizontal=True, key="c_which")
by_physician = compliance_rates(snap, chosen, "physician").set_index("physician")
who = right.selectbox("Physician", ["All", *by_physician.index], key="c_who")
group = None if who == "All" else ("physician", who)
column = which.lower().replace("-", "_")
listed = compliance_records(snap, chosen, column, group, limit=2000)
count = int(overall[column] if group is None else by_physician.loc[who, column])
st.caption(f"{len(listed):,} shown (newest first, at most 2,000) of {count:,} "
           f"{which.lower()} records for the filters" + ("" if group is None else
                                                          f", physician {plain(who)}"))
st.dataframe(listed, hide_index=True, height=320)
