"""Per-process resources and per-session state shared by every page.

The engine and the service are owned here (st.cache_resource), not st.connection: its query
cache never expires, and audit figures must change the moment a record is saved. Pages cache
only DataFrames (st.cache_data) and call `data_changed()` after every write.
"""

from __future__ import annotations

import os

import streamlit as st
from sqlalchemy import Engine

from audit.auth import Actor, Permission
from audit.db import make_engine
from audit.records import ProcedureLog

ACTOR_KEY = "actor"


@st.cache_resource
def engine() -> Engine:
    return make_engine(os.environ.get("FLUORO_AUDIT_DB"))


@st.cache_resource
def service() -> ProcedureLog:
    return ProcedureLog(engine())


def current_actor() -> Actor | None:
    """The signed-in user, or None."""
    actor = st.session_state.get(ACTOR_KEY)
    return actor if isinstance(actor, Actor) else None


def require(permission: Permission) -> Actor:
    """Stop the page unless the signed-in user holds `permission` (checked on every page, not
    only by hiding it from the navigation)."""
    actor = current_actor()
    if actor is None:
        st.error("Please sign in.")
        st.stop()
    if not actor.can(permission):
        st.error(f"Your role ({actor.role.value}) cannot open this page.")
        st.stop()
    return actor


def data_changed() -> None:
    """Call after any write: cached figures and tables must show it at once."""
    st.cache_data.clear()
