"""The committee report's figures, gathered from one figure source (issues 14, 16).

Every figure comes from the figure source the dashboards read (audit.analytics.source): the
analysis frame (one Snapshot, loaded once), or on a PostgreSQL site that chose SQL figures
(FLUORO_AUDIT_FIGURES=sql) SqlSource, so the app process never holds every record for a
report. Each table is what the pages and `fluoro-audit report` show: compliance overall and by
physician, room and procedure (`report compliance`), the p-chart, dose per procedure (`report
dose`), the local DRLs (`report drl`), the physician scorecard, completeness and safety flags;
for alerts the two tables `report alerts` prints that the report prints too (alert_counts,
alert_rates, after the same refresh_alerts), not its full list of alerts nor its per-patient
and per-physician tables, which the report does not show and which cost more than the rest of
the step at a million records. The report's pages agree with each other and with `report ...
--format json` for the same period (tests/documents/test_committee.py), and the SQL figures
with the frame's (tests/documents/test_committee_sql.py).
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
from audit.analytics.snapshot import FrameCache, Snapshot
from audit.analytics.source import FigureSource, FrameSource, figure_source
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
           progress: Progress | None = None, frames: FrameCache | None = None,
           source: FigureSource | None = None) -> CommitteeFigures:
    """The figures for the period [first, last] (whole UTC days) and the sites (all: empty).
    `source`: where the figures come from (the app's figure source); without it, SQL where
    the site chose it on PostgreSQL (audit.analytics.source.uses_sql), else the frame of
    `frames` (the process's frame cache: the app's, or the CLI's reading the frame file the app
    keeps, so a report does not re-read every record) or one full read."""
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

    if source is None:
        source = figure_source(engine, frames, reading)
    lookups = source.lookups
    filters.mask(lookups)  # an unknown site is refused here, naming it
    chosen = list(sites) or sorted(str(s) for s in lookups.sites.tolist())
    tick(STEPS[1], 1, total)
    overall = source.compliance_rates(filters)
    breakdowns = {by: source.compliance_rates(filters, by) for by in BREAKDOWNS}
    chart = source.p_chart(filters)
    tick(STEPS[2], 2, total)
    dose = source.dose_statistics(filters, ("procedure",))
    drl = source.local_drls(filters).drop(columns=["type_id"])
    tick(STEPS[3], 3, total)
    card = source.physician_scorecard(filters)
    tick(STEPS[4], 4, total)
    alert_table, rates = _alerts(engine, actor, source, filters)
    tick(STEPS[5], 5, total)
    quality = source.completeness(filters)
    figures = CommitteeFigures(
        filters=filters, sites=chosen, token=source.token, generated_at=datetime.now(UTC),
        records=int(quality["records"].sum()), completeness=quality,
        compliance=overall, breakdowns=breakdowns, p_chart=chart, dose=dose, drl=drl,
        scorecard=card, alerts=alert_table, alert_rates=rates,
        safety=source.safety_flags(filters), pseudonymised=pseudonymise)
    if pseudonymise:
        _pseudonymise(figures)
    return figures


def _alerts(engine: Engine, actor: Actor, source: FigureSource,
            filters: Filters) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The alert counts and rates of `report alerts`, after the same refresh (at once when
    current: the incremental refresh's own check)."""
    found: Snapshot | FigureSource = source.snap if isinstance(source, FrameSource) else source
    refresh_alerts(engine, found)  # type: ignore[arg-type]
    rates = alert_rates(engine, actor, found, filters)  # type: ignore[arg-type]
    return alert_counts(engine, actor, filters), rates


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
