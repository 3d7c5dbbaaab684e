"""The committee report's figures, gathered from one analysis snapshot (issue 14).

Every figure comes from the function the dashboards and `fluoro-audit report` call:
audit.analytics.reports.build for compliance (overall and by physician, room, procedure),
dose and reference levels; for alerts the two tables `report alerts` prints that the report
prints too (alert_counts, alert_rates, after the same refresh_alerts), not its full list of
alerts nor its per-patient and per-physician tables, which the report does not show and which
cost more than the rest of the step at a million records; p_chart, physician_scorecard,
safety_flags and completeness as the pages call them. All of them read the same Snapshot,
loaded once, so the report's pages agree with each other and with `report ... --format json`
for the same period (tests/documents/test_committee.py compares them).
Progress is reported step by step.
"""

from __future__ import annotations

import string
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import pandas as pd
from sqlalchemy import Engine

from audit.alerts.store import alert_counts, refresh_alerts
from audit.alerts.summary import alert_rates
from audit.analytics.compliance import p_chart
from audit.analytics.data_quality import completeness
from audit.analytics.reports import build
from audit.analytics.safety import safety_flags
from audit.analytics.scorecard import physician_scorecard
from audit.analytics.snapshot import FrameCache, load_snapshot
from audit.auth import Actor, Permission, require
from audit.errors import FieldError, ValidationFailed
from audit.filters import Filters

#: (step described, steps done, steps in all): the CLI prints it, the page draws st.progress.
Progress = Callable[[str, int, int], None]
STEPS = ("reading the records", "compliance", "dose and reference levels",
         "physician scorecard", "alerts", "safety flags and data quality", "typesetting")
BREAKDOWNS = ("physician", "room", "procedure")


@dataclass
class CommitteeFigures:
    """What the report prints, all from one snapshot (`token`: its audit event id)."""

    filters: Filters
    sites: list[str]
    token: int
    generated_at: datetime
    records: int
    completeness: pd.DataFrame
    compliance: pd.DataFrame
    breakdowns: dict[str, pd.DataFrame]
    p_chart: pd.DataFrame
    dose: pd.DataFrame
    drl: pd.DataFrame
    scorecard: pd.DataFrame
    alerts: pd.DataFrame
    alert_rates: pd.DataFrame
    safety: pd.DataFrame
    pseudonymised: bool = False
    physician_names: dict[str, str] = field(default_factory=dict)


def _quiet(step: str, done: int, total: int) -> None:
    """No progress shown."""


def gather(engine: Engine, actor: Actor, first: date, last: date, *,
           sites: tuple[str, ...] = (), pseudonymise: bool = False,
           progress: Progress | None = None,
           frames: FrameCache | None = None) -> CommitteeFigures:
    """The figures for the period [first, last] (whole UTC days) and the sites (all: empty).
    `frames`: the process's frame cache (the app's; the CLI's reads the frame file the app
    keeps), so a report does not re-read every record; without it, one full read."""
    require(actor, Permission.VIEW_DASHBOARDS)
    if first is None or last is None:
        raise ValidationFailed([FieldError("from", "the committee report needs a period: give "
                                                   "both its first and its last day")])
    tick = progress or _quiet
    total = len(STEPS)
    tick(STEPS[0], 0, total)
    filters = Filters.days(first, last, sites=tuple(sites))

    def reading(done: int, records: int) -> None:  # a first full read takes seconds
        tick(f"{STEPS[0]}: {done:,} of {records:,}", 0, total)

    snap = frames.get(reading) if frames is not None else load_snapshot(engine, reading)
    mask = filters.mask(snap)  # an unknown site is refused here, naming it
    chosen = list(sites) or sorted(str(s) for s in snap.sites.tolist())
    tick(STEPS[1], 1, total)
    overall = build("compliance", engine, snap, actor, filters)["overall"]
    breakdowns = {by: build("compliance", engine, snap, actor, filters, by)["groups"]
                  for by in BREAKDOWNS}
    chart = p_chart(snap, filters)
    tick(STEPS[2], 2, total)
    dose = build("dose", engine, snap, actor, filters)["groups"]
    drl = build("drl", engine, snap, actor, filters)["groups"]
    tick(STEPS[3], 3, total)
    card = physician_scorecard(snap, filters)
    tick(STEPS[4], 4, total)
    refresh_alerts(engine, snap)  # at once when current (the incremental refresh's own check)
    alert_table, rates = alert_counts(engine, actor, filters), alert_rates(engine, actor, snap,
                                                                          filters)
    tick(STEPS[5], 5, total)
    figures = CommitteeFigures(
        filters=filters, sites=chosen, token=snap.token, generated_at=datetime.now(UTC),
        records=int(mask.sum()), completeness=completeness(snap, filters),
        compliance=overall, breakdowns=breakdowns, p_chart=chart, dose=dose, drl=drl,
        scorecard=card, alerts=alert_table, alert_rates=rates,
        safety=safety_flags(snap, filters), pseudonymised=pseudonymise)
    if pseudonymise:
        _pseudonymise(figures)
    return figures


def pseudonym_of(index: int) -> str:
    """Physician A, B, ... Z, AA, AB, ...: stable for the report (names sorted)."""
    letters = string.ascii_uppercase
    label = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        label = letters[rest] + label
    return f"Physician {label}"


def _pseudonymise(figures: CommitteeFigures) -> None:
    """Physicians as Physician A, B, ... in every table that names them; the mapping stays in
    memory (the report never prints it)."""
    names = sorted(set(figures.scorecard["physician"]) | set(
        figures.breakdowns["physician"]["physician"]), key=str.lower)
    mapping = {name: pseudonym_of(i) for i, name in enumerate(names)}
    figures.physician_names = mapping
    figures.scorecard = figures.scorecard.assign(
        physician=figures.scorecard["physician"].map(mapping))
    table = figures.breakdowns["physician"]
    figures.breakdowns["physician"] = table.assign(physician=table["physician"].map(mapping))
