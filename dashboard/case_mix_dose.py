"""The Dose page's fair comparisons (issue 15): the share of injections done without radiation,
dose by BMI band and by who drove the C-arm, and the case-mix-adjusted physician scorecard.

Apart from dashboard/views/dose.py so that page stays short; the figures come from
audit.analytics (the same functions as `fluoro-audit report dose --by bmi_band|operator`),
through the page's figure source (audit.analytics.source).
"""

from __future__ import annotations

import streamlit as st

from audit import Filters
from audit.analytics import FigureSource
from dashboard import case_mix_charts, labels, tables
from dashboard.analytics import chart_and_table


def fair_comparisons(figures: FigureSource, chosen: Filters, quantity: str) -> None:
    """The share done without radiation, and dose by BMI band and by who drove the C-arm
    (the Dose page's "Case mix" tab); `quantity` is the one the page's sidebar picked; the
    figures from the page's source (SQL on PostgreSQL, the frame on SQLite)."""
    st.subheader("Injections done without radiation")
    share = figures.radiation_free_share(chosen)
    if len(share):
        chart_and_table(case_mix_charts.radiation_free_bars(share), share,
                        caption=case_mix_charts.RADIATION_FREE_CAPTION)
    st.subheader("Dose by body-mass-index band (WHO bands)")
    st.caption("Dose rises with body size: in Cushman (Spine J 2016) KAP about doubled "
               "from normal-weight to obese patients. BMI is weight / height²; records "
               "without weight or height are 'unknown'. Compare like with like.")
    tables.show(figures.dose_statistics(chosen, by=("procedure", "bmi_band"),
                                        quantities=(quantity,)), quantity=quantity)
    st.subheader("Dose by who operated the C-arm")
    st.caption("Who drives the C-arm matters: in Choi (2016) fluoroscopy time was about 6 s "
               "with the physician on the pedal against 72 s with a radiographer.")
    tables.show(figures.dose_statistics(chosen, by=("procedure", "operator"),
                                        quantities=(quantity,)), quantity=quantity)


def adjusted_scorecard(figures: FigureSource, chosen: Filters, quantity: str) -> None:
    """The case-mix-adjusted physician scorecard (the Dose page's "Physicians" tab)."""
    st.subheader("Physician scorecard adjusted for case mix")
    card = figures.adjusted_scorecard(chosen, quantity)
    card = card[card["records"] > 0].drop(columns=["quantity"])
    if card[["adjusted_ratio", "crude_ratio"]].notna().any(axis=None):
        chart_and_table(case_mix_charts.adjusted_scorecard(card), card,
                        caption=case_mix_charts.ADJUSTED_METHOD, quantity=quantity)
    else:
        st.info(f"Too few records with {labels.quantity_label(quantity)} for the adjusted "
                "scorecard under these filters.")
        st.caption(case_mix_charts.ADJUSTED_METHOD)
