"""How SqlSource finds a result before it computes one (audit.analytics.sql.source).

In order: this process's memory at the current figures version (the last few hundred results,
each key's newest), the table every app process shares at that version (audit.analytics.sql.
shared), and only then a computation on the same connection that read the version, one process
at a time per key, stored for the others. Where the caller allows it (a dashboard page, audit.
analytics.sql.stale), the last finished result of an older version comes before a computation:
served at once and computed in the background. Within a process, a key being computed by one
thread is waited for by another asking for it (`_pending`), so a figure asked ahead
(SqlSource.ahead) and then by the page is computed once, shared table or not.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from audit.analytics._lookup_tables import read_lookup_tables
from audit.analytics._packing import COLUMNS
from audit.analytics.figure_changes import figures_version
from audit.analytics.snapshot import Snapshot, _frame
from audit.analytics.sql import stale
from audit.analytics.sql.shared import (
    LOG,
    Found,
    SharedResults,
    current_recipe,
    key_digest,
    prune,
)
from audit.errors import AuditError

_MISSING = object()


class CachedFigures:
    """The result caches of a SqlSource (its __init__ sets the attributes used here)."""

    engine: Engine
    cache_size: int
    shared: bool
    warming: bool
    queries: int
    shared_hits: int
    _shared: SharedResults | None
    _lookups: Snapshot | None
    #: key -> (figures version, result): the newest this process has of each key
    _results: OrderedDict[Any, tuple[int, Any]]
    _lock: threading.Lock
    #: (key, figures version) -> the result a thread of this process is computing
    _pending: dict[tuple[Any, int], Future[Any]]

    def _lookups_on(self, conn: Connection) -> Snapshot:
        head = figures_version(conn)
        with self._lock:
            if self._lookups is not None and self._lookups.token == head:
                return self._lookups
            moved = self._lookups is not None
        found = Snapshot(records=_empty_records(), token=head, loaded_at=datetime.now(UTC),
                         **read_lookup_tables(conn))
        with self._lock:  # results of older versions stay: the last finished, for "as of"
            self._lookups = found
        if moved and self._table() is not None:
            self._guarded(conn, "prune", lambda: prune(conn))
        return found

    def _table(self) -> SharedResults | None:
        """The shared table under the site's MAC key (None: not shared, or no keys here)."""
        if self.shared and self._shared is None:
            try:
                self._shared = SharedResults(self.engine)
            except AuditError as exc:  # no key ring: this process keeps its results alone
                LOG.warning("figure results not shared: %s", exc)
                self.shared = False
        return self._shared if self.shared else None

    def _guarded(self, conn: Connection, what: str, work: Callable[[], Any]) -> Any:
        """The shared table is a cache: a failure to read or write it is logged, never the
        page's failure (the figure is computed, or kept in this process only)."""
        try:
            return work()
        except SQLAlchemyError as exc:
            conn.rollback()
            LOG.warning("figure results: %s failed: %s", what, exc)
            return None

    def _cached(self, key: tuple[Any, ...],
                compute: Callable[[Connection, Snapshot], Any]) -> Any:
        """A result as of the current figures version: from this process's memory, from the
        shared table, or computed on the same connection that read the version (one
        connection per figure) and stored for every process. Where the caller allows it
        (audit.analytics.sql.stale), the last finished result of an older version instead of
        a computation."""
        with self.engine.connect() as conn:
            lookups = self._lookups_on(conn)
            version = lookups.token
            with self._lock:
                kept = self._results.get(key)
                if kept is not None and kept[0] == version:
                    self._results.move_to_end(key)
                    return _copy(kept[1])
            table = self._table()
            older = None if self.warming else stale.allowed()
            if older is not None:
                value = self._current_or_older(table, conn, version, key, kept, older)
                if value is not _MISSING:
                    return _copy(value)
            with self._lock:
                pending = self._pending.get((key, version))
                mine = pending is None
                if pending is None:
                    pending = self._pending[(key, version)] = Future()
            if not mine:  # another thread computes it: its result (or its error)
                return _copy(pending.result())
            try:
                with stale.computing():
                    if table is None:
                        value, _ = self._compute(conn, lookups, compute)
                    else:
                        value = self._shared_or_computed(table, conn, lookups, key, compute)
                self._keep(key, version, value)
                pending.set_result(value)
            except BaseException as exc:
                pending.set_exception(exc)
                raise
            finally:
                with self._lock:
                    self._pending.pop((key, version), None)
        return _copy(value)

    def _peek(self, key: tuple[Any, ...], version: int) -> Any:
        """The result of `key` at figures version `version` (the caller's lookups' token) if
        this process holds it, else None: nothing computed, nothing read from the shared table
        (a figure another one can be cut from: SqlSource._per_procedure)."""
        with self._lock:
            kept = self._results.get(key)
        return _copy(kept[1]) if kept is not None and kept[0] == version else None

    def _keep(self, key: tuple[Any, ...], version: int, value: Any) -> None:
        with self._lock:
            kept = self._results.get(key)
            if kept is None or kept[0] <= version:
                self._results[key] = (version, value)
                self._results.move_to_end(key)
            while len(self._results) > self.cache_size:
                self._results.popitem(last=False)

    def _current_or_older(self, table: SharedResults | None, conn: Connection, version: int,
                          key: tuple[Any, ...], kept: tuple[int, Any] | None,
                          served: stale.Served) -> Any:
        """The result at `version` from the shared table, else the last finished one of an
        older version (this process's or the table's, the newer; noted in `served`, and
        its call to compute in the background), else _MISSING: computed in the request.
        Nothing older is served for a call that cannot be replayed or whose background
        computation failed at this version."""
        recipe = current_recipe()
        if table is not None:
            found = self._read(table, conn, version, key_digest(key))
            if found.hit:
                self._keep(key, version, found.value)
                return found.value
        where = self.engine.url.render_as_string(hide_password=True)
        if recipe and stale.failed_at(where, recipe) != version:
            older = kept if kept is not None and kept[0] < version else None
            if table is not None:
                newer = self._guarded(conn, "read older", lambda: table.newest_before(
                    conn, version, key_digest(key), older[0] if older else -1))
                older = newer or older
            if older is not None:
                served.served(older[0], version, recipe)
                return older[1]
        served.must_compute()
        return _MISSING

    def _shared_or_computed(self, table: SharedResults, conn: Connection, lookups: Snapshot,
                            key: tuple[Any, ...],
                            compute: Callable[[Connection, Snapshot], Any]) -> Any:
        """From the shared table; else computed, one process at a time per key (a second one
        waits and reads the first one's result), and stored."""
        version, digest = lookups.token, key_digest(key)
        found = self._read(table, conn, version, digest)
        if found.hit:
            return found.value
        with table.one_at_a_time(conn, digest):
            found = self._read(table, conn, version, digest)  # stored while this one waited?
            if found.hit:
                return found.value
            value, seconds = self._compute(conn, lookups, compute)
            self._guarded(conn, "store", lambda: table.store(
                conn, version, digest, value, current_recipe(), seconds,
                asked=not self.warming, replace=found.forged))
        return value

    def _read(self, table: SharedResults, conn: Connection, version: int,
              digest: str) -> Found:
        found: Found = self._guarded(conn, "read",
                                     lambda: table.read(conn, version, digest)) or Found()
        if found.hit:
            self.shared_hits += 1
            if not found.asked and not self.warming:
                self._guarded(conn, "mark", lambda: table.mark_asked(conn, version, digest))
        return found

    def _compute(self, conn: Connection, lookups: Snapshot,
                 compute: Callable[[Connection, Snapshot], Any]) -> tuple[Any, float]:
        started = time.perf_counter()
        value = compute(conn, lookups)
        self.queries += 1
        return value, time.perf_counter() - started


def _empty_records() -> pd.DataFrame:
    return _frame({k: np.empty(0, dtype=v) for k, v in COLUMNS.items()})


def _copy(value: Any) -> Any:
    """A cached result handed out as a copy: a page may change its table."""
    return value.copy() if isinstance(value, pd.DataFrame) else value
