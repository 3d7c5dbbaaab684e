"""The case-mix part of the "Log procedure" form (issue 15): height, who drove the C-arm,
trainee, contrast class, and a complication noticed during the procedure.

Why apart from the page: the page module is near its size limit, and these inputs are one
self-contained block; the values go into the same dictionary-field input as the rest, so the
service validates them exactly as for `fluoro-audit log`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import streamlit as st

from audit.log import FormLayout
from audit.vocab import (
    CarmOperator,
    ComplicationKind,
    ComplicationSeverity,
    ContrastClass,
    ContrastConfirmation,
)
from dashboard.wording import value_label

YES_NO = ["", "yes", "no"]
#: The complication picker's first choice: nothing happened (the usual answer).
NO_COMPLICATION = ""


def _tri(choice: str | None) -> bool | None:
    return {"yes": True, "no": False}.get(choice or "")


def inputs(key: Callable[[str], str], field: Callable[[str], None], radiation_free: bool,
           operator_default: str | None, ilesi: bool = False) -> None:
    """The widgets, inside the page's form. The operator defaults to the one this user chose
    last (remembered like the room); under ultrasound no C-arm is used, so it is not asked.
    An ILESI asks whether a contrast test dose was given (the 2015 safeguards)."""
    st.markdown("**Case mix** (optional: makes dose comparisons fair)")
    c = st.columns([1, 1.4, 1, 1.4])
    with c[0]:
        st.text_input("Height (cm)", key=key("patient_height_cm"),
                      help="With the weight it gives the body mass index.")
        field("patient_height_cm")
    if not radiation_free:
        with c[1]:
            choices = ["", *CarmOperator.values()]
            st.session_state.setdefault(key("carm_operator"), operator_default or "")
            st.selectbox("C-arm operated by", choices, key=key("carm_operator"),
                         format_func=lambda v: value_label("carm_operator", v) or "—")
            field("carm_operator")
    with c[2]:
        st.selectbox("Trainee present", YES_NO, key=key("trainee_present"),
                     format_func=lambda v: value_label("trainee_present", v) or "—")
        field("trainee_present")
    with c[3]:
        st.selectbox("Contrast class", ["", *ContrastClass.values()],
                     key=key("contrast_class"),
                     format_func=lambda v: value_label("contrast_class", v) or "—")
        field("contrast_class")
    if ilesi:
        st.selectbox("Contrast test dose given", YES_NO, key=key("contrast_test_dose"),
                     format_func=lambda v: value_label("contrast_test_dose", v) or "—",
                     help="ILESI: a test dose of contrast before the injectate (Rathmell "
                          "2015); the safeguards pack warns without it.")
        field("contrast_test_dose")
    st.markdown("**Complication during the procedure** (leave at None if there was none)")
    c = st.columns([1.5, 1, 2.5])
    with c[0]:
        st.selectbox("Complication", [NO_COMPLICATION, *ComplicationKind.values()],
                     key=key("complication_kind"),
                     format_func=lambda v: value_label("complication_kind", v) or "None")
    with c[1]:
        st.selectbox("Severity", ["", *ComplicationSeverity.values()],
                     key=key("complication_severity"),
                     format_func=lambda v: value_label("complication_severity", v) or "—",
                     help="Contrast reactions: the ACR grades (mild: self-limited; moderate: "
                          "needs treatment; severe: life-threatening).")
    with c[2]:
        st.text_input("What happened (required for Other)", key=key("complication_detail"))
    field("complications")


def contrast_choices(layout: FormLayout, radiation_free: bool) -> list[str]:
    """The contrast statuses offered: the catalog policy's, plus "not required" under
    ultrasound where real-time contrast is not the type's safeguard (audit.contrast_rule)."""
    choices = [c.value for c in layout.contrast_choices]
    if (radiation_free and not layout.realtime_required
            and ContrastConfirmation.NOT_REQUIRED.value not in choices):
        choices.append(ContrastConfirmation.NOT_REQUIRED.value)
    return choices


def values(get: Callable[[str], Any], radiation_free: bool) -> dict[str, Any]:
    """The block's values as dictionary-field input (blanks are left out by build_record)."""
    kind = get("complication_kind")
    noted = ([{"kind": kind, "severity": get("complication_severity") or None,
               "detail": get("complication_detail") or None}] if kind else [])
    return {"patient_height_cm": get("patient_height_cm"),
            "carm_operator": None if radiation_free else get("carm_operator") or None,
            "trainee_present": _tri(get("trainee_present")),
            "contrast_class": get("contrast_class") or None,
            "contrast_test_dose": _tri(get("contrast_test_dose")),
            "complications": noted}


#: Dose inputs an ultrasound-guided record does not send (audit.log.case_mix.radiation_free).
DOSE_INPUTS = ("fluoro_time_s", "dap_value", "dap_unit", "dap_missing_reason", "air_kerma_mgy",
               "pulsed_fluoro", "pulse_rate_pps", "low_dose_mode", "dsa_runs")


def for_guidance(record: dict[str, Any], radiation_free: bool) -> dict[str, Any]:
    """The record without dose inputs left over from before ultrasound was chosen."""
    if not radiation_free:
        return record
    return {k: v for k, v in record.items() if k not in DOSE_INPUTS}
