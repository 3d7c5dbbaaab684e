"""What `fluoro-audit serve` (and `make run`) start with `streamlit run`: the dashboard
(dashboard/app.py) served with the two session-cookie routes of dashboard/cookies.py, through
Streamlit's st.App (an ASGI app: Streamlit's own routes plus ours, on one port).

`streamlit run dashboard/app.py` still serves the app, without those routes: sign-in works, but
a reload signs out (the cookie cannot be set).
"""

from __future__ import annotations

import streamlit as st

from dashboard import cookies

app = st.App("app.py", routes=cookies.routes())
