"""The dose buckets (`dose_bucket`): how many final records' dose values fall in each value
bucket, per month and procedure type, again per room (and its site) and per physician
(`grain`), with each bucket's least and greatest value. The Dose page's exact quantiles read
them (audit.analytics.sql.bucket_quantiles, which says why and how).

The buckets: each procedure type's values are cut into about BUCKETS buckets at the quantiles
of its values when the table is built (`dose_bucket_edge`, width_bucket's lower bounds), so
each holds about as many records; a type added since has no edges, and its one bucket is every
value (right, only slower). KAP corrected is KAP times the room's factor: its buckets are of
that product, and the rooms' factors are part of the table's rules (a change rebuilds it).

How it stays current: the refresh protocol of the other summaries (audit.analytics.derived):
the facts first, then the months of the days the procedure events after the table's version
name are recomputed from them (a month at 10M records: 6 s for the three quantities, under load);
an event that names no records, too many, a catalog change or new rules rebuild it all, edges
included (165 s at 10M). A row changed behind the app's back stays wrong until its month
changes or `fluoro-audit db rebuild-facts`. PostgreSQL only, as the facts.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import (
    Connection,
    Engine,
    Float,
    case,
    cast,
    delete,
    func,
    insert,
    literal,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import array as pg_array
from sqlalchemy.sql import ColumnElement

from audit.analytics.daily_summary import _days_to_redo, next_month
from audit.analytics.derived import refresh_versioned
from audit.analytics.snapshot import Snapshot
from audit.analytics.sql.count_summary import _lookups
from audit.analytics.sql.facts import refresh_facts
from audit.analytics.sql.records import HALF_SECOND
from audit.errors import NeedsPostgreSQL
from audit.filters import Target
from audit.storage.models import (
    DoseBucket,
    DoseBucketEdge,
    DoseBucketState,
    RecordFact,
    Room,
)

#: Bumped when what a row holds changes meaning: the next refresh rebuilds the table.
RULES = 1
#: About how many buckets a type's values are cut into. More: fewer records read per
#: quantile, more rows summed per filter. At 10M records (2026-12-02): 256 gave 0.31-0.71 s
#: after a filter change of the Dose page's first tab (0.8 M rows per quantity), 512 gave
#: 0.36-1.05 s (1.6M rows: a period's room rows outweighed the smaller buckets).
BUCKETS = 256
_LOCK = 0x446F7342  # "DosB"
#: The quantities kept, by the code stored in `quantity`: the columns the Dose page's first tab
#: and the reference levels read (reference_levels.reference_column).
QUANTITIES = {"kap_corrected_gycm2": 0, "air_kerma_mgy": 1, "fluoro_time_s": 2}
#: Which keys a row holds, besides the month and the procedure type.
GRAIN_TYPE, GRAIN_ROOM, GRAIN_PHYSICIAN = 0, 1, 2
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


def _insert_months(conn: Connection, quantity: str, months: list[str] | None) -> None:
    """The rows of these months ('YYYY-MM', None: all) of one quantity, every grain."""
    code = QUANTITIES[quantity]
    v = value_of(quantity)
    bucket = bucket_of(conn, v, quantity)
    where = [v.is_not(None)]
    if months is not None:
        first = datetime.strptime(months[0], "%Y-%m").replace(tzinfo=UTC)
        last = datetime.strptime(months[-1], "%Y-%m").replace(tzinfo=UTC)
        # the index on performed_at finds them (a second's margin: the facts' month is of the
        # instant rounded to whole seconds), the month picks them
        where += [RecordFact.performed_at >= first - HALF_SECOND,
                  RecordFact.performed_at < datetime.combine(next_month(last.date()),
                                                             datetime.min.time(), UTC),
                  RecordFact.month.in_(months)]
    inner = (select(RecordFact.month, RecordFact.procedure_type_id.label("t"),
                    RecordFact.site_id, RecordFact.room_id, RecordFact.physician_id,
                    bucket.label("b"), v.label("v"))
             .select_from(facts_of(quantity)).where(*where).subquery())
    c = inner.c
    # the finest counts (a hash aggregate in PostgreSQL), then each grain's cells made here
    rows = conn.execute(select(c.month, c.t, c.site_id, c.room_id, c.physician_id, c.b,
                               func.count(), func.min(c.v), func.max(c.v))
                        .group_by(c.month, c.t, c.site_id, c.room_id, c.physician_id, c.b)
                        ).all()
    if not rows:
        return
    fine = pd.DataFrame(rows, columns=["month", "t", "site", "room", "physician", "b", "n",
                                       "lo", "hi"])
    sizes = {t: len(e) + 1 for t, e in edge_lists(conn, quantity).items()}
    cells = []
    for grain, keys in ((GRAIN_TYPE, ()), (GRAIN_ROOM, ("site", "room")),
                        (GRAIN_PHYSICIAN, ("physician",))):
        cells += _cells(fine, code, grain, keys, sizes)
    # in the key's order: a physician's or a room's cells then lie on few pages
    cells.sort(key=lambda r: (r["grain"], r["physician_id"], r["room_id"], r["site_id"],
                              r["month"], r["procedure_type_id"]))
    for lo in range(0, len(cells), 5000):
        conn.execute(insert(DoseBucket), cells[lo:lo + 5000])


def _cells(fine: pd.DataFrame, code: int, grain: int, keys: tuple[str, ...],
           sizes: dict[int, int]) -> list[dict[str, Any]]:
    """One grain's cells (month x type x its keys): each a dense array per bucket of the
    records (int32), least and greatest value (float64; an empty bucket +inf / -inf, so that
    summing cells is np.add, np.minimum and np.maximum)."""
    columns = ["month", "t", *keys]
    ids, cell_keys = pd.MultiIndex.from_frame(fine[columns]).factorize()
    width = max(sizes.values(), default=1)
    width = max(width, int(fine["b"].max()) + 1)
    n = np.zeros((len(cell_keys), width), dtype=np.int32)
    low = np.full((len(cell_keys), width), np.inf)
    high = np.full((len(cell_keys), width), -np.inf)
    at = (ids, fine["b"].to_numpy(dtype=np.int64))
    np.add.at(n, at, fine["n"].to_numpy(dtype=np.int32))
    np.minimum.at(low, at, fine["lo"].to_numpy(dtype=np.float64))
    np.maximum.at(high, at, fine["hi"].to_numpy(dtype=np.float64))
    found = []
    for i, key in enumerate(cell_keys):
        named = dict(zip(columns, key, strict=True))
        size = sizes.get(int(named["t"]), 1)
        found.append({"quantity": code, "grain": grain, "month": named["month"],
                      "procedure_type_id": int(named["t"]),
                      "site_id": int(named.get("site", 0)), "room_id": int(named.get("room", 0)),
                      "physician_id": int(named.get("physician", 0)),
                      "records": n[i, :size].astype("<i4").tobytes(),
                      "low": low[i, :size].astype("<f8").tobytes(),
                      "high": high[i, :size].astype("<f8").tobytes()})
    return found


def edge_lists(conn: Connection, quantity: str) -> dict[int, list[float]]:
    """Each type's bucket edges (width_bucket's lower bounds of buckets 1..n)."""
    return {int(t): list(e) for t, e in conn.execute(
        select(DoseBucketEdge.procedure_type_id, DoseBucketEdge.edges)
        .where(DoseBucketEdge.quantity == QUANTITIES[quantity])).all()}


def _redo(engine: Engine) -> Callable[[Connection, int | None, int], None]:
    def redo(conn: Connection, synced: int | None, now: int) -> None:
        refresh_facts(engine)  # the rows come from the facts: at least at this version
        days = None if synced is None else _days_to_redo(conn, synced, now)
        if days == []:
            return
        months = None if days is None else sorted({d.strftime("%Y-%m") for d in days})
        if months is None:
            conn.execute(delete(DoseBucket))
        else:
            conn.execute(delete(DoseBucket).where(DoseBucket.month.in_(months)))
        for quantity in QUANTITIES:
            if months is None:
                _build_edges(conn, quantity)
            _insert_months(conn, quantity, months)
        if months is None:
            conn.execute(text("ANALYZE dose_bucket"))
    return redo


def refresh_buckets(engine: Engine, lookups: Snapshot | None = None,
                    force: bool = False) -> int:
    """Bring the dose buckets to the current data version (module doc); returns it. force:
    rebuild whatever the state says (`db rebuild-facts`). `lookups`: the lookup tables as the
    caller read them (SqlSource's, of the figures version), else read here."""
    _check(engine)
    if lookups is None:
        with engine.connect() as conn:
            lookups = _lookups(conn)
    return refresh_versioned(engine, DoseBucketState, rules_of(lookups), _LOCK, _redo(engine),
                             force=force)


