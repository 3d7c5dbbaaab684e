"""The Dose page's Case mix and Over time tables from the dose buckets split by case mix
(audit.analytics.sql.bucket_groups): each procedure's records, median and 75th percentile by
levels, weight band, BMI band, operator and month, equal to the scan's percentile_cont
exactly (every digit), read from the buckets and the few records of the buckets a quantile
falls in, never by sorting the selected records; the scan where the buckets cannot answer;
still equal after every kind of write. PostgreSQL only."""

from __future__ import annotations

from datetime import date
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine, func, select, text

from audit.analytics.sql import bucket_groups, dose, dose_buckets
from audit.analytics.sql.facts import refresh_facts
from audit.analytics.sql.scope import Scope
from audit.analytics.sql.source import SqlSource
from audit.auth import cli_actor
from audit.demo import generate
from audit.filters import Filters
from audit.log.service import ProcedureLog
from audit.reference_data import list_rooms, update_procedure_type, update_room
from audit.storage.models import DoseBucket, RecordFact
from tests.analytics.sql_figures import FACT_SCAN, statements
from tests.analytics.test_dose_buckets import (
    ANSWERED,
    BUCKET_READ,
    assert_same_figures,
    demo_filters,
)
from tests.conftest import valid_record

SPLIT = dose_buckets.SPLIT


def assert_same_tables(engine: Engine, filters: Filters, answered: bool = True) -> None:
    """Every split quantity's tables: from the buckets (no sort of the facts) or, where not
    `answered`, None; and SqlSource's tables (either way) equal to the scan's, exactly."""
    dose_buckets.refresh_buckets(engine)  # a refresh reads the facts: not the figure's own
    sql = SqlSource(engine, shared=False)
    where = f"under {filters.describe()}"
    for quantity in SPLIT:
        with statements(engine) as seen:
            found = bucket_groups.dose_page(engine, sql.lookups, filters, quantity)
        assert (found is not None) == answered, f"{quantity} {where}"
        if found is not None:
            assert any(BUCKET_READ.search(s) for s in seen), where
            assert not [s for s in seen if FACT_SCAN.search(s) and "percentile" in s], where
        refresh_facts(engine)
        with engine.connect() as conn:
            scope = Scope.open(conn, sql.lookups, filters)
            exact = dose.dose_page_together(scope, quantity)
            got = bucket_groups.page(engine, scope, quantity)
        assert set(got) == set(exact)
        for key, table in exact.items():
            pd.testing.assert_frame_equal(got[key], table, check_exact=True,
                                          obj=f"{key} of {quantity} {where}")


@pytest.mark.parametrize("buckets", [4, 512])
def test_the_tables_from_the_buckets_equal_the_scans(pg_engine: Engine, buckets: int,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The hand-checked records: every filter the buckets answer, periods cut inside months
    (their days counted from the facts), a name that matches nothing."""
    monkeypatch.setattr(dose_buckets, "BUCKETS", buckets)  # in the rules: a rebuild
    for filters in ANSWERED:
        assert_same_tables(pg_engine, filters)


@pytest.mark.parametrize("buckets", [3, 64, 512])
def test_a_demo_sets_tables_equal_the_scans(pg: Engine, buckets: int,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """3,000 demo records over a year: ties, zeros, records without a value, every filter
    the buckets answer, periods whole and cut."""
    monkeypatch.setattr(dose_buckets, "BUCKETS", buckets)
    generate(pg, procedures=3000, seed=12, until=date(2026, 6, 30))
    sql = SqlSource(pg, shared=False)
    for filters in demo_filters(sql):
        assert_same_tables(pg, filters)
    # the demo has records without a value: counted in records, not in the quantiles
    table = sql.dose_statistics(Filters(), by=("procedure", "operator"),
                                quantities=("air_kerma_mgy",))
    assert (table["records"] > table["air_kerma_mgy_n"]).any()


def test_what_the_buckets_cannot_answer_is_scanned(pg_engine: Engine) -> None:
    for filters in [Filters(technologists=("tech1",)),
                    Filters(rooms=("R3",), physicians=("Dr. B",)),
                    Filters(record_ids=(1, 2, 3)),
                    Filters(include_voided=True)]:
        assert_same_tables(pg_engine, filters, answered=False)
    sql = SqlSource(pg_engine, shared=False)  # KAP corrected is not split
    assert bucket_groups.dose_page(pg_engine, sql.lookups, Filters(),
                                   "kap_corrected_gycm2") is None


def test_the_tables_follow_every_write(pg: Engine) -> None:
    generate(pg, procedures=400, seed=4, until=date(2026, 6, 30))
    assert_same_tables(pg, Filters())
    log, actor = ProcedureLog(pg), cli_actor()
    created = log.log(valid_record(accession_number="C1", dap_value=250.0,
                                   performed_at="2026-05-31T23:30:00+00:00"),
                      actor, confirm_warnings=True, create_missing=True).record_id
    assert_same_tables(pg, Filters.days(date(2026, 5, 1), date(2026, 5, 31)))
    log.amend(created, {"performed_at": "2026-06-01T10:00:00+00:00"}, actor, version=1,
              reason="wrong date", confirm_warnings=True)  # into another month
    assert_same_tables(pg, Filters.days(date(2026, 5, 1), date(2026, 5, 31)))
    assert_same_tables(pg, Filters.days(date(2026, 6, 1), None))
    log.void(created, actor, version=2, reason="duplicate")
    assert_same_tables(pg, Filters())
    with pg.connect() as conn:  # each split counts every final record once, per grain
        counted: dict[tuple[int, int, int], int] = {}
        for q, g, d, held, records, low, high, missing in conn.execute(
                select(DoseBucket.quantity, DoseBucket.grain, DoseBucket.dimension,
                       DoseBucket.buckets, DoseBucket.records, DoseBucket.low,
                       DoseBucket.high, DoseBucket.missing)):
            n = dose_buckets.dense_cell(held, records, low, high)[0]
            counted[(q, g, d)] = counted.get((q, g, d), 0) + int(n.sum()) + int(missing)
        final = int(conn.scalar(select(func.count()).select_from(RecordFact)) or 0)
    splits = [code for code, _ in dose_buckets.DIMENSIONS.values()]
    expected = {(dose_buckets.QUANTITIES[q], g, d): final for q in dose_buckets.QUANTITIES
                for g in (0, 1, 2) for d in [0, *(splits if q in SPLIT else [])]}
    expected.update({(dose_buckets.QUANTITIES[q], g, dose_buckets.STRATUM): final
                     for q in SPLIT for g in (2, 3)})  # the scorecards' strata, and
    expected[(0, dose_buckets.GRAIN_ROOM_PHYSICIAN, 0)] = final  # KAP corrected per room x phys.
    assert counted == expected


def test_the_pages_tables_come_from_the_buckets(pg: Engine) -> None:
    """SqlSource's Case mix and Over time tables (dose_statistics, monthly_medians) read the
    buckets, and a small split cell is stored sparse (its buckets listed, not 1 KB of
    zeros)."""
    generate(pg, procedures=600, seed=9, until=date(2026, 6, 30))
    sql = SqlSource(pg, shared=False)
    dose_buckets.refresh_buckets(pg)
    with statements(pg) as seen:
        monthly = sql.monthly_medians(Filters(), "fluoro_time_s")
        levels = sql.dose_statistics(Filters(), by=("procedure", "levels"),
                                     quantities=("fluoro_time_s",), per_level=True)
    assert any(BUCKET_READ.search(s) for s in seen)
    assert not [s for s in seen if FACT_SCAN.search(s) and "percentile" in s]
    assert len(monthly) and monthly["median"].notna().all()
    assert (levels["fluoro_time_s_per_level_median"] > 0).any()
    with pg.connect() as conn:
        sparse = conn.execute(select(DoseBucket.buckets, DoseBucket.records)
                              .where(DoseBucket.dimension > 0,
                                     func.length(DoseBucket.buckets) > 0).limit(1)).first()
    assert sparse is not None
    held = np.frombuffer(sparse[0], dtype="<i2")
    assert len(held) == len(np.frombuffer(sparse[1], dtype="<i4")) and \
        (np.diff(held) > 0).all()


def row_versions(engine: Engine) -> dict[tuple[Any, ...], str]:
    """Each dose_bucket row's key (quantity, grain, dimension, physician, room, site, type,
    part, month) -> PostgreSQL's xmin: the transaction that last wrote it."""
    with engine.connect() as conn:
        return {tuple(r[1:]): str(r[0]) for r in conn.execute(text(
            "SELECT xmin, quantity, grain, dimension, physician_id, room_id, site_id, "
            "procedure_type_id, part, month FROM dose_bucket"))}


def test_a_rooms_kap_factor_rebuilds_kap_corrected_alone(
        pg: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only KAP corrected depends on the rooms' factors: a factor's change rewrites its rows
    alone (335 s for every quantity at 10M), and every figure still equals the scan's; a
    catalog entry's change rebuilds nothing; a change of the buckets' own rules (their count)
    rebuilds every quantity."""
    generate(pg, procedures=400, seed=10, until=date(2026, 6, 30))
    dose_buckets.refresh_buckets(pg)
    before = row_versions(pg)
    update_room(pg, cli_actor(), list_rooms(pg)[0]["room_id"], kap_correction_factor=0.5)
    ProcedureLog(pg).log(valid_record(accession_number="K1"), cli_actor(),
                         confirm_warnings=True, create_missing=True)  # and a write meanwhile
    dose_buckets.refresh_buckets(pg)
    after = row_versions(pg)
    kap = dose_buckets.QUANTITIES["kap_corrected_gycm2"]
    assert all(after[k] != v for k, v in before.items() if k[0] == kap and k in after)
    others = {k: v for k, v in before.items() if k[0] != kap}
    kept = {k for k, v in others.items() if after.get(k) == v}
    assert len(kept) > len(others) / 2  # most of the other quantities' rows untouched
    assert_same_tables(pg, Filters())
    assert_same_figures(pg, Filters())
    before = after  # a catalog entry's change moves no record's value, type or key
    update_procedure_type(pg, cli_actor(), "TFESI", name="Transforaminal ESI (renamed)")
    dose_buckets.refresh_buckets(pg)
    after = row_versions(pg)
    assert after == before
    monkeypatch.setattr(dose_buckets, "BUCKETS", 64)
    before = after
    dose_buckets.refresh_buckets(pg)
    after = row_versions(pg)
    assert not {k for k, v in before.items() if after.get(k) == v}  # every row rebuilt


def test_a_write_redoes_only_its_months_cells_of_its_procedure_types(pg: Engine) -> None:
    """A logged TFESI rewrites its month's TFESI cells only (PostgreSQL's xmin of every other
    row stays); an amend that changes the procedure redoes the old type's cells and the new
    one's; the tables equal the scan's after each."""
    generate(pg, procedures=400, seed=7, until=date(2026, 6, 30))
    dose_buckets.refresh_buckets(pg)
    sql = SqlSource(pg, shared=False)
    types = sql.lookups.types
    tfesi = int(types.index[types["code"] == "TFESI"][0])

    def versions() -> dict[tuple[Any, ...], str]:
        return row_versions(pg)

    before = versions()
    log, actor = ProcedureLog(pg), cli_actor()
    created = log.log(valid_record(accession_number="T1", procedure_code="TFESI",
                                   performed_at="2026-05-14T10:00:00+00:00"),
                      actor, confirm_warnings=True, create_missing=True).record_id
    dose_buckets.refresh_buckets(pg)
    after = versions()
    rewritten = {k for k in after if before.get(k) != after[k]}
    assert rewritten and {(k[6], k[8]) for k in rewritten} == {(tfesi, "2026-05")}
    assert {k for k in before if k[6] != tfesi or k[8] != "2026-05"} <= set(after)
    assert_same_tables(pg, Filters())
    other = "ILESI"
    log.amend(created, {"procedure_code": other, "levels": ["L4-L5"], "laterality": "midline"},
              actor, version=1, reason="wrong procedure", confirm_warnings=True)
    before = after
    dose_buckets.refresh_buckets(pg)
    after = versions()
    touched = {(k[6], k[8]) for k in after if before.get(k) != after[k]}
    touched |= {(k[6], k[8]) for k in before if k not in after}
    assert touched <= {(tfesi, "2026-05"), (int(types.index[types["code"] == other][0]),
                                            "2026-05")}
    assert (tfesi, "2026-05") in touched
    assert_same_tables(pg, Filters())
