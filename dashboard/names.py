"""Names on screen (issue 11): the log form's "Add a new site, room or physician" and the Admin
page's "Merge names".

Why a panel of its own: the log form's name fields select existing names only, so a partial
name and Enter can never create one. Adding a name is this explicit action, which shows the near
names ("did you mean 'Dr. Amelia Chen'?") and needs a tick before it creates a name that is
near another; a room asks for the unit its DAP display shows. The rules live in the library
(audit.log.add_name, audit.log.merge_names); this module draws them and keeps their outcome in
st.session_state for the rerun that shows it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import streamlit as st

from audit import Actor, auth
from audit import reference_data as admin
from audit.errors import (
    AuditError,
    FieldError,
    NearNamesFound,
    ValidationFailed,
    WarningsNotConfirmed,
)
from audit.log import FORM_KINDS, NAME_KINDS, NameAdded, add_name, merge_names, near_matches
from audit.vocab import DapUnit
from dashboard import state
from dashboard.widgets import FieldErrors, plain

ADD = "lpn_"
MERGE = "mg_"


def _pop(*keys: str) -> None:
    for name in keys:
        st.session_state.pop(name, None)


# --- the log form's "Add new" ---------------------------------------------------------------------

def add_new_panel(actor: Actor, site: str | None, select: Callable[[NameAdded], None]) -> None:
    """The explicit way to a new site, room (at `site`) or physician; `select(added)` runs in
    the callback, before the form is drawn again, to choose the added (or existing) name."""
    ss = st.session_state
    errors = FieldErrors(f"{ADD}errors")
    pending: dict[str, Any] | None = ss.get(f"{ADD}pending")
    done = ss.pop(f"{ADD}done", None)
    # Once used, the panel stays open (ADD + "open", until a record is saved): a panel that
    # closed between adding a site and adding its room would be in the way. For the same
    # reason nothing is drawn above it only sometimes (that would draw it anew, closed).
    with st.expander("Add a new site, room or physician",
                     expanded=bool(errors or pending or ss.get(f"{ADD}open")),
                     icon=":material/add_circle:"):
        if done:
            st.success(plain(done), icon=":material/check_circle:")
        kind = st.radio("What to add", FORM_KINDS, key=f"{ADD}kind", horizontal=True)
        at = f" (at {site})" if kind == "room" and site else ""
        st.text_input(f"New {kind} name{plain(at)}", key=f"{ADD}name",
                      placeholder="Dr. Amelia Chen" if kind == "physician" else "")
        errors.show("name", "kind", "site")
        if kind == "room":
            st.selectbox("DAP display unit of this C-arm", DapUnit.values(), index=None,
                         key=f"{ADD}unit", placeholder="Choose the unit its display shows",
                         help="The unit the form proposes for this room's DAP.")
            errors.show("dap_display_unit")
        if pending and pending["kind"] == kind:
            st.warning(plain(pending["message"]), icon=":material/warning:")
            for number, match in enumerate(pending["matches"]):
                st.button(f"Use {plain(match)}", key=f"{ADD}use_{number}",
                          on_click=_use, args=(kind, match, site, select))
            st.checkbox(f"{plain(repr(pending['name']))} is a different {kind}: add it",
                        key=f"{ADD}confirm")
        st.button(f"Add {kind}", key=f"{ADD}add", icon=":material/add:",
                  on_click=_add, args=(actor, site, select))


def _use(kind: str, name: str, site: str | None, select: Callable[[NameAdded], None]) -> None:
    _finish(NameAdded(kind, name, False, site), select)


def close_add_panel() -> None:
    """Let the panel close again (the log form calls this once a record is saved)."""
    st.session_state.pop(f"{ADD}open", None)


def _add(actor: Actor, site: str | None, select: Callable[[NameAdded], None]) -> None:
    ss = st.session_state
    ss[f"{ADD}open"] = True
    errors = FieldErrors(f"{ADD}errors")
    kind, name = ss.get(f"{ADD}kind") or "site", str(ss.get(f"{ADD}name") or "")
    pending = ss.get(f"{ADD}pending")
    confirm = bool(ss.get(f"{ADD}confirm")) and pending is not None \
        and (pending["kind"], pending["name"]) == (kind, " ".join(name.split()))
    try:
        added = add_name(state.engine(), actor, kind, name, site=site,
                         dap_display_unit=ss.get(f"{ADD}unit"), confirm=confirm)
    except NearNamesFound as exc:
        errors.clear()
        ss[f"{ADD}pending"] = {"kind": kind, "name": " ".join(name.split()),
                               "message": exc.warnings[0].message, "matches": exc.matches}
        ss[f"{ADD}confirm"] = False
        return
    except ValidationFailed as exc:
        errors.set(exc.errors)
        return
    except AuditError as exc:
        errors.set([FieldError("name", str(exc))])
        return
    _finish(added, select)


def _finish(added: NameAdded, select: Callable[[NameAdded], None]) -> None:
    """Choose the name in the form and empty the panel."""
    FieldErrors(f"{ADD}errors").clear()
    _pop(f"{ADD}pending", f"{ADD}confirm", f"{ADD}unit")
    st.session_state[f"{ADD}name"] = ""
    st.session_state[f"{ADD}done"] = (
        f"Added {added.kind} {added.name!r}: chosen." if added.created
        else f"{added.name!r} exists: chosen.")
    state.data_changed()
    select(added)


# --- the Admin page's "Merge names" -------------------------------------------------------------

def _names(engine: Any, actor: Actor, kind: str, site: str | None) -> list[str]:
    """The names a merge can choose from: active ones; every account for technologists (a
    duplicate account is deactivated before it is merged)."""
    if kind == "site":
        return [r["name"] for r in admin.list_sites(engine, active_only=True)]
    if kind == "room":
        return [r["name"] for r in admin.list_rooms(engine, active_only=True)
                if r["site"] == site]
    if kind == "physician":
        return [r["name"] for r in admin.list_physicians(engine, active_only=True)]
    return [u["username"] for u in auth.list_users(engine, actor)]


def merge_panel(actor: Actor, done: Callable[[str], None]) -> None:
    """Merge a duplicate into the name kept; `done(message)` after a merge."""
    engine = state.engine()
    errors = FieldErrors(f"{MERGE}errors")
    st.markdown("**Merge a duplicate name into the one to keep**")
    st.caption("Every record of the duplicate is re-pointed to the kept name, each with its "
               "own audited amendment; the duplicate is deactivated (never deleted) and its "
               "name means the kept one from now on.")
    kind = st.radio("Kind", NAME_KINDS, key=f"{MERGE}kind", horizontal=True)
    site = None
    if kind == "room":
        site = st.selectbox("Site of both rooms", _names(engine, actor, "site", None),
                            key=f"{MERGE}site", index=None, placeholder="Choose the site")
    options = _names(engine, actor, kind, site)
    left, right = st.columns(2)
    with left:
        source = st.selectbox("Duplicate (merged away)", options, index=None,
                              key=f"{MERGE}source", placeholder=f"Choose the duplicate {kind}")
        errors.show("source", "site", "kind")
    with right:
        target = st.selectbox("Keep", [o for o in options if o != source], index=None,
                              key=f"{MERGE}target", placeholder=f"Choose the {kind} to keep")
        errors.show("target")
    if source:
        near = near_matches(source, [o for o in options if o != source], kind)
        if near:
            st.caption(plain(f"Names near {source!r}: " + ", ".join(repr(n) for n in near)))
    st.text_input("Reason (kept in the audit trail)", key=f"{MERGE}reason")
    errors.show("reason")
    warnings = FieldErrors(f"{MERGE}warnings")
    warnings.show("room", warning=True)
    if warnings:
        st.checkbox("Merge anyway", key=f"{MERGE}confirm")
    errors.show_others({"source", "site", "kind", "target", "reason"})
    st.button("Merge", type="primary", icon=":material/merge:", key=f"{MERGE}go",
              disabled=not (source and target), on_click=_merge, args=(actor, done))


def _merge(actor: Actor, done: Callable[[str], None]) -> None:
    ss = st.session_state
    errors, warnings = FieldErrors(f"{MERGE}errors"), FieldErrors(f"{MERGE}warnings")
    kind, source, target = ss.get(f"{MERGE}kind"), ss.get(f"{MERGE}source"), \
        ss.get(f"{MERGE}target")
    try:
        result = merge_names(state.engine(), actor, str(kind), str(source or ""),
                             str(target or ""), str(ss.get(f"{MERGE}reason") or ""),
                             site=ss.get(f"{MERGE}site"),
                             confirm_warnings=bool(ss.get(f"{MERGE}confirm")) and bool(warnings))
    except WarningsNotConfirmed as exc:
        errors.clear()
        warnings.set(exc.warnings)
        return
    except ValidationFailed as exc:
        errors.set(exc.errors)
        return
    except AuditError as exc:
        errors.set([FieldError("action", str(exc))])
        return
    errors.clear()
    warnings.clear()
    _pop(f"{MERGE}source", f"{MERGE}target", f"{MERGE}reason", f"{MERGE}confirm")
    done(f"Merged {kind} {result.source!r} into {result.target!r}: "
         f"{len(result.record_ids)} record(s) re-pointed.")
