"""Audit export: the procedure log, the audit trail and the summaries (compliance, dose and
reference levels, alerts) as a verifiable zip for an inspector.

The page only gathers choices and shows results; audit.export.runner does the work and the checks
(permissions included: a role without EXPORT_PHI is refused by the library too).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from audit.auth import Permission
from audit.errors import AuditError, ValidationFailed
from audit.export import EXPORT_SECTIONS, count_export_rows, run_export
from audit.filters import Filters, filter_choices, parse_period, single
from audit.storage import utcnow
from dashboard import state
from dashboard.widgets import plain

DOWNLOAD_KEY = "export_download"
ALL = "All"

actor = state.require(Permission.EXPORT)
st.title("Audit export")
st.caption("A zip of CSV files an inspector can open and check: UTF-8 with BOM, ISO 8601 UTC "
           "times, the data dictionary, a manifest with each file's row count and SHA-256, and "
           "SHA256SUMS (`sha256sum -c SHA256SUMS`, or `fluoro-audit verify-export`). Every "
           "export is written to the audit trail.")

sections = st.multiselect(
    "Files", list(EXPORT_SECTIONS), default=["procedures"],
    format_func=lambda name: f"{EXPORT_SECTIONS[name].filename}: {EXPORT_SECTIONS[name].title}",
    help="Each becomes one CSV file of the same export (one consistent snapshot).")
if not sections:
    st.info("Choose at least one file.")
    st.stop()
left, right = st.columns(2)
start = left.date_input("From (UTC day)", value=None, format="YYYY-MM-DD")
stop = right.date_input("To (UTC day, included)", value=None, format="YYYY-MM-DD")

picked: dict[str, Any] = {}
include_voided = False
if any("site" in EXPORT_SECTIONS[name].honours for name in sections):
    choices = filter_choices(state.engine())
    columns = st.columns(4)
    for column, (key, label) in zip(columns, (("site", "Site"), ("room", "Room"),
                                              ("physician", "Physician"),
                                              ("procedure", "Procedure")), strict=True):
        value = column.selectbox(label, [ALL, *choices[key]])
        picked[key] = None if value == ALL else value
if "procedures" in sections:
    include_voided = st.checkbox("Include voided records (with their status and reason)")

include_phi = False
if actor.can(Permission.EXPORT_PHI):
    include_phi = st.checkbox("Include patient_id (MRN)",
                              help="Protected health information: only for an inspector "
                                   "entitled to it. Without it, patients appear as patient_ref.")
    if include_phi:
        st.warning("This export will contain medical record numbers. Keep the file secure.")
else:
    st.caption("Patients appear as patient_ref, a keyed pseudonym that is stable across "
               "exports; medical record numbers are exported by the radiation safety officer.")

try:
    since, before = parse_period(start, stop)
    filters = Filters(start=since, before=before, sites=single(picked.get("site")),
                      rooms=single(picked.get("room")),
                      physicians=single(picked.get("physician")),
                      procedures=single(picked.get("procedure")), include_voided=include_voided)
    counts = count_export_rows(state.engine(), actor, filters, sections)
except ValidationFailed as exc:
    for error in exc.errors:
        st.error(plain(f"{error.field}: {error.message}"))
    st.stop()
rows = sum(n or 0 for n in counts.values())
st.metric("Rows to export", f"{rows:,}",
          help=", ".join(f"{EXPORT_SECTIONS[k].filename}: " + (f"{v:,}" if v is not None else
                                                         "counted when written")
                         for k, v in counts.items()))

if st.button("Export", type="primary"):
    bar = st.progress(0.0, text="Starting...")

    def progress(done: int, total: int) -> None:
        bar.progress(min(1.0, done / total) if total else 1.0,
                     text=f"{done:,} of {total:,} rows written")

    name = f"fluoro-audit-export-{utcnow():%Y%m%dT%H%M%SZ}"
    try:
        with tempfile.TemporaryDirectory(prefix="fluoro-export-") as tmp:
            result = run_export(state.engine(), actor, Path(tmp) / name, sections=sections,
                            filters=filters, include_phi=include_phi, make_zip=True,
                            progress=progress)
            assert result.zip_path is not None
            data = result.zip_path.read_bytes()
    except AuditError as exc:
        st.error(plain(exc))
        st.stop()
    state.data_changed()  # the export is an audit event
    st.session_state[DOWNLOAD_KEY] = {
        "file_name": f"{name}.zip", "data": data, "export_id": result.export_id,
        "include_phi": include_phi,
        "files": [f.as_dict() for f in result.files],
    }

download = st.session_state.get(DOWNLOAD_KEY)
if download:
    phi = "with patient_id" if download["include_phi"] else "without PHI"
    st.success(f"Export {download['export_id']} is ready ({phi}); it is recorded in the audit "
               "trail with these hashes.")
    st.dataframe(pd.DataFrame(download["files"]), hide_index=True, width="stretch")
    st.download_button("Download zip", data=download["data"], file_name=download["file_name"],
                       mime="application/zip", type="primary")
