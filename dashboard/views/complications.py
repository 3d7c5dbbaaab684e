"""Complications: how often do procedures go wrong, for which procedure, physician and month?
(issue 15; the same figures as `fluoro-audit report complications`)"""

from __future__ import annotations

import streamlit as st

from audit.auth import Permission
from audit.errors import ValidationFailed
from audit.vocab import ComplicationKind
from dashboard import analytics, case_mix_charts, state, tables
from dashboard.analytics import chart_and_table, percent
from dashboard.widgets import plain

#: The complications listed at most (the newest): a page of rows, not a whole log.
LISTED = 1000

state.require(Permission.VIEW_DASHBOARDS)
st.title("Complications")
source = analytics.figures(as_of=True)  # SQL on PostgreSQL ("as of" allowed), frame on SQLite
chosen = analytics.filters(source)
analytics.caption(source, chosen)
st.caption("Adverse events from the controlled list (contrast reaction with its ACR grade, "
           "vasovagal reaction, dural puncture, nerve injury, hematoma, infection, other), "
           "recorded on the entry form or later on the record (a follow-up call). A rate is "
           "the share of procedures with at least one complication; voided entries do not "
           "count.")

analytics.ahead(source, lambda s: s.complication_rates(chosen),  # counts and list together
                lambda s: s.complication_list(chosen, limit=LISTED))
try:
    overall = source.complication_rates(chosen).iloc[0] if source.record_count() else None
except ValidationFailed as exc:
    st.error(plain(exc))
    st.stop()
if overall is None or not overall["procedures"]:
    st.info("No records for these filters.")
    st.stop()

cols = st.columns(4)
cols[0].metric("Procedures", f"{int(overall['procedures']):,}")
cols[1].metric("With a complication", f"{int(overall['with_complication']):,}")
cols[2].metric("Complication rate", percent(overall["complication_rate"]),
               help=f"95% interval {percent(overall['ci_low'])} to "
                    f"{percent(overall['ci_high'])}")
cols[3].metric("Severe", f"{int(overall['severe']):,}")

for by, title in (("procedure", "By procedure type"), ("physician", "By physician"),
                  ("month", "By month")):
    st.subheader(title)
    table = source.complication_rates(chosen, by)
    chart_and_table(case_mix_charts.complication_bars(table, by,
                                                      float(overall["complication_rate"])),
                    table, caption=case_mix_charts.complication_caption(by))

st.subheader("The complications behind these figures")
listed = source.complication_list(chosen, limit=LISTED)
if len(listed) == LISTED and int(overall["complications"]) > LISTED:
    st.caption(f"The newest {LISTED:,} of {int(overall['complications']):,} complications, "
               "newest first: narrow the filters to list older ones.")
tables.show(listed.iloc[::-1].reset_index(drop=True), height=300,
            enums={"kind": ComplicationKind})
