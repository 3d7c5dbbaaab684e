"""Records: the log as a filterable, server-side paginated table; one record's detail with its
full history; amend (with a reason, refused if someone changed it meanwhile) and void.

What a role may see and change is decided by the library (ProcedureLog.list/get/amend/void);
this page only hides the buttons the library would refuse anyway (audit.access.may_change).
"""

from __future__ import annotations

import math
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import streamlit as st

from audit import reference_data as admin
from audit.access import ReadScope, may_change, read_scope
from audit.auth import Permission
from audit.dictionary import BY_NAME
from audit.dosimetry import BACKGROUND_CAUTION
from audit.errors import (
    AuditError,
    FieldError,
    NotFound,
    PermissionDenied,
    StaleVersion,
    ValidationFailed,
    WarningsNotConfirmed,
)
from audit.filters import Filters, single
from audit.log import (
    AMENDABLE,
    amend_changes,
    as_text,
    layout_for,
    performed_at_iso,
    record_history,
)
from audit.units import format_duration
from audit.vocab import RecordStatus
from dashboard import record_complications, record_follow_ups, state, tables
from dashboard.widgets import FieldErrors, plain
from dashboard.wording import AMEND_FORM_LABELS, label, say, say_with, shown_value, value_label

PAGE_SIZE = 50
actor = state.require(Permission.VIEW_RECORDS)
service = state.service()
ss = st.session_state
tz = state.user_zone()
tz_label = tz.key if isinstance(tz, ZoneInfo) else "server time"


@st.cache_data(ttl=60, show_spinner=False)
def filter_options(url: str) -> pd.DataFrame:
    """Rooms, physicians and procedure codes the filters offer (inactive ones too: old
    records name them)."""
    engine = state.engine()
    rows = [("room", r["name"]) for r in admin.list_rooms(engine)]
    rows += [("physician", p["name"]) for p in admin.list_physicians(engine)]
    rows += [("procedure", p["code"]) for p in admin.list_procedure_types(engine)]
    return pd.DataFrame(rows, columns=["kind", "value"]).drop_duplicates()


def local(moment: datetime | str | None) -> str:
    if moment is None:
        return ""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    moment = moment.astimezone(tz) if tz else moment.astimezone()
    return moment.strftime("%Y-%m-%d %H:%M")


def day_start(day: date) -> datetime:
    start = datetime.combine(day, time())
    return start.replace(tzinfo=tz) if tz else start.astimezone()


def _to_first_page() -> None:
    ss["rec_page"] = 1


def _open(record_id: int | None) -> None:
    """Show one record (or none); its number is in the address (?record=N), to reload or share."""
    ss["rec_selected"] = record_id
    ss["rec_linked"] = str(record_id) if record_id else None
    if record_id:
        st.query_params["record"] = str(record_id)
    else:
        st.query_params.pop("record", None)
    for name in ("rec_amend_errors", "rec_amend_warnings", "rec_void_errors", "rec_notice"):
        ss.pop(name, None)


def _open_typed() -> None:
    typed = ss.get("rec_open")
    _open(int(typed) if typed else None)


# A link to one record (/records?record=7): opened once, as if its number had been typed.
linked = st.query_params.get("record")
if linked and linked.isdigit() and linked != ss.get("rec_linked"):
    _open(int(linked))

# --- filters ------------------------------------------------------------------------------------
st.title("Records")
options = filter_options(state.database_url())


def choices(kind: str) -> list[str]:
    return ["", *sorted(options.loc[options["kind"] == kind, "value"].tolist())]


with st.container(border=True):
    c = st.columns([1.6, 1.6, 1.5, 1.8, 1.2, 1, 1.4])
    c[0].date_input("From", value=None, key="rec_from", on_change=_to_first_page,
                    format="YYYY-MM-DD")
    c[1].date_input("To (inclusive)", value=None, key="rec_to", on_change=_to_first_page,
                    format="YYYY-MM-DD")
    c[2].selectbox("Room", choices("room"), key="rec_room", on_change=_to_first_page,
                   format_func=lambda v: v or "any")
    c[3].selectbox("Physician", choices("physician"), key="rec_physician",
                   on_change=_to_first_page, format_func=lambda v: v or "any")
    c[4].selectbox("Procedure", choices("procedure"), key="rec_procedure",
                   on_change=_to_first_page, format_func=lambda v: v or "any")
    c[5].selectbox("Status", ["", *RecordStatus.values()], key="rec_status",
                   on_change=_to_first_page, format_func=lambda v: v or "any")
    if actor.can(Permission.VIEW_PHI):
        c[6].text_input("Patient ID (MRN)", key="rec_patient", on_change=_to_first_page)

date_from, date_to = ss.get("rec_from"), ss.get("rec_to")
filters = Filters(
    start=day_start(date_from) if date_from else None,
    before=day_start(date_to + timedelta(days=1)) if date_to else None,
    rooms=single(ss.get("rec_room")), physicians=single(ss.get("rec_physician")),
    procedures=single(ss.get("rec_procedure")), status=ss.get("rec_status") or None,
    patient_id=(ss.get("rec_patient") or "").strip() or None, include_voided=True,
)
page = int(ss.get("rec_page", 1))
rows, total = service.list(actor, filters, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
pages = max(1, math.ceil(total / PAGE_SIZE))
if page > pages:
    ss["rec_page"] = page = pages
    rows, _ = service.list(actor, filters, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)

scope = {ReadScope.ALL: "", ReadScope.OWN_PATIENTS: " (your patients)",
         ReadScope.OWN_ENTRIES: " (the ones you logged)"}[read_scope(actor)]
st.caption(f"{total:,} records{scope} · page {page:,} of {pages:,} · newest first · times in "
           f"{tz_label}")

columns = ["record_id", "status", "performed_at", "procedure_code", "region", "room",
           "physician", "technologist", "patient_id", "fluoro_time_s", "dap_gycm2",
           "air_kerma_mgy", "contrast_confirmation", "saved_images"]
frame = pd.DataFrame(rows, columns=[*columns, "patient_ref"])
frame["performed_at"] = [local(v) for v in frame["performed_at"]]
frame["fluoro_time_s"] = [format_duration(v) if v is not None and not pd.isna(v) else ""
                          for v in frame["fluoro_time_s"]]
frame["contrast_confirmation"] = [shown_value("contrast_confirmation", v)
                                  for v in frame["contrast_confirmation"]]
if not actor.can(Permission.VIEW_PHI):
    frame["patient_id"] = frame["patient_ref"]
frame = frame[columns]


def _selected_row() -> None:
    selection = ss.get("rec_table")
    picked = selection.selection.rows if selection else []
    if picked and picked[0] < len(ss.get("rec_page_ids", [])):
        _open(ss["rec_page_ids"][picked[0]])


ss["rec_page_ids"] = frame["record_id"].tolist()
tables.show(
    frame, height=min(36 * len(frame) + 40, 580), key="rec_table", on_select=_selected_row,
    selection_mode="single-row",
    names={"performed_at": f"Performed ({tz_label})", "procedure_code": "Procedure",
           "patient_id": "Patient ID (MRN)" if actor.can(Permission.VIEW_PHI)
           else "Patient reference", "fluoro_time_s": "Fluoroscopy time (m:ss)",
           "contrast_confirmation": "Contrast", "saved_images": "Images"},
)
c = st.columns([3, 1])
with c[0]:
    if pages > 1:
        st.pagination(pages, key="rec_page", max_visible_pages=9)
with c[1]:
    st.number_input("Open record number", min_value=1, step=1, value=None, key="rec_open",
                    on_change=_open_typed, placeholder="e.g. 1042")
if not rows:
    st.info("No records match these filters." if total == 0 else "Nothing on this page.")

# --- one record ---------------------------------------------------------------------------------
record_id = ss.get("rec_selected")
if not record_id:
    st.caption("Select a row, or type a record number, to see its details and history.")
    st.stop()
try:
    record = service.get(int(record_id), actor)
except (NotFound, PermissionDenied) as exc:
    st.error(plain(exc), icon=":material/error:")
    st.stop()

st.divider()
void = record["status"] == RecordStatus.VOID.value
head = f"Record {record['record_id']}"
st.subheader(f"{head} — VOID" if void else head)
if void:
    st.error(f"This record is **void**: {plain(record['void_reason'])}. It stays in the log "
             "and its history, and counts in no statistic.", icon=":material/block:")
if notice := ss.pop("rec_notice", None):
    st.success(notice, icon=":material/check_circle:")

GROUPS = {
    "Case": ("performed_at", "site", "room", "physician", "technologist", "procedure_code",
             "region", "levels", "laterality", "guidance", "carm_operator", "trainee_present"),
    "Patient": ("patient_id", "patient_ref", "accession_number", "patient_sex",
                "patient_weight_kg", "patient_height_cm", "bmi_kg_m2", "pregnancy_status"),
    "Dose": ("fluoro_time_s", "dap_value", "dap_unit", "dap_gycm2", "dap_missing_reason",
             "air_kerma_mgy", "saved_images", "dsa_runs", "pulsed_fluoro", "pulse_rate_pps",
             "low_dose_mode", "effective_dose_msv", "background_days", "dose_source"),
    "Contrast and medication": (
        "contrast_confirmation", "contrast_agent", "contrast_class", "contrast_volume_ml",
        "confirmation_views", "contrast_test_dose",
        "realtime_contrast", "vascular_uptake", "needle_repositioned",
        "contrast_exception_reason", "contrast_exception_detail", "injectate", "notes"),
    "Record": ("status", "version", "created_at", "created_by", "updated_at", "updated_by"),
}


def shown(name: str, value: Any) -> str:
    """A field's value as a person reads it: local times, m:ss, labels of stored values."""
    if name in {"performed_at", "created_at", "updated_at"} and value:
        return local(value)
    if name == "fluoro_time_s" and value is not None:
        return f"{format_duration(value)} ({value:g} s)"
    return shown_value(name, value)


cols = st.columns(len(GROUPS))
for col, (title, names) in zip(cols, GROUPS.items(), strict=True):
    with col:
        st.markdown(f"**{title}**")
        lines = [f"{label(name)}: **{plain(shown(name, record.get(name)))}**"
                 for name in names if record.get(name) not in (None, "", [])]
        st.markdown("  \n".join(lines) or "—")
        if "background_days" in names and record.get("background_days") is not None:
            st.caption(BACKGROUND_CAUTION)  # NCRP 184: never read as personal risk
if record.get("warnings"):
    st.warning("Confirmed warnings: " + plain("; ".join(
        say(str(w.get("field")), str(w.get("message"))) for w in record["warnings"])),
        icon=":material/warning:")

st.markdown("#### History")
for event in record_history(service, int(record_id), actor):
    reason = f" — *{plain(event.reason)}*" if event.reason else ""
    verb = {"create": "created", "amend": "amended", "void": "voided", "import": "imported",
            "bulk_create": "loaded in bulk"}.get(event.action, event.action)
    with st.container(border=True):
        st.markdown(f"**{verb.capitalize()}** by **{plain(event.actor)}** on "
                    f"{local(event.occurred_at)}{reason}")
        if event.changes and event.action != "create":
            st.table(pd.DataFrame(
                [(plain(label(f)), plain(shown_value(f, b)), plain(shown_value(f, a)))
                 for f, b, a in event.changes], columns=["Field", "Before", "After"]))
        elif event.changes:
            st.caption(f"{len(event.changes)} fields recorded.")

record_complications.section(actor, int(record_id), void)
record_follow_ups.section(actor, int(record_id), void)

if not may_change(actor, record):
    if not void and actor.can(Permission.AMEND_OWN):
        st.caption("You can change only the records you logged.")
    st.stop()

# --- amend and void -------------------------------------------------------------------------------
entry = service.catalog.lookup(str(record["procedure_code"]))
wording = say_with(AMEND_FORM_LABELS, layout_for(entry) if entry else None)
amend_errors = FieldErrors("rec_amend_errors", wording)
amend_warnings = FieldErrors("rec_amend_warnings", wording)
void_errors = FieldErrors("rec_void_errors")
rid, version = int(record["record_id"]), int(record["version"])
prefix = f"am_{rid}_{version}_"
editable = [n for n in AMENDABLE if actor.can(Permission.VIEW_PHI) or n != "patient_id"]
#: When the record says it was performed, in the zone the page shows times in, to the minute:
#: what the amend form's date and time start from.
performed = datetime.fromisoformat(as_text(record["performed_at"]))
performed = performed.astimezone(tz) if tz else performed.astimezone()


def _performed_at_typed() -> str:
    """The amend form's date and time as the ISO text amend takes; the stored text while they
    still show the stored minute (seconds the form cannot show are kept)."""
    day, clock = ss.get(prefix + "performed_date"), ss.get(prefix + "performed_time")
    if not day or not clock:
        return ""
    if (day, clock.replace(second=0, microsecond=0)) == (
            performed.date(), performed.time().replace(second=0, microsecond=0)):
        return as_text(record["performed_at"])
    return performed_at_iso(day, clock, tz)


def _amend() -> None:
    edited = {n: _performed_at_typed() if n == "performed_at" else str(ss.get(prefix + n) or "")
              for n in editable}
    changes = amend_changes(record, edited)
    reason = str(ss.get(prefix + "reason") or "")
    confirm = bool(ss.get(prefix + "confirm"))
    try:
        try:
            service.amend(rid, changes, actor, version=version, reason=reason)
        except WarningsNotConfirmed as exc:
            current = [(w.field, w.message) for w in exc.warnings]
            if not (confirm and current == amend_warnings.items):
                amend_errors.clear()
                amend_warnings.set(exc.warnings)
                return
            service.amend(rid, changes, actor, version=version, reason=reason,
                          confirm_warnings=True)
    except StaleVersion as exc:
        amend_warnings.clear()
        amend_errors.set([FieldError("stale", str(exc))])
        return
    except ValidationFailed as exc:
        amend_warnings.clear()
        amend_errors.set(exc.errors)
        return
    except AuditError as exc:
        amend_errors.set([FieldError("record", str(exc))])
        return
    amend_errors.clear()
    amend_warnings.clear()
    fields = ", ".join(label(n, AMEND_FORM_LABELS) for n in editable if n in changes)
    ss["rec_notice"] = (f"Record {rid} amended: {plain(fields)}. The change is in its history "
                        "below.")
    state.data_changed()


def _void() -> None:
    reason = str(ss.get(f"void_{rid}_{version}_reason") or "")
    try:
        service.void(rid, actor, version=version, reason=reason)
    except StaleVersion as exc:
        void_errors.set([FieldError("stale", str(exc))])
        return
    except ValidationFailed as exc:
        void_errors.set(exc.errors)
        return
    except AuditError as exc:
        void_errors.set([FieldError("record", str(exc))])
        return
    void_errors.clear()
    ss["rec_notice"] = f"Record {rid} voided. It stays in the log, marked void."
    state.data_changed()


def _reload() -> None:
    for name in ("rec_amend_errors", "rec_amend_warnings", "rec_void_errors"):
        ss.pop(name, None)


stale = [m for f, m in [*amend_errors.items, *void_errors.items] if f == "stale"]
if stale:
    st.error(f"**Not saved: this record changed while you were editing.** {plain(stale[0])}",
             icon=":material/sync_problem:")
    st.button("Reload the record", on_click=_reload, icon=":material/refresh:")

amend_tab, void_tab = st.tabs(["Amend", "Void"])
with amend_tab, st.form(f"amend_{rid}_{version}"):
    st.caption("Change what is wrong, say why, save. Only changed fields are written; the "
               "history keeps the before and after.")
    grid = st.columns(4)
    for index, name in enumerate(editable):
        spec = BY_NAME[name]
        title = label(name, AMEND_FORM_LABELS)
        current = as_text(record.get(name))
        with grid[index % 4]:
            if name == "performed_at":  # a date and a time in the zone the page shows
                ss.setdefault(prefix + "performed_date", performed.date())
                ss.setdefault(prefix + "performed_time",
                              performed.time().replace(second=0, microsecond=0))
                st.date_input("Date performed", key=prefix + "performed_date",
                              format="YYYY-MM-DD")
                st.time_input(f"Time performed ({tz_label})", key=prefix + "performed_time",
                              step=60)
            elif spec.type in {"enum", "boolean"}:
                ss.setdefault(prefix + name, current)
                allowed = ["yes", "no"] if spec.type == "boolean" else \
                    spec.allowed.split("; ")
                opts = ["", *allowed] if current in ("", *allowed) else ["", current, *allowed]
                st.selectbox(title, opts, key=prefix + name,
                             format_func=lambda v, n=name: value_label(n, v) or "—")
            else:
                ss.setdefault(prefix + name, current)
                st.text_input(title, key=prefix + name, placeholder="78, 1:18 or 1.3 min"
                              if name == "fluoro_time_s" else None)
            amend_errors.show(name, *(("dap_gycm2",) if name == "dap_value" else ()))
            amend_warnings.show(name, warning=True)
    st.text_input("Reason for the change (required)", key=prefix + "reason")
    amend_errors.show("reason", "changes", "record")
    amend_errors.show_others([*editable, "reason", "changes", "record", "stale", "dap_gycm2"])
    amend_warnings.show_others(editable, warning=True)
    if amend_warnings:
        st.checkbox("I have checked the values flagged above: save with these warnings",
                    key=prefix + "confirm")
    st.form_submit_button("Save amendment", type="primary", on_click=_amend)

with void_tab, st.form(f"void_{rid}_{version}"):
    st.caption("Voiding keeps the record (marked void, with your reason) and removes it from "
               "statistics. Use it for duplicates and entries about the wrong patient.")
    st.text_input("Reason for voiding (required)", key=f"void_{rid}_{version}_reason")
    void_errors.show("reason", "record")
    st.form_submit_button("Void record", on_click=_void)
