"""The physician grain's month cells kept in the process (audit.analytics.sql.month_cells):
a filter change selects them without reading dose_bucket again, every selection equal to the
table's own read of the same months and names, the scorecards through them equal to the scans;
an entry is used only for the buckets' state it was read in (a write, a rewrite of the state
row behind the app's back) and a room filter reads the table. PostgreSQL only."""

from __future__ import annotations

from datetime import date
from itertools import combinations
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Engine, text

from audit.analytics.sql import dose_buckets, month_cells
from audit.analytics.sql.cell_columns import CellColumns, read_cells
from audit.analytics.sql.source import SqlSource
from audit.auth import cli_actor
from audit.demo import generate
from audit.filters import Filters
from audit.log.service import ProcedureLog
from audit.storage.models import DoseBucket
from tests.analytics.test_bucket_mixtures import assert_same_scorecards
from tests.conftest import valid_record


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """Each read of dose_bucket that fills an entry (quantity, grain, dimension), from an
    empty cache."""
    month_cells.clear()
    seen: list[tuple[Any, ...]] = []
    real = month_cells.read_cells

    def counted(conn: Any, *where: Any, **options: Any) -> CellColumns:
        seen.append(tuple(str(w.right.value) for w in where[:3]))
        return real(conn, *where, **options)
    monkeypatch.setattr(month_cells, "read_cells", counted)
    yield seen
    month_cells.clear()


def canonical(cells: CellColumns) -> np.ndarray:
    """The cells as rows (month, physician, type, part, bucket, records, least, greatest) in
    one order, whatever order they were read in."""
    per = np.repeat(np.arange(len(cells.lengths)), cells.lengths)
    bounds = (cells.lo, cells.hi) if len(cells.lo) == len(cells.b) else \
        (np.zeros(len(cells.b)), np.zeros(len(cells.b)))
    rows = np.column_stack([cells.month[per], cells.physician[per], cells.type[per],
                            cells.part[per], cells.b, cells.n, *bounds])
    return rows[np.lexsort(rows.T[::-1])]


def test_every_selection_equals_the_tables_read(pg: Engine, loads: list[Any]) -> None:
    """Every period of whole months (open ends too) with no name, a physician, two procedures
    and both (the room grain: a room, a site, rooms with procedures, a physician it does not
    hold): the kept cells equal dose_bucket's rows read with the same conditions, buckets,
    records and bounds, for the physicians' strata and unsplit cells and the rooms' cells;
    one read a grain and dimension."""
    generate(pg, procedures=1500, seed=3, until=date(2026, 6, 30))
    dose_buckets.refresh_buckets(pg)
    s = DoseBucket
    with pg.connect() as conn:
        months = sorted(conn.scalars(text("SELECT DISTINCT month FROM dose_bucket")))
        physicians = sorted(conn.scalars(text("SELECT id FROM physician")))
        types = sorted(conn.scalars(text("SELECT DISTINCT procedure_type_id FROM dose_bucket")))
        stamp = month_cells.stamp_of(conn)
        assert stamp is not None and len(months) >= 12
        quantity = dose_buckets.QUANTITIES["dap_gycm2"]
        names: list[dict[str, list[int]]] = [
            {}, {"physician_id": physicians[:1]}, {"procedure_type_id": types[1:3]},
            {"physician_id": physicians[1:3], "procedure_type_id": types[:1]}]
        periods = [(None, None), *combinations([None, *months[::3], "2099-01"], 2)]
        rooms = sorted(conn.scalars(text("SELECT id FROM room")))
        sites = sorted(conn.scalars(text("SELECT id FROM site")))
        compared = 0
        for grain, dimension, bounds in ((dose_buckets.GRAIN_PHYSICIAN, dose_buckets.STRATUM,
                                          False), (dose_buckets.GRAIN_PHYSICIAN, 0, True),
                                         (dose_buckets.GRAIN_ROOM, 0, True)):
            if grain == dose_buckets.GRAIN_ROOM:  # the room grain: its rooms and sites too
                names = [{}, {"room_id": rooms[:1]}, {"site_id": sites[:1]},
                         {"room_id": rooms[1:3], "procedure_type_id": types[:2]},
                         {"physician_id": physicians[:1]}]  # none at this grain: no cell
            for (first, last), ids in [(p, i) for p in periods for i in names]:
                where = [s.quantity == quantity, s.grain == grain, s.dimension == dimension]
                where += [] if first is None else [s.month >= first]
                where += [] if last is None else [s.month < last]
                where += [getattr(s, k).in_(v) for k, v in ids.items()]
                table = read_cells(conn, *where, bounds=bounds, months=True)
                kept = month_cells.cells(conn, stamp, quantity, grain, dimension, bounds,
                                         first, last, ids)
                np.testing.assert_array_equal(canonical(kept), canonical(table),
                                              err_msg=f"{first}..{last} {ids} {dimension}")
                compared += len(table.n) > 0
    assert compared > 100
    assert len(loads) == 3  # each grain and dimension read once


def test_a_filter_change_reads_no_cell_and_equals_the_scans(pg: Engine,
                                                            loads: list[Any]) -> None:
    """After the tab's first figures (every month read once per quantity and dimension), the
    next periods, physicians and procedures select kept cells: no read of dose_bucket, the
    scorecards equal to the scans exactly. A room filter reads the room x physician grain
    from the table."""
    generate(pg, procedures=2000, seed=8, until=date(2026, 6, 30))
    assert_same_scorecards(pg, Filters())
    first = len(loads)
    assert first >= 5 and len(set(loads)) == first  # each quantity's strata and bounds once
    options = SqlSource(pg, shared=False).options()
    for filters in [Filters.days(date(2025, 9, 1), date(2026, 2, 28)),
                    Filters.days(date(2025, 10, 17), date(2026, 5, 3)),
                    Filters(physicians=tuple(options["physicians"][:2])),
                    Filters.days(date(2026, 1, 1), None,
                                 procedures=tuple(options["procedures"][:2])),
                    Filters(rooms=tuple(options["rooms"][:1]))]:
        assert_same_scorecards(pg, filters)
    assert len(loads) == first


def test_kept_cells_follow_the_buckets_state(pg: Engine, loads: list[Any]) -> None:
    """A record logged: the next figures read the cells of the new state (the record counted:
    equal to the scan) and the older entries are gone. The state row rewritten behind the
    app's back with the same values: a new state, read again. Cells changed behind the app's
    back without the state row: the kept cells answer as they were read (a snapshot's
    answer), equal to the scan that the facts still match."""
    generate(pg, procedures=800, seed=4, until=date(2026, 6, 30))
    assert_same_scorecards(pg, Filters())
    first = len(loads)
    ProcedureLog(pg).log(valid_record(accession_number="MC1", dap_value=9.9,
                                      performed_at="2026-06-15T10:00:00+00:00"),
                         cli_actor(), confirm_warnings=True, create_missing=True)
    assert_same_scorecards(pg, Filters.days(date(2026, 6, 1), None))
    assert len(loads) == 2 * first
    with pg.connect() as conn:
        stamp = month_cells.stamp_of(conn)
    assert {key[0] for key in month_cells._CACHE} == {stamp}
    with pg.begin() as conn:
        conn.execute(text("UPDATE dose_bucket_state SET data_version = data_version"))
    assert_same_scorecards(pg, Filters.days(date(2026, 1, 1), None))
    assert len(loads) == 3 * first
    with pg.begin() as conn:  # the physicians' cells garbled, the state row untouched
        conn.execute(text("UPDATE dose_bucket SET records = records || records "
                          f"WHERE grain = {dose_buckets.GRAIN_PHYSICIAN}"))
    assert_same_scorecards(pg, Filters.days(date(2025, 12, 1), None))
    assert len(loads) == 3 * first


def test_cells_beyond_the_memory_cap_are_read_from_the_table(
        pg: Engine, loads: list[Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """Entries that do not fit MAX_BYTES are not kept (the least recently used go first; one
    larger than the cap alone is never kept): every filter reads its cells again, the figures
    the same as the scans'."""
    generate(pg, procedures=600, seed=6, until=date(2026, 6, 30))
    dose_buckets.refresh_buckets(pg)
    with pg.connect() as conn:
        stamp = month_cells.stamp_of(conn)
        assert stamp is not None
        one = month_cells.cells(conn, stamp, dose_buckets.QUANTITIES["dap_gycm2"],
                                dose_buckets.GRAIN_PHYSICIAN, 0, True, None, None, {})
        size = month_cells._bytes(one)  # the whole entry: no month or name left out
        month_cells.clear()
        monkeypatch.setattr(month_cells, "MAX_BYTES", size + 1)
        for quantity in ("dap_gycm2", "fluoro_time_s", "dap_gycm2"):
            month_cells.cells(conn, stamp, dose_buckets.QUANTITIES[quantity],
                              dose_buckets.GRAIN_PHYSICIAN, 0, True, None, None, {})
        assert len(month_cells._CACHE) == 1 and len(loads) == 4  # the first dap one dropped
    monkeypatch.setattr(month_cells, "MAX_BYTES", 1)
    month_cells.clear()
    assert_same_scorecards(pg, Filters())
    first = len(loads)
    assert not month_cells._CACHE
    assert_same_scorecards(pg, Filters.days(date(2026, 1, 1), None))
    assert len(loads) > first and not month_cells._CACHE
