"""Charts of the C-arm's irradiation events (issue 13), kept apart from the big chart modules.

Same rules as dashboard/charts.py: Okabe-Ito colours, every category labelled, a "how to read
this" caption for each chart.
"""

from __future__ import annotations

import altair as alt
import pandas as pd

from dashboard.charts import BAR, category_axis, rows_height

PULSE_RATES_CAPTION = ("How to read this: one bar per pulse rate the C-arm used for pulsed "
                       "fluoroscopy, its length the share of pulsed fluoroscopy time at that "
                       "rate; bars at the lower rates mean less dose for the same time.")


def pulse_rates(rates: pd.DataFrame) -> alt.Chart:
    """Share of pulsed fluoroscopy time per pulse rate."""
    shown = rates.assign(rate=[f"{r:g} pulses/s" for r in rates["pulse_rate_pps"]])
    order = shown["rate"].tolist()
    return alt.Chart(shown).mark_bar(color=BAR).encode(
        y=alt.Y("rate:N", title="Pulse rate", sort=order, axis=category_axis()),
        x=alt.X("time_share:Q", title="Share of pulsed fluoroscopy time",
                axis=alt.Axis(format="%")),
        tooltip=[alt.Tooltip("rate:N", title="Pulse rate"),
                 alt.Tooltip("fluoro_events:Q", title="Fluoroscopy events", format=",d"),
                 alt.Tooltip("time_share:Q", title="Share of pulsed time", format=".1%")],
    ).properties(height=rows_height(len(shown)))
