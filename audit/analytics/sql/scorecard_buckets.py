"""The physician scorecards' medians from the dose buckets (audit.analytics.sql.bucket_mixtures
says how): the per-level medians per physician and procedure and per procedure, and the
case-mix-adjusted scorecard's medians. The same frames as the scans in
audit.analytics.sql.scorecard, which does the arithmetic after them; None where the buckets do
not answer (the caller scans).

The adjusted scorecard takes two rounds: the strata's medians first (each a mixture of the
physicians' components of the stratum), then each physician's median of value / stratum
median (a mixture of their components, each divided by its stratum's median). A stratum whose
median is 0 makes some ratios infinite and leaves others out (0 / 0): the scan answers it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, Float, Integer, bindparam, select

from audit.analytics.snapshot import Snapshot
from audit.analytics.sql.bucket_mixtures import (
    Mixtures,
    Strata,
    answerable,
    read_strata,
)
from audit.analytics.sql.bucket_picks import unique_rows, weighted_median
from audit.analytics.sql.bucket_ranges import edges_of, widened
from audit.analytics.sql.bucket_snapshot import snapshot
from audit.analytics.sql.dose_buckets import FACTS, facts_of, value_of
from audit.analytics.sql.records import period_conditions
from audit.filters import Filters
from audit.storage.models import RecordFact, Room
from audit.vocab import BMI_BAND_LOWER

#: The BMI band of the records without a BMI (audit.analytics.bands.bmi_band_codes).
UNKNOWN_BAND = len(BMI_BAND_LOWER)
#: The adjusted scorecard's strata cap the levels here (audit.analytics.case_mix).
MAX_LEVELS = 63
PER_LEVEL = ("dap_gycm2", "fluoro_time_s")


def _groups(labels: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """The distinct rows of `labels` (one row per component) and each one's components."""
    if len(labels) == 0:
        return labels, []
    found, inverse = unique_rows(labels)
    order = np.argsort(inverse, kind="stable")
    cuts = np.searchsorted(inverse[order], np.arange(1, len(found)))
    return found, np.split(order, cuts)


@contextmanager
def _opened(engine: Engine, lookups: Snapshot, filters: Filters, quantity: str,
            whole: bool = False) -> Iterator[tuple[Connection, Filters, Strata | None] | None]:
    """The snapshot (bucket_snapshot.snapshot, for figures per physician) and phase 1's
    components in it (None when there are none: no record, or a name matching nothing); None
    where the buckets do not answer."""
    with snapshot(engine, lookups, filters, quantity, by_physician=True) as opened:
        if opened is None:
            yield None
            return
        conn, filters = opened
        strata = read_strata(conn, filters, quantity, whole)
        yield conn, filters, None if strata is None or len(strata.keys) == 0 else strata


def per_level_medians(engine: Engine, lookups: Snapshot,
                      filters: Filters) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """scorecard._per_level_ratios's medians: per physician and procedure (g0, g1) and per
    procedure (g0), for KAP (v0) and time (v1) per level treated: v{i}_n, v{i}_q0. The two
    quantities are picked at once, each in a thread with a snapshot of its own (PostgreSQL
    works on two cores; each is exact for the data version it reads)."""
    if not all(answerable(filters, q) for q in PER_LEVEL):
        return None
    with ThreadPoolExecutor(len(PER_LEVEL)) as pool:
        found = list(pool.map(lambda i: _per_level_one(engine, lookups, filters, i),
                              range(len(PER_LEVEL))))
    if any(f is None for f in found):
        return None
    (cells0, types0), (cells1, types1) = found  # type: ignore[misc]
    return (cells0.merge(cells1, on=["g0", "g1"], how="outer"),
            types0.merge(types1, on="g0", how="outer"))


def _per_level_one(engine: Engine, lookups: Snapshot, filters: Filters,
                   i: int) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    quantity = PER_LEVEL[i]
    names = [f"v{i}_n", f"v{i}_q0"]
    with _opened(engine, lookups, filters, quantity) as opened:
        if opened is None:
            return None
        conn, filters, strata = opened
        if strata is None:
            return (pd.DataFrame(columns=["g0", "g1", *names]),
                    pd.DataFrame(columns=["g0", *names]))
        keys = strata.keys
        divisors = np.maximum(keys[:, 2], 1)
        mixtures = Mixtures(conn, filters, quantity, strata)
        pairs, by_pair = _groups(keys[:, :2])
        kinds, by_type = _groups(keys[:, 1:2])
        found = mixtures.medians([(c, divisors[c]) for c in [*by_pair, *by_type]])
    if found is None:
        return None
    median, records = found
    k = len(by_pair)
    return (pd.DataFrame({"g0": pairs[:, 0], "g1": pairs[:, 1], names[0]: records[:k],
                          names[1]: median[:k]}),
            pd.DataFrame({"g0": kinds[:, 0], names[0]: records[k:], names[1]: median[k:]}))


def adjusted_medians(engine: Engine, lookups: Snapshot, filters: Filters,
                     quantity: str) -> pd.DataFrame | None:
    """scorecard.adjusted_scorecard's grouped row per physician (gset 0) and overall (gset
    1): id, records, observed_median, expected_median, bmi_known_share, adjusted_ratio."""
    columns = ["gset", "id", "records", "observed_median", "expected_median",
               "bmi_known_share", "adjusted_ratio"]
    if not answerable(filters, quantity):
        return None
    with _opened(engine, lookups, filters, quantity) as opened:
        if opened is None:
            return None
        conn, filters, strata = opened
        if strata is None:
            return pd.DataFrame(columns=columns)
        keys = strata.keys
        ones = np.ones(len(keys))
        labels = np.column_stack([keys[:, 1], np.minimum(keys[:, 2], MAX_LEVELS), keys[:, 3]])
        _, by_stratum = _groups(labels)
        stratum_of = np.empty(len(keys), dtype=np.int64)
        for s, members in enumerate(by_stratum):
            stratum_of[members] = s
        physicians, by_physician = _groups(keys[:, :1])
        every = np.arange(len(keys))
        mixtures = Mixtures(conn, filters, quantity, strata)
        first = mixtures.medians([*((c, ones[c]) for c in by_stratum),
                                  *((c, ones[c]) for c in by_physician), (every, ones)])
        if first is None:
            return None
        median, records = first
        expected = median[:len(by_stratum)]
        if not (expected > 0).all():
            return None  # a stratum's median of 0 (module doc)
        observed = median[len(by_stratum):-1]
        held = records[len(by_stratum):-1]
        per_component = np.bincount(strata.c, weights=strata.n,
                                    minlength=len(keys)).astype(np.int64)
        divisor = expected[stratum_of]
        second = mixtures.medians([(c, divisor[c]) for c in by_physician])
        if second is None:
            return None
        known = keys[:, 3] != UNKNOWN_BAND
        rows = []
        for j, members in enumerate(by_physician):
            n = per_component[members]
            rows.append((0, int(physicians[j, 0]), int(held[j]), observed[j],
                         weighted_median(divisor[members], n),
                         float(n[known[members]].sum()) / float(held[j]), second[0][j]))
        rows.append((1, None, int(records[-1]), median[-1], np.nan, np.nan, np.nan))
        frame = pd.DataFrame(rows, columns=columns)
        frame["id"] = frame["id"].astype("Int64")
        return frame


def above_counts(engine: Engine, lookups: Snapshot, filters: Filters,
                 levels: pd.DataFrame) -> pd.DataFrame | None:
    """Per physician (g0): the records with KAP corrected and a reference level for their
    procedure (`records`), and those above it (`above`), as reference.above_sums counts them;
    from the physicians' KAP corrected cells: a bucket wholly above its type's level counts
    whole, the one bucket it cuts (where its values differ) is counted in the facts (an index
    range per physician and type). None where the buckets do not answer."""
    quantity = "kap_corrected_gycm2"
    known = levels.dropna(subset=["value"])
    level_of = {int(t): float(v) for t, v in zip(known["type_id"], known["value"], strict=True)}
    with _opened(engine, lookups, filters, quantity, whole=True) as opened:
        if opened is None:
            return None
        conn, filters, strata = opened
        if strata is None:
            return pd.DataFrame({"g0": [], "records": [], "above": []}, dtype=np.int64)
        keys = strata.keys[strata.c]
        types = keys[:, 1]
        level = _per_type(level_of, types, np.nan)
        measured = ~np.isnan(level)
        whole = measured & (strata.lo > level)
        cut = np.flatnonzero(measured & (strata.lo <= level) & (strata.hi > level))
        above = np.where(whole, strata.n, 0)
        # the bucket a type's level cuts is the same for every physician (the type's edges):
        # its records above the level counted per physician, in one walk of it per factor
        cuts = {int(t): int(b) for t, b in zip(types[cut].tolist(), strata.b[cut].tolist(),
                                                strict=True)}
        if cuts:
            counted = _above_in_buckets(conn, filters, cuts, level_of, lookups)
            rows = np.flatnonzero(measured & (strata.b == _per_type(cuts, types, -1)))
            above[rows] = [counted.get((t, p), 0) for t, p in
                           zip(types[rows].tolist(), keys[rows, 0].tolist(), strict=True)]
        physicians = keys[:, 0]
        ids = np.unique(physicians)
        at = np.searchsorted(ids, physicians)
        return pd.DataFrame({
            "g0": ids,
            "records": np.bincount(at, weights=np.where(measured, strata.n, 0),
                                   minlength=len(ids)).astype(np.int64),
            "above": np.bincount(at, weights=above, minlength=len(ids)).astype(np.int64)})


def _per_type(values: Mapping[int, float], types: np.ndarray, missing: float) -> np.ndarray:
    """values[t] for each type id of `types` (`missing` where it has none), by table lookup."""
    table = np.full(max([*values, int(types.max(initial=0))]) + 1, missing)
    table[list(values)] = list(values.values())
    return table[types]


def _above_in_buckets(conn: Connection, filters: Filters, cuts: dict[int, int],
                      level_of: dict[int, float], lookups: Snapshot) -> dict[tuple[int, int], int]:
    """Per (type, physician): the records of the type's bucket `cuts[type]` above the type's
    level, under the filters. KAP corrected is KAP times the room's factor: per factor, a
    range of the stored KAP through the (type, KAP) index (a little margin for the division's
    rounding, then the product tested exactly), as bucket_ranges.Ranges reads them. One
    template compiled, each (type, factor) range a copy of it with its bounds as literals, so
    PostgreSQL plans each on its own values (through the (type, KAP) index; a UNION of sixty
    SQLAlchemy selects took 9 ms to build and compile, and the ranges as arrays joined
    LATERAL were planned for unknown bounds: through a physician's every record)."""
    quantity = "kap_corrected_gycm2"
    edges = edges_of(conn, quantity)
    rows = []
    for t, b in cuts.items():
        bounds = edges.get(t, np.array([-math.inf, math.inf]))
        level, high = level_of[t], float(bounds[b + 1])
        for factor in sorted({float(x) for x in lookups.rooms["kap_factor"]}):
            rows.append((t, factor, widened(level / factor, -1), widened(high / factor, 1),
                         level, high))
    if not rows:
        return {}
    f, v = RecordFact, value_of(quantity)
    number = {"type_": Float}
    compiled = (select(f.physician_id).select_from(facts_of(quantity)).where(
        f.procedure_type_id == bindparam("t", 0, type_=Integer),
        Room.kap_correction_factor == bindparam("f", 0.0, **number),
        f.dap_gycm2 >= bindparam("slo", 0.0, **number),
        f.dap_gycm2 <= bindparam("shi", 0.0, **number),
        v > bindparam("level", 0.0, **number), v < bindparam("high", 0.0, **number),
        *(filters.id_conditions(conn, FACTS) or []), *period_conditions(filters))
        .compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True}))
    names = ("t", "f", "slo", "shi", "level", "high")
    template = str(compiled)
    params = {k: value for k, value in compiled.params.items() if k not in names}
    parts = []
    for row in rows:
        sql = template
        for name, value in zip(names, row, strict=True):  # numbers as literals (repr: exact)
            sql = sql.replace(f"%({name})s", str(int(value)) if name == "t" else
                              f"'{float(value)!r}'")
        parts.append(f"SELECT {int(row[0])} AS t, x.physician_id FROM ({sql}) AS x")  # noqa: S608
    sql = (f"SELECT u.t, u.physician_id, count(*) FROM ({' UNION ALL '.join(parts)}) "  # noqa: S608
           "AS u GROUP BY u.t, u.physician_id")
    return {(int(t), int(p)): int(n)
            for t, p, n in conn.exec_driver_sql(sql, params).all()}
