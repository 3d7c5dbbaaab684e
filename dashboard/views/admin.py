"""Admin: users (add, role, password reset, deactivate), sites and rooms (device, display unit,
KAP correction factor), physicians (linked to their account), the procedure catalog, and merging
a duplicate site, room, physician or technologist into the one kept (dashboard/names.py).

Every action is a call into audit.auth / audit.reference_data, which check the admin permission
again, validate, and write the change with its audit event. Nothing is deleted: deactivate instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
import streamlit as st

from audit import auth
from audit import reference_data as admin
from audit.auth import Permission
from audit.errors import AuditError, FieldError, ValidationFailed
from audit.vocab import CatalogRegion, ContrastPolicy, DapUnit, Region, Role
from dashboard import state
from dashboard.names import merge_panel
from dashboard.rule_packs_panel import rule_packs_panel
from dashboard.session_list import session_panel
from dashboard.widgets import FieldErrors, plain
from dashboard.wording import value_label

actor = state.require(Permission.ADMIN)
engine = state.engine()
ss = st.session_state
NOTICE = "adm_notice"


def act(form: str, work: Callable[[], Any], done: str, clear: tuple[str, ...] = (),
        reset: dict[str, Any] | None = None, forget: tuple[str, ...] = ()) -> None:
    """Run one admin action; keep its errors for the form, or a notice and a fresh form.

    A fresh form: each text field in `clear` is set to "" and each key of `reset` to its
    value. Set, not deleted: a widget whose key is only deleted keeps showing what was typed
    in the browser. Keys in `forget` are deleted: their form sets them again (setdefault)
    before drawing. A success also removes every form's earlier errors (they are stale)."""
    errors = FieldErrors(f"adm_err_{form}")
    try:
        work()
    except ValidationFailed as exc:
        errors.set(exc.errors)
        return
    except AuditError as exc:
        errors.set([FieldError("action", str(exc))])
        return
    for name in [k for k in ss if str(k).startswith("adm_err_")]:
        del ss[name]
    ss.update({**dict.fromkeys(clear, ""), **(reset or {})})
    for name in forget:
        ss.pop(name, None)
    ss[NOTICE] = done
    state.data_changed()
    state.service().refresh()


def errs(form: str) -> FieldErrors:
    return FieldErrors(f"adm_err_{form}")


def text(name: str) -> str:
    return str(ss.get(name) or "").strip()


def _same(stored: Any, edited: Any) -> bool:
    """Whether a form value equals the stored one (numbers typed as text included)."""
    if stored is None or (isinstance(stored, float) and pd.isna(stored)):
        return edited in (None, "", [])
    if isinstance(stored, list):
        return sorted(stored) == sorted(edited or [])
    if isinstance(stored, bool) or isinstance(edited, bool):
        return bool(stored) == bool(edited)
    try:
        return float(stored) == float(str(edited).replace(",", "."))
    except ValueError:
        return str(stored) == str(edited)


def password_rules() -> None:
    """The password rules, stated before anyone types one (audit.auth enforces them)."""
    st.caption(f"Passwords need at least {auth.MIN_PASSWORD_LENGTH} characters. Tell the user "
               "the password yourself.")


def when(moment: Any, never: str = "Never") -> str:
    """A stored time in the user's zone, to the minute; `never` when there is none."""
    if moment is None or pd.isna(moment):
        return never
    zone = state.user_zone()
    stamp = pd.Timestamp(moment)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp
    return (stamp.tz_convert(zone) if zone else stamp.tz_convert(None)).strftime(
        "%Y-%m-%d %H:%M")


st.title("Admin")
if notice := ss.pop(NOTICE, None):
    st.success(notice, icon=":material/check_circle:")
# A key and on_change="rerun": the open tab is widget state kept by the server, so a rerun
# (after "Add room", say) shows the same tab instead of jumping back to the first one.
users_tab, rooms_tab, doctors_tab, catalog_tab, merge_tab, sessions_tab, rules_tab = st.tabs(
    ["Users", "Sites and rooms", "Physicians", "Procedure catalog", "Merge names", "Sessions",
     "Rule packs"], key="adm_tab", on_change="rerun")

# --- users ----------------------------------------------------------------------------------------
with users_tab:
    users = pd.DataFrame(auth.list_users(engine, actor),
                         columns=["username", "display_name", "role", "active", "can_sign_in",
                                  "locked", "last_login_at", "created_at"])
    shown_users = users.assign(
        role=[value_label("role", r) for r in users["role"]],
        last_login_at=[when(t) for t in users["last_login_at"]],
        created_at=[when(t, "")[:10] for t in users["created_at"]])
    st.dataframe(shown_users, hide_index=True, width="stretch", column_config={
        "username": "Username", "display_name": "Name", "role": "Role", "active": "Active",
        "can_sign_in": "Can sign in", "locked": "Locked", "last_login_at": "Last sign-in",
        "created_at": "Created",
    })
    left, right = st.columns(2)
    with left, st.form("add_user", clear_on_submit=False):
        st.markdown("**Add a user**")
        e = errs("add_user")
        st.text_input("Username", key="au_username", placeholder="e.g. jsmith")
        e.show("username")
        st.text_input("Full name (optional)", key="au_name")
        st.selectbox("Role", Role.values(), key="au_role",
                     format_func=lambda v: v.replace("_", " "))
        e.show("role")
        password_rules()
        st.text_input("First password", type="password", key="au_password")
        e.show("password")
        e.show_others({"username", "role", "password"})
        st.form_submit_button("Add user", type="primary", on_click=lambda: act(
            "add_user", lambda: auth.add_user(engine, actor, text("au_username"),
                                              text("au_role"), ss.get("au_password") or "",
                                              text("au_name") or None),
            f"User {plain(text('au_username'))} added as {text('au_role')}.",
            ("au_username", "au_name", "au_password")))

    with right:
        st.markdown("**Change a user**")
        names = users["username"].tolist()
        chosen = st.selectbox("User", names, key="cu_user", index=None,
                              placeholder="Choose a user")
        if chosen:
            row = users[users["username"] == chosen].iloc[0]
            with st.form("change_role"):
                e = errs("change_role")
                st.selectbox("Role", Role.values(), index=Role.values().index(row["role"]),
                             key="cu_role", format_func=lambda v: v.replace("_", " "))
                e.show("role", "username", "action")
                st.form_submit_button("Change role", on_click=lambda: act(
                    "change_role", lambda: auth.change_role(engine, actor, chosen,
                                                            text("cu_role")),
                    f"{plain(chosen)} is now {text('cu_role')}."))
            with st.form("reset_password"):
                e = errs("reset_password")
                password_rules()
                st.text_input("New password", type="password", key="cu_password")
                e.show("password", "username", "action")
                st.form_submit_button("Reset password (and unlock)", on_click=lambda: act(
                    "reset_password", lambda: auth.reset_password(
                        engine, actor, chosen, ss.get("cu_password") or ""),
                    f"Password of {plain(chosen)} reset; the account is unlocked.",
                    ("cu_password",)))
            e = errs("activation")
            if row["active"]:
                st.button(f"Deactivate {plain(chosen)}", icon=":material/person_off:",
                          on_click=lambda: act("activation", lambda: auth.deactivate_user(
                              engine, actor, chosen), f"{plain(chosen)} deactivated."))
            else:
                st.button(f"Reactivate {plain(chosen)}", icon=":material/person_add:",
                          on_click=lambda: act("activation", lambda: auth.reactivate_user(
                              engine, actor, chosen), f"{plain(chosen)} reactivated."))
            e.show("username", "action")

# --- sites and rooms ------------------------------------------------------------------------------
with rooms_tab:
    sites = pd.DataFrame(admin.list_sites(engine), columns=["site_id", "name", "active"])
    rooms = pd.DataFrame(admin.list_rooms(engine),
                         columns=["room_id", "site", "name", "make", "model", "serial",
                                  "dap_display_unit", "kap_correction_factor", "active"])
    st.markdown("**Rooms and C-arms**")
    st.dataframe(rooms.drop(columns=["room_id"]), hide_index=True, width="stretch",
                 column_config={"site": "Site", "name": "Room", "make": "Make",
                                "model": "Model", "serial": "Serial",
                                "dap_display_unit": "DAP display unit",
                                "kap_correction_factor": "KAP correction",
                                "active": "Active"})
    left, middle, right = st.columns(3)
    with left, st.form("add_site"):
        st.markdown("**Add a site**")
        e = errs("add_site")
        st.text_input("Site name", key="as_name")
        e.show("name", "action")
        st.form_submit_button("Add site", on_click=lambda: act(
            "add_site", lambda: admin.add_site(engine, actor, text("as_name")),
            f"Site {plain(text('as_name'))} added.", ("as_name",)))
    with left:
        if not sites.empty:
            st.dataframe(sites.drop(columns=["site_id"]), hide_index=True, width="stretch",
                         column_config={"name": "Site", "active": "Active"})
            site_pick = st.selectbox("Site to rename or deactivate", sites["name"].tolist(),
                                     index=None, key="es_site", placeholder="Choose a site")
            if site_pick:
                srow = sites[sites["name"] == site_pick].iloc[0]
                with st.form("edit_site"):
                    e = errs("edit_site")
                    ss.setdefault(f"es_name_{srow['site_id']}", site_pick)
                    st.text_input("Name", key=f"es_name_{srow['site_id']}")
                    st.checkbox("Active", value=bool(srow["active"]),
                                key=f"es_active_{srow['site_id']}")
                    e.show("name", "changes", "action")

                    def _edit_site(row: Any = srow) -> None:
                        sid = int(row["site_id"])
                        changes = {"name": text(f"es_name_{sid}"),
                                   "active": bool(ss.get(f"es_active_{sid}"))}
                        changes = {k: v for k, v in changes.items() if v != row[k]}
                        act("edit_site", lambda: admin.update_site(engine, actor, sid,
                                                                   **changes),
                            f"Site {plain(row['name'])} updated.")

                    st.form_submit_button("Save site", on_click=_edit_site)

    def room_fields(prefix: str, row: Any | None, e: FieldErrors) -> None:
        """The room form's fields, prefilled from `row` when editing."""
        defaults = {"name": "", "make": "", "model": "", "serial": "",
                    "dap_display_unit": DapUnit.GY_CM2.value, "kap_correction_factor": "1"}
        if row is not None:
            defaults = {k: ("" if row[k] is None or pd.isna(row[k]) else str(row[k]))
                        for k in defaults}
        for name in defaults:
            ss.setdefault(prefix + name, defaults[name])
        st.text_input("Room name", key=prefix + "name")
        e.show("name")
        a, b, c = st.columns(3)
        a.text_input("Make", key=prefix + "make")
        b.text_input("Model", key=prefix + "model")
        c.text_input("Serial", key=prefix + "serial")
        e.show("make", "model", "serial")
        st.selectbox("DAP display unit", DapUnit.values(), key=prefix + "dap_display_unit",
                     help="The unit the C-arm shows; the log form offers it first.")
        e.show("dap_display_unit")
        st.text_input("KAP correction factor", key=prefix + "kap_correction_factor",
                      help="Set by the physicist: displayed KAP × factor = patient entrance "
                           "KAP (table attenuation). 1 = none.")
        e.show("kap_correction_factor")

    with middle, st.form("add_room"):
        st.markdown("**Add a room**")
        e = errs("add_room")
        st.selectbox("Site", sites.loc[sites["active"], "name"].tolist(), key="ar_site",
                     index=None, placeholder="Choose a site")
        e.show("site")
        room_fields("ar_", None, e)
        e.show("action")
        st.form_submit_button("Add room", type="primary", on_click=lambda: act(
            "add_room", lambda: admin.add_room(
                engine, actor, text("ar_site"), text("ar_name"), make=text("ar_make") or None,
                model=text("ar_model") or None, serial=text("ar_serial") or None,
                dap_display_unit=text("ar_dap_display_unit"),
                kap_correction_factor=text("ar_kap_correction_factor")),
            f"Room {plain(text('ar_name'))} added at {plain(text('ar_site'))}.",
            ("ar_name", "ar_make", "ar_model", "ar_serial"),
            {"ar_kap_correction_factor": "1", "ar_dap_display_unit": DapUnit.GY_CM2.value}))
    with right:
        st.markdown("**Edit a room**")
        labels = {int(r.room_id): f"{r.name} · {r.site}" for r in rooms.itertuples()}
        room_id = st.selectbox("Room", list(labels), key="er_room", index=None,
                               format_func=lambda i: labels[i], placeholder="Choose a room")
        if room_id is not None:
            rrow = rooms[rooms["room_id"] == room_id].iloc[0]
            with st.form("edit_room"):
                e = errs("edit_room")
                prefix = f"er_{room_id}_"
                room_fields(prefix, rrow, e)
                st.checkbox("Active", value=bool(rrow["active"]), key=prefix + "active")
                e.show("changes", "action", "active")

                def _edit_room(row: Any = rrow, prefix: str = prefix) -> None:
                    changes: dict[str, Any] = {}
                    for name in ("name", "make", "model", "serial", "dap_display_unit"):
                        old = "" if row[name] is None or pd.isna(row[name]) else str(row[name])
                        if text(prefix + name) != old:
                            changes[name] = text(prefix + name)
                    factor = text(prefix + "kap_correction_factor")
                    if factor != str(row["kap_correction_factor"]):
                        changes["kap_correction_factor"] = factor
                    if bool(ss.get(prefix + "active")) != bool(row["active"]):
                        changes["active"] = bool(ss.get(prefix + "active"))
                    act("edit_room", lambda: admin.update_room(engine, actor,
                                                               int(row["room_id"]), **changes),
                        f"Room {plain(row['name'])} updated.")

                st.form_submit_button("Save room", on_click=_edit_room)

# --- physicians -----------------------------------------------------------------------------------
with doctors_tab:
    doctors = pd.DataFrame(admin.list_physicians(engine),
                           columns=["physician_id", "name", "username", "active"])
    st.dataframe(doctors.drop(columns=["physician_id"]), hide_index=True, width="stretch",
                 column_config={"name": "Physician", "username": "Linked account",
                                "active": "Active"})
    accounts = ["", *(u["username"] for u in auth.list_users(engine, actor)
                      if u["role"] == Role.PHYSICIAN.value)]
    left, right = st.columns(2)
    with left, st.form("add_physician"):
        st.markdown("**Add a physician**")
        e = errs("add_physician")
        st.text_input("Name", key="ap_name", placeholder="e.g. Dr. Amelia Chen")
        e.show("name")
        st.selectbox("Linked account (optional)", accounts, key="ap_username",
                     format_func=lambda v: v or "—",
                     help="A physician account sees its own records and scorecard.")
        e.show("username", "action")
        st.form_submit_button("Add physician", type="primary", on_click=lambda: act(
            "add_physician", lambda: admin.add_physician(engine, actor, text("ap_name"),
                                                         text("ap_username") or None),
            f"Physician {plain(text('ap_name'))} added.", ("ap_name", "ap_username")))
    with right:
        st.markdown("**Edit a physician**")
        ids = {int(r.physician_id): r.name for r in doctors.itertuples()}
        doc_id = st.selectbox("Physician", list(ids), key="ep_doc", index=None,
                              format_func=lambda i: ids[i], placeholder="Choose a physician")
        if doc_id is not None:
            drow = doctors[doctors["physician_id"] == doc_id].iloc[0]
            linked = "" if drow["username"] is None or pd.isna(drow["username"]) \
                else str(drow["username"])
            with st.form("edit_physician"):
                e = errs("edit_physician")
                prefix = f"ep_{doc_id}_"
                ss.setdefault(prefix + "name", drow["name"])
                ss.setdefault(prefix + "username", linked)
                st.text_input("Name", key=prefix + "name")
                e.show("name")
                st.selectbox("Linked account", sorted({*accounts, linked}),
                             key=prefix + "username", format_func=lambda v: v or "—")
                e.show("username")
                st.checkbox("Active", value=bool(drow["active"]), key=prefix + "active")
                e.show("changes", "action")

                def _edit_doc(row: Any = drow, prefix: str = prefix, linked: str = linked
                              ) -> None:
                    changes: dict[str, Any] = {}
                    if text(prefix + "name") != row["name"]:
                        changes["name"] = text(prefix + "name")
                    if text(prefix + "username") != linked:
                        changes["username"] = text(prefix + "username") or None
                    if bool(ss.get(prefix + "active")) != bool(row["active"]):
                        changes["active"] = bool(ss.get(prefix + "active"))
                    act("edit_physician", lambda: admin.update_physician(
                        engine, actor, int(row["physician_id"]), **changes),
                        f"Physician {plain(row['name'])} updated.")

                st.form_submit_button("Save physician", on_click=_edit_doc)

# --- procedure catalog ----------------------------------------------------------------------------
CATALOG_LABELS = {
    "code": "Code", "name": "Name", "region": "Region", "level_regions": "Level regions",
    "levels_required": "Levels required", "max_levels": "Max levels",
    "laterality_required": "Laterality required", "contrast_policy": "Contrast policy",
    "realtime_contrast_required": "Real-time contrast required", "min_views": "Min views",
    "typical_time_s": "Typical time (s)", "typical_dap_gycm2": "Typical KAP (Gy·cm²)",
    "max_expected_time_s": "Max expected time (s)", "typical_source": "Source of typical values",
    "active": "Active",
}

with catalog_tab:
    catalog = pd.DataFrame(admin.list_procedure_types(engine), columns=list(admin.CATALOG_FIELDS))
    shown = catalog.copy()
    shown["level_regions"] = ["; ".join(v) for v in shown["level_regions"]]
    st.dataframe(shown, hide_index=True, width="stretch",
                 column_config={k: v for k, v in CATALOG_LABELS.items()})
    st.caption("Typical values feed the plausibility warnings until 30 local records of a type "
               "exist; then the local median is used.")

    def catalog_fields(prefix: str, row: Any | None, e: FieldErrors, new: bool) -> None:
        blank = {"code": "", "name": "", "region": CatalogRegion.OTHER.value,
                 "level_regions": [], "levels_required": False, "max_levels": "",
                 "laterality_required": False, "contrast_policy": ContrastPolicy.REQUIRED.value,
                 "realtime_contrast_required": False, "min_views": 2, "typical_time_s": "",
                 "typical_dap_gycm2": "", "max_expected_time_s": "", "typical_source": "",
                 "active": True}
        for name, default in blank.items():
            value = default if row is None else row[name]
            if isinstance(default, str) and name not in {"region", "contrast_policy"}:
                value = "" if value is None or (not isinstance(value, str) and pd.isna(value)) \
                    else (f"{value:g}" if isinstance(value, float) else str(value))
            ss.setdefault(prefix + name, value)
        a, b = st.columns([1, 2])
        if new:
            a.text_input("Code", key=prefix + "code", placeholder="e.g. GENICULAR_RFA")
        b.text_input("Name", key=prefix + "name")
        e.show("code", "name")
        a, b = st.columns(2)
        a.selectbox("Region", CatalogRegion.values(), key=prefix + "region")
        b.multiselect("Levels accepted from", Region.values(), key=prefix + "level_regions")
        e.show("region", "level_regions")
        a, b, c = st.columns(3)
        a.checkbox("Levels required", key=prefix + "levels_required")
        b.text_input("Max levels per session", key=prefix + "max_levels")
        c.checkbox("Laterality required", key=prefix + "laterality_required")
        e.show("levels_required", "max_levels", "laterality_required")
        a, b, c = st.columns(3)
        a.selectbox("Contrast policy", ContrastPolicy.values(), key=prefix + "contrast_policy")
        b.checkbox("Real-time contrast required", key=prefix + "realtime_contrast_required")
        c.number_input("Minimum views", min_value=0, max_value=4, step=1,
                       key=prefix + "min_views")
        e.show("contrast_policy", "realtime_contrast_required", "min_views")
        a, b, c = st.columns(3)
        a.text_input("Typical time (s)", key=prefix + "typical_time_s")
        b.text_input("Typical KAP (Gy·cm²)", key=prefix + "typical_dap_gycm2")
        c.text_input("Max expected time (s)", key=prefix + "max_expected_time_s")
        e.show("typical_time_s", "typical_dap_gycm2", "max_expected_time_s")
        st.text_input("Source of the typical values", key=prefix + "typical_source")
        e.show("typical_source")

    def catalog_values(prefix: str) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name in admin.CATALOG_FIELDS:
            if prefix + name in ss:
                value = ss[prefix + name]
                values[name] = value.strip() if isinstance(value, str) else value
        return values

    left, right = st.columns(2)
    with left, st.form("add_type"):
        st.markdown("**Add a procedure type**")
        e = errs("add_type")
        catalog_fields("at_", None, e, new=True)
        e.show("action")
        st.form_submit_button("Add procedure type", type="primary", on_click=lambda: act(
            "add_type", lambda: admin.add_procedure_type(engine, actor,
                                                         **catalog_values("at_")),
            f"Procedure type {plain(text('at_code').upper())} added.",
            forget=tuple(f"at_{k}" for k in admin.CATALOG_FIELDS)))
    with right:
        st.markdown("**Edit a procedure type**")
        code = st.selectbox("Procedure type", catalog["code"].tolist(), key="et_code",
                            index=None, placeholder="Choose a code")
        if code:
            crow = catalog[catalog["code"] == code].iloc[0]
            with st.form("edit_type"):
                e = errs("edit_type")
                prefix = f"et_{code}_"
                catalog_fields(prefix, crow, e, new=False)
                st.checkbox("Active", key=prefix + "active")
                e.show("changes", "action", "active")

                def _edit_type(code: str = code, prefix: str = prefix) -> None:
                    fresh = next(r for r in admin.list_procedure_types(engine)
                                 if r["code"] == code)
                    values = catalog_values(prefix)
                    values.pop("code", None)
                    changes = {k: v for k, v in values.items() if not _same(fresh[k], v)}
                    act("edit_type", lambda: admin.update_procedure_type(engine, actor, code,
                                                                         **changes),
                        f"Procedure type {plain(code)} updated.")

                st.form_submit_button("Save procedure type", on_click=_edit_type)


# --- merging duplicate names (issue 11; dashboard/names.py) --------------------------------------
def _merged(message: str) -> None:
    ss[NOTICE] = message
    state.data_changed()
    state.service().refresh()


with merge_tab:
    merge_panel(actor, _merged)

with sessions_tab:
    session_panel(actor, act, errs("end_session"))

with rules_tab:
    rule_packs_panel(actor, act, errs)
