"""Refreshing the stored alerts incrementally: only what changed since the last refresh.

Every write records an audit event naming the records it touched (the highest event id is the
data version, audit.analytics.snapshot). Each refresh records, in its own audit event, the data
version it was made from; the next one reads the events after it and evaluates only:

- the per-record alerts (SRDL, investigation level) of the records those events name, in SQL
  set operations (audit.alerts.per_record);
- the cumulative alerts of those records' patients (and of the patients whose stored episodes
  held one of them), from the analysis frame: a patient's rolling windows are independent of
  every other patient's;
- at a review of the investigation levels (audit.alerts.level_review: the first refresh, a
  threshold, catalog or room change, a type's records changed by a tenth since, or a person
  asking), the investigation alerts of every record of a procedure type whose level moved.
  Between reviews the levels in force (kept in the review's audit event) are applied as they
  are: no refresh after new records reads every record.

Everything is re-evaluated (`full`) on a first refresh, after a change of rules
(RULES_VERSION), of a threshold setting, a room (its KAP correction factor) or the catalog, when
an event does not say which records it changed, or when the stored alerts are not what the last
refresh left. The result is the same as recomputing every alert from every record under the
levels in force (tests/alerts/test_incremental.py, both databases): same keys, evidence, context,
reopen/withdraw rules and acknowledgements. One audit event per refresh with the counts, the
scope and the data version; on PostgreSQL an advisory lock makes concurrent refreshes take turns
(the second finds the work done).
"""

from __future__ import annotations

import hashlib
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sqlalchemy import BigInteger, cast, func, insert, literal, select, text, update
from sqlalchemy.orm import Session

from audit.alerts.detection import (
    ALERT_INPUTS,
    INVESTIGATION_SETTINGS,
    PLACE_COLUMNS,
    RULES_VERSION,
    THRESHOLD_SETTINGS,
    _source,
    cumulative_alerts,
    investigation_levels,
    level_settings,
    measured,
    with_places,
)
from audit.alerts.from_sql import LevelKeeper, reaching_patients, records_above
from audit.alerts.from_sql import cumulative as cumulative_in_sql
from audit.alerts.from_sql import investigation_levels as levels_in_sql
from audit.alerts.level_review import (
    InForce,
    add_changes,
    changed_by_type,
    due_reason,
    read_in_force,
    review_payload,
)
from audit.alerts.per_record import WITHDRAWN_REASON, Counts, Scope, refresh_per_record
from audit.analytics.reference_levels import SRDL_SETTINGS
from audit.analytics.snapshot import INCREMENTAL_LIMIT, Snapshot, _changed_records
from audit.storage.engine import read_session, retrying, write_session
from audit.storage.models import Alert, AuditEvent, Procedure, utcnow
from audit.trail import record_event
from audit.vocab import AlertKind, AlertStatus, AuditAction

if TYPE_CHECKING:
    from audit.analytics.source import FigureSource

SYSTEM_ACTOR = "system"
_PG_ALERT_LOCK = 0x416C7274  # "Alrt": one refresh at a time across processes
#: Why the levels were set where no levels were in force (a first refresh, or the first
#: after the upgrade that began keeping them).
FIRST_REVIEW = "the first alert refresh (no levels were in force)"
#: Beyond this many patients to re-sum, the cumulative alerts are recomputed for everyone.
PATIENT_LIMIT = 5_000
#: Where a refresh of everyone looks for the patients reaching a cumulative threshold while
#: it computes the rest (_FromSql.read_ahead): one at a time per process, as refreshes are.
_AHEAD = ThreadPoolExecutor(max_workers=1, thread_name_prefix="alerts-ahead")


@dataclass(frozen=True)
class RefreshResult:
    opened: int
    updated: int
    reopened: int
    withdrawn: int

    @property
    def changed(self) -> bool:
        return bool(self.opened or self.updated or self.reopened or self.withdrawn)


UNCHANGED = RefreshResult(0, 0, 0, 0)
_CURRENT, _STALE = "current", "stale"


@dataclass(frozen=True)
class _Plan:
    scope: Scope
    last_levels: dict[str, str] | None  # the last refresh's level digests (None: unknown)
    #: why this refresh reviews the investigation levels (None: it applies those in force,
    #: unless a type's changes make a review due: level_review.due_reason)
    review: str | None = None


def _last_refresh(session: Session) -> dict[str, Any] | None:
    return session.execute(
        select(AuditEvent.after).where(AuditEvent.entity == "alert",
                                       AuditEvent.action == AuditAction.BULK_CREATE.value)
        .order_by(AuditEvent.id.desc()).limit(1)).scalar()


def _plan(session: Session, snap: Snapshot) -> _Plan | str:
    """What this snapshot's refresh must evaluate; _CURRENT when nothing alerts depend on
    changed since the last refresh, _STALE when the snapshot is older than the stored alerts or
    the data (refresh it first)."""
    last = _last_refresh(session) or {}
    synced = last.get("data_version")
    stored = session.scalar(select(func.count()).select_from(Alert))
    review = None
    if synced is not None and last.get("rules") != RULES_VERSION:
        synced, review = None, f"alert rules changed (version {RULES_VERSION})"
    elif synced is not None and last.get("stored") != stored:
        synced = None  # the table does not hold what the last refresh left: the levels stay
    newer_data = session.scalar(
        select(func.max(AuditEvent.id)).where(AuditEvent.id > snap.token,
                                              AuditEvent.entity.in_(ALERT_INPUTS)))
    if newer_data is not None or (synced is not None and synced > snap.token):
        return _STALE
    if synced is None:
        return _Plan(Scope(full=True), None, review)
    rows = session.execute(
        select(AuditEvent.entity, AuditEvent.entity_id, AuditEvent.action)
        .where(AuditEvent.id > synced, AuditEvent.id <= snap.token,
               AuditEvent.entity.in_(ALERT_INPUTS))
        .order_by(AuditEvent.id).limit(INCREMENTAL_LIMIT + 1)).all()
    # a new room or procedure type has no records but those its own record events name
    events = [(e, i) for e, i, a in rows
              if not (e in ("room", "procedure_type") and a == AuditAction.CREATE.value)]
    levels = last.get("levels")
    full = Scope(full=True)
    if len(rows) > INCREMENTAL_LIMIT:
        return _Plan(full, levels, f"more than {INCREMENTAL_LIMIT:,} changes at once")
    settings = {i for e, i in events if e == "setting"}
    if any(e in ("room", "procedure_type") for e, _ in events):
        return _Plan(full, levels, "a room or procedure type changed")
    thresholds = sorted(settings & set(THRESHOLD_SETTINGS))
    if None in settings or set(thresholds) - set(INVESTIGATION_SETTINGS):
        return _Plan(full, levels, "threshold changed: " + ", ".join(thresholds or ["?"]))
    changed = _changed_records(events)
    if changed is None:
        return _Plan(full, levels, "changes not named record by record")
    ids, ranges = changed
    if not (ids or ranges or thresholds):  # only settings the alerts do not use
        if _has_levels(session):
            return _CURRENT
        return _Plan(Scope(), levels, FIRST_REVIEW)  # the first refresh after an upgrade
    return _Plan(Scope(ids=ids, ranges=ranges), levels,
                 "threshold changed: " + ", ".join(thresholds) if thresholds else None)


def _has_levels(session: Session) -> bool:
    """Whether the last refresh names investigation levels in force (the refreshes before
    they were kept did not: the first refresh after the upgrade sets them)."""
    last = _last_refresh(session) or {}
    return "review" in last or "review_event" in last


def _digest(text_: str) -> str:
    return hashlib.blake2b(text_.encode(), digest_size=8).hexdigest()


def _levels(table: pd.DataFrame) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The investigation levels (rows for SQL) and a digest of each type's level and source,
    "quantity:type_id" -> digest, kept in the refresh event to tell which ones moved."""
    rows, digests = [], {}
    for row in table.itertuples():
        level = None if np.isnan(row.level) else float(row.level)
        digests[f"{row.quantity}:{int(row.type_id)}"] = _digest(f"{level!r}|{row.source}")
        if level is not None:
            rows.append({"type_id": int(row.type_id), "quantity": row.quantity,
                         "level": level, "source": row.source})
    return rows, digests


def _moved(old: dict[str, str] | None, new: dict[str, str]) -> dict[str, set[int]] | None:
    """Per quantity, the types whose level or source differs; None: every type (unknown)."""
    if old is None:
        return None
    moved: dict[str, set[int]] = {}
    for name in set(old) ^ set(new) | {k for k in set(old) & set(new) if old[k] != new[k]}:
        quantity, type_id = name.rsplit(":", 1)
        moved.setdefault(quantity, set()).add(int(type_id))
    return moved


def _above(snap: Snapshot, moved: dict[str, set[int]],
           level_rows: list[dict[str, Any]]) -> set[int]:
    """The records of the types whose level moved that are above their new level: the only
    ones that can call for an investigation alert of that type now."""
    levels = {(row["quantity"], row["type_id"]): row["level"] for row in level_rows}
    type_id = snap.records["type_id"].to_numpy()
    record_id = snap.records["id"].to_numpy()
    found: set[int] = set()
    for quantity, types in moved.items():
        values = snap.values(measured(quantity))
        for kind in types:
            level = levels.get((quantity, kind))
            if level is not None:
                found.update(record_id[(type_id == kind) & (values > level)].tolist())
    return found


class _FromFrame:
    """What a refresh reads from every record, from the analysis frame."""

    def __init__(self, snap: Snapshot) -> None:
        self.snap = snap

    def read_ahead(self, engine: Any, scope: Scope) -> None:
        """Nothing: the frame is in memory (_FromSql.read_ahead starts a second scan)."""

    def levels(self, session: Session) -> pd.DataFrame:
        return investigation_levels(self.snap)

    def above(self, session: Session, moved: dict[str, set[int]],
              level_rows: list[dict[str, Any]]) -> set[int]:
        return _above(self.snap, moved, level_rows)

    def cumulative(self, session: Session, patients: np.ndarray | None) -> pd.DataFrame:
        part = self.snap
        if patients is not None:
            records = part.records
            part = replace(part, records=records[np.isin(records["patient_id"].to_numpy(),
                                                         patients)].reset_index(drop=True),
                           cache={})
        return with_places(part, [cumulative_alerts(part)])


class _FromSql:
    """The same, computed by PostgreSQL (audit.alerts.from_sql): no frame in the process.
    `keeper`: keeps the last levels (SqlSource): looked near first, and shown by the page."""

    def __init__(self, lookups: Snapshot, keeper: LevelKeeper | None = None) -> None:
        self.lookups = lookups
        self.keeper = keeper
        self._reaching: Future[list[int]] | None = None

    def read_ahead(self, engine: Any, scope: Scope) -> None:
        """For a refresh of everyone: find the patients reaching a cumulative threshold on a
        connection of its own while this one computes the levels (two scans of every record,
        10 s each at 10M, on two cores). Like every statement of the refresh it sees what is
        committed when it starts: a later change is in the next refresh's scope."""
        if scope.full and self._reaching is None:
            self._reaching = _AHEAD.submit(reaching_patients, engine, self.lookups)

    def levels(self, session: Session) -> pd.DataFrame:
        keeper = self.keeper
        table = levels_in_sql(session.connection(), self.lookups,
                              keeper.last_investigation_levels() if keeper else None)
        if keeper is not None:
            keeper.keep_investigation_levels(self.lookups.token, table)
        return table

    def above(self, session: Session, moved: dict[str, set[int]],
              level_rows: list[dict[str, Any]]) -> set[int]:
        return records_above(session.connection(), moved, level_rows)

    def cumulative(self, session: Session, patients: np.ndarray | None) -> pd.DataFrame:
        ahead, self._reaching = self._reaching, None
        reaching = ahead.result() if ahead is not None and patients is None else None
        return cumulative_in_sql(session.connection(), self.lookups, patients, reaching)


def refresh_alerts(engine: Any, found: Snapshot | FigureSource, *, full: bool = False,
                   review: str | None = None, actor: str = SYSTEM_ACTOR) -> RefreshResult:
    """Make the stored alerts match what the records call for (see module doc), evaluating
    only what changed since the last refresh (`full`: everything, e.g. to check that nothing
    is left to change; the levels in force stay). One transaction with one audit event
    recording what changed and the data version it was computed from, so later calls on the
    same data (in any process) return at once. `review`: review the investigation levels now,
    for this reason, recorded as done by `actor` (audit.alerts.store.review_levels). `found`:
    the analysis frame (a Snapshot, or a FigureSource on it), or a FigureSource whose figures
    come from SQL, whose lookups give the settings and whose levels, records above them and
    cumulative sums PostgreSQL computes (audit.alerts.from_sql; the same alerts)."""
    snap = found if isinstance(found, Snapshot) else found.frame
    lookups = snap if snap is not None else found.lookups  # type: ignore[union-attr]
    if lookups.cache.get("alerts_refreshed") is not None and not (full or review):
        return UNCHANGED
    with read_session(engine) as session:
        plan = _plan(session, lookups)
    if plan == _STALE or (plan == _CURRENT and not (full or review)):
        lookups.cache["alerts_refreshed"] = True
        return UNCHANGED
    level_settings(lookups)  # a setting that cannot be used: refused before any work
    inputs = _FromFrame(snap) if snap is not None else \
        _FromSql(lookups, found if isinstance(found, LevelKeeper) else None)

    def work() -> RefreshResult:
        with write_session(engine) as session:
            if session.get_bind().dialect.name == "postgresql":
                session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_ALERT_LOCK})
            found = _plan(session, lookups)  # another process may have refreshed meanwhile
            if found == _STALE or (found == _CURRENT and not (full or review)):
                return UNCHANGED
            # nothing changed, but a full pass or a review asked for: from the last levels
            plan = found if isinstance(found, _Plan) else \
                _Plan(Scope(), (_last_refresh(session) or {}).get("levels"))
            scope = Scope(full=True) if full else plan.scope
            inputs.read_ahead(engine, scope)
            in_force = read_in_force(session)
            changed: dict[int, int] = {}
            why = review or plan.review
            if in_force is None:
                why = why or FIRST_REVIEW
            elif why is None:
                changed = add_changes(in_force.changed, changed_by_type(session, scope))
                why = due_reason(in_force, changed, level_settings(lookups)[1],
                                 {int(k): str(v) for k, v in lookups.types["code"].items()})
            if why is None:
                assert in_force is not None
                level_rows, level_digests = _levels(in_force.table)
                kept: dict[str, Any] = {"review_event": in_force.event_id,
                                        "changed_since_review": changed}
            else:
                table = inputs.levels(session)
                level_rows, level_digests = _levels(table)
                kept = {"review": review_payload(table, lookups.token, why),
                        "changed_since_review": {}}
                if not scope.full:
                    moved = _moved(plan.last_levels, level_digests)
                    scope = Scope(full=True) if moved is None else replace(
                        scope, level_types=moved,
                        level_records=inputs.above(session, moved, level_rows))
            return _apply(session, lookups, inputs, scope, level_rows, level_digests, kept,
                          actor)

    result = retrying(work)
    lookups.cache["alerts_refreshed"] = True
    return result


def levels_in_force(engine: Any) -> InForce | None:
    """The investigation levels the stored alerts apply (None: no refresh has set any)."""
    with read_session(engine) as session:
        return read_in_force(session)


def _apply(session: Session, snap: Snapshot, inputs: _FromFrame | _FromSql, scope: Scope,
           level_rows: list[dict[str, Any]], level_digests: dict[str, str],
           kept: dict[str, Any], actor: str) -> RefreshResult:
    now = utcnow()
    srdl = {quantity: (float(getattr(snap.settings, key)), "SRDL: " + _source(snap, key))
            for quantity, key in SRDL_SETTINGS.items()}
    counts = refresh_per_record(session, scope, srdl, level_rows, now)
    cumulative = _refresh_cumulative(session, inputs, scope, now)
    withdrawn = [*counts.withdrawn_ids, *cumulative.withdrawn_ids]
    result = RefreshResult(counts.opened + cumulative.opened,
                           counts.updated + cumulative.updated,
                           counts.reopened + cumulative.reopened, len(withdrawn))
    record_event(session, actor=actor, action=AuditAction.BULK_CREATE,
                 entity="alert", entity_id=None,
                 reason=("alerts recomputed from all final records" if scope.full else
                         "alerts recomputed for the records changed since the last refresh")
                 + ("; investigation levels reviewed: " + kept["review"]["reason"]
                    if "review" in kept else ""),
                 after={"opened": result.opened, "updated": result.updated,
                        "reopened": result.reopened, "withdrawn": result.withdrawn,
                        "withdrawn_ids": sorted(withdrawn)[:1000],
                        "data_version": snap.token, "rules": RULES_VERSION,
                        "scope": "all records" if scope.full else
                        {"records": len(scope.ids), "ranges": len(scope.ranges),
                         "level_types": sum(len(t) for t in scope.level_types.values())},
                        "levels": level_digests,
                        **{k: ({str(t): n for t, n in v.items()}
                               if k == "changed_since_review" else v) for k, v in kept.items()},
                        "stored": session.scalar(select(func.count()).select_from(Alert))})
    return result


def _patients(session: Session, scope: Scope) -> np.ndarray | None:
    """The patients whose cumulative alerts may have changed (None: everyone): those of the
    records in scope, now, and those of stored episodes that held one of those records (a
    record moved to another patient, or voided)."""
    if scope.full:
        return None
    found = set(session.scalars(select(Procedure.patient_id).distinct()
                                .where(scope.records(Procedure.id))))
    found.update(_holding(session, scope))
    return None if len(found) > PATIENT_LIMIT else np.array(sorted(found), dtype=np.int64)


def _holding(session: Session, scope: Scope) -> set[int]:
    """The patients of the cumulative episodes in force that hold a record in scope, found by
    the database in each episode's JSON list of record ids (json_each on SQLite,
    json_array_elements_text on PostgreSQL): reading every episode's list into Python took
    0.45 s of a 1.6 s refresh at 5M records (5,051 episodes)."""
    if session.get_bind().dialect.name == "postgresql":
        elements = func.json_array_elements_text(Alert.record_ids).table_valued("value")
        member: Any = cast(elements.c.value, BigInteger)
    else:
        elements = func.json_each(Alert.record_ids).table_valued("value")
        member = elements.c.value
    holds = select(literal(1)).select_from(elements).where(scope.records(member)).exists()
    return {int(p) for p in session.scalars(
        select(Alert.patient_id).distinct()
        .where(Alert.kind == AlertKind.CUMULATIVE.value,
               Alert.status != AlertStatus.WITHDRAWN.value, holds))}


def _when(epoch: Any) -> datetime | None:
    if epoch is None or (isinstance(epoch, float) and np.isnan(epoch)):
        return None
    return datetime.fromtimestamp(int(epoch), UTC)


def _digests(texts: Any) -> list[str]:
    return [_digest(t) for t in texts]


def _refresh_cumulative(session: Session, inputs: _FromFrame | _FromSql, scope: Scope,
                        now: datetime) -> Counts:
    """Reconcile the stored cumulative alerts of the affected patients with their episodes
    computed from their records (few rows: about one alert per thousand records)."""
    patients = _patients(session, scope)
    query = select(Alert.id, Alert.key, Alert.status, Alert.evidence, Alert.context).where(
        Alert.kind == AlertKind.CUMULATIVE.value)
    if patients is not None:
        if not len(patients):
            return Counts()
        query = query.where(Alert.patient_id.in_(patients.tolist()))
    computed = inputs.cumulative(session, patients)
    computed["evidence"] = _digests(
        f"{round(v, 9)!r}|{','.join(map(str, ids))}"
        for v, ids in zip(computed["value"].tolist(), computed["record_ids"].tolist(),
                          strict=True))
    computed["context"] = _digests(
        "|".join(map(repr, parts)) for parts in zip(
            *(computed[c].tolist() for c in ("threshold", "threshold_source", *PLACE_COLUMNS)),
            strict=True))
    rows = session.execute(query).all()
    stored = pd.DataFrame({name: pd.Series([r[i] for r in rows], dtype=object)
                           for i, name in enumerate(("id", "key", "status", "stored_evidence",
                                                     "stored_context"))})
    return _merge(session, computed, stored, now)


def _merge(session: Session, computed: pd.DataFrame, stored: pd.DataFrame,
           now: datetime) -> Counts:
    """Open the new alerts, update changed ones (reopening acknowledged ones whose evidence
    changed, and withdrawn ones met again) and withdraw the stored ones no longer met."""
    merged = computed.merge(stored, on="key", how="left")
    fresh = merged[merged["id"].isna()]
    if len(fresh):
        session.execute(insert(Alert), [
            {"key": row.key, "kind": row.kind, "quantity": row.quantity,
             "status": AlertStatus.OPEN.value, "patient_id": int(row.patient_id),
             "procedure_id": int(row.procedure_id), "performed_at": _when(row.t),
             "value": float(row.value), "threshold": float(row.threshold),
             "threshold_source": row.threshold_source,
             "window_start": _when(row.window_start), "window_end": _when(row.window_end),
             "record_ids": [int(i) for i in row.record_ids],
             **{c: int(getattr(row, c)) for c in PLACE_COLUMNS},
             "evidence": row.evidence, "context": row.context,
             "detected_at": now, "updated_at": now}
            for row in fresh.itertuples()])
    known = merged[merged["id"].notna()]
    evidence_changed = known["evidence"] != known["stored_evidence"]
    level_changed = known["context"] != known["stored_context"]
    withdrawn_before = known["status"] == AlertStatus.WITHDRAWN.value
    reopen = withdrawn_before | (evidence_changed
                                 & (known["status"] == AlertStatus.ACKNOWLEDGED.value))
    touch = known[evidence_changed | level_changed | withdrawn_before]
    if len(touch):
        session.execute(update(Alert), [
            {"id": int(row.id), "value": float(row.value), "threshold": float(row.threshold),
             "threshold_source": row.threshold_source,
             "record_ids": [int(i) for i in row.record_ids],
             "window_start": _when(row.window_start), "window_end": _when(row.window_end),
             "updated_at": now, **{c: int(getattr(row, c)) for c in PLACE_COLUMNS},
             "evidence": row.evidence, "context": row.context,
             **({"status": AlertStatus.OPEN.value, "withdrawn_reason": None}
                if reopen.loc[row.Index] else {})}
            for row in touch.itertuples()])
    gone = stored[~stored["key"].isin(computed["key"])
                  & (stored["status"] != AlertStatus.WITHDRAWN.value)]
    if len(gone):
        session.execute(update(Alert), [
            {"id": int(i), "status": AlertStatus.WITHDRAWN.value, "updated_at": now,
             "withdrawn_reason": WITHDRAWN_REASON} for i in gone["id"].tolist()])
    return Counts(len(fresh), int((evidence_changed | level_changed).sum()), int(reopen.sum()),
                  tuple(int(i) for i in gone["id"].tolist()))
