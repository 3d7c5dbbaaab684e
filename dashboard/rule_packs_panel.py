"""The admin's "Rule packs" tab (issue 15, part B): each practice rule pack with its source and
dates, a switch, and its parameters with their allowed ranges; every change is audited by the
library (audit.rules: set_enabled, set_parameter), which also refuses a value out of range,
naming the parameter."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import streamlit as st

from audit.auth import Actor
from audit.rules import PACKS, list_packs, set_enabled, set_parameter
from dashboard import state
from dashboard.widgets import FieldErrors, plain

PREFIX = "rp_"


def rule_packs_panel(actor: Actor, act: Callable[..., None],
                     errors: Callable[[str], FieldErrors]) -> None:
    """One bordered block per pack: title, source, dates, rules, switch and parameters."""
    specs = {p.key: p for p in PACKS}
    st.caption("Coverage limits and safety rules checked while logging and measured on the "
               "Coverage and safeguards page. Switching a pack off stops its warnings and "
               "leaves it out of the figures; each change is in the audit trail.")
    for pack in list_packs(state.engine(), actor):
        spec = specs.get(pack["key"])
        key = pack["key"]
        with st.container(border=True):
            st.markdown(f"**{'On' if pack['enabled'] else 'Off'}**")
            st.text(pack["title"])
            st.caption(plain(pack["source"]))
            period = (f"In force from {pack['effective_from'] or 'any date'} to "
                      f"{pack['effective_to'] or 'now'}")
            st.caption(period)
            if spec is not None:
                st.text("\n".join(f"• {r.title}" for r in spec.rules))
            label = "Switch off" if pack["enabled"] else "Switch on"
            st.button(label, key=f"{PREFIX}switch_{key}", on_click=act, args=(
                f"rules_{key}",
                lambda k=key, on=not pack["enabled"]: set_enabled(state.engine(), actor, k, on),
                f"Rule pack {key} switched {'on' if not pack['enabled'] else 'off'}."))
            if spec is None:
                continue
            with st.form(f"{PREFIX}form_{key}"):
                for p in spec.parameters:
                    name = f"{PREFIX}{key}_{p.name}"
                    st.session_state.setdefault(name, str(pack["parameters"].get(p.name, "")))
                    if p.choices:
                        st.selectbox(p.description, p.choices, key=name,
                                     help=f"{p.name}; allowed: {p.allowed()}")
                    else:
                        st.text_input(p.description, key=name,
                                      help=f"{p.name}; allowed: {p.allowed()}")
                errors(f"rules_{key}").show_others([])
                st.form_submit_button("Save parameters", on_click=act, args=(
                    f"rules_{key}", lambda k=key, s=spec: _save(actor, k, s),
                    f"Rule pack {key}: parameters saved."))


def _save(actor: Actor, key: str, spec: Any) -> None:
    """Each changed parameter, one audited change each (the first refusal stops)."""
    current = {p["key"]: p for p in list_packs(state.engine(), actor)}[key]["parameters"]
    for p in spec.parameters:
        typed = str(st.session_state.get(f"{PREFIX}{key}_{p.name}", "")).strip()
        if typed != str(current.get(p.name, "")):
            set_parameter(state.engine(), actor, key, p.name, typed)
