"""First start: no account can sign in yet, so the app asks for the administrator account.

audit.auth.create_first_admin re-checks "no accounts" in the same transaction, so this page
cannot be used to add a second administrator once setup is done. The password rules are stated
before the password is typed, and every rule a try breaks is listed at once (a short password
typed differently twice is told both).
"""

from __future__ import annotations

import streamlit as st

from audit import auth
from audit.errors import FieldError, PermissionDenied, ValidationFailed
from dashboard import state
from dashboard.widgets import FieldErrors

errors = FieldErrors("fr_errors")


def _unmet(username: str, password: str, repeat: str) -> list[FieldError]:
    """Every rule the form breaks, checked by the library's own rules (audit.auth)."""
    found: list[FieldError] = []
    for check in (lambda: auth.validate_username(username),
                  lambda: auth.check_password_strength(password)):
        try:
            check()
        except ValidationFailed as exc:
            found += exc.errors
    if password != repeat:
        found.append(FieldError("repeat", "the two passwords differ: type the same password "
                                "twice"))
    return found


def _create() -> None:
    ss = st.session_state
    password, repeat = ss.get("fr_password", ""), ss.get("fr_repeat", "")
    ss["fr_password"] = ss["fr_repeat"] = ""
    if unmet := _unmet(ss.get("fr_username", ""), password, repeat):
        errors.set(unmet)
        return
    try:
        actor = auth.create_first_admin(state.engine(), ss.get("fr_username", ""), password,
                                        ss.get("fr_display_name") or None)
    except ValidationFailed as exc:
        errors.set(exc.errors)
        return
    except PermissionDenied as exc:
        errors.set([FieldError("setup", str(exc))])
        return
    errors.clear()
    state.sign_in(actor)
    state.flash(f"Administrator {actor.username} created. Next: add the people who will use "
                "fluoro-audit under Admin → Users.")


_, middle, _ = st.columns([1, 2, 1])
with middle:
    st.title("Welcome to fluoro-audit")
    st.write("No accounts exist yet. Create the **administrator** account: the administrator "
             "adds technologists and other users, rooms, physicians and procedure types.")
    with st.form("first_admin"):
        st.text_input("Administrator username", key="fr_username", autocomplete="username",
                      placeholder="e.g. admin")
        errors.show("username")
        st.text_input("Full name (optional)", key="fr_display_name")
        errors.show("display_name")
        st.caption(f"The password needs at least {auth.MIN_PASSWORD_LENGTH} characters, typed "
                   "the same twice.")
        st.text_input("Password", type="password", key="fr_password",
                      autocomplete="new-password")
        errors.show("password")
        st.text_input("Repeat the password", type="password", key="fr_repeat",
                      autocomplete="new-password")
        errors.show("repeat")
        errors.show_others({"username", "display_name", "password", "repeat"})
        st.form_submit_button("Create administrator account", type="primary", on_click=_create)
