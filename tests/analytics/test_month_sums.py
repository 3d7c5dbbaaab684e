"""The physician grain's month cells as running totals over the months
(audit.analytics.sql.month_sums): the strata a period of whole months gets from them are the
strata summed from the cells, row for row; a cube too large for the bound is not built (the
cells are summed, the figures the same); a write makes new cubes. PostgreSQL only."""

from __future__ import annotations

from datetime import date, timedelta
from itertools import combinations

import numpy as np
import pytest
from sqlalchemy import Engine

from audit.analytics.sql import bucket_mixtures, dose_buckets, month_cells, month_sums
from audit.analytics.sql.bucket_snapshot import snapshot
from audit.analytics.sql.source import SqlSource
from audit.auth import cli_actor
from audit.demo import generate
from audit.filters import Filters
from audit.log.service import ProcedureLog
from tests.analytics.test_bucket_mixtures import assert_same_scorecards
from tests.conftest import valid_record

#: The Physicians tab's strata: (quantity, whole).
STRATA = (("dap_gycm2", False), ("fluoro_time_s", False), ("kap_corrected_gycm2", True))


@pytest.fixture(autouse=True)
def empty() -> None:
    month_cells.clear()
    month_sums.clear()


def month_periods() -> list[Filters]:
    """Periods of whole months, open ends included, and no month at all."""
    starts = [None, date(2025, 8, 1), date(2025, 12, 1), date(2026, 3, 1), date(2026, 6, 1),
              date(2027, 1, 1)]
    return [Filters.days(a, None if b is None else b - timedelta(days=1))
            for a, b in combinations(starts, 2) if b is not None] + \
        [Filters.days(a, None) for a in starts]


def both(pg: Engine, filters: Filters, monkeypatch: pytest.MonkeyPatch) -> list[tuple]:
    """Each quantity's strata from the sums and summed from the cells, in one snapshot."""
    sql = SqlSource(pg, shared=False)
    found = []
    for quantity, whole in STRATA:
        with snapshot(pg, sql.lookups, filters, quantity, by_physician=True) as opened:
            assert opened is not None
            conn, narrowed = opened
            stamp = month_cells.stamp_of(conn)
            assert month_sums.summed(conn, stamp, quantity, 0, True, narrowed) is not None
            summed = bucket_mixtures._read_strata(conn, narrowed, quantity, whole)
            with monkeypatch.context() as patch:
                patch.setattr(bucket_mixtures, "_summed_strata", lambda *_: None)
                cells = bucket_mixtures._read_strata(conn, narrowed, quantity, whole)
        found.append((quantity, summed, cells))
    return found


def assert_same_strata(found: list[tuple], where: str) -> int:
    rows = 0
    for quantity, summed, cells in found:
        assert (summed is None) == (cells is None), where
        if summed is None:
            continue
        for name in ("keys", "c", "b", "n", "lo", "hi"):
            a, b = getattr(summed, name), getattr(cells, name)
            assert a.dtype == b.dtype or len(a) == 0, f"{name} of {quantity} {where}"
            np.testing.assert_array_equal(a, b, err_msg=f"{name} of {quantity} {where}")
        rows += len(summed.c)
    return rows


def test_every_period_and_name_equals_the_cells_summed(
        pg: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    generate(pg, procedures=1500, seed=3, until=date(2026, 6, 30))
    dose_buckets.refresh_buckets(pg)
    options = SqlSource(pg, shared=False).options()
    physicians, procedures = options["physicians"], options["procedures"]
    names = [{}, {"physicians": tuple(physicians[:1])}, {"procedures": tuple(procedures[1:3])},
             {"physicians": tuple(physicians[1:3]), "procedures": tuple(procedures[:1])}]
    rows = 0
    for period in month_periods():
        for name in names:
            filters = Filters(**{**vars(period), **name})
            rows += assert_same_strata(both(pg, filters, monkeypatch), filters.describe())
    assert rows > 10_000
    assert len(month_sums._CUBES) == 5  # each quantity's strata and bounds (KAP corrected's)


def test_a_cube_beyond_the_bound_is_not_built(pg: Engine,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Over a quarter of MAX_BYTES: no cube, the cells summed, the figures the scans'."""
    generate(pg, procedures=600, seed=6, until=date(2026, 6, 30))
    monkeypatch.setattr(month_sums, "MAX_BYTES", 4)
    assert_same_scorecards(pg, Filters.days(date(2025, 11, 1), date(2026, 4, 30)))
    assert month_sums._CUBES and all(
        cube.result() is None for cube in month_sums._CUBES._entries.values())


def test_a_write_makes_new_cubes(pg: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """A record logged: the next figures' cubes are of the new state (the older dropped) and
    count it."""
    generate(pg, procedures=800, seed=4, until=date(2026, 6, 30))
    period = Filters.days(date(2026, 6, 1), None)
    before = both(pg, period, monkeypatch)
    ProcedureLog(pg).log(valid_record(accession_number="MS1", dap_value=9.9,
                                      performed_at="2026-06-15T10:00:00+00:00"),
                         cli_actor(), confirm_warnings=True, create_missing=True)
    after = both(pg, period, monkeypatch)
    assert_same_strata(after, "after the write")
    assert int(after[0][1].n.sum()) == int(before[0][1].n.sum()) + 1
    with pg.connect() as conn:
        stamp = month_cells.stamp_of(conn)
    assert {key[0] for key in month_sums._CUBES} == {stamp}
    assert_same_scorecards(pg, period)
