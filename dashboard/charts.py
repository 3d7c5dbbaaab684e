"""The audit pages' charts (issue 12), built from data frames and returned as Altair charts, so
tests can read their Vega-Lite specs (`chart.to_dict()`) without a browser.

Rules every chart here keeps:
- colours from the Okabe-Ito palette (distinguishable with the common colour-vision
  deficiencies); reference lines in colours other than the bars', each with a dash pattern of
  its own as well, and labelled on the chart by a text mark in the line's colour;
- every category labelled: category axes have no label length limit and no overlap hiding
  (`category_axis`), and the chart grows one row per category (`rows_height`);
- legends in words ("Within control limits"), never field names or true/false;
- each chart has a one-sentence "how to read this" caption (the *_CAPTION texts and functions),
  which dashboard.analytics.chart_and_table draws under it.
"""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import pandas as pd

from audit.documents import p_chart_spec
from audit.vocab import AlertKind
from dashboard import labels

# Okabe & Ito (2008), "Color Universal Design".
BLACK, ORANGE, SKY, GREEN = "#000000", "#E69F00", "#56B4E9", "#009E73"
YELLOW, BLUE, VERMILLION, PURPLE = "#F0E442", "#0072B2", "#D55E00", "#CC79A7"
GREY = "#8C8C8C"
#: Bars and boxes; reference lines never use these.
BAR, BOX = BLUE, SKY
#: Each reference line: colour and dash (solid, dashed, dotted), the same on every chart.
REFERENCES: dict[str, tuple[str, list[int]]] = {
    "Local DRL": (VERMILLION, []),
    "Achievable dose": (GREEN, [6, 3]),
    "Typical value": (ORANGE, []),
    "Published median": (BLACK, [2, 2]),
}
#: Pixels per category row; the room the title and the value axis take besides, and a legend
#: under the chart. Streamlit fits the whole chart, title and legend included, into its height.
ROW, FRAME, LEGEND = 26, 100, 40


def category_axis(**options: object) -> alt.Axis:
    """An axis that draws every category's label in full."""
    return alt.Axis(labelLimit=0, labelOverlap=False, **options)


def rows_height(rows: int, per_row: int = ROW, *, legend: bool = False) -> int:
    """A chart's height giving each of `rows` categories `per_row` pixels."""
    return max(1, rows) * per_row + FRAME + (LEGEND if legend else 0)


def _legend(title: str | None = None, columns: int | None = None) -> alt.Legend:
    """A legend under the chart, its labels in full (`columns` entries a row, so that long
    labels wrap to a second row instead of running past the chart's edge)."""
    extra = {} if columns is None else {"columns": columns}
    return alt.Legend(title=title, labelLimit=0, orient="bottom", direction="horizontal",
                      **extra)


def _reference_scale(names: Sequence[str]) -> alt.Scale:
    return alt.Scale(domain=list(names), range=[REFERENCES[n][0] for n in names])


# --- compliance -------------------------------------------------------------------------------

P_CHART_CAPTION = ("How to read this: each point is one month's compliance; the dashed lines "
                   "are the control limits for that month's number of records, so a point "
                   "outside them (orange-red) is more than chance variation, worth a look.")
WITHIN, OUTSIDE = "Within control limits", "Outside control limits"


def p_chart(data: pd.DataFrame) -> alt.LayerChart:
    """Monthly compliance with its centre line and 3-sigma limits (audit.analytics.p_chart):
    the builder the committee report prints too (audit.documents.p_chart_spec)."""
    return p_chart_spec(data, {k: labels.ANALYTIC_LABELS[k] for k in ("ucl", "centre", "lcl")})


def rate_caption(by: str) -> str:
    return (f"How to read this: one bar per {by}, its compliance with the 95% confidence "
            "interval as a black line; the dashed orange-red line is the overall rate. A bar "
            "whose interval ends left of that line is lower than the rest by more than chance.")


def rate_bars(table: pd.DataFrame, by: str, overall: float) -> alt.LayerChart:
    """Compliance per physician, room or procedure with intervals and the overall rate."""
    base = alt.Chart(table).encode(y=alt.Y(f"{by}:N", sort=None, title=None,
                                           axis=category_axis()))
    line = pd.DataFrame({"value": [overall], "label": [f"Overall {overall:.1%}"]})
    reference = alt.Chart(line)
    return alt.layer(
        base.mark_bar(color=BAR).encode(
            x=alt.X("rate:Q", title="Compliance", axis=alt.Axis(format="%"),
                    scale=alt.Scale(domain=[0, 1])),
            tooltip=[alt.Tooltip(f"{by}:N", title=labels.words(by)),
                     alt.Tooltip("eligible:Q", title="Eligible", format=","),
                     alt.Tooltip("compliant:Q", title="Compliant", format=","),
                     alt.Tooltip("excepted:Q", title="Excepted", format=","),
                     alt.Tooltip("non_compliant:Q", title="Non-compliant", format=","),
                     alt.Tooltip("rate:Q", title="Compliance", format=".1%")]),
        base.mark_rule(color=BLACK, strokeWidth=1.5).encode(x="ci_low:Q", x2="ci_high:Q"),
        reference.mark_rule(color=VERMILLION, strokeDash=[4, 3], strokeWidth=2).encode(
            x="value:Q"),
        reference.mark_text(color=VERMILLION, align="left", baseline="top", dx=4, dy=2,
                            fontWeight="bold").encode(x="value:Q", y=alt.value(0),
                                                      text="label:N"),
    ).properties(height=rows_height(len(table)),
                 title=f"Compliance by {by} with 95% intervals")


# --- data quality and alerts --------------------------------------------------------------------

SHARE_MEASURES = {"missing_dap_share": "No KAP", "missing_air_kerma_share": "No Ka,r",
                  "with_warnings_share": "Saved with warnings",
                  "from_dose_report_share": "Dose from a dose report"}
SHARE_COLOURS = [VERMILLION, ORANGE, PURPLE, BLUE]


def share_caption(by: str) -> str:
    return (f"How to read this: for each {by}, four bars give the share of its records with "
            "no KAP, with no Ka,r, saved with warnings, and with dose from a dose report; "
            "a long bar of the first three is a gap in the log to follow up.")


def share_bars(table: pd.DataFrame, by: str) -> alt.Chart:
    """The completeness shares per room or technologist, grouped per row."""
    long = table.melt(id_vars=[by], value_vars=list(SHARE_MEASURES), var_name="measure",
                      value_name="share")
    long["measure"] = long["measure"].map(SHARE_MEASURES)
    names = list(SHARE_MEASURES.values())
    return alt.Chart(long).mark_bar().encode(
        y=alt.Y(f"{by}:N", title=None, axis=category_axis()),
        x=alt.X("share:Q", title="Share of records", axis=alt.Axis(format="%")),
        color=alt.Color("measure:N", legend=_legend(columns=2),
                        scale=alt.Scale(domain=names, range=SHARE_COLOURS)),
        yOffset=alt.YOffset("measure:N", sort=names),
        tooltip=[alt.Tooltip(f"{by}:N", title=labels.words(by)),
                 alt.Tooltip("measure:N", title="Measure"),
                 alt.Tooltip("share:Q", title="Share", format=".1%")],
    ).properties(height=rows_height(len(table), per_row=4 * 11 + 8, legend=True))


FLAGS_CAPTION = ("How to read this: one bar per safety flag, its length the number of records "
                 "flagged under these filters; pick a flag below to see its records.")


def flag_bars(flags: pd.DataFrame) -> alt.Chart:
    return alt.Chart(flags).mark_bar(color=ORANGE).encode(
        y=alt.Y("meaning:N", title=None, sort="-x", axis=category_axis()),
        x=alt.X("records:Q", title="Records", axis=alt.Axis(tickMinStep=1, format="d")),
        tooltip=[alt.Tooltip("meaning:N", title="Safety flag"),
                 alt.Tooltip("records:Q", title="Records", format=",")],
    ).properties(height=rows_height(len(flags)))


STATUS_NAMES = {"open": "Open", "acknowledged": "Acknowledged", "withdrawn": "Withdrawn"}
STATUS_COLOURS = [VERMILLION, GREEN, GREY]
KIND_COLOURS = [VERMILLION, ORANGE, BLUE]  # SRDL, cumulative, investigation
ALERTS_CAPTION = ("How to read this: one bar per kind of alert, split by status: orange-red "
                  "still open, green acknowledged by the RSO, grey withdrawn because the "
                  "records no longer meet the rule.")


def alerts_by_kind(summary: pd.DataFrame, kinds: Sequence[str]) -> alt.Chart:
    """Alerts per kind and status (audit.alerts.alert_counts)."""
    long = summary.melt(id_vars=["kind", "quantity"], value_vars=list(STATUS_NAMES),
                        var_name="status", value_name="alerts")
    long["kind"] = long["kind"].map(lambda k: labels.value_label(AlertKind, k))
    long["status"] = long["status"].map(STATUS_NAMES)
    long["quantity"] = long["quantity"].map(labels.quantity_label)
    order = [labels.value_label(AlertKind, k) for k in kinds]
    return alt.Chart(long).mark_bar().encode(
        y=alt.Y("kind:N", title=None, sort=order, axis=category_axis()),
        x=alt.X("sum(alerts):Q", title="Alerts"),
        color=alt.Color("status:N", legend=_legend(), sort=list(STATUS_NAMES.values()),
                        scale=alt.Scale(domain=list(STATUS_NAMES.values()),
                                        range=STATUS_COLOURS)),
        tooltip=[alt.Tooltip("kind:N", title="Kind"),
                 alt.Tooltip("quantity:N", title="Quantity"),
                 alt.Tooltip("status:N", title="Status"),
                 alt.Tooltip("alerts:Q", title="Alerts", format=",")],
    ).properties(height=rows_height(len(order), per_row=36, legend=True),
                 title="Alerts by kind and status")


PHYSICIAN_ALERTS_CAPTION = ("How to read this: one bar per physician, its length the open "
                            "alerts per 100 of their procedures, split by kind; compare "
                            "lengths, not counts: a busy physician has more alerts at the "
                            "same rate.")


def alerts_by_physician(per_kind: pd.DataFrame, order: Sequence[str],
                        kinds: Sequence[str]) -> alt.Chart:
    """Open alerts per 100 procedures per physician, stacked by kind."""
    frame = per_kind.assign(kind=per_kind["kind"].map(
        lambda k: labels.value_label(AlertKind, k)))
    names = [labels.value_label(AlertKind, k) for k in kinds]
    return alt.Chart(frame).mark_bar().encode(
        y=alt.Y("physician:N", sort=list(order), title=None, axis=category_axis()),
        x=alt.X("sum(per_100):Q", title="Open alerts per 100 procedures"),
        color=alt.Color("kind:N", legend=_legend(), sort=names,
                        scale=alt.Scale(domain=names, range=KIND_COLOURS)),
        tooltip=[alt.Tooltip("physician:N", title="Physician"),
                 alt.Tooltip("kind:N", title="Kind"),
                 alt.Tooltip("alerts:Q", title="Open alerts", format=","),
                 alt.Tooltip("procedures:Q", title="Procedures", format=","),
                 alt.Tooltip("per_100:Q", title="Per 100 procedures", format=".2f")],
    ).properties(height=rows_height(len(order), legend=True),
                 title="Open alerts per 100 of each physician's procedures")
