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
PHYSICIAN_CAPTION = ("How to read this: one row per rule, one square per physician, its colour "
                     "the share of the physician's procedures the rule applies to that met it, "
                     "from dark (50% or less) to yellow (100%); a blank square is a rule the "
                     "physician had no procedure for. The numbers are in the table below.")
MONTH_CAPTION = ("How to read this: one row per rule, one square per month (UTC), its colour "
                 "the share of that month's procedures the rule applies to that met it, from "
                 "dark (50% or less) to yellow (100%); a blank square is a month without such "
                 "procedures.")


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


def month_grid(table: pd.DataFrame) -> alt.Chart:
    """One row per rule, one cell per month, coloured by compliance: thirteen rules over two
    years read as a grid at a glance, where as many lines on one chart tangle."""
    return compliance_grid(table, "month", "Month", "Compliance by month")


def physician_grid(table: pd.DataFrame) -> alt.Chart:
    """One row per rule, one cell per physician: who breaks which rule, at a glance."""
    return compliance_grid(table, "physician", "Physician", "Compliance by physician")


def compliance_grid(table: pd.DataFrame, across: str, label: str, title: str) -> alt.Chart:
    """Rules down, `across` (month or physician) along, each cell coloured by compliance. The
    colour scale starts at 50% (below is the darkest) so that the differences between 80% and
    100%, where most rules sit, show; a cell without procedures for the rule is blank."""
    rules = table["title"].nunique() if "title" in table else 0
    return alt.Chart(table).mark_rect(stroke="white", strokeWidth=1).encode(
        x=alt.X(f"{across}:O", title=label,
                axis=alt.Axis(labelAngle=-45, labelLimit=160,
                              labelOverlap=across != "physician")),  # every name shown
        y=alt.Y("title:N", title=None, sort=None, axis=category_axis()),
        color=alt.Color("compliance_rate:Q", title="Compliance",
                        scale=alt.Scale(scheme="viridis", domain=[0.5, 1], clamp=True),
                        legend=alt.Legend(format="%", orient="bottom")),
        tooltip=[alt.Tooltip("title:N", title="Rule"), alt.Tooltip(f"{across}:O", title=label),
                 alt.Tooltip("eligible:Q", title="Procedures it applies to", format=","),
                 alt.Tooltip("exceptions:Q", title="Exceptions", format=","),
                 alt.Tooltip("compliance_rate:Q", title="Compliance", format=".1%")],
    ).properties(height=rows_height(rules, legend=True), title=title)
