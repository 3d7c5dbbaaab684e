"""Chart specs shared by the pages and the printed documents (issue 14).

Why here and not in dashboard/: the library never imports the dashboard, and a PDF must show the
chart the page shows, not a look-alike. The pure Altair builders the documents need live here;
dashboard.charts reuses them (its `p_chart` calls `p_chart_spec`) and the documents render them
to SVG with vl-convert (audit.documents.typeset.chart_svg). Colours: the Okabe-Ito palette the
dashboards use (dashboard/charts.py keeps the same constants for its other charts).
"""

from __future__ import annotations

from collections.abc import Mapping

import altair as alt
import pandas as pd

BLACK, ORANGE, BLUE, VERMILLION, GREY = "#000000", "#E69F00", "#0072B2", "#D55E00", "#8C8C8C"
WITHIN, OUTSIDE = "Within control limits", "Outside control limits"
#: The p-chart's line names, as the pages label them (dashboard.labels agrees: tested).
LINE_LABELS = {"ucl": "Upper control limit", "centre": "Centre line",
               "lcl": "Lower control limit"}


def _legend() -> alt.Legend:
    return alt.Legend(title=None, labelLimit=0, orient="bottom", direction="horizontal")


def p_chart_spec(data: pd.DataFrame,
                 line_labels: Mapping[str, str] = LINE_LABELS) -> alt.LayerChart:
    """Monthly compliance with its centre line and 3-sigma limits (audit.analytics.p_chart's
    frame: month, n, compliant, rate, centre, lcl, ucl, signal)."""
    frame = data.assign(status=[OUTSIDE if s else WITHIN for s in data["signal"]])
    low = max(0.0, float(frame["lcl"].min()) - 0.05)
    high = min(1.0, float(frame["ucl"].max()) + 0.02)
    y_scale = alt.Scale(zero=False, domain=[low, high])
    month = alt.X("utcyearmonth(month):T", title="Month (UTC)",
                  axis=alt.Axis(format="%b %Y", labelAngle=-45))
    base = alt.Chart(frame).encode(x=month)
    limits = base.mark_line(strokeDash=[4, 3], color=GREY, interpolate="step-after")
    last = frame.tail(1).melt(id_vars=["month"], value_vars=["ucl", "centre", "lcl"],
                              var_name="line", value_name="value")
    last["label"] = last["line"].map(dict(line_labels))
    last["dy"] = last["line"].map({"ucl": -7, "centre": -7, "lcl": 12})
    return alt.layer(
        base.mark_line(color=BLACK, strokeWidth=1).encode(
            y=alt.Y("centre:Q", title="Compliance", scale=y_scale, axis=alt.Axis(format="%"))),
        limits.encode(y="ucl:Q"),
        limits.encode(y="lcl:Q"),
        alt.Chart(last).mark_text(align="right", fontSize=11, color=GREY,
                                  dy=alt.expr("datum.dy")).encode(
            x=month, y="value:Q", text="label:N"),
        base.mark_line(color=BLUE).encode(y="rate:Q"),
        base.mark_point(filled=True, size=70, opacity=1).encode(
            y="rate:Q",
            color=alt.Color("status:N", legend=_legend(),
                            scale=alt.Scale(domain=[WITHIN, OUTSIDE], range=[BLUE, VERMILLION])),
            shape=alt.Shape("status:N", legend=_legend(),
                            scale=alt.Scale(domain=[WITHIN, OUTSIDE],
                                            range=["circle", "diamond"])),
            tooltip=[alt.Tooltip("month:N", title="Month (UTC)"),
                     alt.Tooltip("n:Q", title="Records", format=","),
                     alt.Tooltip("compliant:Q", title="Compliant", format=","),
                     alt.Tooltip("rate:Q", title="Compliance", format=".1%"),
                     alt.Tooltip("lcl:Q", title="Lower control limit", format=".1%"),
                     alt.Tooltip("ucl:Q", title="Upper control limit", format=".1%")]),
    ).properties(height=320, title="Monthly compliance with control limits")


DOSE_OVER_TIME_CAPTION = ("How to read this: each bar is one procedure's estimated effective "
                          "dose; the line is the running total of all the patient's "
                          "procedures up to that date.")


def dose_over_time(procedures: pd.DataFrame) -> alt.LayerChart:
    """A patient's effective dose per procedure (bars) and its running total (line), over
    time: the history page's chart and the surveyor packet's."""
    frame = pd.DataFrame({
        "date": pd.to_datetime(procedures["performed_at"], utc=True).dt.tz_localize(None),
        "dose": pd.to_numeric(procedures["effective_dose_msv"]).fillna(0.0),
        "procedure": procedures["procedure_name"].astype(str)})
    frame["total"] = frame["dose"].cumsum()
    x = alt.X("date:T", title="Date", axis=alt.Axis(format="%b %Y", labelAngle=-45))
    base = alt.Chart(frame).encode(x=x)
    return alt.layer(
        base.mark_bar(color=BLUE, width=6).encode(
            y=alt.Y("dose:Q", title="Effective dose (mSv)"),
            tooltip=[alt.Tooltip("date:T", title="Date", format="%d %b %Y"),
                     alt.Tooltip("procedure:N", title="Procedure"),
                     alt.Tooltip("dose:Q", title="Effective dose (mSv)", format=".2f"),
                     alt.Tooltip("total:Q", title="Running total (mSv)", format=".2f")]),
        base.mark_line(color=VERMILLION, point=True, interpolate="step-after").encode(
            y=alt.Y("total:Q", title="Running total (mSv)")),
    ).resolve_scale(y="independent").properties(
        height=260, width=480, title="Effective dose per procedure and running total")
