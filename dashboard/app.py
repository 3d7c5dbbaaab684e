"""fluoro-audit dashboard entry point (`fluoro-audit serve` runs this with Streamlit).

First start (no account can sign in): the administrator account is created here instead of a
login. Then sign-in; then st.navigation built from the user's role (dashboard.navigation). The
session ends after `session_idle_minutes` without activity, or on "Sign out".
"""

from __future__ import annotations

import time

import streamlit as st

from audit import auth
from dashboard import analytics, state
from dashboard.navigation import VIEWS, pages_for
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
    """Once a minute, without counting as activity: when the idle time is up, rerun the app,
    which signs out, so an unattended screen stops showing patient data."""
    last = float(st.session_state.get(state.LAST_SEEN_KEY, time.time()))
    if time.time() - last > state.idle_minutes() * 60:
        st.rerun(scope="app")


if auth.needs_first_admin(state.engine()):
    page = st.navigation([st.Page(str(VIEWS / "first_run.py"), title="Set up", default=True)],
                         position="hidden")
else:
    # Start reading the analysis frame in the background on the first visit, so the audit
    # pages are warm by the time someone signs in and opens them (a cached resource: once).
    analytics.frame_cache()
    actor = state.check_session()
    if actor is None:
        page = st.navigation([st.Page(str(VIEWS / "sign_in.py"), title="Sign in",
                                      default=True)], position="hidden")
    else:
        _sidebar(actor)
        if message := state.pop_flash():
            st.success(plain(message), icon=":material/check_circle:")
        page = st.navigation(pages_for(actor))
page.run()
