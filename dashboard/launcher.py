"""What `fluoro-audit serve` (and `make run`) start with `streamlit run`: the dashboard
(dashboard/app.py) served with the two session-cookie routes of dashboard/cookies.py, through
Streamlit's st.App (an ASGI app: Streamlit's own routes plus ours, on one port).

`streamlit run dashboard/app.py` still serves the app, without those routes: sign-in works, but
a reload signs out (the cookie cannot be set).

The modules the sign-in page runs on (SQLAlchemy, the models, accounts, sessions) are imported
here, while the server starts, rather than by the first visitor's page run, and the schema's
head revision is read once (the engine's first use compares the database with it): about 1.7 s
on the development machine that the first person to open the app after a restart would
otherwise wait (bench/bench_signin_page.py). Nothing that reads records is imported (no pandas,
no frame).
"""

from __future__ import annotations

import streamlit as st

import dashboard.navigation
import dashboard.state
import dashboard.views
import dashboard.widgets
from audit import auth, head_revision, lockout, sessions
from dashboard import cookies

#: Imported for their start-up cost only (see the module docstring).
WARMED = (auth, lockout, sessions, dashboard.navigation, dashboard.state, dashboard.views,
          dashboard.widgets)

head_revision()
app = st.App("app.py", routes=cookies.routes())
