"""Charts of issue 15: complication rates, the share of injections done without radiation, and
the physician scorecard before and after case-mix adjustment. Same rules as dashboard.charts
(Okabe-Ito colours, every category labelled, legends in words, a caption under each)."""

from __future__ import annotations

import altair as alt
import pandas as pd

from dashboard import labels
from dashboard.charts import BAR, BLACK, ORANGE, VERMILLION, _legend, category_axis, rows_height


def complication_caption(by: str) -> str:
    return (f"How to read this: one bar per {labels.words(by).lower()}, the share of its "
            "procedures with at least one complication, with the 95% confidence interval as a "
            "black line; the dashed orange-red line is the overall rate. A complication found "
            "at follow-up counts for the procedure it followed.")


def complication_bars(table: pd.DataFrame, by: str, overall: float) -> alt.LayerChart:
    """Complication rate per procedure type, physician or month with its interval."""
    base = alt.Chart(table).encode(y=alt.Y(f"{by}:N", sort=None, title=None,
                                           axis=category_axis()))
    line = alt.Chart(pd.DataFrame({"value": [overall], "label": [f"Overall {overall:.1%}"]}))
    return alt.layer(
        base.mark_bar(color=BAR).encode(
            x=alt.X("complication_rate:Q", title="Procedures with a complication",
                    axis=alt.Axis(format="%")),
            tooltip=[alt.Tooltip(f"{by}:N", title=labels.column_label(by)),
                     alt.Tooltip("procedures:Q", title="Procedures", format=","),
                     alt.Tooltip("with_complication:Q", title="With a complication",
                                 format=","),
                     alt.Tooltip("severe:Q", title="Severe", format=","),
                     alt.Tooltip("complication_rate:Q", title="Complication rate",
                                 format=".1%")]),
        base.mark_rule(color=BLACK, strokeWidth=1.5).encode(x="ci_low:Q", x2="ci_high:Q"),
        line.mark_rule(color=VERMILLION, strokeDash=[4, 3], strokeWidth=2).encode(x="value:Q"),
        line.mark_text(color=VERMILLION, align="left", baseline="top", dx=4, dy=2,
                       fontWeight="bold").encode(x="value:Q", y=alt.value(0), text="label:N"),
    ).properties(height=rows_height(len(table)),
                 title=f"Complication rate by {labels.words(by).lower()}, 95% intervals")


RADIATION_FREE_CAPTION = ("How to read this: one bar per procedure type, the share of its "
                          "injections guided by ultrasound, so done without radiation.")


def radiation_free_bars(table: pd.DataFrame) -> alt.Chart:
    return alt.Chart(table).mark_bar(color=BAR).encode(
        y=alt.Y("procedure:N", title=None, sort=None, axis=category_axis()),
        x=alt.X("radiation_free_share:Q", title="Share without radiation",
                axis=alt.Axis(format="%"), scale=alt.Scale(domain=[0, 1])),
        tooltip=[alt.Tooltip("procedure:N", title="Procedure"),
                 alt.Tooltip("records:Q", title="Records", format=","),
                 alt.Tooltip("radiation_free:Q", title="Without radiation", format=","),
                 alt.Tooltip("radiation_free_share:Q", title="Share", format=".1%")],
    ).properties(height=rows_height(len(table)), title="Injections done without radiation")


ADJUSTED_METHOD = (
    "Method (indirect standardisation): each record's expected dose is the median dose of its "
    "stratum, the same procedure type, number of levels treated and WHO body-mass-index band "
    "(unknown BMI a band of its own), over all physicians under these filters. A physician's "
    "adjusted ratio is the median, over their records, of observed dose / expected dose: 1.0 "
    "is what the peers give the same case mix, 1.5 half again more. The unadjusted ratio "
    "divides their median by everyone's. Medians, so one long case does not decide a "
    "ranking; fewer than 5 records with the quantity: no ratio. Ultrasound-guided records "
    "have no dose and are left out.")
ADJUSTED, CRUDE = "Adjusted for case mix", "Unadjusted"


def adjusted_scorecard(card: pd.DataFrame) -> alt.Chart:
    """Each physician's unadjusted and case-mix-adjusted ratio, side by side."""
    long = card.melt(id_vars=["physician", "records"],
                     value_vars=["crude_ratio", "adjusted_ratio"], var_name="which",
                     value_name="ratio").dropna(subset=["ratio"])
    long["which"] = long["which"].map({"crude_ratio": CRUDE, "adjusted_ratio": ADJUSTED})
    names = [CRUDE, ADJUSTED]
    return alt.Chart(long).mark_bar().encode(
        y=alt.Y("physician:N", title=None, axis=category_axis()),
        x=alt.X("ratio:Q", title="Dose vs peers (1 = typical)"),
        color=alt.Color("which:N", legend=_legend(), sort=names,
                        scale=alt.Scale(domain=names, range=[ORANGE, BAR])),
        yOffset=alt.YOffset("which:N", sort=names),
        tooltip=[alt.Tooltip("physician:N", title="Physician"),
                 alt.Tooltip("records:Q", title="Records", format=","),
                 alt.Tooltip("which:N", title="Ratio"),
                 alt.Tooltip("ratio:Q", title="Dose vs peers", format=".2f")],
    ).properties(height=rows_height(len(card), per_row=2 * 14 + 8, legend=True),
                 title="Physician scorecard, before and after case-mix adjustment")
