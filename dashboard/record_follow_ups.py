"""A record's follow-ups on its detail (issue 15, part B): the outcomes recorded so far and a
small form to record one (percent relief, for how many days), for the roles that may
(technologist, physician, admin). The repeat rules of the Coverage and safeguards page read
them. The library checks the role, the record and every value (audit.rules.follow_up)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from audit.auth import Actor, Permission
from audit.errors import AuditError, FieldError, ValidationFailed
from audit.rules import list_follow_ups, record_follow_up
from dashboard import state
from dashboard.widgets import FieldErrors, plain

ERRORS = "rec_follow_up_errors"
NOTICE = "rec_follow_up_notice"


def _save(actor: Actor, record_id: int) -> None:
    ss = st.session_state
    errors = FieldErrors(ERRORS)
    try:
        fid = record_follow_up(state.engine(), actor, record_id, ss.get(f"fu_day_{record_id}"),
                               ss.get(f"fu_relief_{record_id}"), ss.get(f"fu_days_{record_id}"),
                               ss.get(f"fu_note_{record_id}") or None)
    except ValidationFailed as exc:
        errors.set(exc.errors)
        return
    except AuditError as exc:
        errors.set([FieldError("follow_up", str(exc))])
        return
    errors.clear()
    ss[NOTICE] = (f"Follow-up {fid} recorded on record {record_id}; it is in the record's "
                  "history and the repeat rules read it.")
    for name in ("day", "relief", "days", "note"):
        ss.pop(f"fu_{name}_{record_id}", None)
    state.data_changed()


def section(actor: Actor, record_id: int, void: bool) -> None:
    """The list, and the form where the actor may record one."""
    st.markdown("#### Follow-up")
    found = list_follow_ups(state.engine(), actor, record_id)
    if found:
        st.table(pd.DataFrame([{
            "Followed up on": f["followed_up_on"], "Relief (%)": str(f["relief_percent"]),
            "For (days)": str(f["relief_days"]), "Note": plain(f["note"] or ""),
            "Recorded by": plain(f["created_by"])} for f in found]))
    else:
        st.caption("No follow-up recorded.")
    if notice := st.session_state.pop(NOTICE, None):
        st.success(plain(notice), icon=":material/check_circle:")
    if void or not actor.can(Permission.RECORD_FOLLOW_UP):
        return
    errors = FieldErrors(ERRORS)
    with st.expander("Record a follow-up (the outcome: relief and how long it lasted)"), \
            st.form(f"follow_up_{record_id}"):
        c = st.columns(3)
        c[0].date_input("Followed up on", value=None, key=f"fu_day_{record_id}")
        c[1].number_input("Relief (%)", min_value=0, max_value=100, step=5, value=None,
                          key=f"fu_relief_{record_id}")
        c[2].number_input("For how many days", min_value=0, max_value=3650, step=1,
                          value=None, key=f"fu_days_{record_id}",
                          help="3 months = 90 days; so far, if it still lasts.")
        st.text_input("Note (optional)", key=f"fu_note_{record_id}")
        errors.show_others([])
        st.form_submit_button("Record follow-up", on_click=_save, args=(actor, record_id))
