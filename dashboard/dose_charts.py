"""The Dose page's charts (issue 12): each procedure's distribution against its reference
figures, one procedure's histogram with labelled reference lines, the physician scorecard and
the monthly medians as small multiples. The rules they keep are dashboard.charts'."""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

from dashboard import labels
from dashboard.charts import (
    BAR,
    BLACK,
    BLUE,
    BOX,
    GREY,
    REFERENCES,
    VERMILLION,
    _legend,
    _reference_scale,
    category_axis,
    rows_height,
)

#: Reference figure column -> its name on the charts (dashboard.charts.REFERENCES).
REFERENCE_COLUMNS = {"drl": "Local DRL", "achievable": "Achievable dose",
                     "typical": "Typical value", "published_median": "Published median"}


def reference_lines(row: pd.Series) -> pd.DataFrame:
    """One procedure's reference figures as (line, value) rows, in REFERENCES order."""
    found = [{"line": name, "value": float(row[column])}
             for column, name in REFERENCE_COLUMNS.items()
             if column in row.index and pd.notna(row[column])]
    return pd.DataFrame(found, columns=["line", "value"])


def _references_long(lines: pd.DataFrame) -> pd.DataFrame:
    long = lines.melt(id_vars=["procedure"], value_vars=[c for c in REFERENCE_COLUMNS
                                                         if c in lines.columns],
                      var_name="column", value_name="value").dropna(subset=["value"])
    long["reference"] = long["column"].map(REFERENCE_COLUMNS)
    return long[["procedure", "reference", "value"]].reset_index(drop=True)


def distribution_caption(quantity: str) -> str:
    short = labels.QUANTITIES[labels.quantity_key(quantity) or quantity][0]
    return (f"How to read this: one row per procedure; the box holds the middle half of its "
            f"{short} values (25th to 75th percentile), the grey line runs from the 5th to the "
            "95th, the dark tick is the median. Coloured ticks are the local DRL (or typical "
            "value) and achievable dose, the black diamond the published median; the scale is "
            "logarithmic.")


def distribution(lines: pd.DataFrame, quantity: str) -> alt.LayerChart:
    """Per procedure: 5th-95th whiskers, interquartile box, median, and the reference figures
    (columns drl, achievable, typical, published_median) in words in the legend."""
    label = labels.quantity_label(quantity)
    order = lines["procedure"].tolist()
    y = alt.Y("procedure:N", title=None, sort=order, axis=category_axis())
    base = alt.Chart(lines).encode(y=y)
    unit = labels.unit_of(quantity)
    spread = [alt.Tooltip("procedure:N", title="Procedure"),
              alt.Tooltip("n:Q", title="Records", format=",")] + [
        alt.Tooltip(f"{c}:Q", title=f"{labels.ANALYTIC_LABELS[c]} ({unit})", format=",.3~f")
        for c in ("p5", "p25", "p50", "p75", "p95")]
    layers: list[alt.Chart] = [
        base.mark_rule(color=GREY).encode(
            x=alt.X("p5:Q", scale=alt.Scale(type="log"), title=label), x2="p95:Q",
            tooltip=spread),
        base.mark_bar(size=14, color=BOX).encode(x="p25:Q", x2="p75:Q", tooltip=spread),
        base.mark_tick(color=BAR, thickness=3, size=18).encode(x="p50:Q", tooltip=spread),
    ]
    refs = _references_long(lines)
    if len(refs):
        names = [n for n in REFERENCES if n in set(refs["reference"])]
        ref = alt.Chart(refs).encode(
            y=y, x="value:Q",
            color=alt.Color("reference:N", title=None, sort=names, legend=_legend(),
                            scale=_reference_scale(names)),
            tooltip=[alt.Tooltip("procedure:N", title="Procedure"),
                     alt.Tooltip("reference:N", title="Reference"),
                     alt.Tooltip("value:Q", title=label, format=",.3~f")])
        published = alt.datum.reference == REFERENCE_COLUMNS["published_median"]
        layers += [
            ref.transform_filter(~published).mark_tick(thickness=3, size=24),
            ref.transform_filter(published).mark_point(shape="diamond", filled=True, size=80,
                                                       opacity=1),
        ]
    return alt.layer(*layers).properties(
        height=rows_height(len(lines), per_row=34, legend=bool(len(refs))),
        title=f"{label} per procedure against its reference figures")


def histogram_caption(procedure: str, quantity: str) -> str:
    short = labels.QUANTITIES[labels.quantity_key(quantity) or quantity][0]
    return (f"How to read this: each bar counts the {procedure} records in one band of "
            f"{short} (logarithmic scale); the labelled vertical lines are the reference "
            "figures: records right of the local DRL or typical value received more than it.")


def histogram(bins: pd.DataFrame, refs: pd.DataFrame, procedure: str,
              quantity: str) -> alt.Chart | alt.LayerChart:
    """One procedure's histogram (audit.analytics.dose_histogram) with each reference line
    (`reference_lines`) drawn in its own colour and dash, labelled at its top."""
    label = labels.quantity_label(quantity)
    unit = labels.unit_of(quantity)
    # headroom above the tallest bar for the reference lines' labels, one line each
    top = max(1.0, float(bins["count"].max()) if len(bins) else 1.0) * (1.1 + 0.12 * len(refs))
    bars = alt.Chart(bins).mark_bar(color=BOX).encode(
        x=alt.X("low:Q", scale=alt.Scale(type="log"), title=label), x2="high:Q",
        y=alt.Y("count:Q", title="Records", scale=alt.Scale(domain=[0, top], nice=False)),
        y2=alt.datum(0),
        tooltip=[alt.Tooltip("low:Q", title=f"From ({unit})", format=",.3~f"),
                 alt.Tooltip("high:Q", title=f"To ({unit})", format=",.3~f"),
                 alt.Tooltip("count:Q", title="Records", format=",")])
    title = f"{procedure}: {label}"
    if not len(refs):
        return bars.properties(height=300, title=title)
    names = refs["line"].tolist()
    marks = refs.assign(
        text=[f"{n} {v:,.{labels.DECIMALS.get(labels.quantity_key(quantity) or '', 2)}f}"
              for n, v in zip(refs["line"], refs["value"], strict=True)],
        ypos=[4 + 15 * i for i in range(len(refs))],
        right=_label_on_left(bins, refs["value"]))
    colour = alt.Color("line:N", scale=_reference_scale(names), legend=None)
    dash = alt.StrokeDash("line:N", legend=None, scale=alt.Scale(
        domain=names, range=[REFERENCES[n][1] or [1, 0] for n in names]))
    lines = alt.Chart(marks).encode(x="value:Q", color=colour)
    return alt.layer(
        bars,
        lines.mark_rule(strokeWidth=2.5).encode(
            strokeDash=dash, tooltip=[alt.Tooltip("line:N", title="Reference"),
                                      alt.Tooltip("value:Q", title=label, format=",.3~f")]),
        lines.mark_text(align=alt.expr("datum.right ? 'right' : 'left'"),
                        dx=alt.expr("datum.right ? -4 : 4"), baseline="top", fontSize=12,
                        fontWeight="bold").encode(
            y=alt.Y("ypos:Q", scale=None), text="text:N"),
    ).properties(height=300, title=title)


def _label_on_left(bins: pd.DataFrame, values: pd.Series) -> list[bool]:
    """A line in the right part of the (log) axis gets its label on its left, so that the
    label stays inside the chart."""
    low, high = float(bins["low"].min()), float(bins["high"].max())
    if not (low > 0 and high > low):
        return [False] * len(values)
    middle = np.exp((np.log(low) + np.log(high)) / 2 + 0.25 * (np.log(high) - np.log(low)))
    return [float(v) > middle for v in values]


SCORECARD_CAPTION = ("How to read this: one bar per physician, their KAP per level treated "
                     "divided by their peers' for the same procedures; the labelled line at 1 "
                     "is typical, and a bar in orange-red is above the highlight ratio, worth "
                     "a conversation about technique.")


def scorecard(card: pd.DataFrame, highlight: float) -> alt.LayerChart:
    """The physician scorecard's KAP ratio, highlighted above `highlight`."""
    above, within = f"Above {highlight:g}× peers", f"Up to {highlight:g}× peers"
    frame = card.assign(band=[above if r > highlight else within
                              for r in card["kap_per_level_ratio"]])
    base = alt.Chart(frame).encode(y=alt.Y("physician:N", sort=None, title=None,
                                           axis=category_axis()))
    one = alt.Chart(pd.DataFrame({"value": [1.0], "label": ["Peers' typical (1.0)"]}))
    return alt.layer(
        base.mark_bar().encode(
            x=alt.X("kap_per_level_ratio:Q", title="KAP per level vs peers (1 = typical)"),
            color=alt.Color("band:N", legend=_legend(), sort=[within, above],
                            scale=alt.Scale(domain=[within, above], range=[BAR, VERMILLION])),
            tooltip=[alt.Tooltip("physician:N", title="Physician"),
                     alt.Tooltip("records:Q", title="Records", format=","),
                     alt.Tooltip("kap_per_level_ratio:Q", title="KAP per level vs peers",
                                 format=".2f"),
                     alt.Tooltip("time_per_level_ratio:Q", title="Time per level vs peers",
                                 format=".2f"),
                     alt.Tooltip("share_above:Q", title="Above the reference level",
                                 format=".1%")]),
        one.mark_rule(color=BLACK, strokeDash=[4, 3], strokeWidth=1.5).encode(x="value:Q"),
        one.mark_text(color=BLACK, align="left", baseline="bottom", dx=4, dy=-2,
                      fontWeight="bold").encode(x="value:Q", y=alt.value(alt.expr("height")),
                                                text="label:N"),
    ).properties(height=rows_height(len(card), legend=True), title="Physician scorecard")


def monthly_caption(quantity: str) -> str:
    short = labels.QUANTITIES[labels.quantity_key(quantity) or quantity][0]
    return (f"How to read this: one small chart per procedure, the median {short} of each "
            "month (logarithmic scale, the same on every chart so they compare); a line that "
            "climbs is a drift worth explaining, a single high point is often a few records.")


def monthly(monthly_medians: pd.DataFrame, quantity: str, columns: int = 5) -> alt.FacetChart:
    """Monthly medians as small multiples: one panel per procedure (10 lines in one chart
    cannot be told apart)."""
    label = labels.quantity_label(quantity)
    return alt.Chart(monthly_medians).mark_line(point=alt.OverlayMarkDef(size=18),
                                                color=BLUE).encode(
        x=alt.X("utcyearmonth(month):T", title=None,
                axis=alt.Axis(format="%b %y", tickCount=3, labelAngle=0)),
        y=alt.Y("median:Q", title=f"Median {label}", scale=alt.Scale(type="log")),
        tooltip=[alt.Tooltip("procedure:N", title="Procedure"),
                 alt.Tooltip("month:O", title="Month (UTC)"),
                 alt.Tooltip("n:Q", title="Records", format=","),
                 alt.Tooltip("median:Q", title=f"Median {label}", format=",.3~f")],
    ).properties(width=150, height=110).facet(
        facet=alt.Facet("procedure:N", title=None, header=alt.Header(
            labelLimit=0, labelFontSize=13, labelFontWeight="bold")),
        columns=columns, title=f"Monthly median {label} per procedure")


def catalog_value(figure: str, value: object) -> str:
    """A catalog figure (audit.catalog.FIGURE_FIELDS) as text with its unit."""
    if value is None or pd.isna(value):
        return ""
    number = float(value)  # type: ignore[arg-type]
    if figure.endswith("_time_s"):
        return f"{number:,.0f} s"
    if figure.endswith("_gycm2"):
        return f"{number:,.2f} Gy·cm²"
    return f"{number:,.0f}"
