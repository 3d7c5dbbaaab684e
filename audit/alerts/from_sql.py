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
    Float,
    Integer,
    and_,
    case,
    cast,
    column,
    func,
    or_,
    select,
    values,
)
from sqlalchemy.dialects.postgresql import ARRAY, array

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
#: The frame's columns the cumulative rule and the alerts' places read.
_PATIENT_COLUMNS = ("id", "t", "patient_id", "site_id", "room_id", "physician_id", "type_id",
                    "dap_gycm2", "air_kerma_mgy")


def _frame_value(quantity: str) -> Any:
    """The frame's value of a quantity (Snapshot.values of detection.measured): KAP times the
    room's factor, no fluoroscopy time for an ultrasound-guided record (it stores 0 s)."""
    if quantity == DoseQuantity.FLUORO_TIME_S.value:
        return case((Procedure.guidance == Guidance.ULTRASOUND.value, None),
                    else_=Procedure.fluoro_time_s)
    return cast(measured(quantity), Float)


def _neighbour_ranks(n: Any, q: float) -> tuple[Any, Any]:
    """detection.picks in SQL: the 0-based ranks of quantile q's two neighbours among n."""
    virtual = cast(n - 1, Float) * q
    previous = func.floor(virtual)
    clamped = virtual >= n - 1
    return (cast(case((clamped, n - 1), else_=previous), BigInteger),
            cast(case((clamped, n - 1), else_=previous + 1), BigInteger))


def _values() -> Any:
    """Per final record: its type and each measured quantity (v0, v1, ...)."""
    return (select(Procedure.procedure_type_id.label("type_id"),
                   *(_frame_value(q).label(f"v{i}")
                     for i, q in enumerate(DoseQuantity.values())))
            .select_from(Procedure).join(Room, Room.id == Procedure.room_id)
            .where(_FINAL).subquery("v"))


Quantiles = dict[str, tuple[np.ndarray, list[np.ndarray]]]


def type_quantiles(conn: Connection, qs: tuple[float, ...],
                   previous: pd.DataFrame | None = None) -> Quantiles:
    """detection.per_type_quantiles of every measured quantity (KAP corrected, Ka,r, time),
    keyed by frame column: per procedure type id the records with a value and each quantile
    of them, bit for bit as numpy computes them on the frame. `previous`: levels computed
    before (their medians and percentiles), to look near first (_near_previous)."""
    if previous is not None and len(qs) == 2 and len(previous):
        found = _near_previous(conn, qs, previous)
        if found is not None:
            return found
    quantities = DoseQuantity.values()
    names = [f"v{i}" for i in range(len(quantities))]
    values = _values()
    sizes = (select(values.c.type_id, *(func.count(values.c[n]).label(n) for n in names))
             .group_by(values.c.type_id).subquery("n"))
    columns: list[Any] = []
    for name in names:
        n = sizes.c[name]
        ranks = [rank for q in qs for rank in _neighbour_ranks(n, q)]
        # the middle of rank k: percentile_disc takes the row at ceil(fraction * n) = k + 1
        fractions = array([(cast(rank, Float) + 0.5) / func.greatest(n, 1) for rank in ranks])
        columns += [n, array(ranks),
                    func.percentile_disc(fractions).within_group(values.c[name])
                    .cast(ARRAY(Float))]
    rows = conn.execute(
        select(values.c.type_id, *columns).select_from(values)
        .join(sizes, sizes.c.type_id == values.c.type_id)
        .group_by(values.c.type_id, *(sizes.c[n] for n in names))).all()
    size = max([int(r[0]) for r in rows], default=-1) + 1
    found = {}
    for index, quantity in enumerate(quantities):
        counts = np.zeros(size, dtype=np.int64)
        out = [np.full(size, np.nan) for _ in qs]
        for row in rows:
            type_id, n, ranks, picked = int(row[0]), *row[1 + 3 * index:4 + 3 * index]
            counts[type_id] = n
            if not n:
                continue
            for i, q in enumerate(qs):
                low, high, gamma = picks(int(n), q)
                if (ranks[2 * i], ranks[2 * i + 1]) != (low, high):  # never: same IEEE steps
                    raise ArithmeticError(f"quantile ranks differ: {ranks} != {low}, {high}")
                out[i][type_id] = lerp(np.array([picked[2 * i]], dtype=np.float64),
                                       np.array([picked[2 * i + 1]], dtype=np.float64),
                                       np.array([gamma]))[0]
        column = KAP_CORRECTED if quantity == DoseQuantity.DAP_GYCM2.value else quantity
        found[column] = (counts, out)
    return found


def _near_previous(conn: Connection, qs: tuple[float, ...],
                   previous: pd.DataFrame) -> Quantiles | None:
    """type_quantiles sorting only the values near the previous median and percentile of each
    type (within NEAR of them: 5% and 25%), or None where a needed rank lies outside (then
    every value is sorted). Why: a sort of every value per quantity is most of a refresh
    after new records (3.4 s of 4.8 s at 1M), and a few new records move a quantile by a few
    ranks. One scan (a hash aggregate: no sort of the records) counts each type's values
    below each window and gathers the window's values, sorted here; the ranks numpy needs are
    then looked up in the windows, exactly."""
    quantities = DoseQuantity.values()
    v = _values()
    centre = {0: "median", 1: "percentile"}
    # the windows, one row per type: (type_id, low00, high00, low01, ...) for quantity i, q j
    bounds: dict[int, list[float | None]] = {}
    for i, quantity in enumerate(quantities):
        rows = previous[previous["quantity"] == quantity]
        for j in range(len(qs)):
            for t, c in zip(rows["type_id"], rows[centre[j]], strict=True):
                if c == c:
                    at = bounds.setdefault(int(t), [None] * (2 * len(qs) * len(quantities)))
                    at[2 * (i * len(qs) + j)] = float(c) - NEAR[j] * abs(float(c))
                    at[2 * (i * len(qs) + j) + 1] = float(c) + NEAR[j] * abs(float(c))
    if not bounds:
        return None
    names = [f"{side}{i}{j}" for i in range(len(quantities)) for j in range(len(qs))
             for side in ("low", "high")]
    window = values(column("type_id", Integer), *(column(n, Float) for n in names),
                    name="w").data([(t, *b) for t, b in sorted(bounds.items())])
    columns: list[Any] = [v.c.type_id]
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
                        .group_by(v.c.type_id)).all()
    size = max([int(r[0]) for r in rows], default=-1) + 1
    found = {}
    step = 1 + 2 * len(qs)
    for i, quantity in enumerate(quantities):
        counts = np.zeros(size, dtype=np.int64)
        out = [np.full(size, np.nan) for _ in qs]
        for row in rows:
            type_id, n = int(row[0]), int(row[1 + i * step])
            counts[type_id] = n
            if not n:
                continue
            for j, q in enumerate(qs):
                below = row[2 + i * step + 2 * j]
                near = np.sort(np.array(row[3 + i * step + 2 * j] or [], dtype=np.float64))
                low, high, gamma = picks(n, q)
                if not (below <= low and high < below + len(near)):
                    return None  # moved further than NEAR: sort everything
                out[j][type_id] = lerp(near[[low - below]], near[[high - below]],
                                       np.array([gamma]))[0]
        key = KAP_CORRECTED if quantity == DoseQuantity.DAP_GYCM2.value else quantity
        found[key] = (counts, out)
    return found


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


def cumulative(conn: Connection, lookups: Snapshot,
               patients: np.ndarray | None) -> pd.DataFrame:
    """The cumulative alerts (with places) of `patients`, or of everyone (None)."""
    listed = _reaching_patients(conn, lookups) if patients is None else \
        [int(i) for i in patients]
    frames = []
    for start in range(0, len(listed), PATIENT_BATCH):
        part = patient_records(conn, lookups, listed[start:start + PATIENT_BATCH])
        frames.append(with_places(part, [cumulative_alerts(part)]))
    found = [f for f in frames if len(f)]
    return pd.concat(found, ignore_index=True) if found else with_places(lookups, [])
