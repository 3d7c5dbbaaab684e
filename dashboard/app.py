"""fluoro-audit dashboard entry point (`fluoro-audit serve` runs this with Streamlit).

Sign-in comes first; then st.navigation is built from the user's role (dashboard.navigation).
Until the sign-in issue lands, the app acts as a read-only administrator on this machine.
"""

from __future__ import annotations

import streamlit as st

from audit.auth import Actor
from audit.vocab import Role
from dashboard import state
from dashboard.navigation import pages_for

st.set_page_config(page_title="fluoro-audit", page_icon="☢", layout="wide")
actor = state.current_actor()
if actor is None:
    actor = st.session_state[state.ACTOR_KEY] = Actor("local", Role.ADMIN)
st.navigation(pages_for(actor)).run()
