"""A dashboard tab's figures asked ahead (SqlSource.ahead) are computed at the same time, each on
a connection of its own (PostgreSQL runs one statement on one core: the tab then costs its
slowest figure, not the sum), and once: the page's own call of a figure being computed waits
for it (caching `_pending`), gets its result, or its error naming the field. PostgreSQL only:
the database is asked for directly, so the test runs wherever the suite's PostgreSQL is."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import Engine

from audit.analytics.sql import bucket_snapshot, dose, reference
from audit.analytics.sql.source import SqlSource
from audit.errors import ValidationFailed
from audit.filters import Filters


class Recorded:
    """Wraps a figure's computation: when each call ran, on which database backend."""

    def __init__(self, work: Callable[..., Any], pause: float = 0.6) -> None:
        self.work, self.pause = work, pause
        self.calls: list[tuple[float, float, int]] = []
        self.lock = threading.Lock()

    def __call__(self, scope: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.monotonic()
        backend = int(scope.conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())
        time.sleep(self.pause)  # long enough for the other figure to start meanwhile
        result = self.work(scope, *args, **kwargs)
        with self.lock:
            self.calls.append((started, time.monotonic(), backend))
        return result


def test_a_tabs_figures_asked_ahead_run_together_and_once(
        pg_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    distribution = Recorded(dose.dose_distribution)
    drls = Recorded(reference.local_drls)
    monkeypatch.setattr(dose, "dose_distribution", distribution)
    monkeypatch.setattr(reference, "local_drls", drls)
    # the scans these wrap (the dose buckets would answer in a few milliseconds)
    monkeypatch.setattr(bucket_snapshot, "answerable", lambda *args: False)
    source = SqlSource(pg_engine, shared=False)
    chosen = Filters(procedures=("TFESI",))
    futures = source.ahead(lambda s: s.dose_distribution(chosen, "dap_gycm2"),
                           lambda s: s.local_drls(chosen, ("dap_gycm2",)))
    # the page's own calls, right away: they wait for the figures being computed
    shown = source.dose_distribution(chosen, "dap_gycm2")
    levels = source.local_drls(chosen, ("dap_gycm2",))
    for future in futures:
        future.result(timeout=60)
    assert len(distribution.calls) == 1 and len(drls.calls) == 1  # computed once each
    assert source.queries == 2
    (start_a, end_a, pid_a), (start_b, end_b, pid_b) = distribution.calls[0], drls.calls[0]
    assert start_a < end_b and start_b < end_a, "the two figures did not run at the same time"
    assert pid_a != pid_b  # two connections, two backends
    alone = SqlSource(pg_engine, shared=False)  # one after another, as before: the same
    pd.testing.assert_frame_equal(shown, alone.dose_distribution(chosen, "dap_gycm2"))
    pd.testing.assert_frame_equal(levels, alone.local_drls(chosen, ("dap_gycm2",)))


def test_a_call_waiting_for_a_figure_gets_its_error(
        pg_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    distribution = Recorded(dose.dose_distribution, pause=0.4)
    monkeypatch.setattr(dose, "dose_distribution", distribution)
    source = SqlSource(pg_engine, shared=False)
    wrong = Filters(physicians=("Dr. Nobody",))
    future, = source.ahead(lambda s: s.dose_distribution(wrong, "dap_gycm2"))
    with pytest.raises(ValidationFailed, match="physician"):
        source.dose_distribution(wrong, "dap_gycm2")
    with pytest.raises(ValidationFailed, match="physician"):
        future.result(timeout=60)
    assert source.queries == 0
