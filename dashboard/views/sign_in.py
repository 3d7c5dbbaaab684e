"""Sign in: username and password, checked by audit.auth.authenticate (Argon2id, lockout after
repeated failures, every attempt in the audit trail), and, where the site configured its OpenID
Connect provider, "Sign in with single sign-on" (dashboard.sso). Shown at the root and at every
page's address while signed out (dashboard.navigation), so a deep link goes on to its page."""

from __future__ import annotations

import streamlit as st

from audit import auth, lockout
from audit.errors import PermissionDenied
from dashboard import sso, state
from dashboard.widgets import plain


def _sign_in() -> None:
    username = st.session_state.get("si_username", "")
    password = st.session_state.get("si_password", "")
    st.session_state["si_password"] = ""
    if not username.strip() or not password:
        st.session_state["si_error"] = "Enter your username and password."
        return
    try:
        actor = auth.authenticate(state.engine(), username, password)
    except auth.SignInFailed as exc:
        st.session_state["si_error"] = str(exc)
        return
    try:
        state.sign_in(actor)  # a stored session; the browser collects its cookie
    except PermissionDenied:  # the account was disabled since the password was checked
        st.session_state["si_error"] = lockout.FAILED
        return
    st.session_state.pop("si_error", None)


_, middle, _ = st.columns([1, 2, 1])
with middle:
    st.title("fluoro-audit")
    st.caption("Fluoroscopy procedure log and radiation audit")
    message = state.pop_flash()
    if message:
        st.info(plain(message), icon=":material/info:")
    with st.form("sign_in"):
        st.text_input("Username", key="si_username", autocomplete="username")
        st.text_input("Password", type="password", key="si_password",
                      autocomplete="current-password")
        error = st.session_state.pop("si_error", None)
        if error:
            st.error(plain(error), icon=":material/error:")
        st.form_submit_button("Sign in", type="primary", on_click=_sign_in)
    if sso.configured():
        refused = sso.refusal()
        if refused:
            st.error(plain(refused), icon=":material/error:")
            st.button("Use another account", key="sso_sign_out", on_click=sso.end_identity)
        else:
            st.caption("Or, with your organisation's account:")
            sso.offer()
