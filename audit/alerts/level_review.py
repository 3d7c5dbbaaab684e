"""The investigation levels in force: set at a review, not moved by every new record (issue 16).

Why: a local investigation level is, like a local DRL, a reference a site sets from its own
records and then reviews; it is not a figure that drifts with each case. Recomputing the levels
at every refresh made the refresh after a handful of new records sort every record of the
site (4.6 s at 5M records on PostgreSQL, against 2 s asked), and made whether a case alerted
depend on which cases happened to arrive just before it.

So the levels are computed from every final record at a *review*, kept in that refresh's audit
event (covered by the trail's hash chain: cutting or editing them is seen by `verify`), and used
by every refresh until the next review. Each later refresh event names the review's event and
counts, per procedure type, the records changed since. A review happens (the reason is kept with
the levels and shown on the Alerts page) when:

- no levels are in force: the first refresh, or rules older than these (RULES_VERSION);
- a threshold changes: an SRDL, investigation or cumulative setting (the reference levels);
- the catalog or a room changes (a room's KAP correction factor rescales the KAP a level is of);
- the changes cannot be named record by record (an event without record ids, or more changes
  since the last refresh than audit.analytics.snapshot.INCREMENTAL_LIMIT);
- a procedure type's records changed since the review reach REVIEW_SHARE of those its levels
  were set from, or a type without a level reaches investigation_min_records (due_reason);
- a person with manage_alerts asks for one (Alerts page, `fluoro-audit alerts review-levels`).

Between reviews, a refresh evaluates only the changed records against the levels in force.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from audit.alerts.detection import LEVEL_COLUMNS
from audit.alerts.per_record import Scope
from audit.storage.models import AuditEvent, Procedure
from audit.vocab import AuditAction

#: A type's levels are reviewed once the records changed since reach this share of those its
#: levels were set from (about monthly at a site adding 10% a month; a few cases never do).
REVIEW_SHARE = 0.10
#: The refresh events (audit.alerts.refresh) the levels are kept in.
_REFRESH = (AuditEvent.entity == "alert", AuditEvent.action == AuditAction.BULK_CREATE.value)


@dataclass(frozen=True)
class InForce:
    """The investigation levels a refresh applies, and where they come from."""

    #: detection.LEVEL_COLUMNS: per type and quantity, the records, median, percentile, floor,
    #: level (nan: no level) and its source text
    table: pd.DataFrame
    #: the refresh event that set them (the review)
    event_id: int
    set_at: datetime
    #: the data version (highest audit event id) of the records they were computed from
    data_version: int
    reason: str
    #: per procedure type id: the records changed since the review (created, amended, voided)
    changed: dict[int, int] = field(default_factory=dict)

    def records(self) -> dict[int, int]:
        """Per type: the records its levels were set from (the most of any quantity)."""
        if self.table.empty:
            return {}
        found = self.table.groupby("type_id")["records"].max()
        return {int(k): int(v) for k, v in found.items()}


def table_to_json(table: pd.DataFrame) -> list[dict[str, Any]]:
    """The level table as JSON rows (nan -> None): floats survive JSON exactly (repr)."""
    rows = []
    for row in table[LEVEL_COLUMNS].itertuples(index=False):
        item = dict(zip(LEVEL_COLUMNS, row, strict=True))
        for key in ("median", "percentile", "floor", "level"):
            value = float(item[key])
            item[key] = None if math.isnan(value) else value
        item["type_id"], item["records"] = int(item["type_id"]), int(item["records"])
        item["procedure"], item["quantity"] = str(item["procedure"]), str(item["quantity"])
        item["source"] = str(item["source"])
        rows.append(item)
    return rows


def table_from_json(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """table_to_json's inverse: the same dtypes detection.level_table gives."""
    table = pd.DataFrame(rows, columns=LEVEL_COLUMNS)
    for key in ("median", "percentile", "floor", "level"):
        table[key] = pd.to_numeric(table[key], errors="coerce").astype("float64")
    for key in ("type_id", "records"):
        table[key] = table[key].astype("int64")
    return table


def review_payload(table: pd.DataFrame, data_version: int, reason: str) -> dict[str, Any]:
    """What a reviewing refresh keeps in its event (`review`)."""
    return {"reason": reason, "data_version": data_version, "table": table_to_json(table)}


def read_in_force(session: Session) -> InForce | None:
    """The levels the last refresh applied, or None (no refresh yet, or one from before levels
    were kept: the next refresh reviews them)."""
    last = session.execute(select(AuditEvent.id, AuditEvent.occurred_at, AuditEvent.after)
                           .where(*_REFRESH).order_by(AuditEvent.id.desc()).limit(1)).first()
    if last is None or not isinstance(last.after, dict):
        return None
    changed = {int(k): int(v) for k, v in (last.after.get("changed_since_review") or {}).items()}
    review, event_id, set_at = last.after.get("review"), last.id, last.occurred_at
    if review is None:
        event_id = last.after.get("review_event")
        if not isinstance(event_id, int):
            return None
        found = session.execute(select(AuditEvent.occurred_at, AuditEvent.after)
                                .where(AuditEvent.id == event_id, *_REFRESH)).first()
        if found is None or not isinstance(found.after, dict) or "review" not in found.after:
            return None  # the review's event is gone or not one: review again
        set_at, review = found.occurred_at, found.after["review"]
    return InForce(table=table_from_json(review["table"]), event_id=int(event_id),
                   set_at=set_at, data_version=int(review["data_version"]),
                   reason=str(review["reason"]), changed=changed)


def changed_by_type(session: Session, scope: Scope) -> dict[int, int]:
    """Per procedure type id: the records (any status) the refresh's scope names. One query
    by primary key: the ids and ranges of the events since the last refresh."""
    if scope.full:
        return {}
    rows = session.execute(select(Procedure.procedure_type_id, func.count())
                           .where(scope.records(Procedure.id))
                           .group_by(Procedure.procedure_type_id)).all()
    return {int(t): int(n) for t, n in rows if t is not None}


def add_changes(before: Mapping[int, int], now: Mapping[int, int]) -> dict[int, int]:
    return {t: before.get(t, 0) + now.get(t, 0) for t in sorted(set(before) | set(now))}


def due_reason(in_force: InForce, changed: Mapping[int, int], minimum: int,
               codes: Mapping[int, str]) -> str | None:
    """Why the levels must be reviewed now that `changed` records per type changed since the
    review, or None: a type without a level reaching `minimum` records (it can have one now),
    or a type whose changed records reach REVIEW_SHARE of those its levels came from."""
    had = in_force.records()
    for type_id in sorted(changed):
        n, before = changed[type_id], had.get(type_id, 0)
        code = codes.get(type_id, f"type {type_id}")
        if before < minimum <= before + n:
            return (f"{code}: {before} records when the levels were set, {n} changed since: "
                    f"{minimum} are needed for a level")
        if before >= minimum and n >= REVIEW_SHARE * before:
            return (f"{code}: {n} record{'s' if n != 1 else ''} changed since the levels were "
                    f"set from {before} (a review at {REVIEW_SHARE:.0%})")
    return None
