"""The dose buckets (`dose_bucket`): how many final records' dose values fall in each value
bucket, per month and procedure type, again per room (and its site) and per physician
(`grain`), with each bucket's least and greatest value, and split by case-mix columns
(`dimension`). The Dose page's exact quantiles read them (audit.analytics.sql.bucket_quantiles,
which says why and how; bucket_groups for the Case mix and Over time tabs).

The buckets: each procedure type's values are cut into about BUCKETS buckets at the quantiles
of its values when the table is built (`dose_bucket_edge`, width_bucket's lower bounds), so
each holds about as many records; a type added since has no edges, and its one bucket is every
value (right, only slower). KAP corrected is KAP times the room's factor: its buckets are of
that product, and the rooms' factors are part of the table's rules (a change rebuilds it).

How it stays current: the refresh protocol of the other summaries (audit.analytics.derived):
the facts first, then the cells of the months of the days the procedure events after the
table's version name, of the procedure types their records have (and had before an amendment),
are recomputed from them (a whole month at 10M records: 7.6 s for the four quantities, under
load); an event that names no records, too many, or new rules rebuild it all, edges included
(335 s at 10M), but a change of the rooms' KAP factors rebuilds KAP corrected alone (20 s at
10M; `base_rules`), and a catalog change nothing (no value, type id or key of a record
moves). A row changed behind the app's back stays wrong until its month changes or
`fluoro-audit db rebuild-facts`. PostgreSQL only, as the facts.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import (
    Connection,
    Engine,
    Float,
    Integer,
    SmallInteger,
    case,
    cast,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    tuple_,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import array as pg_array
from sqlalchemy.sql import ColumnElement

from audit.analytics.daily_summary import _days_to_redo, next_month
from audit.analytics.derived import refresh_versioned
from audit.analytics.snapshot import INCREMENTAL_LIMIT, Snapshot, _changed_records
from audit.analytics.sql.count_summary import _lookups
from audit.analytics.sql.facts import refresh_facts
from audit.analytics.sql.kept import Kept
from audit.analytics.sql.records import HALF_SECOND
from audit.errors import NeedsPostgreSQL
from audit.filters import Target
from audit.storage.models import (
    AuditEvent,
    DoseBucket,
    DoseBucketEdge,
    DoseBucketState,
    Procedure,
    ProcedureType,
    RecordFact,
    Room,
)

#: Bumped when what a row holds changes meaning: the next refresh rebuilds the table.
RULES = 3
#: About how many buckets a type's values are cut into. More: fewer records read per
#: quantile, more rows summed per filter. At 10M records (2026-12-02): 256 gave 0.31-0.71 s
#: after a filter change of the Dose page's first tab (0.8 M rows per quantity), 512 gave
#: 0.36-1.05 s (1.6M rows: a period's room rows outweighed the smaller buckets).
BUCKETS = 256
_LOCK = 0x446F7342  # "DosB"
#: The quantities kept, by the code stored in `quantity`: the columns the Dose page's first tab
#: and the reference levels read (reference_levels.reference_column).
QUANTITIES = {"kap_corrected_gycm2": 0, "air_kerma_mgy": 1, "fluoro_time_s": 2,
              "dap_gycm2": 3}
#: The case-mix columns a cell is split by (the Dose page's Case mix groupings): the name of
#: the grouping (audit.analytics.sql.groups) -> (`dimension` code, the record facts' column).
DIMENSIONS = {"levels": (1, "n_levels"), "weight_band": (2, "weight_band"),
              "bmi_band": (3, "bmi_band"), "operator": (4, "operator")}
DIMENSION_OF = {column: code for code, column in DIMENSIONS.values()}
#: The case-mix stratum (levels x BMI band) of a physician's cells: the physician scorecards'
#: components (audit.analytics.sql.bucket_mixtures), at the physician and the room x physician
#: grains only; its `part` is n_levels * PART_WIDTH + bmi_band.
STRATUM, PART_WIDTH = 5, 16
#: The quantities whose cells are split too: the Case mix tab's, as recorded (KAP corrected
#: is the first tab's and the reference levels').
SPLIT = ("dap_gycm2", "air_kerma_mgy", "fluoro_time_s")
#: Which keys a row holds, besides the month and the procedure type.
GRAIN_TYPE, GRAIN_ROOM, GRAIN_PHYSICIAN = 0, 1, 2
#: Per room (and its site) and physician: the physician scorecards under a room or site filter,
#: the strata's cells (SPLIT) and KAP corrected's unsplit cells (the share above the level).
GRAIN_ROOM_PHYSICIAN = 3
TARGET = Target(None, None, DoseBucket.site_id, DoseBucket.room_id, DoseBucket.physician_id,
                DoseBucket.procedure_type_id)
FACTS = Target(RecordFact.performed_at, RecordFact.procedure_id, RecordFact.site_id,
               RecordFact.room_id, RecordFact.physician_id, RecordFact.procedure_type_id)


def _check(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        raise NeedsPostgreSQL(f"the dose buckets are kept on PostgreSQL only (the SQL figures' "
                              f"database); {engine.dialect.name} computes from the frame")


def rules_of(lookups: Snapshot) -> int:
    """RULES, BUCKETS and the rooms' KAP factors that are not 1, as one number."""
    inputs = (RULES, BUCKETS, sorted((int(i), float(f)) for i, f in
                                     lookups.rooms["kap_factor"].items() if float(f) != 1.0))
    return zlib.crc32(repr(inputs).encode()) & 0x7FFFFFFF


def base_rules() -> int:
    """RULES and BUCKETS alone (`dose_bucket_state.base`): where only the rules differ from the
    state's and this does not, the rooms' factors changed, and only KAP corrected depends on
    them."""
    return zlib.crc32(repr((RULES, BUCKETS)).encode()) & 0x7FFFFFFF


def value_of(quantity: str) -> ColumnElement[float]:
    """The quantity's value of a record fact (KAP corrected: joined to its room), as the
    figures' records subquery computes it (audit.analytics.sql.records)."""
    if quantity == "kap_corrected_gycm2":
        return cast(RecordFact.dap_gycm2 * Room.kap_correction_factor, Float)
    return getattr(RecordFact, quantity)  # type: ignore[no-any-return]


def stored_of(quantity: str) -> ColumnElement[float]:
    """The stored column the quantity's index orders by."""
    return RecordFact.dap_gycm2 if quantity == "kap_corrected_gycm2" else \
        getattr(RecordFact, quantity)


def facts_of(quantity: str) -> Any:
    f = RecordFact.__table__
    return f.join(Room.__table__, Room.id == RecordFact.room_id) \
        if quantity == "kap_corrected_gycm2" else f


# --- building and keeping the table ---------------------------------------------------------

def _build_edges(conn: Connection, quantity: str) -> None:
    """Each type's bucket edges: the distinct values at the i/BUCKETS quantiles."""
    code = QUANTITIES[quantity]
    v = value_of(quantity)
    fractions = pg_array([literal(i / BUCKETS, Float) for i in range(1, BUCKETS)])
    rows = conn.execute(select(RecordFact.procedure_type_id,
                               func.percentile_disc(fractions).within_group(v))
                        .select_from(facts_of(quantity)).where(v.is_not(None))
                        .group_by(RecordFact.procedure_type_id)).all()
    conn.execute(delete(DoseBucketEdge).where(DoseBucketEdge.quantity == code))
    values = [{"quantity": code, "procedure_type_id": int(t),
               "edges": sorted({float(e) for e in edges})} for t, edges in rows if edges]
    if values:
        conn.execute(insert(DoseBucketEdge), values)


def bucket_of(conn: Connection, v: ColumnElement[float], quantity: str) -> ColumnElement[int]:
    """The bucket of value v: width_bucket with the record's type's edges, given as one bound
    array per type (a join to the edges table detoasted the 4 KB array for every record: 2 us
    a record); bucket 0 for a type without edges (added since the build: its one bucket is
    every value)."""
    edges = edge_lists(conn, quantity)
    if not edges:
        return literal(0)
    whens = {t: func.width_bucket(v, literal([float(x) for x in e], ARRAY(Float)))
             for t, e in edges.items()}
    return func.coalesce(case(whens, value=RecordFact.procedure_type_id, else_=0), 0)


def _insert_months(conn: Connection, quantity: str, months: list[str] | None,
                   types: list[int] | None = None) -> None:
    """The rows of these months ('YYYY-MM', None: all; `types`: of these procedure types
    only) of one quantity, every grain, split by
    each dimension where the quantity is in SPLIT. PostgreSQL counts each grain's cells per
    bucket in one scan (GROUPING SETS) and packs each cell's buckets as bytes (sparse: the
    buckets held, then their counts, bounds); numpy makes them dense. Rows per cell and bucket
    would be millions at 10M records, too many to bring into Python."""
    code = QUANTITIES[quantity]
    v = value_of(quantity)
    bucket = bucket_of(conn, v, quantity)
    where = []
    if months is not None:
        first = datetime.strptime(months[0], "%Y-%m").replace(tzinfo=UTC)
        last = datetime.strptime(months[-1], "%Y-%m").replace(tzinfo=UTC)
        # the index on performed_at finds them (a second's margin: the facts' month is of the
        # instant rounded to whole seconds), the month picks them
        where += [RecordFact.performed_at >= first - HALF_SECOND,
                  RecordFact.performed_at < datetime.combine(next_month(last.date()),
                                                             datetime.min.time(), UTC),
                  RecordFact.month.in_(months)]
    if types is not None:
        where.append(RecordFact.procedure_type_id.in_(types))
    split = [column for _, column in DIMENSIONS.values()] if quantity in SPLIT else []
    f = RecordFact
    inner = (select(f.month, f.procedure_type_id.label("t"), f.site_id, f.room_id,
                    f.physician_id, *(getattr(f, c) for c in split),
                    bucket.label("b"), v.label("v"))
             .select_from(facts_of(quantity)).where(*where).subquery())
    c = inner.c
    grains = {GRAIN_TYPE: (), GRAIN_ROOM: (c.site_id, c.room_id),
              GRAIN_PHYSICIAN: (c.physician_id,)}
    sets = [tuple_(c.month, c.t, c.b, *keys, *parts)
            for keys in grains.values() for parts in [(), *((c[s],) for s in split)]]
    each = (c.site_id, c.room_id, c.physician_id)
    if split:  # the scorecards' strata
        sets += [tuple_(c.month, c.t, c.b, *keys, c.n_levels, c.bmi_band)
                 for keys in ((c.physician_id,), each)]
    if quantity == "kap_corrected_gycm2":  # the share above the reference level
        sets.append(tuple_(c.month, c.t, c.b, *each))
    grouped = [c.site_id, c.room_id, c.physician_id, *(c[s] for s in split)]
    fine = (select(func.grouping(*grouped).label("g"), c.month, c.t, *grouped, c.b,
                   func.count(c.v).label("n"), (func.count() - func.count(c.v)).label("m"),
                   func.min(c.v).label("lo"), func.max(c.v).label("hi"))
            .group_by(func.grouping_sets(*sets)).subquery())
    x = fine.c
    sep = literal(b"")
    # packed in whatever order PostgreSQL feeds the group (the same for each aggregate of it:
    # no sort of millions of (cell, bucket) rows); _cell orders them
    packed = (select(x.g, x.month, x.t, *(x[col.name] for col in grouped),
                     func.string_agg(func.int2send(cast(x.b, SmallInteger)), sep),
                     func.string_agg(func.int4send(cast(x.n, Integer)), sep),
                     func.string_agg(func.float8send(func.coalesce(x.lo, math.inf)), sep),
                     func.string_agg(func.float8send(func.coalesce(x.hi, -math.inf)), sep),
                     func.sum(x.m))
              .group_by(x.g, x.month, x.t, *(x[col.name] for col in grouped)))
    conn.execute(text("SET LOCAL work_mem = '256MB'"))  # the grouping sets' hash tables
    sizes = {t: len(e) + 1 for t, e in edge_lists(conn, quantity).items()}
    names = [col.name for col in grouped]
    cells = []
    for row in conn.execute(packed):
        cells.append(_cell(code, dict(zip(["g", "month", "t", *names], row[:3 + len(names)],
                                          strict=True)), split, sizes, *row[3 + len(names):]))
    # in the key's order: a physician's or a room's cells then lie on few pages
    cells.sort(key=lambda r: (r["grain"], r["dimension"], r["physician_id"], r["room_id"],
                              r["site_id"], r["month"], r["procedure_type_id"], r["part"]))
    for lo in range(0, len(cells), 5000):
        conn.execute(insert(DoseBucket), cells[lo:lo + 5000])


def _cell(code: int, keys: dict[str, Any], split: list[str], sizes: dict[int, int],
          held: bytes, counts: bytes, lows: bytes, highs: bytes,
          missing: int) -> dict[str, Any]:
    """One row of dose_bucket from a cell's packed buckets (big-endian, as PostgreSQL's send
    functions write them): the records (int32), least and greatest value (float64) per bucket
    held, little-endian; dense (every bucket of the type, `buckets` empty; an empty bucket
    has +inf / -inf bounds, so that summing cells is np.add, np.minimum and np.maximum) where
    the cell holds most of its buckets, else sparse. A split cell keeps the records only."""
    t = int(keys["t"])
    size = sizes.get(t, 1)
    b = np.frombuffer(held, dtype=">i2").astype(np.int64)
    order = np.argsort(b, kind="stable")
    b = b[order]
    n = np.frombuffer(counts, dtype=">i4").astype("<i4")[order]
    dimension, part = 0, 0
    held_parts = [name for name in split if keys[name] is not None]
    if len(held_parts) == 2:  # the stratum's (n_levels, bmi_band)
        dimension, part = STRATUM, int(keys["n_levels"]) * PART_WIDTH + int(keys["bmi_band"])
    elif held_parts:
        dimension, part = DIMENSION_OF[held_parts[0]], int(keys[held_parts[0]])
    low = np.frombuffer(lows, dtype=">f8").astype("<f8")[order]
    high = np.frombuffer(highs, dtype=">f8").astype("<f8")[order]
    dense = 3 * len(b) >= 2 * size
    if dense:
        n, low, high = _dense(b, size, n, 0), _dense(b, size, low, np.inf), \
            _dense(b, size, high, -np.inf)
    has = {k: keys[k] is not None for k in ("site_id", "room_id", "physician_id")}
    grain = GRAIN_ROOM_PHYSICIAN if has["room_id"] and has["physician_id"] else \
        GRAIN_ROOM if has["room_id"] else GRAIN_PHYSICIAN if has["physician_id"] else GRAIN_TYPE
    return {"quantity": code, "grain": grain, "dimension": dimension, "part": part,
            "month": keys["month"], "procedure_type_id": t,
            **{k: int(keys[k]) if has[k] else 0 for k in has},
            "buckets": b"" if dense else b.astype("<i2").tobytes(),
            "records": n.tobytes(), "missing": int(missing),
            "low": b"" if dimension else low.tobytes(),
            "high": b"" if dimension else high.tobytes()}


def cell_buckets(held: bytes, counts: bytes) -> tuple[np.ndarray, np.ndarray]:
    """A stored cell's buckets (every one of a dense cell, the listed ones of a sparse one)
    and their records."""
    n = np.frombuffer(counts, dtype="<i4")
    b = np.frombuffer(held, dtype="<i2").astype(np.int64) if held else \
        np.arange(len(n), dtype=np.int64)
    return b, n


def dense_cell(held: bytes, counts: bytes, low: bytes,
               high: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A stored cell's records, least and greatest value per bucket, dense (as far as its
    last bucket held)."""
    b, n = cell_buckets(held, counts)
    lo, hi = np.frombuffer(low, dtype="<f8"), np.frombuffer(high, dtype="<f8")
    if not held:
        return n, lo, hi
    size = int(b[-1]) + 1 if len(b) else 0
    return (_dense(b, size, n, 0), _dense(b, size, lo, np.inf) if len(lo) else lo,
            _dense(b, size, hi, -np.inf) if len(hi) else hi)


def _dense(b: np.ndarray, size: int, values: np.ndarray, fill: float) -> np.ndarray:
    out = np.full(size, fill, dtype=values.dtype)
    out[b] = values
    return out


#: edge_lists' answers in a snapshot of the buckets (bucket_snapshot.snapshot), by its state:
#: the edges change only with a build, which rewrites the state row. Every figure of the Dose
#: page reads them (a type's 256 bounds, 20 types: 2 ms each time).
_EDGES: Kept[dict[int, list[float]]] = Kept(8)


def edge_lists(conn: Connection, quantity: str) -> dict[int, list[float]]:
    """Each type's bucket edges (width_bucket's lower bounds of buckets 1..n); kept per
    buckets' state where the connection is a snapshot that read it (`bucket_stamp`). The
    caller does not change them."""
    stamp = conn.get_execution_options().get("bucket_stamp")
    if stamp is None:
        return _edge_lists(conn, quantity)
    return _EDGES.get((stamp, quantity), lambda: _edge_lists(conn, quantity))


def _edge_lists(conn: Connection, quantity: str) -> dict[int, list[float]]:
    return {int(t): list(e) for t, e in conn.execute(
        select(DoseBucketEdge.procedure_type_id, DoseBucketEdge.edges)
        .where(DoseBucketEdge.quantity == QUANTITIES[quantity])).all()}


def _types_to_redo(conn: Connection, synced: int, head: int) -> list[int] | None:
    """The procedure types whose cells the procedure events in (synced, head] may have
    changed: the named records' types now, and an amended record's type before the amendment
    (its `procedure_code`); None: every type (too many events, one that names no record, a
    code no longer known)."""
    rows = conn.execute(select(AuditEvent.entity_id, AuditEvent.before)
                        .where(AuditEvent.id > synced, AuditEvent.id <= head,
                               AuditEvent.entity == "procedure")
                        .order_by(AuditEvent.id).limit(INCREMENTAL_LIMIT + 1)).all()
    changed = None if len(rows) > INCREMENTAL_LIMIT else \
        _changed_records([("procedure", entity_id) for entity_id, _ in rows])
    if changed is None:
        return None
    ids, ranges = changed
    codes = {str(before["procedure_code"]) for _, before in rows
             if before and before.get("procedure_code")}
    types = set(conn.scalars(select(ProcedureType.id).where(ProcedureType.code.in_(codes)))) \
        if codes else set()
    if len(types) < len(codes):
        return None
    listed = sorted(ids)
    conditions = [Procedure.id.between(lo, hi) for lo, hi in ranges] + \
        [Procedure.id.in_(listed[i:i + 500]) for i in range(0, len(listed), 500)]
    if conditions:
        types |= set(conn.scalars(select(Procedure.procedure_type_id).distinct()
                                  .where(or_(*conditions))))
    return sorted(int(t) for t in types)


def _redo(engine: Engine, force: bool) -> Callable[[Connection, int | None, int], None]:
    """The refresh's work: everything (synced None, or what the events cannot narrow), else
    the cells of the months the events' days fall in, of the procedure types their records
    have (a write of one TFESI redoes the month's TFESI cells: a tenth of the month at 10M,
    where the whole month took 7.6 s under load with the split cells). Where only the rooms'
    KAP factors changed (`base_rules` as the state's), KAP corrected is rebuilt and the other
    quantities go on from the state's version."""
    def redo(conn: Connection, synced: int | None, now: int) -> None:
        refresh_facts(engine)  # the rows come from the facts: at least at this version
        quantities = list(QUANTITIES)
        if synced is None and not force:
            state = conn.execute(select(DoseBucketState.data_version, DoseBucketState.base)
                                 .where(DoseBucketState.id == 1)).first()
            if state is not None and state.base == base_rules():
                _rebuild(conn, ["kap_corrected_gycm2"])
                synced, quantities = int(state.data_version), quantities[1:]
        if synced is None:
            _rebuild(conn, quantities)
            return
        # the procedure events only: a catalog entry's change (its name, policy, typical
        # values) changes no record's value, type id or keys, so no bucket (a full rebuild,
        # 335 s at 10M, before)
        days = _days_to_redo(conn, synced, now, ("procedure",))
        if days is None:
            _rebuild(conn, quantities)
            return
        if days == []:
            return
        months = sorted({d.strftime("%Y-%m") for d in days})
        types = _types_to_redo(conn, synced, now)
        conn.execute(delete(DoseBucket).where(
            DoseBucket.quantity.in_([QUANTITIES[q] for q in quantities]),
            DoseBucket.month.in_(months),
            *([] if types is None else [DoseBucket.procedure_type_id.in_(types)])))
        for quantity in quantities:
            if types != []:
                _insert_months(conn, quantity, months, types)
    return redo


def _rebuild(conn: Connection, quantities: list[str]) -> None:
    """These quantities' rows and edges, all of them again."""
    conn.execute(delete(DoseBucket).where(
        DoseBucket.quantity.in_([QUANTITIES[q] for q in quantities])))
    for quantity in quantities:
        _build_edges(conn, quantity)
        _insert_months(conn, quantity, None)
    conn.execute(text("ANALYZE dose_bucket"))


def refresh_buckets(engine: Engine, lookups: Snapshot | None = None,
                    force: bool = False) -> int:
    """Bring the dose buckets to the current data version (module doc); returns it. force:
    rebuild whatever the state says (`db rebuild-facts`). `lookups`: the lookup tables as the
    caller read them (SqlSource's, of the figures version), else read here."""
    _check(engine)
    if lookups is None:
        with engine.connect() as conn:
            lookups = _lookups(conn)
    return refresh_versioned(engine, DoseBucketState, rules_of(lookups), _LOCK,
                             _redo(engine, force), force=force, also={"base": base_rules()})


