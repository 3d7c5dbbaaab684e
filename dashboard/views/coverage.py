"""Coverage and safeguards: how often are the practice rules met (Medicare LCD coverage limits,
the 2015 multisociety safeguards), by physician and month, and which records break them?
(issue 15; the same figures as `fluoro-audit report rules`)"""

from __future__ import annotations

import time
from collections import OrderedDict
from threading import Lock
from typing import Any

import pandas as pd
import streamlit as st

from audit import Filters
from audit.auth import Permission
from audit.errors import ValidationFailed
from audit.rules import EXCEPTIONS_LISTED, PACKS, build_status, rule_report_meanwhile
from dashboard import analytics, coverage_charts, state, tables
from dashboard.analytics import chart_and_table, percent
from dashboard.widgets import plain

actor = state.require(Permission.VIEW_DASHBOARDS)
st.title("Coverage and safeguards")
source = analytics.figures()  # SQL on PostgreSQL (no frame read), the analysis frame on SQLite
chosen = analytics.filters(source)
analytics.caption(source, chosen)
st.caption("Each rule of the rule packs switched on (Admin → Rule packs), checked on every "
           "final record of the period against the patient's earlier procedures and their "
           "follow-ups, CSV imports included. Compliance is the share of the procedures a rule "
           "applies to that met it, with its 95% interval (Wilson).")


KEPT = 8  # reports kept, shared by every session
KEPT_FOR_S = 3600


@st.cache_resource(show_spinner=False)
def _reports() -> tuple[OrderedDict[tuple[str, Any, str], tuple[float, Any]], Lock]:
    """The reports computed, shared by every session, by (database, data version, filters):
    the figure source's token moves with every record, follow-up and pack change. Kept here
    rather than by st.cache_data, which would record the progress bar drawn while it checks
    and draw it again on every later visit."""
    return OrderedDict(), Lock()


def _report(key: tuple[str, Any, str],
            filters: Filters) -> tuple[dict[str, pd.DataFrame], bool]:
    """rule_report for these filters, computed once per data version: from the stored findings
    on PostgreSQL, on SQLite by checking every record of the period batch by batch (never the
    analysis frame). While the stored findings need a full build (the first visit, a rule pack
    switched: minutes at 5M records), they are built in the background and this period's
    records are checked batch by batch meanwhile (the same figures): then the flag is True."""
    kept, lock = _reports()
    with lock:
        found = kept.get(key)
        if found is not None and time.monotonic() - found[0] < KEPT_FOR_S:
            kept.move_to_end(key)
            return found[1]
    bar = st.progress(0.0, text="Checking every record against the rules…")

    def progress(done: int, total: int) -> None:
        bar.progress(done / total if total else 1.0,
                     text=f"Checking every record against the rules: batch {done:,} of "
                          f"{total:,} (a few thousand patients each)")

    report, checked = rule_report_meanwhile(state.engine(), actor, filters,
                                            exceptions_per_rule=EXCEPTIONS_LISTED,
                                            progress=progress)
    bar.empty()
    with lock:
        kept[key] = (time.monotonic(), (report, checked))
        while len(kept) > KEPT:
            kept.popitem(last=False)
    return report, checked


try:
    report, checked = _report((state.database_url(), source.token, repr(chosen)), chosen)
except ValidationFailed as exc:
    st.error(plain(exc))
    st.stop()
building = build_status(state.engine()) if checked else None
if building is not None:
    done = f" (batch {building[0]:,} of {building[1]:,})" if building[1] else ""
    st.caption(f"The stored rule findings, which make this page fast on a large database, are "
               f"being built{done}: until they are, each record of the period is checked "
               "against the rules, which takes longer. The figures are the same.")
rules = report["rules"]
if rules.empty:
    st.info("No procedure in this period falls under a rule pack that is switched on.")
    st.stop()

TITLES = {r.key: r.title for p in PACKS for r in p.rules}
PACK_TITLES = {p.key: p.title for p in PACKS}
NAMES = {"title": "Rule", "compliance_rate": "Compliance", "eligible": "Procedures it applies to",
         "exceptions": "Exceptions", "physician": "Physician", "month": "Month",
         "message": "Why", "procedure": "Procedure", "pack_title": "Rule pack"}

shown = rules.assign(pack_title=[PACK_TITLES[k] for k in rules["pack"]])
cols = st.columns(3)
cols[0].metric("Rules checked", f"{len(rules):,}")
cols[1].metric("Exceptions", f"{int(rules['exceptions'].sum()):,}")
cols[2].metric("Lowest compliance", percent(float(rules["compliance_rate"].min())))
chart_and_table(coverage_charts.rule_bars(shown),
                shown[["title", "pack_title", "eligible", "exceptions", "compliance_rate",
                       "ci_low", "ci_high"]], names=NAMES,
                caption=coverage_charts.RULES_CAPTION)

st.subheader("The exceptions")
pick = st.selectbox("Show the records that broke", ["", *rules["rule"]], key="cov_rule",
                    format_func=lambda k: TITLES.get(k, "every rule"))
exceptions = report["exceptions"]  # the newest EXCEPTIONS_LISTED of each rule, oldest first
if pick:
    exceptions = exceptions[exceptions["rule"] == pick]
counted = int(rules.set_index("rule")["exceptions"][pick] if pick else rules["exceptions"].sum())
exceptions = exceptions.tail(EXCEPTIONS_LISTED)
if counted > len(exceptions):
    st.caption(f"The newest {len(exceptions):,} of {counted:,} exceptions: narrow the filters "
               "to list older ones (`fluoro-audit report rules` lists every one).")
tables.show(exceptions.assign(title=[TITLES[k] for k in exceptions["rule"]])[
    ["record_id", "performed_at", "procedure", "physician", "title", "message"]],
    names=NAMES, height=300, key="cov_exceptions")

st.subheader("By physician")
physicians = report["by_physician"].assign(title=lambda f: [TITLES[k] for k in f["rule"]])
chart_and_table(coverage_charts.physician_grid(physicians),
                physicians[["title", "physician", "eligible", "exceptions", "compliance_rate",
                            "ci_low", "ci_high"]], names=NAMES, side=False,
                caption=coverage_charts.PHYSICIAN_CAPTION)

st.subheader("By month")
months = report["by_month"].assign(title=lambda f: [TITLES[k] for k in f["rule"]])
chart_and_table(coverage_charts.month_grid(months),
                months[["title", "month", "eligible", "exceptions", "compliance_rate",
                        "ci_low", "ci_high"]], names=NAMES, side=False,
                caption=coverage_charts.MONTH_CAPTION)
