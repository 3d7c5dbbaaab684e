"""What the alert refresh needs from every record, computed by PostgreSQL instead of read from
the analysis frame (issue 16: with FLUORO_AUDIT_FIGURES=sql no app process holds the frame, 2.1
GB at 5M records).

The refresh (audit.alerts.refresh) needs three things the frame gave it, each equal here to
what the frame gives (tests/alerts/test_incremental.py compares the stored alerts, and
tests/alerts/test_levels_sql.py the levels, on PostgreSQL):

- the investigation levels: per procedure type, the count of records with each quantity and
  two of numpy's linear quantiles of them. percentile_cont interpolates from the other
  neighbour and can differ in the last bit, which can move a level rounded to 3 significant
  figures; so PostgreSQL picks the two neighbours of each quantile exactly (percentile_disc at
  the middle of the neighbour's rank) and they are interpolated here by the frame's own code,
  giving the same float. One statement: the counts and the values come from one snapshot of
  the data. That sorts every value; where the process has levels from before (SqlSource keeps
  the last ones: LevelKeeper), one scan without a sort looks near them first and gives the
  same floats (_near_previous).
- the records of a type whose level moved that are above the new level: one query.
- the cumulative episodes of some patients: their records only (ids, instant, places, KAP
  and Ka,r), read by patient in batches and summed by the frame's own code
  (detection.cumulative_alerts), whose per-patient sums do not depend on which other patients
  are read with them. A refresh of everyone first asks PostgreSQL which patients' totals reach
  a cumulative threshold (a GROUP BY; a window's sum never exceeds the total, so no other
  patient can have an episode): a few patients in a thousand, so the process never holds all
  records.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd
from sqlalchemy import (
    BigInteger,
    Connection,
    Engine,
    Float,
    Integer,
    and_,
    case,
    cast,
    column,
    func,
    literal,
    or_,
    select,
    tablesample,
    text,
    values,
)
from sqlalchemy.dialects.postgresql import ARRAY, array
from sqlalchemy.orm import aliased

from audit.alerts.detection import (
    ALERT_INPUTS,
    CUMULATIVE_SETTINGS,
    cumulative_alerts,
    level_table,
    picks,
    with_places,
)
from audit.alerts.per_record import measured
from audit.analytics._packing import COLUMNS, fetch
from audit.analytics.quantiles import lerp
from audit.analytics.snapshot import KAP_CORRECTED, Snapshot
from audit.storage.models import AuditEvent, Procedure, Room
from audit.vocab import DoseQuantity, Guidance, RecordStatus

#: Patients whose records are read and summed together (a few records each).
PATIENT_BATCH = 2_000
#: The SQL pre-selection of patients keeps any whose total is within this share of a
#: threshold (PostgreSQL sums in another order than numpy); the frame's rule decides.
_MARGIN = 1e-6
_FINAL = Procedure.status == RecordStatus.FINAL.value
#: How near the previous median and upper percentile a refresh looks first, as a share of
#: their value: values are dense around the median and sparse in the upper tail.
NEAR = (0.05, 0.25)
#: With no previous levels (the first refresh of a process), about this many records are
#: sampled (TABLESAMPLE SYSTEM: whole pages, the same pages for the same table) to place the
#: windows instead: at 10M records a sort of every value took 23 s of a 73 s first refresh.
SAMPLE_ROWS = 300_000
#: A sampled quantile's window reaches this many standard errors of its rank (sqrt(q(1-q)/m)
#: for m sampled values of the type) either side, plus SAMPLE_SLACK: a window that misses
#: costs a sort of its type, never a wrong level.
SAMPLE_SIGMAS = 4.0
SAMPLE_SLACK = 0.002
#: The fractions at which the sample's quantiles are read.
_GRID = 1000
#: The frame's columns the cumulative rule and the alerts' places read.
_PATIENT_COLUMNS = ("id", "t", "patient_id", "site_id", "room_id", "physician_id", "type_id",
                    "dap_gycm2", "air_kerma_mgy")


def _frame_value(quantity: str, p: Any = Procedure) -> Any:
    """The frame's value of a quantity (Snapshot.values of detection.measured): KAP times the
    room's factor, no fluoroscopy time for an ultrasound-guided record (it stores 0 s). `p`:
    the procedure table or a sample of it."""
    if quantity == DoseQuantity.FLUORO_TIME_S.value:
        return case((p.guidance == Guidance.ULTRASOUND.value, None),
                    else_=p.fluoro_time_s)
    return cast(measured(quantity, p), Float)


def _neighbour_ranks(n: Any, q: float) -> tuple[Any, Any]:
    """detection.picks in SQL: the 0-based ranks of quantile q's two neighbours among n."""
    virtual = cast(n - 1, Float) * q
    previous = func.floor(virtual)
    clamped = virtual >= n - 1
    return (cast(case((clamped, n - 1), else_=previous), BigInteger),
            cast(case((clamped, n - 1), else_=previous + 1), BigInteger))


def _values(types: list[int] | None = None, sample_percent: float | None = None) -> Any:
    """Per final record: its type and each measured quantity (v0, v1, ...). `types`: only
    these types; `sample_percent`: a sample of the table's pages."""
    p: Any = Procedure
    if sample_percent is not None:
        p = aliased(Procedure, tablesample(Procedure.__table__, func.system(sample_percent),
                                           name="sampled", seed=literal(0)))
    query = (select(p.procedure_type_id.label("type_id"),
                    *(_frame_value(q, p).label(f"v{i}")
                      for i, q in enumerate(DoseQuantity.values())))
             .select_from(p).join(Room, Room.id == p.room_id)
             .where(p.status == RecordStatus.FINAL.value))
    if types is not None:
        query = query.where(p.procedure_type_id.in_(types))
    return query.subquery("v")


Quantiles = dict[str, tuple[np.ndarray, list[np.ndarray]]]
#: Per procedure type id, per quantity (DoseQuantity order): its records with a value and
#: each quantile of them.
_Picked = dict[int, list[tuple[int, list[float]]]]
#: Per procedure type id: per quantity and quantile, the window (low, high) looked in.
_Windows = dict[int, list[float | None]]


def type_quantiles(conn: Connection, qs: tuple[float, ...],
                   previous: pd.DataFrame | None = None) -> Quantiles:
    """detection.per_type_quantiles of every measured quantity (KAP corrected, Ka,r, time),
    keyed by frame column: per procedure type id the records with a value and each quantile
    of them, bit for bit as numpy computes them on the frame.

    Each quantile is looked for in a window of values around where it is expected: near the
    `previous` levels (their medians and percentiles) after new records, or near the
    quantiles of a sample on a first computation. One scan without a sort counts the values
    below each window and gathers the window's (_within); a type whose quantile lies outside
    its window is then sorted whole (_sorted), so every figure is exact either way."""
    windows: _Windows = {}
    if len(qs) == 2:
        if previous is not None and len(previous):
            windows = _windows_near(previous, qs)
        else:
            windows = _windows_sampled(conn, qs)
    picked: _Picked = {}
    missed: list[int] | None = None  # None: sort every type
    if windows:
        picked, missed = _within(conn, qs, windows)
    if missed is None or missed:
        picked.update(_sorted(conn, qs, missed))
    return _assemble(picked, len(qs))


def _assemble(picked: _Picked, width: int) -> Quantiles:
    """type_quantiles' arrays, indexed by type id, from the per-type figures."""
    size = max(picked, default=-1) + 1
    found = {}
    for i, quantity in enumerate(DoseQuantity.values()):
        counts = np.zeros(size, dtype=np.int64)
        out = [np.full(size, np.nan) for _ in range(width)]
        for type_id, per_quantity in picked.items():
            n, values_ = per_quantity[i]
            counts[type_id] = n
            for j, value in enumerate(values_):
                out[j][type_id] = value
        column = KAP_CORRECTED if quantity == DoseQuantity.DAP_GYCM2.value else quantity
        found[column] = (counts, out)
    return found


def _interpolated(n: int, q: float, low_value: float, high_value: float) -> float:
    """numpy's linear quantile q of n values from its two neighbours (detection.picks)."""
    gamma = picks(n, q)[2]
    return float(lerp(np.array([low_value], dtype=np.float64),
                      np.array([high_value], dtype=np.float64), np.array([gamma]))[0])


def _sorted(conn: Connection, qs: tuple[float, ...], types: list[int] | None) -> _Picked:
    """The quantiles of `types` (None: every type) from a sort of all their values. One
    statement: the counts and the values come from one snapshot of the data. percentile_cont
    interpolates from the other neighbour and can differ in the last bit, so PostgreSQL picks
    the two neighbours of each quantile exactly (percentile_disc at the middle of the
    neighbour's rank) and they are interpolated here by the frame's own code."""
    quantities = DoseQuantity.values()
    names = [f"v{i}" for i in range(len(quantities))]
    values_ = _values(types)
    sizes = (select(values_.c.type_id, *(func.count(values_.c[n]).label(n) for n in names))
             .group_by(values_.c.type_id).subquery("n"))
    columns: list[Any] = []
    for name in names:
        n = sizes.c[name]
        ranks = [rank for q in qs for rank in _neighbour_ranks(n, q)]
        # the middle of rank k: percentile_disc takes the row at ceil(fraction * n) = k + 1
        fractions = array([(cast(rank, Float) + 0.5) / func.greatest(n, 1) for rank in ranks])
        columns += [n, array(ranks),
                    func.percentile_disc(fractions).within_group(values_.c[name])
                    .cast(ARRAY(Float))]
    rows = conn.execute(
        select(values_.c.type_id, *columns).select_from(values_)
        .join(sizes, sizes.c.type_id == values_.c.type_id)
        .group_by(values_.c.type_id, *(sizes.c[n] for n in names))).all()
    picked: _Picked = {}
    for row in rows:
        per_quantity = []
        for index in range(len(quantities)):
            n, ranks, chosen = row[1 + 3 * index:4 + 3 * index]
            figures = []
            for i, q in enumerate(qs):
                if not n:
                    figures.append(float("nan"))
                    continue
                low, high, _ = picks(int(n), q)
                if (ranks[2 * i], ranks[2 * i + 1]) != (low, high):  # never: same IEEE steps
                    raise ArithmeticError(f"quantile ranks differ: {ranks} != {low}, {high}")
                figures.append(_interpolated(int(n), q, chosen[2 * i], chosen[2 * i + 1]))
            per_quantity.append((int(n), figures))
        picked[int(row[0])] = per_quantity
    return picked


def _windows_near(previous: pd.DataFrame, qs: tuple[float, ...]) -> _Windows:
    """Windows within NEAR of the previous median and percentile of each type: values are
    dense around the median and sparse in the upper tail."""
    quantities = DoseQuantity.values()
    centre = {0: "median", 1: "percentile"}
    windows: _Windows = {}
    for i, quantity in enumerate(quantities):
        rows = previous[previous["quantity"] == quantity]
        for j in range(len(qs)):
            for t, c in zip(rows["type_id"], rows[centre[j]], strict=True):
                if c == c:
                    at = windows.setdefault(int(t), [None] * (2 * len(qs) * len(quantities)))
                    at[2 * (i * len(qs) + j)] = float(c) - NEAR[j] * abs(float(c))
                    at[2 * (i * len(qs) + j) + 1] = float(c) + NEAR[j] * abs(float(c))
    return windows


def _windows_sampled(conn: Connection, qs: tuple[float, ...]) -> _Windows:
    """Windows around each type's quantiles in a sample of about SAMPLE_ROWS records, wide
    enough to hold the quantile of every record but for a sample's bad luck (SAMPLE_SIGMAS)."""
    estimate = conn.scalar(text("SELECT reltuples FROM pg_class "
                                "WHERE oid = to_regclass('procedure')"))
    rows_ = float(estimate or 0)
    percent = 100.0 if rows_ <= SAMPLE_ROWS else max(100.0 * SAMPLE_ROWS / rows_, 0.01)
    quantities = DoseQuantity.values()
    sample = _values(sample_percent=percent)
    grid = array([literal(k / _GRID, Float) for k in range(_GRID + 1)])
    columns: list[Any] = [sample.c.type_id]
    for i in range(len(quantities)):
        value = sample.c[f"v{i}"]
        columns += [func.count(value),
                    func.percentile_disc(grid).within_group(value).cast(ARRAY(Float))]
    windows: _Windows = {}
    for row in conn.execute(select(*columns).group_by(sample.c.type_id)):
        at: list[float | None] = [None] * (2 * len(qs) * len(quantities))
        for i in range(len(quantities)):
            m, grid_values = int(row[1 + 2 * i]), row[2 + 2 * i]
            if not m:
                continue
            for j, q in enumerate(qs):
                reach = SAMPLE_SIGMAS * float(np.sqrt(q * (1 - q) / m)) + SAMPLE_SLACK
                low = int(np.floor(max(q - reach, 0.0) * _GRID))
                high = int(np.ceil(min(q + reach, 1.0) * _GRID))
                # the sample's smallest and largest values are no bounds on every record's
                at[2 * (i * len(qs) + j)] = grid_values[low] if low > 0 else -np.inf
                at[2 * (i * len(qs) + j) + 1] = grid_values[high] if high < _GRID else np.inf
        windows[int(row[0])] = at
    return windows


def _within(conn: Connection, qs: tuple[float, ...],
            windows: _Windows) -> tuple[_Picked, list[int]]:
    """The quantiles found in their windows, and the types where one lay outside (those
    still to sort). Why: a sort of every value per quantity is most of a refresh (3.4 s of
    4.8 s at 1M after new records, 23 s of 73 s at 10M on a first refresh), and a quantile
    lies within a few ranks of where it was, or of where a sample puts it. One scan (a hash
    aggregate: no sort of the records) counts each type's values below each window and
    gathers the window's values, sorted here; the ranks numpy needs are then looked up in
    the windows, exactly."""
    quantities = DoseQuantity.values()
    v = _values()
    names = [f"{side}{i}{j}" for i in range(len(quantities)) for j in range(len(qs))
             for side in ("low", "high")]
    window = values(column("type_id", Integer), *(column(n, Float) for n in names),
                    name="w").data([(t, *b) for t, b in sorted(windows.items())])
    columns: list[Any] = [v.c.type_id, window.c.type_id]
    for i in range(len(quantities)):
        value = v.c[f"v{i}"]
        columns.append(func.count(value))
        for j in range(len(qs)):
            low, high = window.c[f"low{i}{j}"], window.c[f"high{i}{j}"]
            # no ORDER BY in the aggregate: a hash aggregate, no sort of every record by type
            columns += [func.count(value).filter(value < low),
                        func.array_agg(value).filter(value.between(low, high))]
    rows = conn.execute(select(*columns).select_from(v)
                        .outerjoin(window, window.c.type_id == v.c.type_id)
                        .group_by(v.c.type_id, window.c.type_id)).all()
    step = 1 + 2 * len(qs)
    picked: _Picked = {}
    missed = []
    for row in rows:
        type_id, per_quantity = int(row[0]), []
        for i in range(len(quantities)):
            n = int(row[2 + i * step])
            figures = []
            for j, q in enumerate(qs):
                if not n:
                    figures.append(float("nan"))
                    continue
                bounds = windows.get(type_id)
                if row[1] is None or bounds is None or bounds[2 * (i * len(qs) + j)] is None:
                    break  # no window for it
                below = int(row[3 + i * step + 2 * j] or 0)
                near = np.sort(np.array(row[4 + i * step + 2 * j] or [], dtype=np.float64))
                low_rank, high_rank, _ = picks(n, q)
                if not (below <= low_rank and high_rank < below + len(near)):
                    break  # it moved further: sort the type
                figures.append(_interpolated(n, q, near[low_rank - below],
                                             near[high_rank - below]))
            if len(figures) < len(qs):
                missed.append(type_id)
                break
            per_quantity.append((n, figures))
        else:
            picked[type_id] = per_quantity
    return picked, sorted(missed)


def investigation_levels(conn: Connection, lookups: Snapshot,
                         previous: pd.DataFrame | None = None) -> pd.DataFrame:
    """detection.investigation_levels, from PostgreSQL (`lookups`: settings and catalog;
    `previous`: levels computed before, where to look first: type_quantiles)."""
    computed: dict[tuple[float, ...], Quantiles] = {}

    def quantiles(column: str, qs: tuple[float, ...]) -> tuple[np.ndarray, list[np.ndarray]]:
        if qs not in computed:  # one statement for every quantity
            computed[qs] = type_quantiles(conn, qs, previous)
        return computed[qs][column]
    return level_table(lookups, quantiles)


@runtime_checkable
class LevelKeeper(Protocol):
    """Where a process keeps the last investigation levels it computed (SqlSource)."""

    def keep_investigation_levels(self, token: int, table: pd.DataFrame) -> None: ...
    def last_investigation_levels(self) -> pd.DataFrame | None: ...


def inputs_changed(conn: Connection, since: int, head: int) -> bool:
    """Whether anything the alerts (and levels) depend on changed after data version `since`
    up to `head`: an acknowledgement moves the data version but no level."""
    return conn.scalar(select(func.max(AuditEvent.id)).where(
        AuditEvent.id > since, AuditEvent.id <= head,
        AuditEvent.entity.in_(ALERT_INPUTS))) is not None


def records_above(conn: Connection, moved: dict[str, set[int]],
                  level_rows: list[dict[str, Any]]) -> set[int]:
    """refresh._above in SQL: the final records of the types whose level moved that are above
    their new level."""
    levels = {(row["quantity"], row["type_id"]): row["level"] for row in level_rows}
    conditions = []
    for quantity, types in moved.items():
        for kind in sorted(types):
            level = levels.get((quantity, kind))
            if level is not None:  # no level any more: no investigation alert of the type
                conditions.append(and_(Procedure.procedure_type_id == kind,
                                       measured(quantity) > level))
    if not conditions:
        return set()
    return set(conn.scalars(select(Procedure.id).select_from(Procedure)
                            .join(Room, Room.id == Procedure.room_id)
                            .where(_FINAL, or_(*conditions))))


def _reaching_patients(conn: Connection, lookups: Snapshot) -> list[int]:
    """The patients whose total KAP or Ka,r reaches (nearly) its cumulative threshold."""
    reached = [func.sum(_frame_value(quantity))
               >= float(getattr(lookups.settings, key)) * (1 - _MARGIN)
               for quantity, key in CUMULATIVE_SETTINGS.items()]
    return [int(i) for i in conn.scalars(
        select(Procedure.patient_id).select_from(Procedure)
        .join(Room, Room.id == Procedure.room_id).where(_FINAL)
        .group_by(Procedure.patient_id).having(or_(*reached)).order_by(Procedure.patient_id))]


def patient_records(conn: Connection, lookups: Snapshot, patients: list[int]) -> Snapshot:
    """`lookups` with the final records of `patients` as its frame (the columns the cumulative
    rule and the places read, each as the frame holds it)."""
    p = Procedure
    query = (select(p.id, cast(func.extract("epoch", p.performed_at), BigInteger), p.patient_id,
                    p.site_id, p.room_id, p.physician_id, p.procedure_type_id, p.dap_gycm2,
                    p.air_kerma_mgy)
             .where(_FINAL, p.patient_id.in_(patients)))
    raw = fetch(conn, query) if patients else [np.empty(0)] * len(_PATIENT_COLUMNS)
    records = pd.DataFrame({k: v.astype(COLUMNS[k])
                            for k, v in zip(_PATIENT_COLUMNS, raw, strict=True)})
    return replace(lookups, records=records, cache={})


def reaching_patients(engine: Engine, lookups: Snapshot) -> list[int]:
    """_reaching_patients on a connection of its own (refresh._FromSql.read_ahead)."""
    with engine.connect() as conn:
        return _reaching_patients(conn, lookups)


def cumulative(conn: Connection, lookups: Snapshot, patients: np.ndarray | None,
               reaching: list[int] | None = None) -> pd.DataFrame:
    """The cumulative alerts (with places) of `patients`, or of everyone (None): of the
    patients `reaching` a threshold, where they were found already."""
    if patients is not None:
        listed = [int(i) for i in patients]
    else:
        listed = _reaching_patients(conn, lookups) if reaching is None else reaching
    frames = []
    for start in range(0, len(listed), PATIENT_BATCH):
        part = patient_records(conn, lookups, listed[start:start + PATIENT_BATCH])
        frames.append(with_places(part, [cumulative_alerts(part)]))
    found = [f for f in frames if len(f)]
    return pd.concat(found, ignore_index=True) if found else with_places(lookups, [])
