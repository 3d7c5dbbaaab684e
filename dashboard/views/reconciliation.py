"""Reconciliation: where the log and the C-arm's dose reports disagree, for the quality officer.

The headline says in words what does not match, both ways: dose reports with no logged case
(the C-arm recorded a procedure nobody logged) and logged cases with no dose report. Then four
questions: which manual dose values are off (discrepancies), which reports are missing from
the log, which reports went to a procedure that may be logged twice (possible duplicates), and
what share of each C-arm's reports are logged (completeness by device). Figures come from
audit.dose_reports.review; this page only shows them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import streamlit as st

from audit.auth import Actor, Permission
from audit.dose_reports import (
    DoseImporter,
    list_discrepancies,
    list_duplicates,
    list_missing,
    log_completeness,
    log_completeness_rate,
    logged_without_report,
    report_for_record,
    review_discrepancy,
    without_report_total,
)
from audit.errors import AuditError
from dashboard import split_reports, state
from dashboard.widgets import plain
from dashboard.wording import label, shown_value

PERIODS = {"All time": None, "Last 30 days": 30, "Last 90 days": 90, "Last 12 months": 365}

actor = state.require(Permission.VIEW_DASHBOARDS)
st.title("Reconciliation")
st.caption("The log compared with the C-arm's dose reports (RDSR). A discrepancy is a manual "
           "value more than the discrepancy tolerance away from the report's; a report with no "
           "logged procedure is a procedure missing from the log.")

period = st.selectbox("Period", list(PERIODS), key="reconciliation_period")


@st.cache_data(ttl=60, show_spinner=False)
def load(who: Actor, days: int | None
         ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The five frames of the page, cached per user (PHI differs by role) and period, and
    cleared by state.data_changed() after every write."""
    engine = state.engine()
    since = datetime.now(UTC) - timedelta(days=days) if days else None
    return (list_discrepancies(engine, who, date_from=since),
            list_missing(engine, who, date_from=since),
            log_completeness(engine, who, date_from=since),
            list_duplicates(engine, who, date_from=since),
            logged_without_report(engine, who, date_from=since))


def counted(n: int, one: str, many: str) -> str:
    """ "1 dose report has", "3 dose reports have"."""
    return f"{n:,} {one if n == 1 else many}"


def headline(overall: dict[str, Any], unreported: dict[str, Any]) -> list[str]:
    """The page's headline in words: what does not match, both ways."""
    if not overall["reports"]:
        lines = ["No dose report imported for this period: nothing to compare the log with "
                 "yet. The C-arm's reports are imported on the Dose reports page."]
    elif overall["missing"]:
        lines = [f"**{counted(overall['missing'], 'dose report has', 'dose reports have')} "
                 f"no logged case** (of {overall['reports']:,} imported)."]
    else:
        lines = [f"Every dose report has a logged case ({overall['reports']:,} imported)."]
    if not overall["reports"]:
        return lines
    where = "" if unreported["all_rooms"] else " in the rooms whose C-arm sends dose reports"
    if unreported["cases"]:
        lines.append(f"**{counted(unreported['cases'], 'logged case has', 'logged cases have')} "
                     f"no dose report**{where} (of {unreported['logged']:,} logged).")
    else:
        lines.append(f"Every logged case{where} has a dose report.")
    return lines


def _label(frame: pd.DataFrame, discrepancy_id: int) -> str:
    row = frame.loc[frame["discrepancy_id"] == discrepancy_id].iloc[0]
    return (f"#{discrepancy_id}: record {row['record_id']}, {label(row['field'])} "
            f"{row['manual_value']:g} vs {row['report_value']:g}")


discrepancies, missing, by_device, duplicates, by_room = load(actor, PERIODS[period])
overall = log_completeness_rate(by_device)
unreported = without_report_total(by_room)

with st.container(border=True):
    st.markdown("  \n".join(headline(overall, unreported)))
cols = st.columns(4)
cols[0].metric("Dose reports without a logged case", overall["missing"],
               help="The C-arm recorded these procedures; nobody logged them.")
cols[1].metric("Logged cases without a dose report", unreported["cases"],
               help="Logged, but no dose report of the C-arm matches them.")
cols[2].metric("Open discrepancies", len(discrepancies))
rate = overall["rate"]
cols[3].metric("Log completeness", "—" if rate is None else f"{rate:.0%}",
               help="Share of the C-arm's dose reports matched to a logged procedure")

if actor.can(Permission.IMPORT) and st.button(
        "Match again", help="Link reports to procedures logged since they were imported"):
    try:
        linked = DoseImporter(state.engine(), actor).reconcile_unmatched()
    except AuditError as exc:
        st.error(plain(exc))
    else:
        state.data_changed()
        st.session_state["reconciliation_message"] = (
            f"{len(linked)} reports newly linked to the log.")
        st.rerun()
if message := st.session_state.pop("reconciliation_message", None):
    st.success(message)

tab_disc, tab_missing, tab_unreported, tab_dupes, tab_device = st.tabs(
    [f"Discrepancies ({len(discrepancies)})", f"Missing from the log ({len(missing)})",
     f"Logged without a dose report ({unreported['cases']})",
     f"Possible duplicates ({len(duplicates)})", "Completeness by device"])

with tab_disc:
    if discrepancies.empty:
        st.info("No open discrepancies.")
    else:
        shown = discrepancies.assign(
            difference=discrepancies["relative_difference"] * 100,
            field=[label(f) for f in discrepancies["field"]])[
            ["discrepancy_id", "record_id", "performed_at", "room", "field", "manual_value",
             "report_value", "difference", "likely_cause", "source_file"]]
        st.dataframe(shown, hide_index=True, width="stretch", column_config={
            "discrepancy_id": st.column_config.NumberColumn("#", format="%d"),
            "record_id": st.column_config.NumberColumn("record", format="%d"),
            "performed_at": st.column_config.DatetimeColumn("performed (UTC)"),
            "manual_value": st.column_config.NumberColumn("logged", format="%.4g"),
            "report_value": st.column_config.NumberColumn("dose report", format="%.4g"),
            "difference": st.column_config.NumberColumn("difference", format="%+.0f%%"),
            "likely_cause": st.column_config.TextColumn("likely cause", width="large"),
            "source_file": st.column_config.TextColumn("report file"),
        })
        with st.form("review"):
            chosen = st.selectbox("Discrepancy", discrepancies["discrepancy_id"].tolist(),
                                  format_func=lambda i: _label(discrepancies, i))
            note = st.text_input("What the review found",
                                 placeholder="e.g. unit typed as Gy·cm², record amended")
            if st.form_submit_button("Mark reviewed"):
                try:
                    review_discrepancy(state.engine(), actor, int(chosen), note)
                except AuditError as exc:
                    st.error(plain(exc))
                else:
                    state.data_changed()
                    st.session_state["reconciliation_message"] = f"Discrepancy {chosen} reviewed."
                    st.rerun()

with tab_missing:
    if missing.empty:
        st.info("Every dose report matches a logged procedure.")
    else:
        st.dataframe(missing, hide_index=True, width="stretch", column_config={
            "report_id": st.column_config.NumberColumn("report", format="%d"),
            "voided_record_id": st.column_config.NumberColumn("voided record", format="%d"),
            "study_datetime": st.column_config.DatetimeColumn("study (UTC)"),
        })

with tab_unreported:
    if by_room.empty:
        st.info("No logged case in this period.")
    else:
        st.caption("Logged cases with no dose report, by room. Only rooms whose C-arm has "
                   "sent a dose report count in the headline (all rooms, until one has).")
        st.dataframe(by_room, hide_index=True, width="stretch", column_config={
            "site": "Site", "room": "Room", "logged": "Logged",
            "without_report": "Without a dose report", "counted": "Counted"})

with tab_dupes:
    if duplicates.empty:
        st.info("No dose report is linked to a procedure that may be logged twice.")
    else:
        st.caption("Each report was linked to one of two records of the same patient and "
                   "procedure close in time. Open both, and void the one entered twice.")
        st.dataframe(duplicates, hide_index=True, width="stretch", column_config={
            "report_id": st.column_config.NumberColumn("report", format="%d"),
            "record_id": st.column_config.NumberColumn("linked record", format="%d"),
            "study_datetime": st.column_config.DatetimeColumn("study (UTC)"),
            "possible_duplicates": st.column_config.TextColumn("possible duplicates"),
            "review": st.column_config.TextColumn("why", width="large"),
        })

with tab_device:
    st.dataframe(by_device, hide_index=True, width="stretch", column_config={
        "manufacturer": st.column_config.TextColumn("Manufacturer"),
        "model": st.column_config.TextColumn("Model"),
        "serial": st.column_config.TextColumn("Serial number"),
        "reports": st.column_config.NumberColumn("Dose reports", format="%d"),
        "matched": st.column_config.NumberColumn("Reports with a logged case", format="%d"),
        "rate": st.column_config.ProgressColumn("Completeness", format="percent",
                                                min_value=0.0, max_value=1.0)})

record_ids = sorted({int(i) for i in discrepancies["record_id"].dropna()}
                    | {int(i) for i in missing["voided_record_id"].dropna()}
                    | {int(i) for i in duplicates["record_id"].dropna()}
                    | {int(i) for text in duplicates["possible_duplicates"]
                       for i in str(text).split(", ") if i})
if record_ids:
    st.subheader("Record")
    record_id = st.selectbox("Open record", record_ids, key="reconciliation_record")
    try:
        record = state.service().get(int(record_id), actor)
    except AuditError as exc:
        st.error(plain(exc))
    else:
        st.dataframe(pd.DataFrame({"field": [label(f) for f in record], "value": [
            shown_value(f, v) for f, v in record.items()]}),
            hide_index=True, width="stretch")
        st.caption("Dose reports linked to this record")
        st.dataframe(report_for_record(state.engine(), actor, int(record_id)),
                     hide_index=True, width="stretch")

split_reports.section(actor, PERIODS[period])
