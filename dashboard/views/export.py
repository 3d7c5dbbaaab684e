"""Audit export: the procedure log, the audit trail and the summaries (compliance, dose and
reference levels, alerts) as a verifiable, signed zip for an inspector.

The page only gathers choices and shows results; audit.export.runner does the work and the checks
(permissions included: a role without EXPORT_PHI is refused by the library too), the signature,
the audit events (a PHI export's "started" event before its first byte) and the partial folder.

The export is written into one private folder per server account (_workdir), the same every
time, read into memory and removed: a server killed mid-export leaves its partial folder there,
where the next export's sweep finds and removes it (a fresh temporary folder each time would
hide it from the sweep for good).
"""

from __future__ import annotations

import os
import secrets
import shutil
import stat
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
from dashboard import state, tables
from dashboard.widgets import plain

DOWNLOAD_KEY = "export_download"
ALL = "All"


def _workdir() -> Path:
    """<temp>/fluoro-audit-exports-<uid>, 0700 and ours; a fresh private folder instead if
    that name is taken by anything else (another user's folder, a symlink)."""
    uid = os.getuid() if hasattr(os, "getuid") else None
    base = Path(tempfile.gettempdir()) / f"fluoro-audit-exports-{uid if uid is not None else 'x'}"
    try:
        base.mkdir(mode=0o700, exist_ok=True)
        info = base.lstat()
        if stat.S_ISDIR(info.st_mode) and (uid is None or info.st_uid == uid):
            os.chmod(base, 0o700)
            return base
    except OSError:
        pass
    return Path(tempfile.mkdtemp(prefix="fluoro-audit-exports-"))


actor = state.require(Permission.EXPORT)
st.title("Audit export")
st.caption("A zip of CSV files an inspector can open and check: UTF-8 with BOM, ISO 8601 UTC "
           "times, the data dictionary, a manifest with each file's row count and SHA-256, "
           "SHA256SUMS (`sha256sum -c SHA256SUMS`), and the site's signature of the manifest "
           "(`fluoro-audit verify-export`). Every export is written to the audit trail.")

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

    name = f"fluoro-audit-export-{utcnow():%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"
    target = _workdir() / name
    try:
        result = run_export(state.engine(), actor, target, sections=sections,
                            filters=filters, include_phi=include_phi, make_zip=True,
                            progress=progress)
        assert result.zip_path is not None
        data = result.zip_path.read_bytes()
    except AuditError as exc:
        st.error(plain(exc))
        st.stop()
    finally:  # the bytes are in memory now: no copy stays on the server's disk
        shutil.rmtree(target, ignore_errors=True)
        target.with_name(f"{name}.zip").unlink(missing_ok=True)
    state.data_changed()  # the export is an audit event
    st.session_state[DOWNLOAD_KEY] = {
        "file_name": f"{name}.zip", "data": data, "export_id": result.export_id,
        "include_phi": include_phi, "fingerprint": result.fingerprint,
        "files": [f.as_dict() for f in result.files],
    }

download = st.session_state.get(DOWNLOAD_KEY)
if download:
    phi = "with patient_id" if download["include_phi"] else "without PHI"
    st.success(f"Export {download['export_id']} is ready ({phi}); it is recorded in the audit "
               "trail with these hashes, and signed with this site's key, fingerprint "
               f"{download['fingerprint']}. Give the receiver that fingerprint by another "
               "channel (telephone, letter) so they can check the signature.")
    tables.show(pd.DataFrame(download["files"]))
    st.download_button("Download zip", data=download["data"], file_name=download["file_name"],
                       mime="application/zip", type="primary")
