"""The compact analysis frame: every final record as a few numeric columns, read in one query.

Why a frame: SQLite has no percentile function, and the dashboards need medians and 75th
percentiles by procedure, room, physician and month under any filter. The columns those figures
need (about 80 bytes a record, names as integer ids, booleans packed into one bit field) are read
once in a single query and grouped with pandas/numpy, so a filter change costs milliseconds, on
SQLite and PostgreSQL alike, and the CLI and the pages compute from the same code. How the
query packs them is private (audit.analytics._packing): rules read a record's facts by name
(`Snapshot.fact`, `confirmation_is`, `region_is`), never by bit.

Freshness: every write appends an audit event in the same transaction (audit.trail), so the
highest audit event id is a version number of the data. `FrameCache.get()` compares it with the
one it loaded at; when it moved, it re-reads only the records the new events name (a created,
amended or voided record, or a bulk range) plus the small reference tables, and falls back to a
full read when an event does not say which records changed.

Which records a figure covers is `audit.filters.Filters.mask(snap)`: the same filters the
Records list and the exports render to SQL.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import (
    Connection,
    Engine,
    func,
    or_,
    select,
)
from sqlalchemy.sql import ColumnElement

from audit.analytics import _frame_file, _packing, _split_read
from audit.analytics._lookup_tables import read_lookup_tables
from audit.analytics._packing import COLUMNS
from audit.analytics.quantiles import value_order
from audit.catalog import Catalog
from audit.dosimetry import corrected_kap
from audit.settings import Settings
from audit.storage.models import (
    AuditEvent,
    Procedure,
    ProcedureLevel,
)
from audit.vocab import ContrastConfirmation, RecordStatus, Region

#: Beyond this many changed-record events, one full read is cheaper than many small ones.
INCREMENTAL_LIMIT = 20_000
#: A derived column (`Snapshot.values`): the displayed KAP times the room's KAP correction
#: factor, what reference levels are computed from and compared with (docs/reference.md §12).
KAP_CORRECTED = "kap_corrected_gycm2"


def _frame(columns: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """The frame from its stored COLUMNS, plus the `month` grouping key."""
    frame = pd.DataFrame({k: v.astype(COLUMNS[k], copy=False) for k, v in columns.items()})
    frame["month"] = _months(frame["t"].to_numpy())
    return frame


#: (records read so far, records in all): how far a full read of the frame has come.
ReadProgress = Callable[[int, int], None]


def _read_records(conn: Connection, where: Any = None, level_where: Any = None,
                  progress: ReadProgress | None = None, head: int | None = None) -> pd.DataFrame:
    """Final records (all, or those `where` selects) as frame rows, with their level counts;
    `progress` is told after each chunk of a full read (the first one after an install takes
    seconds at a million records). A full read given the transaction's audit `head` is read
    in two processes on SQLite (audit.analytics._split_read)."""
    _packing.check_packable(conn)
    query = _packing.record_query(conn.dialect.name)
    if where is not None:
        query = query.where(where)
    told: Callable[[int], None] | None = None
    if progress is not None and where is None:
        tell = progress
        total = int(conn.execute(select(func.count()).select_from(Procedure)
                                 .where(Procedure.status == RecordStatus.FINAL.value))
                    .scalar() or 0)  # the (status, performed_at) index: milliseconds
        tell(0, total)

        def rows_read(done: int) -> None:
            tell(min(done, total), total)
        told = rows_read
    raw = _split_read.fetch(conn, query, head, told) if where is None and head is not None \
        else _packing.fetch(conn, query, told)
    level_ids = _packing.level_ids(conn, level_where if where is not None else None)
    return _frame(_packing.unpack(raw, level_ids))


def _months(epoch: np.ndarray) -> np.ndarray:
    """Months since 1970-01 (UTC) of epoch seconds: the `month` grouping key."""
    return epoch.astype("datetime64[s]").astype("datetime64[M]").astype(np.int32)


def month_label(month: int | np.integer) -> str:
    return str(np.datetime64(int(month), "M"))


def month_start(month: int | np.integer) -> date:
    return date.fromisoformat(month_label(month) + "-01")


@dataclass(frozen=True)
class Snapshot:
    """Everything the metrics need, consistent as of one audit event id (`token`)."""

    records: pd.DataFrame
    catalog: Catalog
    settings: Settings
    setting_sources: Mapping[str, str | None]
    sites: pd.Series  # id -> name
    rooms: pd.DataFrame  # index id: name, site_id, kap_factor, label ("site · name" if ambiguous)
    physicians: pd.Series  # id -> name
    technologists: pd.Series  # id -> username
    types: pd.DataFrame  # index id: code, name, policy, realtime_required, min_views, max_levels
    reference_levels: pd.DataFrame  # active reference_level rows
    token: int
    loaded_at: datetime
    #: Per-snapshot derived arrays (sorted orders); a refreshed snapshot starts a new one.
    cache: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def values(self, column: str) -> np.ndarray:
        """A frame column, or the derived KAP_CORRECTED: each record's displayed KAP times its
        room's KAP correction factor (audit.dosimetry.corrected_kap, the one place the factor
        is applied). Built once per snapshot; a changed factor is a room event, which gives a
        new snapshot (and cache)."""
        if column != KAP_CORRECTED:
            return self.records[column].to_numpy()
        found = self.cache.get(f"values:{column}")
        if found is None:
            room_id = self.records["room_id"].to_numpy()
            size = int(max(self.rooms.index.max() if len(self.rooms) else 0,
                           room_id.max() if len(room_id) else 0)) + 1
            factor = np.ones(size, dtype=np.float64)
            if len(self.rooms):
                factor[self.rooms.index.to_numpy()] = self.rooms["kap_factor"].to_numpy(
                    dtype=np.float64)
            found = corrected_kap(self.records["dap_gycm2"].to_numpy(), factor[room_id])
            self.cache[f"values:{column}"] = found
        return found

    def order(self, column: str) -> tuple[np.ndarray, int]:
        """Record positions sorted by `column` (a frame column or a derived one, `values`;
        missing values last; equal values in any order: quantiles.value_order) and how many
        values are present. Computed once per snapshot: grouped quantiles reuse it."""
        key = f"order:{column}"
        found = self.cache.get(key)
        if found is None:
            found = value_order(self.values(column))
            self.cache[key] = found
        return found

    def fact(self, name: str) -> np.ndarray:
        """One boolean fact of every record by name, e.g. "realtime_contrast", "pulsed_fluoro",
        "pregnant" (the list: audit.analytics._packing.FACTS). Not cached: a mask and a compare
        cost about a millisecond a million records, and `cache` keeps its room for filters."""
        return _packing.fact(self.records["flags"].to_numpy(), name)

    def confirmation_is(self, status: ContrastConfirmation) -> np.ndarray:
        """Which records have this contrast-confirmation status."""
        return self.records["confirmation"].to_numpy() == _packing.confirmation_code(status)

    def region_is(self, region: Region) -> np.ndarray:
        """Which records treated this spinal region."""
        return self.records["region"].to_numpy() == _packing.region_code(region)

    def confirmation_names(self, rows: pd.DataFrame) -> np.ndarray:
        """The contrast-confirmation status of some of the records (rows of `records`)."""
        return _packing.confirmation_names(rows["confirmation"].to_numpy())

    def labels(self, by: str) -> pd.Series:
        """id -> display name for a grouping (physician, room, procedure, site, technologist)."""
        if by == "physician":
            return self.physicians
        if by == "room":
            return self.rooms["label"]
        if by == "procedure":
            return self.types["code"]
        if by == "site":
            return self.sites
        if by == "technologist":
            return self.technologists
        raise ValueError(f"no labels for {by!r}")


def _head(conn: Connection) -> int:
    return int(conn.execute(select(func.max(AuditEvent.id))).scalar() or 0)


def data_version(conn: Connection) -> int:
    """The highest audit event id this connection sees: the version of the data (every write
    appends an event in its own transaction), what a Snapshot's `token` records."""
    return _head(conn)


def load_snapshot(engine: Engine, progress: ReadProgress | None = None) -> Snapshot:
    """Read the whole frame (one query) and the small reference tables."""
    with engine.connect() as conn:
        return read_snapshot(conn, progress)


def read_snapshot(conn: Connection, progress: ReadProgress | None = None) -> Snapshot:
    """The frame as this connection sees it: inside a caller's transaction (an export's read
    snapshot), the figures match every other query made in that transaction."""
    token = _head(conn)  # first: the data read below is at least this fresh
    records = _read_records(conn, progress=progress, head=token)
    tables = read_lookup_tables(conn)
    return Snapshot(records=records, token=token, loaded_at=datetime.now(UTC),
                    **tables)


_RANGE = re.compile(r"^(\d+)-(\d+)$")


def _changed_records(
    events: Iterable[tuple[str, str | None]],
) -> tuple[set[int], list[tuple[int, int]]] | None:
    """Record ids and id ranges named by procedure events; None if one does not say."""
    ids: set[int] = set()
    ranges: list[tuple[int, int]] = []
    for entity, entity_id in events:
        if entity != "procedure":
            continue
        if entity_id is None:
            return None
        text = entity_id.strip()
        if text.isdigit():
            ids.add(int(text))
            continue
        match = _RANGE.match(text)
        if not match:
            return None
        ranges.append((int(match[1]), int(match[2])))
    return ids, ranges


#: Events that change nothing the figures depend on: the frame keeps its cache.
_IRRELEVANT_ENTITIES = frozenset({"alert", "alert_acknowledgement"})
_IRRELEVANT_ACTIONS = frozenset({"login", "login_failed", "logout", "export"})


def refresh_snapshot(engine: Engine, snap: Snapshot,
                     progress: ReadProgress | None = None) -> Snapshot:
    """The snapshot brought up to date: re-read only the records new audit events name, and
    the small reference tables when something else changed."""
    with engine.connect() as conn:
        return catch_up(conn, snap, progress)


def catch_up(conn: Connection, snap: Snapshot,
             progress: ReadProgress | None = None) -> Snapshot:
    """`refresh_snapshot` on a given connection: the snapshot as this connection (and its
    transaction, e.g. an export's read snapshot) sees the data."""
    token = _head(conn)
    if token == snap.token:
        return snap
    events = conn.execute(
        select(AuditEvent.entity, AuditEvent.entity_id, AuditEvent.action)
        .where(AuditEvent.id > snap.token).limit(INCREMENTAL_LIMIT + 1)
    ).all()
    relevant = [(e, i) for e, i, a in events
                if e not in _IRRELEVANT_ENTITIES and a not in _IRRELEVANT_ACTIONS]
    if not relevant and len(events) <= INCREMENTAL_LIMIT:
        return replace(snap, token=token, cache=snap.cache)
    changed = _changed_records(relevant) if len(events) <= INCREMENTAL_LIMIT else None
    if changed is None or token < snap.token:
        return read_snapshot(conn, progress)
    ids, ranges = changed
    records = snap.records
    if ids or ranges:
        fresh = _read_records(conn, _id_conditions(Procedure.id, ids, ranges),
                              _id_conditions(ProcedureLevel.procedure_id, ids, ranges))
        ids_arr = records["id"].to_numpy()
        stale = np.isin(ids_arr, np.fromiter(ids, dtype=np.int64, count=len(ids)))
        for lo, hi in ranges:
            stale |= (ids_arr >= lo) & (ids_arr <= hi)
        kept = records[~stale]
        records = pd.concat([kept, fresh], ignore_index=True) if len(fresh) else \
            kept.reset_index(drop=True)
    tables = read_lookup_tables(conn)
    return replace(snap, records=records, token=token, loaded_at=datetime.now(UTC), cache={},
                   **tables)


def _id_conditions(column: Any, ids: set[int],
                   ranges: list[tuple[int, int]]) -> ColumnElement[bool]:
    conditions: list[ColumnElement[bool]] = [column.between(lo, hi) for lo, hi in ranges]
    id_list = sorted(ids)
    for lo in range(0, len(id_list), 500):
        conditions.append(column.in_(id_list[lo:lo + 500]))
    return or_(*conditions)


@dataclass
class FrameCache:
    """One per process (the dashboard keeps it in st.cache_resource): the current snapshot,
    refreshed on demand. Thread-safe: Streamlit serves sessions from several threads.

    With `store` (a directory), the frame is also kept in a file that survives restarts: a new
    process reads it (a fraction of a second instead of re-reading every record) after checking
    that the database's audit chain still holds the event the file was made at (same id, same
    hash, so it is the same database and nothing before it changed), then catches up from the
    events after it like any refresh. The file holds record numbers only, no names or MRNs.
    """

    engine: Engine
    store: Path | None = None
    _snap: Snapshot | None = None
    _saved_token: int = -1
    _lock: threading.Lock = field(default_factory=threading.Lock)
    #: Whether the first `get` read every record (no usable frame file), not the file.
    read_all: bool = False

    def get(self, progress: ReadProgress | None = None) -> Snapshot:
        """The current snapshot; `progress` hears how far a full read has come (only a full
        read reports: the frame file and a catch-up take a fraction of a second)."""
        with self._lock:
            if self._snap is None:
                stored = self._read_store()
                self.read_all = stored is None
                self._snap = (refresh_snapshot(self.engine, stored, progress)
                              if stored is not None else load_snapshot(self.engine, progress))
            else:
                self._snap = refresh_snapshot(self.engine, self._snap, progress)
            self._write_store(self._snap)
            return self._snap

    def invalidate(self) -> None:
        with self._lock:
            self._snap = None

    def save(self) -> Path | None:
        """Write the current snapshot to the frame file now, however few events passed since
        the last write (`get` writes only every STORE_EVERY_EVENTS); the file's path, or None
        without a store, a snapshot or a writable place."""
        with self._lock:
            if self._snap is None or self._path() is None:
                return None
            self._write_store(self._snap, force=True)
            return self._path() if self._saved_token == self._snap.token else None

    # --- the frame file ---------------------------------------------------------------------
    def _path(self) -> Path | None:
        return None if self.store is None else _frame_file.path_for(self.store, self.engine)

    def _read_store(self) -> Snapshot | None:
        path = self._path()
        if path is None or not path.is_file():
            return None
        try:
            token, token_hash, columns = _frame_file.read(path)
            with self.engine.connect() as conn:
                found = conn.execute(select(AuditEvent.hash)
                                     .where(AuditEvent.id == token)).scalar()
                if found != token_hash:  # another database, or its trail was rebuilt
                    return None
                tables = read_lookup_tables(conn)
        except (OSError, KeyError, ValueError):
            return None  # unreadable or from an older layout: read the database instead
        records = _frame(columns)
        self._saved_token = token
        return Snapshot(records=records, token=token, loaded_at=datetime.now(UTC), **tables)

    def _write_store(self, snap: Snapshot, force: bool = False) -> None:
        path = self._path()
        if path is None or snap.token == self._saved_token:
            return
        if (not force and self._saved_token >= 0
                and snap.token - self._saved_token < STORE_EVERY_EVENTS):
            return  # a few new events are cheap to replay from the trail
        try:
            with self.engine.connect() as conn:
                token_hash = conn.execute(select(AuditEvent.hash)
                                          .where(AuditEvent.id == snap.token)).scalar()
            if token_hash is None:
                return
            _frame_file.write(path, snap.token, token_hash, snap.records)
            self._saved_token = snap.token
        except OSError:
            return  # a read-only place: the frame is simply read from the database next time


#: Rewrite the frame file once this many audit events have passed since it was written.
STORE_EVERY_EVENTS = 500


@dataclass(frozen=True)
class FrameFileReport:
    """What `warm_frame_file` did: the file, the audit event it is current at, the records it
    holds, whether every record was read (no usable file before) and how long it took."""

    path: str | None
    token: int
    records: int
    read_all: bool
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "audit_event_id": self.token, "records": self.records,
                "read_all": self.read_all, "seconds": round(self.seconds, 3)}


def warm_frame_file(engine: Engine, store: Path,
                    progress: ReadProgress | None = None) -> FrameFileReport:
    """Bring the frame file of this database up to date, so the dashboard's next new process
    (a restart, `make run`) reads it in a fraction of a second instead of every record (at 1M
    on SQLite: 0.3-0.9 s against 4.5-6.5 s). From the file when it is usable (then only the
    events after it), else every record; `progress` hears a full read."""
    started = time.perf_counter()
    cache = FrameCache(engine, store=store)
    snap = cache.get(progress)
    written = cache.save()
    return FrameFileReport(path=None if written is None else str(written), token=snap.token,
                           records=len(snap.records), read_all=cache.read_all,
                           seconds=time.perf_counter() - started)


# --- what the filters offer (the filters themselves, and the mask over this frame: audit.filters)

def options(snap: Snapshot) -> dict[str, list[str]]:
    """Filter choices: names that occur in the records (plus active catalog codes)."""
    r = snap.records
    used = {
        "sites": snap.sites[snap.sites.index.isin(r["site_id"].unique())],
        "rooms": snap.rooms["label"][snap.rooms.index.isin(r["room_id"].unique())],
        "physicians": snap.physicians[snap.physicians.index.isin(r["physician_id"].unique())],
        "procedures": snap.types["code"][snap.types.index.isin(r["type_id"].unique())],
    }
    return {k: sorted(v.astype(str).tolist()) for k, v in used.items()}


def date_range(snap: Snapshot) -> tuple[date, date] | None:
    """First and last day with a record (UTC)."""
    t = snap.records["t"]
    if t.empty:
        return None
    first = datetime.fromtimestamp(int(t.min()), UTC).date()
    last = datetime.fromtimestamp(int(t.max()), UTC).date()
    return first, last


def to_datetime(epoch: pd.Series | np.ndarray) -> pd.Series:
    """Epoch seconds as timezone-aware UTC timestamps (for tables)."""
    return pd.to_datetime(np.asarray(epoch), unit="s", utc=True)
