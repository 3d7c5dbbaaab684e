"""A record's complications on its detail (issue 15): the list, and a small form to record one
found later (a follow-up call), for the roles that may (technologist, physician, rso, admin).

The library decides who may and checks every value (audit.log.complications); this module only
draws and words. Apart from dashboard/views/records.py, which is long enough.
"""

from __future__ import annotations

from datetime import date, datetime, time

import pandas as pd
import streamlit as st

from audit.auth import Actor, Permission
from audit.errors import AuditError, FieldError, ValidationFailed
from audit.log import list_complications, record_complication
from audit.vocab import ComplicationKind, ComplicationSeverity, ComplicationTiming
from dashboard import state
from dashboard.widgets import FieldErrors, plain
from dashboard.wording import value_label

ERRORS = "rec_complication_errors"
NOTICE = "rec_complication_notice"


def _noticed_at(day: date | None) -> str | None:
    """The day picked, as the end of that day in the user's zone (or now, for today): a day
    has no time, and the end of it is never before the procedure it follows."""
    if day is None:
        return None
    zone = state.user_zone()
    moment = datetime.combine(day, time(23, 59))
    moment = moment.replace(tzinfo=zone) if zone else moment.astimezone()
    now = datetime.now(moment.tzinfo)
    return min(moment, now).isoformat()


def _save(actor: Actor, record_id: int) -> None:
    ss = st.session_state
    errors = FieldErrors(ERRORS)
    kind = ss.get(f"cx_kind_{record_id}")
    try:
        cid = record_complication(
            state.engine(), actor, record_id, kind, ss.get(f"cx_severity_{record_id}"),
            ss.get(f"cx_detail_{record_id}") or None,
            noticed_at=_noticed_at(ss.get(f"cx_day_{record_id}")),
            timing=ss.get(f"cx_timing_{record_id}") or ComplicationTiming.FOLLOW_UP.value)
    except ValidationFailed as exc:
        errors.set(exc.errors)
        return
    except AuditError as exc:
        errors.set([FieldError("complication", str(exc))])
        return
    errors.clear()
    ss[NOTICE] = (f"Complication {cid} recorded on record {record_id} "
                  f"({value_label('complication_kind', kind)}); it is in the record's history "
                  "and the complication rates.")
    for name in ("kind", "severity", "detail", "day"):
        ss.pop(f"cx_{name}_{record_id}", None)
    state.data_changed()


def section(actor: Actor, record_id: int, void: bool) -> None:
    """The list, and the form where the actor may record one."""
    st.markdown("#### Complications")
    found = list_complications(state.engine(), actor, record_id)
    if found:
        st.table(pd.DataFrame([{
            "Complication": value_label("complication_kind", c["kind"]),
            "Severity": value_label("complication_severity", c["severity"]),
            "What happened": c["detail"] or "",
            "Recorded": value_label("complication_timing", c["timing"]),
            "Noticed": (c["noticed_at"] or "")[:10],
            "Status": "Void: " + (c["void_reason"] or "") if c["status"] == "void" else "Final",
        } for c in found]))
    else:
        st.caption("No complication recorded.")
    if notice := st.session_state.pop(NOTICE, None):
        st.success(plain(notice), icon=":material/check_circle:")
    if void or not actor.can(Permission.RECORD_COMPLICATION):
        return
    errors = FieldErrors(ERRORS)
    with st.expander("Record a complication (for example found at a follow-up call)"), \
            st.form(f"complication_{record_id}"):
        c = st.columns([1.5, 1, 1.2, 1.2])
        c[0].selectbox("Complication", ComplicationKind.values(), index=None,
                       key=f"cx_kind_{record_id}", placeholder="Choose",
                       format_func=lambda v: value_label("complication_kind", v))
        c[1].selectbox("Severity", ComplicationSeverity.values(), index=None,
                       key=f"cx_severity_{record_id}", placeholder="Choose",
                       format_func=lambda v: value_label("complication_severity", v),
                       help="Contrast reactions: ACR grades (mild: self-limited; moderate: "
                            "needs treatment; severe: life-threatening).")
        c[2].selectbox("When", ComplicationTiming.values(), key=f"cx_timing_{record_id}",
                       index=1, format_func=lambda v: value_label("complication_timing", v))
        c[3].date_input("Noticed on (optional)", value=None, key=f"cx_day_{record_id}")
        st.text_input("What happened (required for Other)", key=f"cx_detail_{record_id}")
        errors.show_others([])
        st.form_submit_button("Record complication", on_click=_save, args=(actor, record_id))
