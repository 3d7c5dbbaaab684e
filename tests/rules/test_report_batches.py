"""The rule report read patient-batch by patient-batch (issue 16) gives the figures of the
whole period read at once (tests/rules/whole_period.py, the report before batches): every
table equal, on the hand-checked fixture and a demo set, on SQLite and PostgreSQL, whatever
the batch size (1 and 3 patients put batch boundaries everywhere; asked for with stored=False,
as PostgreSQL reads the stored findings unless told: test_findings_store.py); the exceptions
kept for the page are the newest of each rule while the counts count all; progress follows the
batches."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest
from sqlalchemy import Engine

from audit.auth import cli_actor
from audit.demo.loading import generate
from audit.filters import Filters
from audit.log.service import ProcedureLog
from audit.rules.period import plan
from audit.rules.report import findings, rule_report
from audit.rules.store import set_enabled
from tests.rules import whole_period
from tests.rules.helpers import findings_per_record, packs_on
from tests.rules.test_report_rules import fixture_history

TABLES = ("rules", "by_physician", "by_month", "exceptions")


def same_report(engine: Engine, filters: Filters, *sizes: int) -> dict[str, pd.DataFrame]:
    before = whole_period.rule_report(engine, filters)
    for size in sizes:
        now = rule_report(engine, cli_actor(), filters, batch_patients=size, stored=False)
        for name in TABLES:
            pd.testing.assert_frame_equal(now[name], before[name], check_dtype=True,
                                          obj=f"{name}, {size} patients a batch")
    return before


def test_the_hand_checked_fixture_gives_the_same_tables_batch_by_batch(
        engine: Engine, service: ProcedureLog) -> None:
    packs_on(engine)
    fixture_history(engine, service)
    shown = same_report(engine, Filters.days(date(2026, 1, 1), date(2026, 12, 31)), 1, 3,
                        5000)
    assert len(shown["exceptions"]) == 7  # tests/rules/test_report_rules.py's hand count
    same_report(engine, Filters(), 1, 2)


def test_demo_data_gives_the_same_tables_whatever_the_batch(engine: Engine) -> None:
    generate(engine, procedures=1500, seed=7, until=date(2026, 6, 30))
    packs_on(engine)
    year = Filters.days(date(2025, 7, 1), date(2026, 6, 30))
    assert len(plan(engine, year, 3).batches) > 50  # boundaries everywhere
    shown = same_report(engine, year, 1, 3, 40)
    assert shown["rules"]["exceptions"].sum() > 100
    same_report(engine, Filters.days(date(2026, 3, 1), date(2026, 3, 31)), 3)
    same_report(engine, Filters.days(date(2026, 1, 1), date(2026, 6, 30),
                                     physicians=("Dr. Demo Chen",)), 7)
    # and the findings themselves, batch by batch, are those of evaluate.check per record
    for size in (1, 3):
        pd.testing.assert_frame_equal(findings(engine, year, size),
                                      findings_per_record(engine, year))
    set_enabled(engine, cli_actor(), "lcd_esi", False)  # fewer codes checked and read
    same_report(engine, year, 3)


def test_the_page_keeps_the_newest_exceptions_of_each_rule_and_counts_all(
        engine: Engine) -> None:
    generate(engine, procedures=600, seed=3, until=date(2026, 6, 30))
    packs_on(engine)
    every = rule_report(engine, cli_actor(), Filters(), batch_patients=4, stored=False)
    kept = rule_report(engine, cli_actor(), Filters(), exceptions_per_rule=5,
                       batch_patients=4, stored=False)
    for name in ("rules", "by_physician", "by_month"):
        pd.testing.assert_frame_equal(kept[name], every[name])
    counts = every["rules"].set_index("rule")["exceptions"]
    shown = kept["exceptions"]
    assert shown.groupby("rule").size().to_dict() == {r: min(5, int(n))
                                                     for r, n in counts.items() if n}
    for rule, rows in shown.groupby("rule"):
        newest = every["exceptions"][every["exceptions"]["rule"] == rule].tail(5)
        assert list(rows["record_id"]) == list(newest["record_id"])
    assert shown["performed_at"].is_monotonic_increasing


def test_progress_counts_the_batches(engine: Engine, service: ProcedureLog) -> None:
    packs_on(engine)
    fixture_history(engine, service)  # two patients
    seen: list[tuple[int, int]] = []
    rule_report(engine, cli_actor(), Filters(), batch_patients=1, stored=False,
                progress=lambda done, total: seen.append((done, total)))
    assert seen == [(0, 2), (1, 2), (2, 2)]
    with pytest.raises(ValueError, match="batch size 0"):
        rule_report(engine, cli_actor(), Filters(), batch_patients=0, stored=False)


def test_with_every_pack_off_nothing_is_read(engine: Engine, service: ProcedureLog) -> None:
    fixture_history(engine, service)  # the template has the packs off
    assert plan(engine, Filters()).batches == []
    empty = rule_report(engine, cli_actor(), Filters())
    before = whole_period.rule_report(engine, Filters())
    for name in TABLES:
        assert empty[name].empty and list(empty[name].columns) == list(before[name].columns)
