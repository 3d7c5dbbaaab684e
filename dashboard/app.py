"""fluoro-audit dashboard entry point (`fluoro-audit serve` runs it through dashboard/launcher.py,
which adds the session-cookie routes).

First start (no account can sign in): the administrator account is created here instead of a
login. Then sign-in, at the root or at any page's address (a deep link goes on to its page after
sign-in); then st.navigation built from the user's role (dashboard.navigation). A reload keeps the
session (its cookie); it ends after `session_idle_minutes` without activity, or on "Sign out".

The sign-in page loads nothing it does not need: the analysis frame (pandas, every record) starts
loading only once someone who can open the audit pages has signed in.
"""

from __future__ import annotations

import time

import streamlit as st

from audit import auth
from audit.auth import Permission
from audit.errors import PermissionDenied
from dashboard import sso, state
from dashboard.navigation import VIEWS, pages_for, refused, signed_out_pages, start_page
from dashboard.widgets import plain

st.set_page_config(page_title="fluoro-audit", page_icon="☢", layout="wide")
# No table's toolbar offers "Download as CSV" (nor copies cells): the Records, Alerts and
# Reconciliation tables carry MRNs for roles that see PHI, and data leave through the Export
# page, audited. `fluoro-audit serve` passes this on Streamlit's command line; set here too
# so that a bare `streamlit run dashboard/app.py`, from any folder, keeps it (it reaches the
# browser with the next run, and every page with a table comes after sign-in).
st.set_option("client.disableDataExport", True)


def _sidebar(actor: auth.Actor) -> None:
    with st.sidebar:
        role = actor.role.value.replace("_", " ")
        st.markdown(f"Signed in as **{plain(actor.username)}** ({role})")
        st.button("Sign out", key="sign_out", icon=":material/logout:",
                  on_click=state.sign_out, kwargs={"message": "You have signed out."})
        st.caption(f"Sessions end after {state.idle_minutes():g} min without activity.")
        _idle_watch()


@st.fragment(run_every=60)
def _idle_watch() -> None:
    """Once a minute, without counting as activity: when the idle time may be up, rerun the
    app, whose session check (a look, not activity) signs out if it is, so an unattended
    screen stops showing patient data."""
    last = float(st.session_state.get(state.LAST_SEEN_KEY, time.time()))
    if time.time() - last > state.idle_minutes() * 60:
        state.probe_idle()
        st.rerun(scope="app")


def _single_sign_on() -> auth.Actor | None:
    """The account a single sign-on identity signs in as, now with fluoro-audit's own session
    and cookie; None without one (or when refused: the sign-in page says why)."""
    actor = sso.signed_in_account(state.engine())
    if actor is None:
        return None
    try:
        state.sign_in(actor)
    except PermissionDenied:  # disabled between the match and the session
        return None
    return actor


# Always the first element of the page, so nothing after it moves when the cookie script is
# drawn into it (once, after a sign-in or a sign-out) and gone again at the next run.
cookie_slot = st.empty()
if auth.needs_first_admin(state.engine()):
    page = st.navigation([st.Page(str(VIEWS / "first_run.py"), title="Set up", default=True)],
                         position="hidden")
else:
    actor = state.check_session()
    if actor is None:
        actor = _single_sign_on()
    if actor is None:
        page = st.navigation(signed_out_pages(), position="hidden")
    else:
        # expanded: every page listed (an admin has 13; collapsed, some hide behind "View more")
        page = st.navigation(pages_for(actor), expanded=True)
        spec = refused(page, actor)
        start = start_page(actor)
        if spec is not None and start is not None:
            role = actor.role.value.replace("_", " ")
            state.notice(f"{spec.title} is not available for your role ({role}).")
            st.switch_page(str(VIEWS / start.module))
        if actor.can(Permission.VIEW_DASHBOARDS):  # their audit pages read the frame
            state.warm_analysis_frame()
        _sidebar(actor)
        if message := state.pop_notice():
            st.warning(plain(message), icon=":material/block:")
        if message := state.pop_flash():
            st.success(plain(message), icon=":material/check_circle:")
state.cookie_script(cookie_slot)
page.run()
