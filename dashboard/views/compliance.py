"""Compliance: are we confirming needle placement with contrast? (docs/design.md §3)"""

from __future__ import annotations

import streamlit as st

from audit.auth import Permission
from audit.errors import ValidationFailed
from dashboard import analytics, charts, state, tables
from dashboard.analytics import chart_and_table, percent
from dashboard.labels import glossary
from dashboard.widgets import plain

state.require(Permission.VIEW_DASHBOARDS)
st.title("Contrast-confirmation compliance")
source = analytics.figures(as_of=True)  # SQL on PostgreSQL ("as of" allowed), frame on SQLite
chosen = analytics.filters(source)
analytics.caption(source, chosen)
st.caption("Eligible: final records whose procedure requires contrast. Compliant: confirmed, "
           "at least one saved image, at least the catalog's views, and real-time contrast "
           "where required (TFESI). Excepted: contraindicated with a documented reason. "
           "Rate = compliant / (eligible − excepted), 95% Wilson interval.")


def listed_records(which: str, who: str) -> tuple[str, tuple[str, str] | None]:
    """The records the list shows: its column ("non_compliant", "excepted") and group."""
    return which.lower().replace("-", "_"), None if who == "All" else ("physician", who)


# the counts (with their breakdowns), the p-chart and the records shown last, at once
shown = listed_records(st.session_state.get("c_which") or "Non-compliant",
                       st.session_state.get("c_who") or "All")
analytics.ahead(source, lambda s: s.compliance_rates(chosen), lambda s: s.p_chart(chosen),
                lambda s: s.compliance_records(chosen, *shown, limit=2000))

try:
    overall = source.compliance_rates(chosen).iloc[0]
except ValidationFailed as exc:
    st.error(plain(exc))
    st.stop()

cols = st.columns(5)
cols[0].metric("Compliance", percent(overall["rate"]),
               help=f"95% CI {percent(overall['ci_low'])} – {percent(overall['ci_high'])}. "
                    + glossary("95% CI"))
cols[1].metric("Eligible", f"{overall['eligible']:,}")
cols[2].metric("Compliant", f"{overall['compliant']:,}")
cols[3].metric("Excepted", f"{overall['excepted']:,}")
cols[4].metric("Non-compliant", f"{overall['non_compliant']:,}")
st.write(f"95% confidence interval: **{percent(overall['ci_low'])} – "
         f"{percent(overall['ci_high'])}**")

# --- monthly p-chart ----------------------------------------------------------------------------
st.subheader("Monthly p-chart", help=glossary("Control limits"))
chart_data = source.p_chart(chosen)
if chart_data.empty:
    st.info("No eligible records for these filters.")
else:
    chart_and_table(charts.p_chart(chart_data), chart_data.drop(columns=["signal"]),
                    height=320, caption=charts.P_CHART_CAPTION)

# --- breakdowns -----------------------------------------------------------------------------
st.subheader("Breakdowns")
tabs = st.tabs(["By physician", "By room", "By procedure"])
for tab, by in zip(tabs, ("physician", "room", "procedure"), strict=True):
    with tab:
        table = source.compliance_rates(chosen, by).sort_values("rate")
        if table.empty:
            st.info("No eligible records.")
            continue
        chart_and_table(charts.rate_bars(table, by, float(overall["rate"])), table,
                        caption=charts.rate_caption(by))

# --- the records behind the numbers -------------------------------------------------------------
st.subheader("Records behind the numbers")
left, right = st.columns(2)
which = left.radio("Show", ["Non-compliant", "Excepted"], horizontal=True, key="c_which")
by_physician = source.compliance_rates(chosen, "physician").set_index("physician")
who = right.selectbox("Physician", ["All", *by_physician.index], key="c_who")
column, group = listed_records(which, who)
listed = source.compliance_records(chosen, column, group, limit=2000)
count = int(overall[column] if group is None else by_physician.loc[who, column])
st.caption(f"{len(listed):,} shown (newest first, at most 2,000) of {count:,} "
           f"{which.lower()} records for the filters" + ("" if group is None else
                                                          f", physician {plain(who)}"))
tables.show(listed, height=320)
