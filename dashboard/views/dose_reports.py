"""Dose reports: upload RDSR files exported from the C-arm or PACS and see each file's outcome.

The page only collects files and shows results; storing, matching and comparing happen in
audit.dose_reports.store (one transaction per file, like `fluoro-audit import rdsr`).
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from audit.auth import Permission
from audit.dose_reports import DoseImporter, ImportResult
from audit.errors import AuditError
from dashboard import labels, receiver_panel, report_events, state, tables
from dashboard.widgets import plain

RESULTS_KEY = "dose_report_results"
#: Each file's outcome and how its report was matched to the log, in words.
OUTCOMES = {"ok": "Imported", "duplicate": "Duplicate", "rejected": "Rejected"}
MATCHES = {"accession": "Accession number", "patient_room_day": "Patient, room and day",
           "patient_day": "Patient and day"}

actor = state.require(Permission.IMPORT)
st.title("Dose reports")
st.caption(
    "Import the C-arm's DICOM Radiation Dose Structured Reports (RDSR). Each report is linked "
    "to its logged procedure (accession number, else patient, room and day), fills dose "
    "values the log lacks, and flags manual values that disagree. A file already imported "
    "is a duplicate and changes nothing.")

with st.form("upload", clear_on_submit=False):
    files = st.file_uploader("RDSR files (.dcm, or files without an extension)",
                             accept_multiple_files=True, key="rdsr_files")
    dry_run = st.checkbox("Check only (dry run): show what would happen, save nothing")
    submitted = st.form_submit_button("Import", type="primary")


def _row(result: ImportResult) -> dict[str, Any]:
    data = result.as_json()
    message = data["reason"] or data["note"] or ""
    if data["discrepancies"]:
        fields = ", ".join(d["field"] for d in data["discrepancies"])
        message = (f"{message}; " if message else "") + f"discrepancy: {fields}"
    return {
        "file": data["file"], "status": data["status"], "record_id": data["record_id"],
        "match": data["match"], "events": data["events"],
        "dap_gycm2": data["dap_total_gycm2"], "fluoro_time_s": data["fluoro_time_s"],
        "air_kerma_mgy": data["air_kerma_total_mgy"],
        "filled": ", ".join(labels.column_label(name) for name in data["filled"]),
        "details": message,
    }


if submitted:
    if not files:
        st.warning("Choose one or more files first.")
    else:
        try:
            importer = DoseImporter(state.engine(), actor)
            progress = st.progress(0.0, text="Importing…")
            rows = []
            for number, upload in enumerate(files, start=1):
                rows.append(_row(importer.import_bytes(upload.getvalue(), upload.name,
                                                       dry_run=dry_run)))
                progress.progress(number / len(files),
                                  text=f"{number} of {len(files)}: {plain(upload.name)}")
            progress.empty()
        except AuditError as exc:
            st.error(plain(exc))
        else:
            if not dry_run:
                state.data_changed()
            st.session_state[RESULTS_KEY] = {"rows": rows, "dry_run": dry_run}

results = st.session_state.get(RESULTS_KEY)
if results:
    frame = pd.DataFrame(results["rows"])
    counts = frame["status"].value_counts()
    linked = int(frame["record_id"].notna().sum())
    if results["dry_run"]:
        st.info("Dry run: nothing was saved.")
    cols = st.columns(4)
    cols[0].metric("Imported", int(counts.get("ok", 0)))
    cols[1].metric("Duplicates", int(counts.get("duplicate", 0)))
    cols[2].metric("Rejected", int(counts.get("rejected", 0)))
    cols[3].metric("Linked to the log", linked)
    if counts.get("duplicate", 0) == len(frame):
        st.success("Nothing new: every file was already imported.")
    tables.show(frame, names={"status": "Outcome", "record_id": "Linked record"},
                enums={"status": OUTCOMES, "match": MATCHES})

report_events.section(actor)
receiver_panel.show()
