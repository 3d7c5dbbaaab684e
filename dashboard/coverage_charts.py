"""Charts of the Coverage and safeguards page (issue 15, part B): each rule's compliance with
its 95% interval, and by month. Same rules as dashboard.charts (Okabe-Ito colours, every
category labelled, legends in words, a caption under each)."""

from __future__ import annotations

import altair as alt
import pandas as pd

from dashboard.charts import BAR, BLACK, category_axis, rows_height

RULES_CAPTION = ("How to read this: one bar per rule, the share of the procedures it applies to "
                 "that met it, with the 95% confidence interval as a black line. A short bar is "
                 "a rule often broken: its exceptions are listed below.")
MONTH_CAPTION = ("How to read this: one line per rule, its compliance in each month (UTC), "
                 "the share of that month's procedures the rule applies to that met it.")


def rule_bars(table: pd.DataFrame) -> alt.LayerChart:
    base = alt.Chart(table).encode(y=alt.Y("title:N", sort=None, title=None,
                                           axis=category_axis()))
    return alt.layer(
        base.mark_bar(color=BAR).encode(
            x=alt.X("compliance_rate:Q", title="Compliance", axis=alt.Axis(format="%"),
                    scale=alt.Scale(domain=[0, 1])),
            tooltip=[alt.Tooltip("title:N", title="Rule"),
                     alt.Tooltip("eligible:Q", title="Procedures it applies to", format=","),
                     alt.Tooltip("exceptions:Q", title="Exceptions", format=","),
                     alt.Tooltip("compliance_rate:Q", title="Compliance", format=".1%")]),
        base.mark_rule(color=BLACK, strokeWidth=1.5).encode(x="ci_low:Q", x2="ci_high:Q"),
    ).properties(height=rows_height(len(table)), title="Compliance by rule, 95% intervals")


def month_lines(table: pd.DataFrame) -> alt.Chart:
    return alt.Chart(table).mark_line(point=True).encode(
        x=alt.X("month:O", title="Month"),
        y=alt.Y("compliance_rate:Q", title="Compliance", axis=alt.Axis(format="%"),
                scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("title:N", title="Rule", legend=alt.Legend(orient="bottom",
                                                                   columns=1)),
        tooltip=[alt.Tooltip("title:N", title="Rule"), alt.Tooltip("month:O", title="Month"),
                 alt.Tooltip("eligible:Q", title="Procedures it applies to", format=","),
                 alt.Tooltip("compliance_rate:Q", title="Compliance", format=".1%")],
    ).properties(title="Compliance by month")
