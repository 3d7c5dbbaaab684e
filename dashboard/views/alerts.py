"""Alerts: SRDL exceedances, investigation levels and cumulative dose, with the RSO's
follow-up (docs/design.md §3).

What the page is for: deciding what to do next. So it shows how many alerts per 100 procedures
(a count alone says nothing), which patients and which physicians the open alerts belong to,
and lets the RSO acknowledge several alerts at once, but only ones ticked one by one in a
table: a type-to-search picker once selected every alert whose text matched what was typed.
A failed submit keeps the ticks and shows the error next to what must change; a successful
one says what was acknowledged.
"""

from __future__ import annotations

import hashlib
from datetime import date

import pandas as pd
import streamlit as st

from audit.alerts import (
    INVESTIGATION_SETTINGS,
    KINDS_BY_PRIORITY,
    THRESHOLD_SETTINGS,
    acknowledge_many,
    acknowledgement_errors,
    alert_counts,
    alert_rates,
    levels_in_force,
    list_alerts,
    open_by_patient,
    open_by_physician,
    refresh_alerts,
    review_levels,
)
from audit.auth import Permission
from audit.errors import AuditError, FieldError, ValidationFailed
from audit.vocab import AlertKind
from dashboard import analytics, charts, labels, state, tables
from dashboard.analytics import chart_and_table
from dashboard.labels import glossary
from dashboard.widgets import FieldErrors, plain

#: Alert kinds in words, and "all" (the rates table's total row).
KINDS = {**{k: labels.value_label(AlertKind, k) for k in AlertKind.values()}, "all": "All kinds"}
#: Session keys of the acknowledge form: the listed ids (with the editor's key), the batch
#: waiting for "Acknowledge N alerts?", the message after success, the editor generation.
LISTED, PENDING, DONE, GENERATION = "a_listed", "a_pending", "a_done", "a_generation"
ERRORS = FieldErrors("a_errors")
TABLE_COLUMNS = ["alert_id", "kind", "quantity", "performed_at", "patient", "procedure",
                 "physician", "room", "value", "threshold"]

actor = state.require(Permission.VIEW_DASHBOARDS)
st.title("Dose alerts")
figures = analytics.figures()  # SQL on a PostgreSQL site that chose it: no frame read (issue 16)
chosen = analytics.filters(figures)
analytics.caption(figures, chosen)
try:  # from all records: arrival order cannot matter. Usually the records since the last
    # refresh (under a second); the first refresh of a large log reads every record (48 s at
    # 10M on PostgreSQL), so the page says what it is doing meanwhile.
    with st.spinner("Bringing the alerts up to date with the records…", show_time=True):
        refresh_alerts(state.engine(), figures)
except ValidationFailed as exc:  # a threshold setting that cannot be used: say which
    st.error("Alerts were not recomputed: " + plain(exc))
try:
    summary = alert_counts(state.engine(), actor, chosen)
    rates = alert_rates(state.engine(), actor, figures, chosen).set_index("kind")
except ValidationFailed as exc:
    st.error(plain(exc))
    st.stop()

# --- how many, and how many per 100 procedures -------------------------------------------------
procedures = int(rates.loc["all", "procedures"])
cols = st.columns(4)
for col, kind, name, term in zip(
        cols, ("all", *KINDS_BY_PRIORITY),
        ("Open", "Open SRDL", "Open cumulative", "Open investigation"),
        (None, "SRDL", "Cumulative dose", "Investigation level"), strict=True):
    col.metric(name, f"{int(rates.loc[kind, 'open']):,}",
               help=glossary(term) if term else "Alerts not yet acknowledged, all kinds.")
    per_100 = rates.loc[kind, "open_per_100"]
    col.caption(f"{per_100:.2f} per 100 procedures" if procedures else "no procedures")
st.caption(f"Out of {procedures:,} procedures under these filters. Investigation levels flag "
           "about 1 record in 100 per dose quantity by design (see Thresholds below).")

if len(summary):
    chart_and_table(charts.alerts_by_kind(summary, KINDS_BY_PRIORITY), summary,
                    caption=charts.ALERTS_CAPTION, enums={"kind": KINDS})
else:
    st.success("No alerts for these filters.")
st.caption("Alerts per 100 procedures, by kind (raised = open + acknowledged):")
tables.show(rates.reset_index(), enums={"kind": KINDS})

# --- who the open alerts belong to ---------------------------------------------------------------
st.subheader("Open alerts by physician")
doctors = open_by_physician(state.engine(), actor, figures, chosen)
if doctors["open"].sum():
    per_kind = doctors[doctors["procedures"] > 0].melt(
        id_vars=["physician", "procedures"], value_vars=list(KINDS_BY_PRIORITY),
        var_name="kind", value_name="alerts")
    per_kind["per_100"] = (100 * per_kind["alerts"] / per_kind["procedures"]).round(2)
    chart = charts.alerts_by_physician(per_kind, doctors["physician"].tolist(),
                                       KINDS_BY_PRIORITY)
    chart_and_table(chart, doctors.drop(columns=["latest"]),
                    caption=charts.PHYSICIAN_ALERTS_CAPTION,
                    names={"srdl": "Open SRDL", "cumulative": "Open cumulative",
                           "investigation": "Open investigation", "open": "Open, all kinds"})
    st.caption("A physician far above the others needs one review of technique, not one "
               "acknowledgement per case.")
else:
    st.write("No open alerts.")

st.subheader("Open alerts by patient")
patients = open_by_patient(state.engine(), actor, chosen)
if len(patients):
    st.caption(f"{len(patients):,} patients with open alerts, most urgent first (SRDL, then "
               "cumulative, then how many); one follow-up can answer several alerts.")
    tables.show(patients.head(500), height=250,
                names={"srdl": "Open SRDL", "cumulative": "Open cumulative",
                       "investigation": "Open investigation", "open": "Open, all kinds"})
else:
    st.write("No open alerts.")

# --- the alerts themselves -----------------------------------------------------------------------
columns = [*TABLE_COLUMNS, "records", "window_start", "window_end", "threshold_source"]
tabs = st.tabs(["Open", "Acknowledged", "Withdrawn"])
for tab, status in zip(tabs, ("open", "acknowledged", "withdrawn"), strict=True):
    with tab:
        shown = list_alerts(state.engine(), actor, chosen, status=status, limit=2000)
        extra = {"acknowledged": ["acknowledged_at", "acknowledged_by", "note",
                                  "patient_informed", "skin_check_date"],
                 "withdrawn": ["withdrawn_reason"]}.get(status, [])
        total = int(summary[status].sum()) if len(summary) else 0
        st.caption(f"{len(shown):,} shown of {total:,} {status} (newest first)")
        tables.show(tables.with_units(shown[columns + extra], ["value", "threshold"]),
                    height=300, enums={"kind": AlertKind})


# --- acknowledge: explicit ticks, one note, a count to confirm -----------------------------------
def _ticked(listed: tuple[str, list[int]] | None) -> list[int]:
    """The alert ids ticked in the editor `listed` names (its rows are those ids, in order)."""
    if not listed:
        return []
    key, ids = listed
    edits = (st.session_state.get(key) or {}).get("edited_rows", {})
    return [ids[int(row)] for row, change in sorted(edits.items(), key=lambda e: int(e[0]))
            if change.get("acknowledge") and int(row) < len(ids)]


def _ask() -> None:
    """Submit: check what can be checked without the database; if nothing is wrong, ask for
    confirmation with the count. The ticks and the note stay as they are either way."""
    ticked = _ticked(st.session_state.get(LISTED))
    note = st.session_state.get("a_note", "")
    check = st.session_state.get("a_check")
    errors = acknowledgement_errors(ticked, note, check if isinstance(check, date) else None)
    st.session_state.pop(PENDING, None)
    if errors:
        ERRORS.set(errors)
        return
    ERRORS.clear()
    st.session_state[PENDING] = {"ids": ticked, "note": note,
                                 "informed": bool(st.session_state.get("a_informed")),
                                 "check": check if isinstance(check, date) else None}


def _confirm() -> None:
    pending = st.session_state.pop(PENDING, None)
    if not pending:
        return
    try:
        done = acknowledge_many(state.engine(), actor, pending["ids"], pending["note"],
                                patient_informed=pending["informed"],
                                skin_check_date=pending["check"])
    except ValidationFailed as exc:
        ERRORS.set(exc.errors)
        return
    except AuditError as exc:  # e.g. the role changed meanwhile
        ERRORS.set([FieldError("alert_ids", str(exc))])
        return
    state.data_changed()
    ERRORS.clear()
    st.session_state[DONE] = (f"{done} alert{'s' if done != 1 else ''} acknowledged: "
                              + ", ".join(f"#{i}" for i in pending["ids"]) + ".")
    st.session_state[GENERATION] = st.session_state.get(GENERATION, 0) + 1  # ticks cleared
    for widget in ("a_note", "a_informed", "a_check"):  # the next batch starts blank
        st.session_state.pop(widget, None)


def _cancel() -> None:
    st.session_state.pop(PENDING, None)


st.subheader("Acknowledge")
message = st.session_state.pop(DONE, None)
if message:
    st.success(plain(message), icon=":material/check_circle:")
if not actor.can(Permission.MANAGE_ALERTS):
    st.info("Only the radiation safety officer acknowledges alerts.")
elif not int(rates.loc["all", "open"]):
    st.write("Nothing to acknowledge.")
else:
    listed = pd.concat([list_alerts(state.engine(), actor, chosen, status="open", kind=kind,
                                    limit=200) for kind in KINDS_BY_PRIORITY],
                       ignore_index=True)
    ids = [int(i) for i in listed["alert_id"]]
    # The editor's ticks are kept by row position: a key naming the listed ids means a list
    # that changed (new alerts, another person's acknowledgement) starts unticked instead of
    # moving the ticks onto other alerts.
    digest = hashlib.blake2b(",".join(map(str, ids)).encode(), digest_size=6).hexdigest()
    key = f"a_table_{st.session_state.get(GENERATION, 0)}_{digest}"
    st.session_state[LISTED] = (key, ids)
    table = tables.prepare(tables.with_units(listed[TABLE_COLUMNS], ["value", "threshold"]),
                           enums={"kind": AlertKind}, zone=tables.display_zone()[0])
    table.insert(0, "acknowledge", False)
    st.caption(f"Open alerts, most urgent first ({len(ids):,} listed). Tick each alert to "
               "acknowledge; nothing is ticked for you.")
    with st.form("acknowledge"):
        st.data_editor(
            table, key=key, hide_index=True, height=300, placeholder=tables.EMPTY,
            disabled=TABLE_COLUMNS,
            column_config={**tables.column_config(table[TABLE_COLUMNS]),
                           "acknowledge": st.column_config.CheckboxColumn(
                               "Acknowledge", help="Tick the alerts this follow-up note answers",
                               default=False)})
        ticked = _ticked((key, ids))
        st.caption(f"{len(ticked)} ticked" + (": " + ", ".join(f"#{i}" for i in ticked)
                                              if ticked else ""))
        ERRORS.show("alert_ids")
        st.text_area("Follow-up note", key="a_note",
                     placeholder="e.g. patient informed by phone; skin check booked")
        ERRORS.show("note")
        st.checkbox("Patient informed", key="a_informed")
        st.date_input("Skin check date (optional)", value=None, key="a_check")
        ERRORS.show("skin_check_date")
        st.form_submit_button("Acknowledge ticked alerts", on_click=_ask)
    pending = st.session_state.get(PENDING)
    if pending:
        count = len(pending["ids"])
        st.warning(f"Acknowledge {count} alert{'s' if count != 1 else ''}? "
                   + ", ".join(f"#{i}" for i in pending["ids"]), icon=":material/help:")
        yes, no = st.columns(2)
        yes.button(f"Yes, acknowledge {count}", key="a_yes", type="primary",
                   on_click=_confirm)
        no.button("Cancel", key="a_cancel", on_click=_cancel)

st.subheader("Thresholds", help=glossary("SRDL", "Investigation level", "Cumulative dose"))
lookups = figures.lookups
tables.show(pd.DataFrame({
    "setting": [labels.setting_label(key) for key in THRESHOLD_SETTINGS],
    "value": [labels.plain_number(getattr(lookups.settings, key)) for key in THRESHOLD_SETTINGS],
    "source": [lookups.setting_sources.get(key) for key in THRESHOLD_SETTINGS]}))
in_force = levels_in_force(state.engine())
if in_force is None:  # no refresh could run yet (a threshold setting that cannot be used)
    st.info("No investigation levels are in force yet: they are set at the first alert refresh.")
else:
    levels = in_force.table
    named = "; ".join(labels.setting_label(key) for key in INVESTIGATION_SETTINGS)
    st.caption("Investigation levels per procedure: the local percentile of the type's records, "
               "never below the factor × their median, rounded to 3 significant figures; none "
               f"below the minimum number of records (settings: {plain(named)}). They are set at "
               "a review and stay until the next: when a threshold, a room or the catalog "
               "changes, when a procedure's records changed since reach a tenth of those its "
               "levels came from, or when the RSO asks.")
    zone, zone_name = tables.display_zone()
    codes = lookups.types["code"]
    changed = ", ".join(f"{codes.get(t, t)} {n:,}" for t, n in in_force.changed.items())
    st.text(f"In force since {tables.local_text(in_force.set_at, zone)} ({zone_name}): "
            f"{in_force.reason}." + (f" Records changed since: {changed}." if changed else ""))
    percentile = labels.ordinal(float(lookups.settings.investigation_percentile))
    tables.show(tables.with_units(levels.drop(columns=["type_id"]),
                                  ["median", "percentile", "floor", "level"]),
                names={"percentile": f"{percentile} percentile",
                       "level": "Investigation level"})
    if actor.can(Permission.MANAGE_ALERTS) and st.button(
            "Review the investigation levels now", key="a_review",
            help="Computes the levels again from every final record (a change of technique "
                 "or equipment the automatic reviews would catch later). Recorded in the "
                 "audit trail under your name."):
        try:
            with st.spinner("Computing the levels from every final record…"):
                result = review_levels(state.engine(), actor, figures)
        except (AuditError, ValueError) as exc:
            st.error(plain(exc))
        else:
            state.data_changed()
            st.session_state[DONE] = (f"Investigation levels reviewed: {result.opened} alerts "
                                      f"opened, {result.updated} updated, "
                                      f"{result.withdrawn} withdrawn.")
            st.rerun()
