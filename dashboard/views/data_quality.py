"""Data quality: is the log complete enough to trust the other pages?"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from audit.analytics import SAFETY_FLAGS
from audit.auth import Permission
from audit.errors import ValidationFailed
from dashboard import analytics, charts, state, tables
from dashboard.analytics import chart_and_table, percent
from dashboard.labels import glossary
from dashboard.widgets import plain

state.require(Permission.VIEW_DASHBOARDS)
st.title("Data quality")
source = analytics.figures(as_of=True)  # SQL on PostgreSQL ("as of" allowed), frame on SQLite
chosen = analytics.filters(source)
analytics.caption(source, chosen)
shown_flag = st.session_state.get("q_flag") or next(iter(SAFETY_FLAGS))
analytics.ahead(source, lambda s: s.completeness(chosen),  # the counts and the list together
                lambda s: s.flagged_records(chosen, shown_flag, limit=2000))

try:
    overall = source.completeness(chosen).iloc[0]
except ValidationFailed as exc:
    st.error(plain(exc))
    st.stop()

cols = st.columns(5)
cols[0].metric("Records", f"{overall['records']:,}")
cols[1].metric("No KAP", f"{overall['missing_dap']:,}",
               help=f"{overall['missing_dap_documented']:,} with a documented reason. "
                    + glossary("KAP"))
cols[2].metric("No Ka,r", percent(overall["missing_air_kerma_share"]), help=glossary("Ka,r"))
cols[3].metric("Saved with warnings", percent(overall["with_warnings_share"]))
cols[4].metric("Dose from a dose report", percent(overall["from_dose_report_share"]))

for by, title in (("room", "By room"), ("technologist", "By technologist")):
    st.subheader(title)
    table = source.completeness(chosen, by)
    chart_and_table(charts.share_bars(table, by), table, caption=charts.share_caption(by),
                    names={f"{name}_share": f"{label} (%)"
                           for name, label in (("missing_dap", "No KAP"),
                                               ("missing_air_kerma", "No Ka,r"),
                                               ("with_warnings", "Saved with warnings"),
                                               ("from_dose_report", "Dose from a dose report"))})

st.subheader("Safety flags")
flags = source.safety_flags(chosen).iloc[0]
flag_table = pd.DataFrame([{"flag": name, "meaning": meaning, "records": int(flags[name])}
                           for name, meaning in SAFETY_FLAGS.items()])
chart_and_table(charts.flag_bars(flag_table), flag_table.drop(columns=["flag"]),
                caption=charts.FLAGS_CAPTION)
flag = st.selectbox("Records with", list(SAFETY_FLAGS),
                    format_func=SAFETY_FLAGS.get, key="q_flag")
tables.show(source.flagged_records(chosen, flag, limit=2000), height=300)
