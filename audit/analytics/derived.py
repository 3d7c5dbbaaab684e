"""How a table derived from the records (the daily summary, the record facts) is kept at the
data version: the one refresh protocol both share.

A derived table has a one-row state table (`id`, `data_version`, `rules`) saying which data
version (the highest audit event id) and which rules its rows reflect. A refresh reads both
first (two indexed reads: nothing more when nothing changed); otherwise it takes the table's
turn (an advisory lock on PostgreSQL; SQLite's write lock is already one at a time), reads the
state again under FOR UPDATE (another process may have done the work meanwhile) and hands
`redo` the version the rows reflect (None: never built, or built by other rules: redo all) and
the current one, then records the new version in the same transaction. A redo must be
absolute (recompute rows, never add increments), so doing the same work twice is harmless.

A caller that must not wait for another process's turn (a page while a rebuild of minutes runs
elsewhere) passes wait=False: the lock is tried, and RefreshBusy says another process holds it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, Engine, func, select, text
from sqlalchemy.orm.attributes import flag_modified

from audit.analytics.snapshot import INCREMENTAL_LIMIT, _changed_records
from audit.errors import AuditError
from audit.storage.engine import retrying, write_session
from audit.storage.models import AuditEvent

#: redo(connection, version the rows reflect or None for all, current version)
Redo = Callable[[Connection, int | None, int], None]


class RefreshBusy(AuditError):
    """Another process holds the derived table's turn (refresh_versioned with wait=False)."""


#: The current data version: the highest audit event id (0 on an empty database).
_HEAD = select(func.coalesce(func.max(AuditEvent.id), 0)).scalar_subquery()


def data_head(session: Any) -> int:
    """The current data version (`_HEAD`)."""
    return int(session.scalar(select(_HEAD)))


def refresh_versioned(engine: Engine, state: type[Any], rules: int, lock_key: int,
                      redo: Redo, force: bool = False, wait: bool = True,
                      also: dict[str, Any] | None = None) -> int:
    """Bring a derived table to the current data version (module doc); returns that version.
    force: redo everything even if the state says the rows are current (a repair). wait=False:
    RefreshBusy rather than waiting when another process holds the table's turn. `also`: more
    columns of the state row, set with the version after a redo (what `redo` may read back to
    tell which of its rules changed)."""
    if not force:  # one statement on a plain connection: every figure of a page asks this
        with engine.connect() as conn:
            found = conn.execute(select(state.data_version, state.rules, _HEAD)
                                 .where(state.id == 1)).first()
        if found is not None and found[0] == found[2] and found[1] == rules:
            return int(found[2])

    def work() -> int:
        with write_session(engine) as session:
            conn = session.connection()
            if conn.dialect.name == "postgresql":
                if wait:
                    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_key})
                elif not conn.scalar(text("SELECT pg_try_advisory_xact_lock(:k)"),
                                     {"k": lock_key}):
                    raise RefreshBusy(f"another process is refreshing {state.__tablename__}")
            found = session.get(state, 1, with_for_update=True)
            now = data_head(session)
            current = found is not None and found.rules == rules
            if current and not force and found.data_version >= now:
                return int(found.data_version)
            redo(conn, found.data_version if current and not force else None, now)
            if found is None:
                session.add(state(id=1, data_version=now, rules=rules, **(also or {})))
            else:
                found.data_version, found.rules = now, rules
                for name, value in (also or {}).items():
                    setattr(found, name, value)
                if force:  # a repair rewrites the row even at the same values: what a process
                    flag_modified(found, "data_version")  # keeps of the table is read again
            return now

    return retrying(work)


def changed_procedures(conn: Connection, synced: int,
                       head: int) -> tuple[set[int], list[tuple[int, int]]] | None:
    """The record ids and id ranges the procedure events in (synced, head] name (a create, an
    amend, a void, a merge, a bulk load's range); None when one does not say which records, or
    when there are so many that one full rebuild is cheaper."""
    rows = conn.execute(
        select(AuditEvent.entity, AuditEvent.entity_id)
        .where(AuditEvent.id > synced, AuditEvent.id <= head, AuditEvent.entity == "procedure")
        .limit(INCREMENTAL_LIMIT + 1)).all()
    if len(rows) > INCREMENTAL_LIMIT:
        return None
    return _changed_records([(e, i) for e, i in rows])
