"""Compliance with the practice rules over a period: `fluoro-audit report rules` and the
Coverage and safeguards page call `rule_report`, so they show the same figures.

On PostgreSQL the report reads the stored findings (audit.rules.stored_report: one GROUP BY
over `rule_finding`, kept current per changed patient by audit.rules.findings_store), equal to
what the batches below give (tests/rules/test_findings_store.py); SQLite, one small process,
checks the records as follows (and PostgreSQL does when asked with stored=False).

Every final record in the period is checked (CSV imports included: they were not blocked at
entry) against its patient's history, with the packs in force on its day. Patient-batch by
patient-batch (audit.rules.period): a batch's records and their patients' earlier ones with
their follow-ups and levels are read, checked as array operations (audit.rules.batch, the same
findings as evaluate.check per record: tests/rules/test_batch_rules.py), and only counts and
exceptions are kept, so memory stays that of one batch whatever the period (issue 16).

A rule's compliance rate is (eligible - exceptions) / eligible, with a Wilson 95% interval
(audit.analytics.quantiles.wilson), overall, by physician and by month (UTC), from the counts
summed over the batches (the same figures as one pass over the whole period:
tests/rules/test_report_batches.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from audit.analytics.quantiles import wilson
from audit.auth import Actor, Permission, require
from audit.filters import Filters
from audit.rules import batch
from audit.rules.packs import RULE_PACK, RULE_TITLES
from audit.rules.period import BATCH_PATIENTS, batches, plan

GROUPS = ("physician", "month")
COLUMNS = batch.COLUMNS
EXCEPTION_COLUMNS = ["record_id", "performed_at", "procedure", "physician", "rule", "pack",
                     "message"]
#: The tallies kept: overall (by rule), by physician, by month.
TALLIES = {"rules": ["rule"], "by_physician": ["rule", "physician"],
           "by_month": ["rule", "month"]}
#: The exceptions of each rule the Coverage page keeps and lists (the newest); the counts
#: count every one, and `report rules` lists every one.
EXCEPTIONS_LISTED = 1000
#: progress(batches done, batches in all): called before the first batch and after each.
Progress = Callable[[int, int], None]


def each_batch(engine: Engine, filters: Filters, batch_patients: int = BATCH_PATIENTS,
               progress: Progress | None = None) -> Iterator[pd.DataFrame]:
    """The findings of each batch of patients: one row per (record in the period, rule that
    applies to it): record_id, performed_at, procedure, physician, month, rule, pack,
    exception (bool), message; a batch ordered by record id then as `check` gives them."""
    period = plan(engine, filters, batch_patients)
    total = len(period.batches)
    if progress is not None:
        progress(0, total)
    for done, read in enumerate(batches(engine, filters, period), start=1):
        found = batch.evaluate_many(read.history, read.relief, read.levels, read.wanted,
                                    period.packs)
        if len(found):
            yield found
        if progress is not None:
            progress(done, total)


def findings(engine: Engine, filters: Filters,
             batch_patients: int = BATCH_PATIENTS) -> pd.DataFrame:
    """Every finding of the period in one frame, ordered by record id (the tests compare it
    with evaluate.check per record; the report itself keeps counts, not this)."""
    found = list(each_batch(engine, filters, batch_patients))
    if not found:
        return pd.DataFrame(columns=COLUMNS)
    every = pd.concat(found, ignore_index=True).sort_values("record_id", kind="stable") \
        .reset_index(drop=True)
    if every["exception"].any():  # a batch without exceptions has its messages as objects
        every["message"] = every["message"].astype("str")
    return every


class _Tally:
    """Eligible and exception counts per key, summed batch by batch."""

    def __init__(self, keys: list[str]) -> None:
        self.keys = keys
        self.counts: pd.DataFrame | None = None

    def add(self, found: pd.DataFrame) -> None:
        counts = found.groupby(self.keys, sort=False)["exception"].agg(["size", "sum"])
        counts = counts.astype(np.int64)
        self.counts = counts if self.counts is None else \
            pd.concat([self.counts, counts]).groupby(level=self.keys, sort=False).sum()

    def rates(self) -> pd.DataFrame:
        if self.counts is None:
            return pd.DataFrame(columns=[*self.keys, "eligible", "exceptions", "compliant",
                                         "compliance_rate", "ci_low", "ci_high"])
        grouped = self.counts.sort_index().reset_index()
        grouped = grouped.rename(columns={"size": "eligible", "sum": "exceptions"})
        grouped["compliant"] = grouped["eligible"] - grouped["exceptions"]
        eligible = grouped["eligible"].to_numpy(dtype=np.float64)
        grouped["compliance_rate"] = grouped["compliant"] / eligible
        low, high = wilson(grouped["compliant"].to_numpy(dtype=np.float64), eligible)
        grouped["ci_low"], grouped["ci_high"] = low, high
        return grouped


def _in_order(exceptions: pd.DataFrame) -> pd.DataFrame:
    """Oldest first by (time, record), a record's rules in the order `check` gives them."""
    order = exceptions["rule"].map(batch.ORDER)
    return exceptions.assign(_order=order).sort_values(
        ["performed_at", "record_id", "_order"], kind="stable").drop(columns="_order")


class _Exceptions:
    """The exception rows kept: all of them, or the newest `limit` of each rule."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.parts: list[pd.DataFrame] = []

    def add(self, found: pd.DataFrame) -> None:
        rows = found.loc[found["exception"].astype(bool), EXCEPTION_COLUMNS]
        if not len(rows):
            return
        self.parts.append(rows)
        if self.limit is not None:
            self.parts = [self._newest()]

    def _newest(self) -> pd.DataFrame:
        kept = _in_order(pd.concat(self.parts, ignore_index=True))
        return kept.groupby("rule", sort=False).tail(self.limit) if self.limit is not None \
            else kept

    def table(self) -> pd.DataFrame:
        if not self.parts:
            return pd.DataFrame(columns=EXCEPTION_COLUMNS)
        return self._newest().reset_index(drop=True)


def rule_report_meanwhile(engine: Engine, actor: Actor, filters: Filters, *,
                          exceptions_per_rule: int | None = None,
                          progress: Progress | None = None
                          ) -> tuple[dict[str, pd.DataFrame], bool]:
    """rule_report for a page, which never waits for a full build of the stored findings
    (minutes at 5M records): while they need one, it is started in the background
    (findings_store.build_in_background) and the period's records are checked batch by batch,
    the same figures. Returns the report and whether it was checked batch-wise."""
    from audit.rules.findings_store import FindingsNotReady, build_in_background

    try:
        return rule_report(engine, actor, filters, exceptions_per_rule=exceptions_per_rule,
                           progress=progress, build=False), False
    except FindingsNotReady:
        build_in_background(engine)
        return rule_report(engine, actor, filters, exceptions_per_rule=exceptions_per_rule,
                           progress=progress, stored=False), True


def rule_report(engine: Engine, actor: Actor, filters: Filters, *,
                exceptions_per_rule: int | None = None,
                batch_patients: int = BATCH_PATIENTS,
                progress: Progress | None = None,
                stored: bool | None = None, build: bool = True) -> dict[str, pd.DataFrame]:
    """The tables of `report rules`: "rules" (each rule's eligible records, exceptions and
    compliance with its 95% interval), "by_physician", "by_month" and "exceptions" (the records
    behind them, oldest first: every one, or the newest `exceptions_per_rule` of each rule;
    the counts always count all). `progress(done, total)` follows the batches. stored: read
    the stored findings (audit.rules.stored_report; PostgreSQL only), or check the records
    batch by batch; None: the stored findings on PostgreSQL, the batches elsewhere. build=False:
    FindingsNotReady (audit.rules.findings_store) rather than build the stored findings in
    this call (minutes at 5M: the Coverage page builds them in the background)."""
    require(actor, Permission.VIEW_DASHBOARDS)
    if stored is None:
        stored = engine.dialect.name == "postgresql"
    tallies = {name: _Tally(keys) for name, keys in TALLIES.items()}
    kept = _Exceptions(exceptions_per_rule)
    if stored:
        from audit.rules.stored_report import stored as read_stored

        if progress is not None:
            progress(0, 1)
        counted, shown = read_stored(engine, filters, exceptions_per_rule, progress, build)
        for name, tally in tallies.items():
            tally.counts = counted[name]
        kept.add(shown.assign(exception=True))
        if progress is not None:
            progress(1, 1)
    else:
        for found in each_batch(engine, filters, batch_patients, progress):
            for tally in tallies.values():
                tally.add(found)
            kept.add(found)
    tables: dict[str, Any] = {name: tally.rates() for name, tally in tallies.items()}
    overall = tables["rules"]
    overall.insert(1, "pack", [RULE_PACK[r] for r in overall["rule"]])
    overall.insert(2, "title", [RULE_TITLES[r] for r in overall["rule"]])
    return {"rules": overall.reset_index(drop=True),
            "by_physician": tables["by_physician"], "by_month": tables["by_month"],
            "exceptions": kept.table()}
