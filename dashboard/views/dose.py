"""Dose: are we keeping dose as low as we can, and who is not? (docs/design.md §3, ICRP 135)

The page is in tabs, and only the open tab's figures are computed (st.tabs with
on_change="rerun"): on PostgreSQL a figure under a new filter reads the dose buckets
(audit.analytics.sql.bucket_quantiles, bucket_groups and bucket_mixtures), and a filter the
buckets cannot answer sorts the selected records (seconds at millions of records), so a filter
change costs the open tab, not the whole page. The open tab is kept for
the session (TAB_KEPT), so someone who reads the physicians' tab finds it open again.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from audit.analytics import (
    HIGHLIGHT_RATIO,
    drl_thresholds,
    published_medians,
    reference_column,
    reference_table,
)
from audit.auth import Permission
from audit.catalog import figure_sources
from audit.dosimetry import coefficient_basis
from audit.errors import ValidationFailed
from audit.vocab import FigureBasis, ReferenceKind
from dashboard import (
    analytics,
    carm_technique,
    case_mix_dose,
    dose_charts,
    labels,
    state,
    tables,
)
from dashboard.analytics import QUANTITY_LABELS, chart_and_table
from dashboard.labels import glossary
from dashboard.widgets import plain

actor = state.require(Permission.VIEW_DASHBOARDS)
st.title("Dose")
source = analytics.figures(as_of=True)  # SQL on PostgreSQL ("as of" allowed), frame on SQLite
snap = source.lookups  # names, catalog, settings, reference levels (no records on PostgreSQL)
chosen = analytics.filters(source)
quantity = st.sidebar.selectbox("Quantity", list(QUANTITY_LABELS),
                                format_func=QUANTITY_LABELS.get, key="d_quantity")
label = QUANTITY_LABELS[quantity]
analytics.caption(source, chosen)
scanned_note = st.empty()  # filled once the open tab is known
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
       else "") + f"Thresholds: {plain(labels.humanize(limits.source))}. Percentiles: linear "
    "interpolation.")
with st.expander("Terms used on this page"):
    st.markdown(glossary("KAP", "Ka,r", "DRL", "Typical value", "Achievable dose",
                         "Published value", "Percentile"))

TABS = ("Per procedure", "Physicians", "Case mix", "Over time", "Reference levels",
        "C-arm technique")
#: Where the open tab is kept between visits (the widget's own key is dropped when the page
#: is left).
TAB_KEPT = "d_tab_kept"


def _keep_tab() -> None:
    st.session_state[TAB_KEPT] = st.session_state["d_tab"]


# the kept tab is put back through the widget's key, not `default`: a default that changed
# would make another widget of it (a new element, remounted in the browser)
if "d_tab" not in st.session_state and st.session_state.get(TAB_KEPT) in TABS:
    st.session_state["d_tab"] = st.session_state[TAB_KEPT]
per_procedure, physicians, case_mix, over_time, reference, technique = st.tabs(
    TABS, key="d_tab", on_change=_keep_tab)
with scanned_note:  # the physicians' figures have buckets per room and physician too
    analytics.from_every_record(source, chosen, by_physician=physicians.open)
as_sentence = {"figure": labels.sentence}

if per_procedure.open:
    with per_procedure:
        column = reference_column(quantity)
        kept = st.session_state.get("d_procedure")  # the histogram shown last, if any
        analytics.ahead(source, lambda s: s.dose_distribution(chosen, column),
                        lambda s: s.local_drls(chosen, (quantity,)),
                        *([lambda s: s.dose_histogram(chosen, kept, column)] if kept else []))
        try:
            with analytics.computing("the dose distribution and the local DRLs"):
                distribution = source.dose_distribution(chosen, reference_column(quantity))
                drls = source.local_drls(chosen, (quantity,))
        except ValidationFailed as exc:
            st.error(plain(exc))
            st.stop()
        first_published = published_medians(snap, quantity)
        lines = distribution.merge(drls[["procedure", "figure", "drl", "achievable",
                                         "typical", "rooms"]], on="procedure", how="left")
        lines["published_median"] = lines["procedure"].map(first_published["value"])
        lines["published_source"] = lines["procedure"].map(first_published["source"])
        st.subheader(f"{label} per procedure against the local DRL or typical value",
                     help=glossary("DRL", "Typical value", "Achievable dose",
                                   "Published value"))
        if lines.empty:
            st.info("No records for these filters.")
        else:
            chart_and_table(dose_charts.distribution(lines, quantity),
                            lines.drop(columns=["published_source"]), side=False,
                            caption=dose_charts.distribution_caption(quantity),
                            quantity=quantity, enums=as_sentence)
            procedure = st.selectbox("Distribution of one procedure",
                                     lines["procedure"].tolist(), key="d_procedure")
            with analytics.computing(f"the distribution of {procedure}"):
                bins = source.dose_histogram(chosen, procedure, reference_column(quantity))
            refs = dose_charts.reference_lines(lines.set_index("procedure").loc[procedure])
            finer = f"%,.{labels.DECIMALS[quantity] + 1}f"  # bands are narrower than figures
            chart_and_table(dose_charts.histogram(bins, refs, procedure, quantity),
                            bins[bins["count"] > 0], height=300,
                            caption=dose_charts.histogram_caption(procedure, quantity),
                            quantity=quantity, formats={"low": finer, "high": finer})

if physicians.open:
    with physicians:
        analytics.ahead(source, lambda s: s.physician_scorecard(chosen),
                        lambda s: s.adjusted_scorecard(chosen, quantity))
        st.subheader("Physician scorecard (normalised per level and for procedure mix)")
        st.caption("KAP and time per level treated, each procedure's median for the physician "
                   "divided by everyone's median for that procedure, weighted by records: 1.0 "
                   "is typical, 2.0 twice the peers' dose for the same work.")
        with analytics.computing("the physician scorecard"):
            card = source.physician_scorecard(chosen).sort_values("kap_per_level_ratio",
                                                                  ascending=False)
        if len(card):
            chart_and_table(dose_charts.scorecard(card, HIGHLIGHT_RATIO), card,
                            caption=dose_charts.SCORECARD_CAPTION)
        case_mix_dose.adjusted_scorecard(source, chosen, quantity)

if case_mix.open:
    with case_mix:
        analytics.ahead(source, lambda s: s.dose_statistics(chosen, by=("procedure", "levels"),
                                                            quantities=(quantity,)),
                        lambda s: s.radiation_free_share(chosen))
        st.subheader(f"{label} by number of levels treated (and per level)")
        with analytics.computing("the dose by number of levels"):
            by_levels = source.dose_statistics(chosen, by=("procedure", "levels"),
                                               quantities=(quantity,))
            per_level = source.dose_statistics(chosen, by=("procedure", "levels"),
                                               quantities=(quantity,), per_level=True)
        tables.show(by_levels.merge(per_level.drop(columns=["records"]),
                                    on=["procedure", "levels"]), quantity=quantity)
        st.subheader(f"{label} by patient weight band")
        st.caption("Dose rises with body size: in Cushman (Spine J 2016, 2443 lumbar TFESI "
                   "injections) the mean KAP was 1.38, 1.91 and 3.03 Gy·cm² from normal-weight "
                   "to overweight to obese patients, about double. Records with a height also "
                   "have a body mass index (below); weight bands serve the records without one "
                   "(without a weight: 'not recorded').")
        tables.show(source.dose_statistics(chosen, by=("procedure", "weight_band"),
                                           quantities=(quantity,)), quantity=quantity,
                    enums={"weight_band": labels.sentence})
        case_mix_dose.fair_comparisons(source, chosen, quantity)

if over_time.open:
    with over_time:
        st.subheader(f"Monthly median {label}")
        with analytics.computing("the monthly medians"):
            monthly = source.monthly_medians(chosen, quantity)
        if len(monthly):
            wide = monthly.pivot(index="month", columns="procedure",
                                 values="median").reset_index()
            wide.columns.name = None
            number = tables.number_format(quantity, float)
            chart_and_table(dose_charts.monthly(monthly, quantity), wide, side=False,
                            height=260, caption=dose_charts.monthly_caption(quantity),
                            formats={str(c): number for c in wide.columns[1:]})
        else:
            st.info("No records for these filters.")

if reference.open:
    with reference:
        st.subheader("Local DRLs or typical values, beside the published values",
                     help=glossary("DRL", "Typical value", "SRDL"))
        st.caption("Each procedure's figure says what it is: a local DRL (enough rooms and "
                   "records, ICRP 135) or a typical value (the pooled median), with the rooms "
                   "counted, the fewest records in a room it rests on, the thresholds applied "
                   "and the published values for the same procedure.")
        with analytics.computing("the local DRLs"):
            every = tables.with_units(source.local_drls(chosen), ["level", "achievable"])
        tables.show(every[["procedure", "quantity", "figure", "level", "achievable", "rooms",
                           "rooms_with_records", "records", "room_records_min", "published",
                           "basis", "source"]], enums=as_sentence)
        shown = reference_table(snap)
        shown = tables.with_units(shown[shown["kind"].isin(ReferenceKind.values())],
                                  ["value"])
        st.caption("Stored reference levels (published comparison values, adopted local "
                   "levels) and the SRDL settings, each with its source. Statistic 'not "
                   "stated': the source's statistic was not checked against the primary text.")
        tables.show(shown, enums={"kind": ReferenceKind})
        st.subheader("Where the catalog's typical values and the effective-dose coefficients "
                     "come from")
        st.caption("Each seeded figure with the paper and the number it takes, or 'estimate' "
                   "(no published source: local data replaces it after 30 records), "
                   "'regulation' or 'local policy'. A value changed by an administrator shows "
                   "as set locally.")
        figures = pd.DataFrame(figure_sources(snap.catalog))
        if len(figures):
            figures["value"] = [dose_charts.catalog_value(f, v)
                                for f, v in zip(figures["figure_field"], figures["value"],
                                                strict=True)]
        tables.show(figures, enums={"figure_field": labels.CATALOG_FIGURES,
                                    "basis": FigureBasis})
        coefficients = snap.settings.effective_dose_k
        tables.show(pd.DataFrame([{"region": region, "k": k,
                                   "basis": coefficient_basis(region, k)}
                                  for region, k in coefficients.items()]))

if technique.open:
    with technique:  # as the C-arm recorded it (irradiation events of the dose reports)
        carm_technique.section(actor, chosen)
