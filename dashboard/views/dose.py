"""Dose: are we keeping dose as low as we can, and who is not? (docs/design.md §3, ICRP 135)"""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from audit.analytics import (
    HIGHLIGHT_RATIO,
    dose_distribution,
    dose_histogram,
    dose_statistics,
    drl_thresholds,
    local_drls,
    monthly_medians,
    physician_scorecard,
    published_medians,
    reference_column,
    reference_table,
)
from audit.auth import Permission
from audit.catalog import figure_sources
from audit.dosimetry import coefficient_basis
from audit.errors import ValidationFailed
from audit.vocab import ReferenceKind
from dashboard import analytics, state
from dashboard.analytics import QUANTITY_LABELS, chart_and_table
from dashboard.widgets import plain

state.require(Permission.VIEW_DASHBOARDS)
st.title("Dose")
snap = analytics.snapshot()
chosen = analytics.filters(snap)
quantity = st.sidebar.selectbox("Quantity", list(QUANTITY_LABELS),
                                format_func=QUANTITY_LABELS.get, key="d_quantity")
label = QUANTITY_LABELS[quantity]
analytics.caption(snap, chosen)
limits = drl_thresholds(snap)
corrected = reference_column(quantity) != quantity
st.caption(
    "ICRP 135: with at least "
    f"{limits.min_rooms} rooms of at least {limits.min_room_records} records each, the local "
    "DRL is the 75th percentile of the room medians and the achievable dose their median; "
    "with fewer, the figure is a **typical value**: the median of all the procedure's records "
    "(the pooled distribution), to compare with the published values, not a DRL. Computed over "
    "the period for every room. "
    + ("KAP here is the displayed KAP times each room's KAP correction factor. " if corrected
       else "") + f"Thresholds: {limits.source}. Percentiles: linear interpolation.")

try:
    distribution = dose_distribution(snap, chosen, reference_column(quantity))
except ValidationFailed as exc:
    st.error(plain(exc))
    st.stop()
drls = local_drls(snap, chosen, (quantity,))
first_published = published_medians(snap, quantity)
lines = distribution.merge(drls[["procedure", "figure", "drl", "achievable", "typical",
                                 "rooms"]], on="procedure", how="left")
lines["published_median"] = lines["procedure"].map(first_published["value"])
lines["published_source"] = lines["procedure"].map(first_published["source"])

# --- distribution per procedure against the reference lines -----------------------------------
st.subheader(f"{label} per procedure against the local DRL or typical value")
if lines.empty:
    st.info("No records for these filters.")
else:
    scale = alt.Scale(type="log")
    base = alt.Chart(lines).encode(y=alt.Y("procedure:N", title=None, sort=None))
    chart = alt.layer(
        base.mark_rule(color="#999").encode(x=alt.X("p5:Q", scale=scale, title=label),
                                            x2="p95:Q"),
        base.mark_bar(size=14, color="#9ecae9").encode(x="p25:Q", x2="p75:Q"),
        base.mark_tick(color="#1f4e79", thickness=3, size=18).encode(
            x="p50:Q", tooltip=["procedure", "n", "p5", "p25", "p50", "p75", "p95"]),
        base.mark_tick(color="#e45756", thickness=3, size=24).encode(
            x="drl:Q", tooltip=["procedure", "drl", "rooms"]),
        base.mark_tick(color="#54a24b", thickness=3, size=24).encode(
            x="achievable:Q", tooltip=["procedure", "achievable"]),
        base.mark_tick(color="#f58518", thickness=3, size=24).encode(
            x="typical:Q", tooltip=["procedure", "typical", "rooms"]),
        base.mark_point(shape="diamond", color="#555", filled=True, size=70).encode(
            x="published_median:Q", tooltip=["procedure", "published_median",
                                             "published_source"]),
    ).properties(height=36 * len(lines) + 40,
                 title="Box 25th-75th, whiskers 5th-95th, dark tick median; red local DRL, "
                       "green achievable, orange typical value, grey diamond published median")
    chart_and_table(chart, lines.drop(columns=["published_source"]), side=False)

    procedure = st.selectbox("Distribution of one procedure", lines["procedure"].tolist(),
                             key="d_procedure")
    bins = dose_histogram(snap, chosen, procedure, reference_column(quantity))
    marks = lines.set_index("procedure").loc[procedure]
    refs = pd.DataFrame([
        {"line": name, "value": float(marks[column])}
        for name, column in (("local DRL", "drl"), ("achievable", "achievable"),
                             ("typical value", "typical"), ("published median",
                                                            "published_median"))
        if pd.notna(marks[column])])
    hist = alt.Chart(bins).mark_bar(color="#9ecae9").encode(
        x=alt.X("low:Q", scale=alt.Scale(type="log"), title=label), x2="high:Q",
        y=alt.Y("count:Q", title="Records"), y2=alt.datum(0), tooltip=["low", "high", "count"])
    if len(refs):
        hist = alt.layer(hist, alt.Chart(refs).mark_rule(strokeWidth=2).encode(
            x="value:Q", color=alt.Color("line:N", title=None), tooltip=["line", "value"]))
    chart_and_table(hist.properties(height=260, title=f"{procedure}: {label}"),
                    pd.concat([refs, bins.assign(line="bin")], ignore_index=True)
                    if len(refs) else bins, height=280)

with st.expander(f"{label} by number of levels treated (and per level)"):
    by_levels = dose_statistics(snap, chosen, by=("procedure", "levels"),
                                   quantities=(quantity,))
    per_level = dose_statistics(snap, chosen, by=("procedure", "levels"),
                                   quantities=(quantity,), per_level=True)
    st.dataframe(by_levels.merge(per_level.drop(columns=["records"]),
                                 on=["procedure", "levels"]), hide_index=True)

with st.expander(f"{label} by patient weight band"):
    st.caption("Dose rises with body size: in Cushman (Spine J 2016, 2443 lumbar TFESI "
               "injections) the mean KAP was 1.38, 1.91 and 3.03 Gy·cm² from normal-weight to "
               "overweight to obese patients, about double. Height is not recorded, so body "
               "mass index cannot be computed: weight bands stand in for it (records without a "
               "weight: 'not recorded'). Compare like with like before reading a difference as "
               "technique.")
    st.dataframe(dose_statistics(snap, chosen, by=("procedure", "weight_band"),
                                 quantities=(quantity,)), hide_index=True)

# --- physician scorecard ----------------------------------------------------------------------
st.subheader("Physician scorecard (normalised per level and for procedure mix)")
st.caption("KAP and time per level treated, each procedure's median for the physician divided "
           "by everyone's median for that procedure, weighted by records: 1.0 is typical, 2.0 "
           "twice the peers' dose for the same work.")
card = physician_scorecard(snap, chosen).sort_values("kap_per_level_ratio",
                                                            ascending=False)
if len(card):
    base = alt.Chart(card).encode(y=alt.Y("physician:N", sort=None, title=None))
    chart = alt.layer(
        base.mark_bar().encode(
            x=alt.X("kap_per_level_ratio:Q", title="KAP per level vs peers (1 = typical)"),
            color=alt.condition(alt.datum.kap_per_level_ratio > HIGHLIGHT_RATIO,
                                alt.value("#e45756"), alt.value("#4c78a8")),
            tooltip=["physician", "records", alt.Tooltip("kap_per_level_ratio:Q", format=".2f"),
                     alt.Tooltip("time_per_level_ratio:Q", format=".2f"),
                     alt.Tooltip("share_above:Q", format=".1%")]),
        alt.Chart(pd.DataFrame({"one": [1.0]})).mark_rule(strokeDash=[4, 3]).encode(x="one:Q"),
    ).properties(height=max(120, 30 * len(card)))
    chart_and_table(chart, card)

# --- monthly medians --------------------------------------------------------------------------
st.subheader(f"Monthly median {label}")
monthly = monthly_medians(snap, chosen, quantity)
if len(monthly):
    chart = alt.Chart(monthly).mark_line(point=True).encode(
        x=alt.X("month:O", title="Month (UTC)"),
        y=alt.Y("median:Q", title=f"Median {label}", scale=alt.Scale(type="log")),
        color=alt.Color("procedure:N"), tooltip=["month", "procedure", "n", "median"],
    ).properties(height=300)
    wide = monthly.pivot(index="month", columns="procedure", values="median").reset_index()
    chart_and_table(chart, wide, side=False, height=260)

# --- reference levels -------------------------------------------------------------------------
st.subheader("Local DRLs or typical values, beside the published values")
st.caption("Each procedure's figure says what it is: a local DRL (enough rooms and records, "
           "ICRP 135) or a typical value (the pooled median), with the rooms counted, the fewest "
           "records in a room it rests on, the thresholds applied and the published values for "
           "the same procedure.")
every = local_drls(snap, chosen)
every["quantity"] = every["quantity"].map(QUANTITY_LABELS)
st.dataframe(every[["procedure", "quantity", "figure", "level", "achievable", "rooms",
                    "rooms_with_records", "records", "room_records_min", "published",
                    "basis", "source"]], hide_index=True)
shown = reference_table(snap)
shown = shown[shown["kind"].isin(ReferenceKind.values())]
st.caption("Stored reference levels (published comparison values, adopted local levels) and "
           "the SRDL settings, each with its source. Values marked unstated: the source's "
           "statistic was not checked against the primary text.")
st.dataframe(shown.replace({np.nan: None}), hide_index=True)

with st.expander("Where the catalog's typical values and the effective-dose coefficients come "
                 "from"):
    st.caption("Each seeded figure with the paper and the number it takes, or 'estimate' (no "
               "published source: local data replaces it after 30 records), 'regulation' or "
               "'local policy'. A value changed by an administrator shows as set locally.")
    st.dataframe(pd.DataFrame(figure_sources(snap.catalog)), hide_index=True)
    coefficients = snap.settings.effective_dose_k
    st.dataframe(pd.DataFrame([{"region": region, "k (mSv per Gy·cm²)": k,
                                "basis": coefficient_basis(region, k)}
                               for region, k in coefficients.items()]), hide_index=True)
