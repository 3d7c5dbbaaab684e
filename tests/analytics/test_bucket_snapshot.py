"""The dose buckets' snapshot (audit.analytics.sql.bucket_snapshot): where the buckets and
the facts are at the data head it answers without asking the refresh, after a write it
refreshes first, and the month edges' probe it keeps is asked again for a new state of the
facts. PostgreSQL only."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from sqlalchemy import Engine

from audit.analytics.sql import bucket_quantiles, bucket_snapshot, dose_buckets
from audit.analytics.sql.source import SqlSource
from audit.auth import cli_actor
from audit.demo import generate
from audit.filters import Filters
from audit.log.service import ProcedureLog
from tests.analytics.test_dose_buckets import assert_same_figures
from tests.conftest import valid_record

QUANTITY = "dap_gycm2"


@pytest.fixture
def refreshes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Each refresh the snapshot asks (the real one runs)."""
    asked: list[int] = []
    real = bucket_snapshot.refresh_buckets

    def counted(*args: Any, **kwargs: Any) -> int:
        asked.append(1)
        return real(*args, **kwargs)
    monkeypatch.setattr(bucket_snapshot, "refresh_buckets", counted)
    return asked


def quartiles(engine: Engine) -> Any:
    sql = SqlSource(engine, shared=False)
    return bucket_quantiles.quantiles(engine, sql.lookups, Filters(), QUANTITY, False,
                                      (0.25, 0.5, 0.75))


def test_current_tables_answer_without_a_refresh(pg: Engine, refreshes: list[int]) -> None:
    generate(pg, procedures=300, seed=5, until=date(2026, 6, 30))
    dose_buckets.refresh_buckets(pg)
    first = quartiles(pg)
    assert first is not None and refreshes == []
    ProcedureLog(pg).log(valid_record(accession_number="S1", dap_value=9999.0), cli_actor(),
                         confirm_warnings=True, create_missing=True)
    second = quartiles(pg)
    assert refreshes == [1], "a write: the snapshot refreshes before it answers"
    assert second is not None
    assert int(second["v_n"].sum()) == int(first["v_n"].sum()) + 1
    assert quartiles(pg) is not None and refreshes == [1]


def test_a_record_written_at_an_edge_after_the_first_figures_is_scanned(pg: Engine) -> None:
    """The first figures keep the edges' probe (clear); a record then written in the half
    second before a month's start is a new state of the facts: probed again, scanned."""
    generate(pg, procedures=300, seed=5, until=date(2026, 6, 30))
    period = Filters.days(date(2026, 3, 1), None)
    assert_same_figures(pg, period)
    ProcedureLog(pg).log(valid_record(accession_number="E1",
                                      performed_at="2026-02-28T23:59:59.700+00:00"),
                         cli_actor(), confirm_warnings=True, create_missing=True)
    assert_same_figures(pg, period, answered=False)
