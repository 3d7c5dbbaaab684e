"""Log procedure: one screen, keyboard first (Tab through, Enter saves).

The case (site, room, physician, procedure type, contrast status) sits above the form because it
decides what the form shows; the form holds the rest and submits on Enter. The values become the
same dictionary-field input the command line takes (audit.log.entry_form.build_record) and go to the
same service call, so the two paths store identical records. Last site, room, physician and
procedure type are remembered per user.

Site, room and physician are chosen from the existing names only (issue 11: "River" and Enter
used to create a site): a new one comes through the "Add a new site, room or physician" panel
(dashboard/names.py), which shows near names and asks before creating one. So what is saved,
and remembered, is always an existing name.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd
import streamlit as st

from audit import Filters, auth
from audit import reference_data as admin
from audit.auth import Permission
from audit.dosimetry import BACKGROUND_CAUTION
from audit.errors import AuditError, FieldError, ValidationFailed, WarningsNotConfirmed
from audit.log import (
    CONTRAST_LABELS,
    FormLayout,
    NameAdded,
    build_record,
    dose_in_words,
    layout_for,
    performed_at_iso,
    tri_state,
)
from audit.vocab import (
    CONTRAST_AGENTS,
    ContrastConfirmation,
    ContrastException,
    DapUnit,
    Guidance,
    Injectate,
    Laterality,
    PregnancyStatus,
    Sex,
    View,
)
from dashboard import case_mix_form, state
from dashboard.names import add_new_panel, close_add_panel
from dashboard.widgets import FieldErrors, plain
from dashboard.wording import LOG_FORM_LABELS, say_with, value_label

actor = state.require(Permission.LOG_PROCEDURE)
service = state.service()
ss = st.session_state
errors = FieldErrors("lp_errors", say_with(LOG_FORM_LABELS))
warnings = FieldErrors("lp_warnings", say_with(LOG_FORM_LABELS))
YES_NO = ["", "yes", "no"]


@st.cache_data(ttl=60, show_spinner=False)
def rooms_frame(url: str) -> pd.DataFrame:
    return pd.DataFrame(admin.list_rooms(state.engine(), active_only=True),
                        columns=["room_id", "site", "name", "make", "model", "serial",
                                 "dap_display_unit", "kap_correction_factor", "active"])


@st.cache_data(ttl=60, show_spinner=False)
def physicians_frame(url: str) -> pd.DataFrame:
    return pd.DataFrame(admin.list_physicians(state.engine(), active_only=True),
                        columns=["physician_id", "name", "username", "active"])


@st.cache_data(ttl=60, show_spinner=False)
def sites_frame(url: str) -> pd.DataFrame:
    return pd.DataFrame(admin.list_sites(state.engine(), active_only=True),
                        columns=["site_id", "name", "active"])


def key(gen: int, name: str) -> str:
    """Widget keys carry the form generation: a new generation is an empty form."""
    return f"lp{gen}_{name}"


def _blank(choice: str) -> str:
    return {"yes": "Yes", "no": "No"}.get(choice, choice) or "—"


# --- reference data and remembered choices ------------------------------------------------------
url = state.database_url()
rooms, physicians, sites = rooms_frame(url), physicians_frame(url), sites_frame(url)
catalog = service.catalog
codes = catalog.active_codes()
if "lp_prefs" not in ss:
    ss["lp_prefs"] = auth.get_preferences(state.engine(), actor.username)
prefs: dict[str, Any] = ss["lp_prefs"]
gen: int = ss.setdefault("lp_gen", 0)

site_names = sites["name"].tolist()
if "lp_site" not in ss:
    ss["lp_site"] = prefs.get("site") if prefs.get("site") in site_names else (
        site_names[0] if site_names else None)


def rooms_at(site: str | None) -> list[str]:
    return rooms.loc[rooms["site"] == site, "name"].tolist()


def _site_changed() -> None:
    names = rooms_at(ss.get("lp_site"))
    ss["lp_room"] = prefs.get("room") if prefs.get("room") in names else (
        names[0] if names else None)


if "lp_room" not in ss:
    _site_changed()
doctor_names = physicians["name"].tolist()
if "lp_physician" not in ss:
    ss["lp_physician"] = prefs.get("physician") if prefs.get("physician") in doctor_names \
        else None
if "lp_procedure" not in ss:
    ss["lp_procedure"] = prefs.get("procedure_code") if prefs.get("procedure_code") in codes \
        else None


def room_label(site: str | None, name: str) -> str:
    row = rooms[(rooms["site"] == site) & (rooms["name"] == name)]
    if row.empty:
        return f"{name} (new)"
    device = " ".join(str(v) for v in (row.iloc[0]["make"], row.iloc[0]["model"])
                      if v is not None and not pd.isna(v))
    return f"{name} · {device}" if device else name


def room_unit(site: str | None, room: str | None) -> str:
    row = rooms[(rooms["site"] == site) & (rooms["name"] == room)]
    return str(row.iloc[0]["dap_display_unit"]) if not row.empty else DapUnit.GY_CM2.value


def procedure_label(code: str) -> str:
    entry = catalog.lookup(code)
    return f"{code} — {entry.name}" if entry else code


def _select_added(added: NameAdded) -> None:
    """Choose a name the "Add new" panel added (or found): it exists, so it may be remembered."""
    if added.kind == "site":
        ss["lp_site"], ss["lp_room"] = added.name, None
    else:
        ss["lp_room" if added.kind == "room" else "lp_physician"] = added.name


# --- saving (runs as the submit button's callback, before the page is drawn again) -------------
def _values(gen: int, layout: FormLayout, status: str) -> dict[str, Any]:
    def get(name: str) -> Any:
        return ss.get(key(gen, name))

    day, clock = get("date"), get("time")
    site, room = ss.get("lp_site"), ss.get("lp_room")
    return {
        "performed_at": performed_at_iso(day, clock, state.user_zone()) if day and clock
        else None,
        "site": site, "room": room, "physician": ss.get("lp_physician"),
        "technologist": actor.username,
        "patient_id": get("patient_id"), "accession_number": get("accession_number"),
        "patient_sex": get("patient_sex") or None,
        "patient_weight_kg": get("patient_weight_kg"),
        "pregnancy_status": get("pregnancy_status"),
        "procedure_code": layout.code,
        "levels": list(get(f"levels_{layout.code}") or []),
        "laterality": get("laterality") or None,
        "guidance": get("guidance"),
        **case_mix_form.values(get, get("guidance") == Guidance.ULTRASOUND.value),
        "fluoro_time_s": get("fluoro_time_s"),
        "dap_value": get("dap_value"),
        "dap_unit": get(f"dap_unit_{site}_{room}") if get("dap_value") else None,
        "dap_missing_reason": get("dap_missing_reason"),
        "air_kerma_mgy": get("air_kerma_mgy"),
        "saved_images": get("saved_images"),
        "dsa_runs": get("dsa_runs"),
        "pulsed_fluoro": tri_state(get("pulsed_fluoro")),
        "pulse_rate_pps": get("pulse_rate_pps"),
        "low_dose_mode": tri_state(get("low_dose_mode")),
        "contrast_confirmation": status,
        "contrast_agent": get("contrast_agent"),
        "contrast_volume_ml": get("contrast_volume_ml"),
        "confirmation_views": list(get("confirmation_views") or []),
        "realtime_contrast": tri_state(get("realtime_contrast")),
        "vascular_uptake": tri_state(get("vascular_uptake")),
        "needle_repositioned": tri_state(get("needle_repositioned")),
        "contrast_exception_reason": get("contrast_exception_reason") or None,
        "contrast_exception_detail": get("contrast_exception_detail"),
        "injectate": get("injectate") or None,
        "notes": get("notes"),
    }


def _save(gen: int, layout: FormLayout, status: str) -> None:
    ss.pop("lp_saved", None)
    record = case_mix_form.for_guidance(build_record(_values(gen, layout, status), layout),
                                        ss.get(key(gen, "guidance")) == Guidance.ULTRASOUND.value)
    confirmed = bool(ss.get(key(gen, "confirm")))
    shown = warnings.items
    try:  # names are only chosen here (new ones come through "Add new"): never created
        try:
            result = service.log(record, actor)
        except WarningsNotConfirmed as exc:
            current = [(w.field, w.message) for w in exc.warnings]
            if not (confirmed and current == shown):
                errors.clear()
                warnings.set(exc.warnings)
                ss[key(gen, "confirm")] = False
                return
            result = service.log(record, actor, confirm_warnings=True)
    except ValidationFailed as exc:
        warnings.clear()
        errors.set(exc.errors)
        return
    except AuditError as exc:
        warnings.clear()
        errors.set([FieldError("record", str(exc))])
        return
    errors.clear()
    warnings.clear()
    remembered = {"site": record.get("site"), "room": record.get("room"),
                  "physician": record.get("physician"), "procedure_code": layout.code,
                  "carm_operator": record.get("carm_operator")}
    ss["lp_prefs"] = auth.update_preferences(state.engine(), actor, remembered)
    ss["lp_saved"] = {
        "record_id": result.record_id, "summary": f"{layout.code} · {record.get('room')} · "
        f"{record.get('physician')}", "dose": dose_in_words(result.effective_dose_msv,
                                                            result.background_days)
        + (f"  \n*{BACKGROUND_CAUTION}*" if result.background_days is not None else ""),
        "warnings": len(result.warnings),
    }
    ss["lp_gen"] = gen + 1
    close_add_panel()
    state.data_changed()


# --- the page -----------------------------------------------------------------------------------
st.title("Log procedure")
saved = ss.get("lp_saved")
if saved:
    note = f" ({saved['warnings']} confirmed warning(s) kept on the record)" \
        if saved["warnings"] else ""
    st.success(f"**Saved as record {saved['record_id']}** — {plain(saved['summary'])}{note}.  \n"
               f"{saved['dose']}", icon=":material/check_circle:")

case = st.container(border=True)
with case:
    col_site, col_room, col_doc, col_proc = st.columns([2, 2, 2, 3])
    with col_site:
        st.selectbox("Site", site_names, key="lp_site", on_change=_site_changed,
                     placeholder="Choose (or add one below)")
        errors.show("site")
    with col_room:
        chosen_site = ss.get("lp_site")
        st.selectbox("Room / C-arm", rooms_at(chosen_site), key="lp_room",
                     format_func=lambda name, site=chosen_site: room_label(site, name),
                     placeholder="Choose (or add one below)")
        errors.show("room")
    with col_doc:
        st.selectbox("Physician", doctor_names, key="lp_physician",
                     placeholder="Choose (or add one below)")
        errors.show("physician")
    with col_proc:
        st.selectbox("Procedure", codes, key="lp_procedure", format_func=procedure_label,
                     placeholder="Choose the procedure type")
        errors.show("procedure_code")

    add_new_panel(actor, ss.get("lp_site"), _select_added)

code = ss.get("lp_procedure")
entry = catalog.lookup(code) if code else None
if entry is None:
    st.info("Choose the procedure type: the form then shows what it needs.",
            icon=":material/arrow_upward:")
    st.stop()
layout = layout_for(entry)
# Messages name each field as this form labels it and say what to do (dashboard.wording).
errors = FieldErrors("lp_errors", say_with(LOG_FORM_LABELS, layout))
warnings = FieldErrors("lp_warnings", say_with(LOG_FORM_LABELS, layout))
status_key = f"lp_contrast_{layout.code}"
ss.setdefault(status_key, layout.contrast_default.value)
with case:
    ss.setdefault(key(gen, "guidance"), Guidance.FLUOROSCOPY.value)
    st.radio("Guidance", Guidance.values(), key=key(gen, "guidance"), horizontal=True,
             format_func=lambda v: value_label("guidance", v))
    radiation_free = ss.get(key(gen, "guidance")) == Guidance.ULTRASOUND.value
    policy = {"required": "required", "recommended": "recommended",
              "not_required": "not required"}[layout.contrast_policy.value]
    choices = case_mix_form.contrast_choices(layout, radiation_free)
    if ss[status_key] not in choices:  # "not required" chosen under ultrasound, then left
        ss[status_key] = layout.contrast_default.value
    st.radio(f"Contrast confirmation (policy for {plain(layout.code)}: {policy})", choices,
             key=status_key, horizontal=True,
             format_func=lambda v: CONTRAST_LABELS[ContrastConfirmation(v)])
    errors.show("contrast_confirmation")
    warnings.show("contrast_confirmation", warning=True)
status = ContrastConfirmation(ss[status_key])
site, room = ss.get("lp_site"), ss.get("lp_room")
unit_key = key(gen, f"dap_unit_{site}_{room}")
ss.setdefault(unit_key, room_unit(site, room))
now = datetime.now(state.user_zone()) if state.user_zone() else datetime.now().astimezone()
ss.setdefault(key(gen, "date"), now.date())
ss.setdefault(key(gen, "time"), now.time().replace(second=0, microsecond=0))
if status is ContrastConfirmation.CONFIRMED:
    ss.setdefault(key(gen, "contrast_agent"), CONTRAST_AGENTS[0])

shown_fields: set[str] = {"site", "room", "physician", "procedure_code",
                          "contrast_confirmation"}


def field(name: str, also: tuple[str, ...] = ()) -> None:
    """Errors and warnings of a field (and of fields that share its widget), right here."""
    names = (name, *also)
    shown_fields.update(names)
    errors.show(*names)
    warnings.show(*names, warning=True)


with st.form("log_procedure", enter_to_submit=True, border=True):
    errors.show("record")
    st.markdown("**Patient and time**")
    c = st.columns([1.2, 1, 2, 2])
    with c[0]:
        st.date_input("Date", key=key(gen, "date"), format="YYYY-MM-DD")
    with c[1]:
        st.time_input("Time", key=key(gen, "time"), step=60)
    with c[0]:
        field("performed_at")
    with c[2]:
        st.text_input("Patient ID (MRN)", key=key(gen, "patient_id"))
        field("patient_id")
    with c[3]:
        st.text_input("Accession number (optional)", key=key(gen, "accession_number"))
        field("accession_number")
    c = st.columns([1, 1, 2, 2])
    with c[0]:
        st.selectbox("Sex", ["", *Sex.values()], key=key(gen, "patient_sex"),
                     format_func=lambda v: value_label("patient_sex", v) or "—")
        field("patient_sex")
    with c[1]:
        st.text_input("Weight (kg)", key=key(gen, "patient_weight_kg"))
        field("patient_weight_kg")
    with c[2]:
        st.selectbox("Pregnancy status", PregnancyStatus.values(),
                     key=key(gen, "pregnancy_status"), index=None, placeholder="Choose",
                     format_func=lambda v: value_label("pregnancy_status", v))
        field("pregnancy_status")

    st.markdown(f"**{plain(entry.name)}**")
    c = st.columns([3, 1.5, 1.5])
    if layout.levels:
        with c[0]:
            limit = f", at most {layout.max_levels}" if layout.max_levels else ""
            st.multiselect(f"Levels ({'required' if layout.levels_required else 'optional'}"
                           f"{limit})", layout.levels, key=key(gen, f"levels_{layout.code}"),
                           placeholder=layout.levels_hint, select_all=False,
                           filter_mode="prefix",
                           help=f"{plain(layout.code)} takes {layout.levels_allowed}.")
            field("levels")
    if layout.laterality:
        with c[1]:
            st.selectbox("Laterality", ["", *Laterality.values()], key=key(gen, "laterality"),
                         format_func=lambda v: value_label("laterality", v) or "—")
            field("laterality")
    field("guidance")

    st.markdown("**Dose** (as shown on the C-arm)" if not radiation_free else
                "**Images** (ultrasound guidance: no radiation, so no dose fields)")
    c = st.columns([1.3, 1.2, 1.2, 1.2, 1])
    if not radiation_free:
        with c[0]:
            st.text_input("Fluoro time", key=key(gen, "fluoro_time_s"),
                          placeholder="78, 1:18 or 1.3 min",
                          help="Seconds (78), minutes:seconds (1:18), or minutes with a unit "
                               "(1.3 min = 78 s; C-arms show minutes and tenths).")
            field("fluoro_time_s", ("fluoro_time",))
        with c[1]:
            st.text_input("DAP (KAP)", key=key(gen, "dap_value"),
                          help="The dose-area product exactly as displayed; pick its unit.")
            field("dap_value", ("dap_gycm2",))
        with c[2]:
            st.selectbox("DAP unit", DapUnit.values(), key=unit_key,
                         help=f"Defaults to the unit {plain(room or 'this room')} displays.")
            field("dap_unit")
        with c[3]:
            st.text_input("Ka,r (mGy)", key=key(gen, "air_kerma_mgy"),
                          help="Cumulative air kerma at the reference point, in mGy.")
            field("air_kerma_mgy")
    with c[4]:
        st.number_input("Saved images", min_value=0, max_value=10_000, step=1, value=None,
                        key=key(gen, "saved_images"))
        field("saved_images")
    if not radiation_free:
        st.text_input("No DAP on the display? Say why (otherwise leave empty)",
                      key=key(gen, "dap_missing_reason"))
        field("dap_missing_reason")

    detail = layout.contrast_fields(status)
    if detail:
        st.markdown(f"**Contrast** — {CONTRAST_LABELS[status].lower()}")
        c = st.columns(4)
        if "contrast_exception_reason" in detail:
            with c[0]:
                st.selectbox("Why no contrast", ContrastException.values(), index=None,
                             key=key(gen, "contrast_exception_reason"), placeholder="Choose",
                             format_func=lambda v: value_label("contrast_exception_reason", v))
                field("contrast_exception_reason")
            with c[1]:
                st.text_input("Detail of why no contrast (required for Other)",
                              key=key(gen, "contrast_exception_detail"))
                field("contrast_exception_detail")
        if "contrast_agent" in detail:
            with c[0]:
                st.selectbox("Contrast agent", list(CONTRAST_AGENTS),
                             key=key(gen, "contrast_agent"),
                             accept_new_options=True)
                field("contrast_agent")
            with c[1]:
                st.text_input("Contrast volume (mL)", key=key(gen, "contrast_volume_ml"))
                field("contrast_volume_ml")
        if "confirmation_views" in detail:
            with c[2]:
                st.multiselect(f"Views saved (at least {layout.min_views})", View.values(),
                               key=key(gen, "confirmation_views"), select_all=False,
                               filter_mode="prefix",
                               format_func=lambda v: {"CLO": "CLO (contralateral oblique)"}
                               .get(v, v))
                field("confirmation_views")
            with c[3]:
                need = " (required)" if layout.realtime_required else ""
                st.selectbox(f"Real-time fluoro / DSA during contrast{need}", YES_NO,
                             key=key(gen, "realtime_contrast"), format_func=_blank)
                field("realtime_contrast")
        if "vascular_uptake" in detail:
            c = st.columns(4)
            with c[0]:
                st.selectbox("Vascular uptake", YES_NO, key=key(gen, "vascular_uptake"),
                             format_func=_blank)
                field("vascular_uptake")
            with c[1]:
                st.selectbox("Needle repositioned", YES_NO,
                             key=key(gen, "needle_repositioned"), format_func=_blank)
                field("needle_repositioned")

    st.markdown("**Technique and medication** (optional)")
    c = st.columns([1, 1, 1, 1, 2])
    with c[0]:
        st.selectbox("Pulsed fluoro", YES_NO, key=key(gen, "pulsed_fluoro"), format_func=_blank)
        field("pulsed_fluoro")
    with c[1]:
        st.text_input("Pulse rate (pulses/s)", key=key(gen, "pulse_rate_pps"))
        field("pulse_rate_pps")
    with c[2]:
        st.selectbox("Low-dose mode", YES_NO, key=key(gen, "low_dose_mode"), format_func=_blank)
        field("low_dose_mode")
    with c[3]:
        st.number_input("DSA runs", min_value=0, max_value=1000, step=1, value=None,
                        key=key(gen, "dsa_runs"))
        field("dsa_runs")
    with c[4]:
        st.selectbox("Injectate", ["", *Injectate.values()], key=key(gen, "injectate"),
                     format_func=lambda v: value_label("injectate", v) or "—")
        field("injectate")
    case_mix_form.inputs(lambda name: key(gen, name), field, radiation_free,
                         prefs.get("carm_operator"), layout.code == "ILESI")
    st.text_input("Notes", key=key(gen, "notes"))
    field("notes")

    errors.show_others(shown_fields | {"record", "technologist"})
    errors.show("technologist")
    warnings.show_others(shown_fields, warning=True)
    if warnings:
        st.checkbox("I have checked the values flagged above: save with these warnings",
                    key=key(gen, "confirm"))
    st.form_submit_button("Save procedure", type="primary", icon=":material/save:",
                          on_click=_save, args=(gen, layout, status.value))
st.caption("Tab moves between fields; Enter saves. Site, room, physician and procedure are "
           "remembered for your next case.")

mine, _ = service.list(actor, Filters(technologists=(actor.username,), include_voided=True),
                       limit=5)
if mine:
    st.markdown("**Your latest entries**")
    zone_ = state.user_zone()
    recent = pd.DataFrame([{
        "Record": r["record_id"],
        "Performed": (r["performed_at"].astimezone(zone_) if zone_ else
                      r["performed_at"].astimezone()).strftime("%Y-%m-%d %H:%M"),
        "Procedure": r["procedure_code"], "Room": r["room"], "Physician": r["physician"],
        "Status": r["status"]} for r in mine])
    st.dataframe(recent, hide_index=True, width="stretch")
