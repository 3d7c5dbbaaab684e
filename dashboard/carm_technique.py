"""The Dose page's section on technique as the C-arm recorded it (issue 13).

Pulsed fluoroscopy and pulse rates from the irradiation events of the dose reports, beside what
the form says for the same procedures, and how many events each procedure type takes. Figures
come from audit.analytics (events.py, aggregated in SQL); this module only draws them.
dashboard/views/dose.py calls :func:`section` once.
"""

from __future__ import annotations

import streamlit as st

from audit import Actor, Filters
from audit.analytics import LOW_PULSE_RATE_PPS, events_per_procedure, pulse_rates, pulsed_use
from dashboard import event_charts, state, tables
from dashboard.analytics import chart_and_table

#: The groups the library names in lower case, as the page shows them.
GROUPS = {"not in the log": "Not in the log", "all procedures": "All procedures"}


def section(actor: Actor, chosen: Filters) -> None:
    """Pulsed use from the C-arm beside the form, pulse rates, events per procedure."""
    st.subheader("Pulsed fluoroscopy as the C-arm recorded it")
    engine = state.engine()
    period = {"date_from": chosen.start, "date_to": chosen.before}
    use = pulsed_use(engine, actor, **period)
    if use.empty:
        st.info("No dose report with irradiation events in this period: these figures come "
                "from the C-arm's own reports (imported on the Dose reports page), event by "
                "event.")
        return
    st.caption(
        "From the irradiation events of the C-arm's dose reports (the current report of each "
        "study), beside what the form says for the same procedures. Fluoroscopy time here is "
        "each event's irradiation duration, else its exposure time. Low pulse rate: "
        f"{LOW_PULSE_RATE_PPS:g} pulses/s or less. Period and procedure only: the C-arm's "
        "reports know no physician.")
    tables.show(use, enums={"procedure": GROUPS})
    rates = pulse_rates(engine, actor, **period)
    if len(rates):
        chart_and_table(event_charts.pulse_rates(rates), rates,
                        caption=event_charts.PULSE_RATES_CAPTION)
    st.subheader("Irradiation events per procedure")
    st.caption("How many irradiation events each procedure type takes, from the dose reports "
               "linked to logged procedures: fluoroscopy events, and acquisitions (a saved "
               "image or run). A study sent as several reports counts once, whole.")
    tables.show(events_per_procedure(engine, actor, **period))
