"""Patient dose history: one patient, found by medical record number (rso and admin).

The MRN is asked for in a form and kept in the session, never in the page's address: an
address is logged by proxies and kept in browser history, and an MRN is PHI. Each search is
one read audited as PHI access by the library (audit.documents.patient_history); reruns of the
page draw the stored result instead of reading (and auditing) again. The letter is made on
request, audited with its SHA-256, and offered for download.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from audit.auth import Permission
from audit.documents import (
    DOSE_OVER_TIME_CAPTION,
    PatientHistory,
    dose_over_time,
    letter_document,
    patient_dose_history,
)
from audit.errors import AuditError, ValidationFailed
from dashboard import state, tables
from dashboard.widgets import plain

HISTORY_KEY = "patient_history_shown"
LETTER_KEY = "patient_letter_pdf"

actor = state.require(Permission.PATIENT_HISTORY)
st.title("Patient dose history")
st.caption("Every procedure of one patient, the cumulative dose over the last 12 months and "
           "over all time, dose alerts and their follow-up. Each search is written to the "
           "audit trail as access to protected health information.")

with st.form("patient_lookup", clear_on_submit=True):
    mrn = st.text_input("Medical record number", max_chars=64, autocomplete="off")
    searched = st.form_submit_button("Show history", type="primary")
if searched:
    st.session_state.pop(LETTER_KEY, None)
    try:
        st.session_state[HISTORY_KEY] = patient_dose_history(state.engine(), actor, mrn)
        state.data_changed()  # the view is an audit event
    except ValidationFailed as exc:
        for error in exc.errors:
            st.error(plain(error.message))
        st.stop()
    except AuditError as exc:
        st.session_state.pop(HISTORY_KEY, None)
        st.error(plain(exc))
        st.stop()

history: PatientHistory | None = st.session_state.get(HISTORY_KEY)
if history is None:
    st.info("Enter a medical record number to see that patient's history.")
    st.stop()

st.subheader("Patient")
st.text(f"Medical record number {history.mrn} (pseudonym {history.pseudonym}), "
        f"read at {history.as_of:%Y-%m-%d %H:%M} UTC")
columns = st.columns(len(history.totals))
for column, row in zip(columns, history.totals.itertuples(), strict=True):
    column.metric(f"Effective dose, {row.period}", f"{row.effective_dose_msv:,.2f} mSv",
                  help=f"{row.procedures:,} procedures; about {row.background_days or 0:,.0f} "
                       "days of natural background radiation. A population estimate, not a "
                       "personal risk (NCRP Report 184).")

st.subheader("Procedures")
procedures = history.procedures
if len(procedures):
    st.altair_chart(dose_over_time(procedures), width="stretch")
    st.caption(DOSE_OVER_TIME_CAPTION)
shown = procedures[["performed_at", "procedure_name", "levels", "site", "room", "physician",
                    "fluoro_time_s", "dap_gycm2", "air_kerma_mgy", "effective_dose_msv",
                    "background_days"]].assign(levels=procedures["levels"].replace("", "—"))
tables.show(shown, names={"performed_at": "Performed", "procedure_name": "Procedure",
                          "levels": "Levels treated", "site": "Site", "room": "Room",
                          "physician": "Physician", "fluoro_time_s": "Fluoroscopy time (s)",
                          "dap_gycm2": "KAP (Gy·cm²)", "air_kerma_mgy": "Ka,r (mGy)",
                          "effective_dose_msv": "Effective dose (mSv)",
                          "background_days": "Days of natural background"})

st.subheader("Cumulative")
totals = history.totals.assign(period=history.totals["period"].str.capitalize())
tables.show(totals, names={"period": "Period", "procedures": "Procedures",
                           "fluoro_time_s": "Fluoroscopy time (s)",
                           "dap_gycm2": "KAP (Gy·cm²)", "air_kerma_mgy": "Ka,r (mGy)",
                           "effective_dose_msv": "Effective dose (mSv)",
                           "background_days": "Days of natural background"})

st.subheader("Alerts and follow-up")
alerts = history.alerts
if len(alerts):
    follow = alerts[["performed_at", "kind", "quantity", "status", "value", "threshold",
                     "acknowledged_by", "note"]].assign(
        acknowledged_by=alerts["acknowledged_by"].fillna("—"),
        note=alerts["note"].fillna("No follow-up yet"),
        value=pd.to_numeric(alerts["value"]), threshold=pd.to_numeric(alerts["threshold"]))
    tables.show(follow, names={"performed_at": "Performed", "kind": "Alert",
                               "quantity": "Quantity", "status": "Status", "value": "Value",
                               "threshold": "Threshold", "acknowledged_by": "Acknowledged by",
                               "note": "Follow-up note"})
else:
    st.text("No dose alert for this patient.")

st.subheader("Letter to the patient")
st.caption("A PDF in plain words: each procedure, the estimated dose and its equivalent in "
           "days of natural background radiation, contrast dye, where the images are kept and "
           "how to reach the practice. Making it is written to the audit trail.")
left, right = st.columns(2)
first = left.date_input("Procedures from (optional)", value=None, format="YYYY-MM-DD")
last = right.date_input("Procedures to (optional)", value=None, format="YYYY-MM-DD")
if st.button("Prepare letter"):
    try:
        pdf, info = letter_document(state.engine(), actor, history.mrn, first=first, last=last)
        state.data_changed()
        st.session_state[LETTER_KEY] = (pdf, info["sha256"])
    except AuditError as exc:
        st.error(plain(exc))
if LETTER_KEY in st.session_state:
    pdf, digest = st.session_state[LETTER_KEY]
    st.download_button("Download the letter (PDF)", pdf, file_name="radiation-dose-letter.pdf",
                       mime="application/pdf", type="primary")
    st.caption(plain(f"SHA-256 {digest}, recorded in the audit trail."))
