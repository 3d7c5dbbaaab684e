"""The admin's "Sessions" tab: who is signed in now, and ending a session (audit.session_admin).

For a workstation left signed in or a lost laptop: the list shows each live session's account,
role, start, last activity and idle time-out; "End session" signs that browser out at its next
click. The admin's own current session is marked, so nobody ends it by mistake unawares.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
import streamlit as st

from audit.auth import Actor
from audit.errors import FieldError, ValidationFailed
from audit.session_admin import all_live_sessions, end_session
from audit.vocab import Role
from dashboard import state, tables
from dashboard.widgets import plain

PREFIX = "sess_"


def _label(row: pd.Series, own: int | None) -> str:
    who = row["display_name"] or row["username"]
    mine = " (this session: you)" if own is not None and int(row["id"]) == own else ""
    started = tables.local_text(row["created_at"], tables.display_zone()[0]) or ""
    return f"{who}, since {started}{mine}"


def session_panel(actor: Actor, act: Callable[[str, Callable[[], Any], str], None],
                  errors: Any) -> None:
    """The live sessions and the form that ends one; `act(form, work, done)` runs the change
    the admin page's way (errors kept for the form, a notice, a fresh page)."""
    engine = state.engine()
    live = pd.DataFrame(all_live_sessions(engine, actor),
                        columns=["id", "username", "display_name", "role", "created_at",
                                 "last_seen_at", "expires_at"])
    st.caption("Everyone signed in now. A session ends at sign-out, after the idle time-out, "
               "when the account is deactivated or its password reset, or here.")
    shown = live.drop(columns=["id"]).assign(
        display_name=live["display_name"].fillna(""))
    tables.show(shown, enums={"role": Role}, key=f"{PREFIX}table", names={
        "username": "Username", "display_name": "Name", "role": "Role",
        "created_at": "Signed in", "last_seen_at": "Last active",
        "expires_at": "Times out"})
    if live.empty:
        return
    own = st.session_state.get(state.SESSION_KEY)
    labels = {int(r["id"]): _label(r, own) for _, r in live.iterrows()}
    with st.form(f"{PREFIX}end"):
        st.selectbox("Session", list(labels), key=f"{PREFIX}chosen", index=None,
                              format_func=lambda i: plain(labels.get(i, str(i))),
                              placeholder="Choose a session to end")
        errors.show("action", "session")
        st.form_submit_button("End session", icon=":material/logout:", on_click=lambda: act(
            "end_session", lambda: end_session(engine, actor, _chosen()),
            "Session ended: that browser is signed out at its next click."))


def _chosen() -> int:
    value = st.session_state.get(f"{PREFIX}chosen")
    if value is None:
        raise ValidationFailed([FieldError("session", "choose the session to end")])
    return int(value)
