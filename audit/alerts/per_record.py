"""The per-record alerts (SRDL and investigation level) refreshed by SQL set operations.

A per-record alert is a plain WHERE on one record against a threshold, so the database finds
them itself: one INSERT ... SELECT per kind and quantity puts the records that call for an
alert (among the records in scope) into a temporary table of candidates, and a handful of
statements reconcile the `alert` table with it (UPDATE ... FROM, INSERT ... SELECT ...
ON CONFLICT DO NOTHING, UPDATE ... RETURNING), the same statements on PostgreSQL and SQLite
(3.35+). No record or alert row passes through Python, so the first refresh of a million
records costs a few table scans, and a refresh after a few new records costs index look-ups.

The rules are audit.alerts.detection's, written in SQL: SRDL at or above the setting, the
investigation level strictly above the level of the record's procedure type (levels computed
from the analysis frame, passed in), KAP room-corrected (displayed KAP times the room's KAP
correction factor, the same double-precision product as audit.dosimetry.corrected_kap).
tests/alerts/test_incremental.py holds the stored alerts equal to compute_alerts on both
databases.

Evidence and context are compared column by column here (the digests in `alert.evidence` and
`alert.context` are the cumulative alerts' equivalent, which carry record lists): an alert's
evidence is its value and patient, its context the threshold, its source and where and when
the record was done. Changed evidence reopens an acknowledged alert; a changed context only
updates it; a withdrawn alert met again is reopened.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    case,
    cast,
    exists,
    false,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from audit.alerts.detection import PLACE_COLUMNS
from audit.storage.models import Alert, Procedure, Room
from audit.storage.types import UTCDateTime
from audit.vocab import AlertKind, AlertStatus, DoseQuantity, RecordStatus

WITHDRAWN_REASON = ("no longer met: a record was voided or amended, or a threshold changed")
#: What `alert.evidence` / `alert.context` hold for a per-record alert (compared by column).
BY_COLUMN = "columns"

_temp = MetaData()
CANDIDATE = Table(
    "alert_candidate", _temp,
    Column("key", String(120)), Column("kind", String(16)), Column("quantity", String(16)),
    Column("patient_id", Integer), Column("procedure_id", Integer),
    Column("performed_at", UTCDateTime()), Column("value", Float), Column("threshold", Float),
    Column("threshold_source", Text), *(Column(c, Integer) for c in PLACE_COLUMNS),
    Index("alert_candidate_key", "key"),
    prefixes=["TEMPORARY"], postgresql_on_commit="DROP")
HOT = Table("alert_hot", _temp, Column("id", Integer), Column("patient_id", Integer),
            Column("performed_at", UTCDateTime()), *(Column(c, Integer) for c in PLACE_COLUMNS),
            *(Column(q, Float) for q in DoseQuantity.values()),
            prefixes=["TEMPORARY"], postgresql_on_commit="DROP")
LEVEL = Table("alert_level", _temp, Column("type_id", Integer), Column("quantity", String(16)),
              Column("level", Float), Column("source", Text),
              prefixes=["TEMPORARY"], postgresql_on_commit="DROP")


@dataclass
class Scope:
    """Which records a refresh evaluates: all (`full`), or those named by id or id range, plus,
    per quantity, every record of the procedure types whose investigation level changed."""

    full: bool = False
    ids: set[int] = field(default_factory=set)
    ranges: list[tuple[int, int]] = field(default_factory=list)
    level_types: dict[str, set[int]] = field(default_factory=dict)
    #: the records of those types above their new level (found in the analysis frame, so a
    #: moved level costs index look-ups, not a scan of every record of the type)
    level_records: set[int] = field(default_factory=set)

    def records(self, column: Any) -> ColumnElement[bool]:
        """The scope's records as a condition on a record-id column."""
        if self.full:
            return true()
        parts: list[ColumnElement[bool]] = [column.between(lo, hi) for lo, hi in self.ranges]
        ids = sorted(self.ids)
        parts += [column.in_(ids[i:i + 500]) for i in range(0, len(ids), 500)]
        return or_(*parts) if parts else false()

    def contains(self, record_id: int) -> bool:
        return self.full or record_id in self.ids or any(
            lo <= record_id <= hi for lo, hi in self.ranges)

    @property
    def empty(self) -> bool:
        return not (self.full or self.ids or self.ranges
                    or any(self.level_types.values()))


@dataclass(frozen=True)
class Counts:
    opened: int = 0
    updated: int = 0
    reopened: int = 0
    withdrawn_ids: tuple[int, ...] = ()


def measured(quantity: str, p: Any = Procedure) -> Any:
    """The SQL value an alert on `quantity` compares (KAP room-corrected). `p`: the procedure
    table, or an alias of it (a sample: audit.alerts.from_sql)."""
    if quantity == DoseQuantity.DAP_GYCM2.value:
        return p.dap_gycm2 * Room.kap_correction_factor
    return getattr(p, quantity)


def _candidates(kind: AlertKind, quantity: str, threshold: Any, source: Any,
                hit: ColumnElement[bool], where: ColumnElement[bool],
                joined: Any = None) -> Any:
    h = HOT.c
    key = literal(f"{kind.value}:{quantity}:record:", String) + cast(h.id, String)
    query = (select(key, literal(kind.value, String), literal(quantity, String),
                    h.patient_id, h.id, h.performed_at, h[quantity], threshold, source,
                    *(h[c] for c in PLACE_COLUMNS))
             .select_from(HOT))
    if joined is not None:
        query = query.join(*joined)
    return insert(CANDIDATE).from_select([c.name for c in CANDIDATE.columns],
                                         query.where(where, hit))


def _lowest(quantity: str, srdl: float, levels: list[dict[str, Any]]) -> Any:
    """The lowest threshold of `quantity` a record can meet: its type's investigation level
    where that is below the SRDL, as a CASE on the record's type (a handful of types)."""
    below = {int(r["type_id"]): float(r["level"]) for r in levels
             if r["quantity"] == quantity and r["level"] < srdl}
    if not below:
        return literal(srdl, Float)
    return case(below, value=Procedure.procedure_type_id, else_=literal(srdl, Float))


def _hot(scope: Scope, lowest: Mapping[str, Any]) -> Any:
    """The final records in scope with a quantity at or above the lowest threshold any rule
    could apply to it: one scan of the procedure table (a look-up by id when the scope names
    records), a few records in a hundred kept."""
    where = scope.records(Procedure.id)
    if scope.level_records and not scope.full:
        where = or_(where, Scope(ids=scope.level_records).records(Procedure.id))
    return insert(HOT).from_select(
        [c.name for c in HOT.columns],
        select(Procedure.id, Procedure.patient_id, Procedure.performed_at,
               *(getattr(Procedure, c) for c in PLACE_COLUMNS),
               *(measured(q) for q in DoseQuantity.values()))
        .select_from(Procedure).join(Room, Room.id == Procedure.room_id)
        .where(Procedure.status == RecordStatus.FINAL.value, where,
               or_(*(measured(q) >= level for q, level in lowest.items()))))


def _drop(conn: Any, *tables: Table) -> None:
    for table in tables:
        prefix = "temp." if conn.dialect.name == "sqlite" else ""
        conn.execute(text(f"DROP TABLE IF EXISTS {prefix}{table.name}"))


def refresh_per_record(session: Session, scope: Scope, srdl: Mapping[str, tuple[float, str]],
                       levels: list[dict[str, Any]], now: datetime) -> Counts:
    """Reconcile the stored SRDL and investigation alerts of the records in `scope` with what
    the records call for now. `srdl`: quantity -> (level, source text); `levels`: rows
    (type_id, quantity, level, source) of the procedure types that have an investigation
    level. Runs inside the caller's transaction."""
    conn = session.connection()
    if conn.dialect.name == "sqlite":  # left behind by a failed attempt on this connection
        _drop(conn, CANDIDATE, LEVEL, HOT)
    for table in (CANDIDATE, LEVEL, HOT):
        table.create(conn)
    try:
        if levels:
            conn.execute(insert(LEVEL), levels)
        lowest = {q: _lowest(q, level, levels) for q, (level, _) in srdl.items()}
        conn.execute(_hot(scope, lowest))
        records = scope.records(HOT.c.id)
        for quantity, (level, source) in srdl.items():
            conn.execute(_candidates(AlertKind.SRDL, quantity, literal(level, Float),
                                     literal(source, Text), HOT.c[quantity] >= level,
                                     records))
        for quantity in DoseQuantity.values():
            types = sorted(scope.level_types.get(quantity, ()))
            where = or_(records, HOT.c.procedure_type_id.in_(types)) if types else records
            conn.execute(_candidates(
                AlertKind.INVESTIGATION, quantity, LEVEL.c.level, LEVEL.c.source,
                HOT.c[quantity] > LEVEL.c.level, where,
                (LEVEL, and_(LEVEL.c.type_id == HOT.c.procedure_type_id,
                             LEVEL.c.quantity == quantity))))
        if conn.dialect.name == "postgresql":  # a temporary table has no statistics: the
            conn.execute(text("ANALYZE alert_candidate"))  # planner would loop over it
        return _reconcile(conn, scope, now)
    finally:
        _drop(conn, CANDIDATE, LEVEL, HOT)


def _reconcile(conn: Any, scope: Scope, now: datetime) -> Counts:
    c = CANDIDATE.c
    matched = Alert.key == c.key
    evidence = or_(Alert.value != c.value, Alert.patient_id != c.patient_id)
    context = or_(Alert.threshold != c.threshold, Alert.threshold_source != c.threshold_source,
                  Alert.performed_at != c.performed_at,
                  *(getattr(Alert, col) != c[col] for col in PLACE_COLUMNS))
    withdrawn = Alert.status == AlertStatus.WITHDRAWN.value
    reopen = or_(withdrawn, and_(Alert.status == AlertStatus.ACKNOWLEDGED.value, evidence))
    changed, reopened = conn.execute(
        select(func.coalesce(func.sum(case((or_(evidence, context), 1), else_=0)), 0),
               func.coalesce(func.sum(case((reopen, 1), else_=0)), 0))
        .select_from(Alert.__table__.join(CANDIDATE, matched))).one()
    values = {"value": c.value, "patient_id": c.patient_id, "threshold": c.threshold,
              "threshold_source": c.threshold_source, "performed_at": c.performed_at,
              **{col: c[col] for col in PLACE_COLUMNS}, "updated_at": now,
              "evidence": BY_COLUMN, "context": BY_COLUMN}
    if reopened:  # before the values change: the rule compares the old evidence
        conn.execute(update(Alert).where(matched, reopen).values(
            status=AlertStatus.OPEN.value, withdrawn_reason=None, **values))
    if changed:
        conn.execute(update(Alert).where(matched, or_(evidence, context)).values(**values))
    with _indexes_built_after(conn):
        opened = _insert_new(conn, now)
    gone: list[int] = []
    for kind in (AlertKind.SRDL, AlertKind.INVESTIGATION):
        for quantity in DoseQuantity.values():
            where = scope.records(Alert.procedure_id)
            types = sorted(scope.level_types.get(quantity, ()))
            if kind is AlertKind.INVESTIGATION and types:
                where = or_(where, Alert.procedure_type_id.in_(types))
            gone += conn.execute(
                update(Alert).where(Alert.kind == kind.value, Alert.quantity == quantity,
                                    Alert.status != AlertStatus.WITHDRAWN.value, where,
                                    ~exists(select(c.key).where(c.key == Alert.key)))
                .values(status=AlertStatus.WITHDRAWN.value, updated_at=now,
                        withdrawn_reason=WITHDRAWN_REASON)
                .returning(Alert.id)).scalars().all()
    return Counts(len(opened), int(changed), int(reopened), tuple(sorted(gone)))


def _upsert(conn: Any) -> Any:
    """INSERT for the new alerts: the candidates whose key is stored already are skipped by
    ON CONFLICT (key) DO NOTHING, which asks the unique index row by row. The anti-join it
    replaced (WHERE NOT EXISTS (SELECT ... FROM alert WHERE key = ...)) is planned from the
    table's statistics: on an empty `alert` table that had been vacuumed before the first
    refresh (a site's nightly `vacuumdb`, or the analyse after a restore) PostgreSQL saw 0 pages
    and chose a nested loop with a sequential scan of `alert`, the table the statement was
    filling, so each candidate read every row inserted before it: the 10M bench's first refresh
    (299,330 candidates) had not finished after 5 minutes.
    tests/alerts/test_first_refresh_plan.py."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(Alert)
    return sqlite.insert(Alert)


def _insert_new(conn: Any, now: datetime) -> list[int]:
    """Insert the candidates not stored yet as open alerts; returns their ids."""
    c = CANDIDATE.c
    return conn.execute(_upsert(conn).from_select(  # RETURNING: a count on both drivers
        ["key", "kind", "quantity", "status", "patient_id", "procedure_id", "performed_at",
         "value", "threshold", "threshold_source", *PLACE_COLUMNS, "record_ids", "evidence",
         "context", "detected_at", "updated_at"],
        select(c.key, c.kind, c.quantity, literal(AlertStatus.OPEN.value, String),
               c.patient_id, c.procedure_id, c.performed_at, c.value, c.threshold,
               c.threshold_source, *(c[col] for col in PLACE_COLUMNS),
               _json_list(conn, c.procedure_id), literal(BY_COLUMN, String),
               literal(BY_COLUMN, String), literal(now, UTCDateTime()),
               literal(now, UTCDateTime()))
        .where(true()))  # SQLite: INSERT ... SELECT ... ON CONFLICT needs a WHERE to parse
        .on_conflict_do_nothing(index_elements=["key"])
        .returning(Alert.id)).scalars().all()


#: New alerts from which a refresh into an empty `alert` table (a first refresh) builds the
#: table's secondary indexes after the insert rather than row by row during it (PostgreSQL).
BULK_ALERTS = 20_000
#: How long the first refresh waits for the lock that dropping an index takes (a reader of
#: `alert` holds it off) before it inserts with the indexes in place instead.
INDEX_LOCK_WAIT = "2s"


@contextmanager
def _indexes_built_after(conn: Any) -> Iterator[None]:
    """A first refresh at 10M records inserts 299,330 alerts, and each row is added to seven
    indexes as it goes: 21-25 s of a 46-61 s refresh (session 13). Into an empty table on
    PostgreSQL, with at least BULK_ALERTS candidates, the five secondary indexes are dropped
    and built again after the insert, each one sort of the finished table (the primary key and
    the unique key stay: ON CONFLICT asks the key's index). DDL is transactional there: a
    refresh that fails or is retried rolls the drop back with everything else. Dropping takes
    the table's exclusive lock until the commit, so readers of `alert` wait for the refresh
    (once, on an empty table); where a reader holds it off for INDEX_LOCK_WAIT the drop is
    undone (a savepoint) and the insert runs with the indexes, as before."""
    if conn.dialect.name != "postgresql" or \
            conn.scalar(select(func.count()).select_from(CANDIDATE)) < BULK_ALERTS or \
            conn.scalar(select(exists(select(Alert.id)))):
        yield
        return
    secondary = [index for index in Alert.__table__.indexes if not index.unique]
    wait = conn.scalar(text("SELECT current_setting('lock_timeout')"))
    savepoint = conn.begin_nested()
    try:
        conn.execute(text(f"SET LOCAL lock_timeout = '{INDEX_LOCK_WAIT}'"))
        for index in secondary:
            index.drop(conn)
    except OperationalError as exc:
        if getattr(exc.orig, "sqlstate", None) != "55P03":  # lock_not_available
            raise
        savepoint.rollback()  # the indexes (and lock_timeout) as they were
        yield
        return
    savepoint.commit()
    conn.execute(text("SELECT set_config('lock_timeout', :wait, true)"), {"wait": wait})
    yield
    for index in secondary:
        index.create(conn)


def _json_list(conn: Any, column: Any) -> Any:
    """[id] as the JSON the `record_ids` column holds, built in SQL."""
    listed = literal("[", String) + cast(column, String) + literal("]", String)
    if conn.dialect.name == "postgresql":
        return cast(listed, Alert.__table__.c.record_ids.type)
    return listed
