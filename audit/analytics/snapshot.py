"""The compact analysis frame: every final record as a few numeric columns, read in one query.

Why a frame: SQLite has no percentile function, and the dashboards need medians and 75th
percentiles by procedure, room, physician and month under any filter. The columns those figures
need (about 80 bytes a record, names as integer ids, booleans packed into one bit field) are read
once in a single query and grouped with pandas/numpy, so a filter change costs milliseconds, on
SQLite and PostgreSQL alike, and the CLI and the pages compute from the same code.

Freshness: every write appends an audit event in the same transaction (audit.trail), so the
highest audit event id is a version number of the data. `FrameCache.get()` compares it with the
one it loaded at; when it moved, it re-reads only the records the new events name (a created,
amended or voided record, or a bulk range) plus the small reference tables, and falls back to a
full read when an event does not say which records changed.
"""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import (
    BigInteger,
    Connection,
    Engine,
    Integer,
    Text,
    and_,
    case,
    cast,
    extract,
    func,
    or_,
    select,
)
from sqlalchemy.sql import ColumnElement

from audit.catalog import Catalog, load_catalog
from audit.errors import FieldError, ValidationFailed
from audit.settings import Settings, load_settings
from audit.storage.models import (
    AuditEvent,
    Patient,
    Physician,
    Procedure,
    ProcedureLevel,
    ProcedureType,
    ReferenceLevel,
    Room,
    Setting,
    Site,
    UserAccount,
)
from audit.vocab import (
    PARTICULATE_STEROIDS,
    ContrastConfirmation,
    DoseSource,
    Guidance,
    PregnancyStatus,
    RecordStatus,
    Region,
)

REGIONS: tuple[str, ...] = tuple(Region.values())
CONFIRMATIONS: tuple[str, ...] = tuple(ContrastConfirmation.values())
CONFIRMED = CONFIRMATIONS.index(ContrastConfirmation.CONFIRMED.value)
CONTRAINDICATED = CONFIRMATIONS.index(ContrastConfirmation.CONTRAINDICATED.value)
NOT_CONFIRMED = CONFIRMATIONS.index(ContrastConfirmation.NOT_CONFIRMED.value)

#: Beyond this many changed-record events, one full read is cheaper than many small ones.
INCREMENTAL_LIMIT = 20_000


class Flag:
    """Bits of the `flags` column (one integer per record instead of a dozen columns)."""

    EXCEPTION_REASON = 1 << 0  # contrast_exception_reason given
    REALTIME = 1 << 1  # realtime_contrast true
    PULSED = 1 << 2
    PULSED_KNOWN = 1 << 3  # pulsed_fluoro recorded (true or false)
    LOW_DOSE = 1 << 4
    LOW_DOSE_KNOWN = 1 << 5
    UPTAKE = 1 << 6  # vascular_uptake true
    REPOSITIONED = 1 << 7  # needle_repositioned true
    PARTICULATE = 1 << 8  # particulate steroid injected
    PREGNANT = 1 << 9
    WARNINGS = 1 << 10  # saved with confirmed plausibility warnings
    FROM_RDSR = 1 << 11  # dose totals from a DICOM dose report
    DSA = 1 << 12  # guidance fluoroscopy_dsa
    DAP_REASON = 1 << 13  # no DAP, with a documented reason


#: Column name -> numpy dtype of the frame.
COLUMNS: dict[str, str] = {
    "id": "int64", "t": "int64", "site_id": "int32", "room_id": "int32",
    "physician_id": "int32", "technologist_id": "int32", "type_id": "int32",
    "patient_id": "int64", "region": "int8", "fluoro_time_s": "float64",
    "dap_gycm2": "float64", "air_kerma_mgy": "float64", "saved_images": "int32",
    "n_views": "int16", "n_levels": "int16", "confirmation": "int8", "flags": "int32",
}
#: Packing: reading a value into Python costs about the same whatever it is, so the query returns
#: 8 numbers a record instead of 17 (ids and small fields packed into integers below 2**53, so
#: one float64 array holds them exactly), and numpy unpacks them.
ID_BITS = 12  # site, room, physician and procedure type ids below 4096 pack into one number
_ID_BASE = 1 << ID_BITS
_PATIENT_BASE = 1 << 32  # patient id below 2**32, technologist id below 2**20
MAX_SAVED_IMAGES = 255  # stored exactly up to this; compliance needs only ">= 1"
CHUNK = 100_000


def _bit(condition: ColumnElement[bool], bit: int) -> ColumnElement[int]:
    return case((condition, bit), else_=0)


def _capped(value: ColumnElement[int], cap: int) -> ColumnElement[int]:
    return case((value > cap, cap), else_=value)


def _epoch(dialect: str) -> ColumnElement[int]:
    """performed_at as integer seconds since 1970 UTC, computed in the database."""
    if dialect == "sqlite":  # stored as UTC text "YYYY-MM-DD HH:MM:SS.ffffff"
        if sqlite3.sqlite_version_info >= (3, 38):
            return func.unixepoch(Procedure.performed_at)  # faster than strftime
        return cast(func.strftime("%s", Procedure.performed_at), Integer)
    return cast(extract("epoch", Procedure.performed_at), BigInteger)


def _record_query(dialect: str) -> Any:
    """The frame query: 8 numbers a final record (see the packing above)."""
    p = Procedure
    views = func.coalesce(p.confirmation_views, "")
    n_views = case((views == "", 0),
                   else_=func.length(views) - func.length(func.replace(views, ";", "")) + 1)
    particulate = [s.value for s in PARTICULATE_STEROIDS]
    flags = (
        _bit(p.contrast_exception_reason.is_not(None), Flag.EXCEPTION_REASON)
        + _bit(p.realtime_contrast.is_(True), Flag.REALTIME)
        + _bit(p.pulsed_fluoro.is_(True), Flag.PULSED)
        + _bit(p.pulsed_fluoro.is_not(None), Flag.PULSED_KNOWN)
        + _bit(p.low_dose_mode.is_(True), Flag.LOW_DOSE)
        + _bit(p.low_dose_mode.is_not(None), Flag.LOW_DOSE_KNOWN)
        + _bit(p.vascular_uptake.is_(True), Flag.UPTAKE)
        + _bit(p.needle_repositioned.is_(True), Flag.REPOSITIONED)
        + _bit(p.injectate.in_(particulate), Flag.PARTICULATE)
        + _bit(p.pregnancy_status == PregnancyStatus.PREGNANT.value, Flag.PREGNANT)
        + _bit(_has_json(p.warnings), Flag.WARNINGS)
        + _bit(p.dose_source != DoseSource.MANUAL.value, Flag.FROM_RDSR)
        + _bit(p.guidance == Guidance.FLUOROSCOPY_DSA.value, Flag.DSA)
        + _bit(p.dap_missing_reason.is_not(None), Flag.DAP_REASON)
    )
    region = case({r: i for i, r in enumerate(REGIONS)}, value=p.region, else_=7)
    confirmation = case({c: i for i, c in enumerate(CONFIRMATIONS)},
                        value=p.contrast_confirmation, else_=7)
    small = (region + 8 * confirmation + 64 * _capped(n_views, 7)
             + 8192 * _capped(p.saved_images, MAX_SAVED_IMAGES)
             + 2097152 * cast(flags, BigInteger))  # 64-bit arithmetic on PostgreSQL too
    ids = (cast(p.procedure_type_id, BigInteger) + _ID_BASE * cast(p.room_id, BigInteger)
           + _ID_BASE ** 2 * cast(p.physician_id, BigInteger)
           + _ID_BASE ** 3 * cast(p.site_id, BigInteger))
    return (
        select(
            p.id.label("id"), _epoch(dialect).label("t"), ids.label("ids"),
            (cast(p.patient_id, BigInteger)
             + _PATIENT_BASE * cast(p.technologist_id, BigInteger)).label("who"),
            small.label("small"), p.fluoro_time_s, p.dap_gycm2, p.air_kerma_mgy,
        )
        .where(p.status == RecordStatus.FINAL.value)
    )


def _levels_query() -> Any:
    """Treated levels are counted in numpy from their procedure ids (a covering-index scan):
    joining a per-procedure count in SQL costs several times more than the whole frame."""
    return select(ProcedureLevel.procedure_id).order_by(ProcedureLevel.procedure_id)


def _has_json(column: Any) -> ColumnElement[bool]:
    """A JSON column holding something: neither SQL NULL nor JSON null nor an empty list."""
    as_text = cast(column, Text)
    return and_(column.is_not(None), as_text.not_in(["null", "[]"]))


def _fetch(conn: Connection, query: Any) -> list[np.ndarray]:
    """Run a numeric query and return its columns as float64 arrays.

    The driver's own cursor is read in chunks (no SQLAlchemy row objects), so memory stays near
    the arrays' size. (A second SQLite library in the process, e.g. an Arrow driver, would be
    faster but is unsafe: POSIX locks are per process, and one library closing the file drops
    the other's locks.)
    """
    sql = str(query.compile(conn.engine, compile_kwargs={"literal_binds": True}))
    width = len(query.selected_columns)
    cursor = conn.connection.driver_connection.cursor()
    try:
        cursor.execute(sql)
        parts = []
        while True:
            rows = cursor.fetchmany(CHUNK)
            if not rows:
                break
            parts.append(np.array(rows, dtype=np.float64).reshape(len(rows), width))
    finally:
        cursor.close()
    block = np.concatenate(parts) if parts else np.empty((0, width), dtype=np.float64)
    return [np.ascontiguousarray(block[:, i]) for i in range(width)]


def _to_frame(raw: list[np.ndarray], level_ids: np.ndarray) -> pd.DataFrame:
    """Unpack the 8 fetched numbers per record into the frame's columns; count the levels."""
    record_id = raw[0].astype(np.int64)
    ids = raw[2].astype(np.int64)
    who = raw[3].astype(np.int64)
    small = raw[4].astype(np.int64)
    levels = level_ids.astype(np.int64)
    n_levels = (np.searchsorted(levels, record_id, side="right")
                - np.searchsorted(levels, record_id, side="left"))
    mask = _ID_BASE - 1
    data = {
        "id": record_id,
        "t": raw[1].astype(np.int64),
        "site_id": (ids >> (3 * ID_BITS)) & mask,
        "room_id": (ids >> ID_BITS) & mask,
        "physician_id": (ids >> (2 * ID_BITS)) & mask,
        "technologist_id": who >> 32,
        "type_id": ids & mask,
        "patient_id": who & (_PATIENT_BASE - 1),
        "region": small & 7,
        "fluoro_time_s": raw[5],
        "dap_gycm2": raw[6],
        "air_kerma_mgy": raw[7],
        "saved_images": (small >> 13) & 255,
        "n_views": (small >> 6) & 7,
        "n_levels": n_levels,
        "confirmation": (small >> 3) & 7,
        "flags": small >> 21,
    }
    frame = pd.DataFrame({k: v.astype(COLUMNS[k], copy=False) for k, v in data.items()})
    frame["month"] = _months(frame["t"].to_numpy())
    return frame


def _check_packable(conn: Connection) -> None:
    """The packing needs small ids; say so plainly if a database ever outgrows it."""
    limits = ((Site.id, _ID_BASE), (Room.id, _ID_BASE), (Physician.id, _ID_BASE),
              (ProcedureType.id, _ID_BASE), (UserAccount.id, 1 << 20),
              (Patient.id, _PATIENT_BASE))
    for column, limit in limits:
        top = conn.execute(select(func.max(column))).scalar() or 0
        if top >= limit:
            raise OverflowError(f"{column} reaches {top}: the analysis frame packs it below "
                                f"{limit}; widen the packing in audit.analytics.snapshot")


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
    rooms: pd.DataFrame  # index id: name, site_id, label (name, or "site · name" if ambiguous)
    physicians: pd.Series  # id -> name
    technologists: pd.Series  # id -> username
    types: pd.DataFrame  # index id: code, name, policy, realtime_required, min_views, max_levels
    reference_levels: pd.DataFrame  # active reference_level rows
    token: int
    loaded_at: datetime
    #: Per-snapshot derived arrays (sorted orders); a refreshed snapshot starts a new one.
    cache: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def order(self, column: str) -> tuple[np.ndarray, int]:
        """Record positions sorted by `column` (stable; missing values last) and how many
        values are present. Computed once per snapshot: grouped quantiles reuse it."""
        key = f"order:{column}"
        found = self.cache.get(key)
        if found is None:
            values = self.records[column].to_numpy()
            found = (np.argsort(values, kind="stable"), int(np.count_nonzero(~np.isnan(values))))
            self.cache[key] = found
        return found

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


def _reference_tables(conn: Connection) -> dict[str, Any]:
    from sqlalchemy.orm import Session

    with Session(bind=conn) as session:
        catalog = load_catalog(session)
        settings = load_settings(session)
    sites = pd.Series(dict(conn.execute(select(Site.id, Site.name)).all()), dtype="str")
    rooms = pd.DataFrame(conn.execute(select(Room.id, Room.name, Room.site_id)).all(),
                         columns=["id", "name", "site_id"]).set_index("id")
    if len(rooms):
        ambiguous = rooms["name"].duplicated(keep=False)
        site_names = rooms["site_id"].map(sites)
        rooms["label"] = np.where(ambiguous, site_names + " · " + rooms["name"], rooms["name"])
    else:
        rooms["label"] = pd.Series(dtype="str")
    physicians = pd.Series(dict(conn.execute(select(Physician.id, Physician.name)).all()),
                           dtype="str")
    techs = pd.Series(dict(conn.execute(select(UserAccount.id, UserAccount.username)).all()),
                      dtype="str")
    types = pd.DataFrame(
        [(e.id, e.code, e.name, e.contrast_policy.value, e.realtime_contrast_required,
          e.min_views, e.max_levels if e.max_levels is not None else -1, e.typical_time_s,
          e.typical_dap_gycm2) for e in catalog.entries.values()],
        columns=["id", "code", "name", "policy", "realtime_required", "min_views",
                 "max_levels", "typical_time_s", "typical_dap_gycm2"],
    ).set_index("id")
    levels = pd.DataFrame(
        conn.execute(
            select(ReferenceLevel.id, ReferenceLevel.procedure_type_id, ReferenceLevel.quantity,
                   ReferenceLevel.kind, ReferenceLevel.statistic, ReferenceLevel.value,
                   ReferenceLevel.sample_size, ReferenceLevel.source, ReferenceLevel.note,
                   ReferenceLevel.effective_from)
            .where(ReferenceLevel.active.is_(True)).order_by(ReferenceLevel.id)
        ).all(),
        columns=["id", "type_id", "quantity", "kind", "statistic", "value", "sample_size",
                 "source", "note", "effective_from"],
    )
    sources = dict(conn.execute(select(Setting.key, Setting.source)).all())
    return {"catalog": catalog, "settings": settings, "setting_sources": sources,
            "sites": sites, "rooms": rooms, "physicians": physicians, "technologists": techs,
            "types": types, "reference_levels": levels}


def _head(conn: Connection) -> int:
    return int(conn.execute(select(func.max(AuditEvent.id))).scalar() or 0)


def data_version(conn: Connection) -> int:
    """The highest audit event id this connection sees: the version of the data (every write
    appends an event in its own transaction), what a Snapshot's `token` records."""
    return _head(conn)


def load_snapshot(engine: Engine) -> Snapshot:
    """Read the whole frame (one query) and the small reference tables."""
    with engine.connect() as conn:
        return read_snapshot(conn)


def read_snapshot(conn: Connection) -> Snapshot:
    """The frame as this connection sees it: inside a caller's transaction (an export's read
    snapshot), the figures match every other query made in that transaction."""
    token = _head(conn)  # first: the data read below is at least this fresh
    _check_packable(conn)
    raw = _fetch(conn, _record_query(conn.dialect.name))
    levels = _fetch(conn, _levels_query())[0]
    tables = _reference_tables(conn)
    return Snapshot(records=_to_frame(raw, levels), token=token, loaded_at=datetime.now(UTC),
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


def refresh_snapshot(engine: Engine, snap: Snapshot) -> Snapshot:
    """The snapshot brought up to date: re-read only the records new audit events name, and
    the small reference tables when something else changed."""
    with engine.connect() as conn:
        return catch_up(conn, snap)


def catch_up(conn: Connection, snap: Snapshot) -> Snapshot:
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
        return read_snapshot(conn)
    ids, ranges = changed
    records = snap.records
    if ids or ranges:
        _check_packable(conn)
        raw = _fetch(conn, _record_query(conn.dialect.name)
                     .where(_id_conditions(Procedure.id, ids, ranges)))
        levels = _fetch(conn, _levels_query()
                        .where(_id_conditions(ProcedureLevel.procedure_id, ids, ranges)))[0]
        fresh = _to_frame(raw, levels)
        ids_arr = records["id"].to_numpy()
        stale = np.isin(ids_arr, np.fromiter(ids, dtype=np.int64, count=len(ids)))
        for lo, hi in ranges:
            stale |= (ids_arr >= lo) & (ids_arr <= hi)
        kept = records[~stale]
        records = pd.concat([kept, fresh], ignore_index=True) if len(fresh) else \
            kept.reset_index(drop=True)
    tables = _reference_tables(conn)
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

    def get(self) -> Snapshot:
        with self._lock:
            if self._snap is None:
                stored = self._read_store()
                self._snap = (refresh_snapshot(self.engine, stored) if stored is not None
                              else load_snapshot(self.engine))
            else:
                self._snap = refresh_snapshot(self.engine, self._snap)
            self._write_store(self._snap)
            return self._snap

    def invalidate(self) -> None:
        with self._lock:
            self._snap = None

    # --- the frame file ---------------------------------------------------------------------
    def _path(self) -> Path | None:
        if self.store is None:
            return None
        url = self.engine.url.render_as_string(hide_password=True)
        digest = hashlib.sha256(url.encode()).hexdigest()[:16]
        return Path(self.store) / f"frame-{digest}.npz"

    def _read_store(self) -> Snapshot | None:
        path = self._path()
        if path is None or not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as stored:
                token = int(stored["token"])
                token_hash = str(stored["token_hash"])
                columns = {name: stored[name] for name in COLUMNS}
            with self.engine.connect() as conn:
                found = conn.execute(select(AuditEvent.hash)
                                     .where(AuditEvent.id == token)).scalar()
                if found != token_hash:  # another database, or its trail was rebuilt
                    return None
                tables = _reference_tables(conn)
        except (OSError, KeyError, ValueError):
            return None  # unreadable or from an older layout: read the database instead
        records = pd.DataFrame({k: v.astype(COLUMNS[k], copy=False) for k, v in columns.items()})
        records["month"] = _months(records["t"].to_numpy())
        self._saved_token = token
        return Snapshot(records=records, token=token, loaded_at=datetime.now(UTC), **tables)

    def _write_store(self, snap: Snapshot) -> None:
        path = self._path()
        if path is None or snap.token == self._saved_token:
            return
        if self._saved_token >= 0 and snap.token - self._saved_token < STORE_EVERY_EVENTS:
            return  # a few new events are cheap to replay from the trail
        try:
            with self.engine.connect() as conn:
                token_hash = conn.execute(select(AuditEvent.hash)
                                          .where(AuditEvent.id == snap.token)).scalar()
            if token_hash is None:
                return
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(path.name + ".partial.npz")
            np.savez(partial, token=np.int64(snap.token), token_hash=np.str_(token_hash),
                     **{name: snap.records[name].to_numpy() for name in COLUMNS})
            os.replace(partial, path)
            self._saved_token = snap.token
        except OSError:
            return  # a read-only place: the frame is simply read from the database next time


#: Rewrite the frame file once this many audit events have passed since it was written.
STORE_EVERY_EVENTS = 500


# --- filters ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Filters:
    """The dashboards' common filters. Dates are inclusive, in UTC; empty tuples mean "all"."""

    start: date | None = None
    end: date | None = None
    sites: tuple[str, ...] = ()
    rooms: tuple[str, ...] = ()
    physicians: tuple[str, ...] = ()
    procedures: tuple[str, ...] = ()

    @property
    def period(self) -> Filters:
        """Only the period: reference levels are computed over every room and physician."""
        return Filters(start=self.start, end=self.end)

    def bounds(self) -> tuple[int | None, int | None]:
        """[lo, hi) in epoch seconds."""
        lo = _epoch_of(self.start) if self.start else None
        hi = _epoch_of(self.end + timedelta(days=1)) if self.end else None
        return lo, hi

    def describe(self) -> str:
        parts = [f"{self.start or 'start'} to {self.end or 'latest'}"]
        for name, values in (("site", self.sites), ("room", self.rooms),
                             ("physician", self.physicians), ("procedure", self.procedures)):
            if values:
                parts.append(f"{name}: {', '.join(values)}")
        return "; ".join(parts)


def _epoch_of(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


def _ids_for(names: Sequence[str], labels: pd.Series, field_name: str,
             errors: list[FieldError]) -> np.ndarray:
    lookup = {str(v): k for k, v in labels.items()}
    ids = []
    for name in names:
        if name in lookup:
            ids.append(lookup[name])
        else:
            known = ", ".join(sorted(lookup)) or "none yet"
            errors.append(FieldError(field_name, f"no {field_name} named {name!r}; known: "
                                                 f"{known}"))
    return np.array(ids, dtype=np.int64)


def _member(values: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """np.isin for small non-negative ids: one gather through a lookup table (several times
    faster than isin's sort over a million records)."""
    if not len(values) or not len(ids):
        return np.zeros(len(values), dtype=bool)
    top = int(max(values.max(), ids.max()))
    if values.min() < 0 or ids.min() < 0 or top > 1 << 24:
        return np.isin(values, ids)
    table = np.zeros(top + 1, dtype=bool)
    table[ids] = True
    return table[values]


def filter_mask(snap: Snapshot, filters: Filters) -> np.ndarray:
    """Which records of the frame match the filters (a boolean array over the frame).

    Unknown names are errors naming the filter and listing what is known.
    """
    key = f"mask:{filters!r}"
    cached = snap.cache.get(key)
    if cached is not None:
        return cached
    r = snap.records
    if filters.start and filters.end and filters.end < filters.start:
        raise ValidationFailed([FieldError("to", f"{filters.end} is before the start "
                                                 f"{filters.start}")])
    errors: list[FieldError] = []
    mask = np.ones(len(r), dtype=bool)
    lo, hi = filters.bounds()
    t = r["t"].to_numpy()
    if lo is not None:
        mask &= t >= lo
    if hi is not None:
        mask &= t < hi
    for names, labels, column, name in (
        (filters.sites, snap.sites, "site_id", "site"),
        (filters.rooms, snap.rooms["label"], "room_id", "room"),
        (filters.physicians, snap.physicians, "physician_id", "physician"),
        (filters.procedures, snap.types["code"], "type_id", "procedure"),
    ):
        if names:
            ids = _ids_for(names, labels, name, errors)
            mask &= _member(r[column].to_numpy(), ids)
    if errors:
        raise ValidationFailed(errors)
    if len(snap.cache) < 64:  # a few recent filters; the snapshot is replaced on change
        snap.cache[key] = mask
    return mask


def select_records(snap: Snapshot, filters: Filters) -> pd.DataFrame:
    """The records matching the filters."""
    return snap.records[filter_mask(snap, filters)]


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
