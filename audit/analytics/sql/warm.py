"""The warmer: after the figures version moves, compute ahead the figures people looked at.

Why: a figure is computed once per figures version and shared through the figure_result table
(audit.analytics.sql.shared), but the first person to open a page after a write would still pay
for every scan. Each stored row names the public SqlSource call that asked for it (its recipe),
so the warmer replays the calls people asked for under the previous versions, most recent
first and at most `limit` of them, on the new version: the next page view (in any app process)
finds them in the table.

One process warms at a time: a PostgreSQL advisory lock (session level, tried, never waited
for), so the app processes that all see the version move do not all compute the same figures.
Entry points: `fluoro-audit figures warm` (audit/cli/figures.py) and the dashboard, which calls
`warm_when_moved` on each rerun with SQL figures: a daemon thread, at most one per process, so
the page never waits for it. The same thread computes the figures a page was shown "as of" an
older version (`compute_behind`, audit.analytics.sql.stale), before and between the warm's
calls: those are what someone is looking at now.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import SQLAlchemyError

from audit.analytics.figure_changes import figures_version
from audit.analytics.sql.shared import LOG, SharedResults, prune, replay
from audit.analytics.sql.source import SqlSource
from audit.analytics.sql.stale import note_failure
from audit.errors import AuditError

#: pg_try_advisory_lock key: "one process warms the figures at a time" ("Figu").
WARM_LOCK = 0x46696775
#: Calls replayed per warm by default (a page asks for about 15; a few pages, a few filters).
DEFAULT_LIMIT = 200

#: (done, total, what): called after each replayed call.
Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class WarmReport:
    """What a warm did: the figures version warmed, the calls found and replayed, how many
    figures were computed (the rest were already in the table), the calls that failed (a name
    since merged away, say: logged and skipped), the rows of old versions deleted, and whether
    another process held the lock (then nothing was done)."""

    figures_version: int
    calls: int = 0
    replayed: int = 0
    computed: int = 0
    failed: int = 0
    pruned: int = 0
    seconds: float = 0.0
    busy: bool = False
    findings_version: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def describe(recipe: str) -> str:
    """A call in a line: `dose_statistics(Filters(physicians=...), ...)` shortened."""
    found = json.loads(recipe)
    return f"{found['method']} {json.dumps(found['args'])[:120]}"


def warm_figures(engine: Engine, limit: int = DEFAULT_LIMIT,
                 progress: Progress | None = None,
                 between: Callable[[], None] | None = None) -> WarmReport:
    """Replay on the current figures version the calls people asked for under the previous
    ones (most recent first, at most `limit`), then prune old versions; under the advisory
    lock, so a second process returns at once with `busy`. `between`: called before each
    replayed call (the dashboard's worker computes there what a page is waiting for)."""
    if engine.dialect.name != "postgresql":
        raise AuditError(f"figures are computed in SQL on PostgreSQL only, not on "
                         f"{engine.dialect.name}: there is nothing to warm")
    started = time.perf_counter()
    table = SharedResults(engine)
    source = SqlSource(engine, warming=True)
    with engine.connect() as conn:
        version = figures_version(conn)
        if not conn.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": WARM_LOCK}):
            conn.rollback()
            return WarmReport(figures_version=version, busy=True,
                              seconds=time.perf_counter() - started)
        try:
            recipes = table.asked_before(conn, version, limit)
            conn.commit()
            _buckets(engine)
            replayed = failed = 0
            for done, recipe in enumerate(recipes, start=1):
                if between is not None:
                    between()
                try:
                    replay(source, recipe)
                    replayed += 1
                except (AuditError, SQLAlchemyError, ValueError, KeyError, TypeError) as exc:
                    failed += 1
                    LOG.warning("warming %s failed: %s", describe(recipe), exc)
                if progress is not None:
                    progress(done, len(recipes), describe(recipe))
            pruned = _pruned(conn)
            findings = _findings(engine)
        finally:
            conn.rollback()
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": WARM_LOCK})
            conn.commit()
    return WarmReport(figures_version=version, calls=len(recipes), replayed=replayed,
                      computed=source.queries, failed=failed, pruned=pruned,
                      seconds=time.perf_counter() - started, findings_version=findings)


def _buckets(engine: Engine) -> None:
    """The dose buckets (audit.analytics.sql.dose_buckets) brought up to date before the
    replay: their first build after an upgrade (64-143 s at 5M-10M) or a month's redo after a
    write is paid here, not by the next person who opens the Dose page. A failure is logged:
    the page then refreshes them itself, or scans."""
    from audit.analytics.sql.dose_buckets import refresh_buckets

    try:
        refresh_buckets(engine)
    except (AuditError, SQLAlchemyError) as exc:
        LOG.warning("refreshing the dose buckets failed: %s", exc)


def _findings(engine: Engine) -> int | None:
    """The stored rule findings (audit.rules.findings_store) brought up to date after the
    figures, once they were built (the Coverage page's first visit or `db rebuild-facts`):
    a few seconds at 5M after a write, so the Coverage page does not pay them; the data
    version they reflect, or None (never built, or the refresh failed: logged, the page
    refreshes them itself)."""
    from audit.rules.findings_store import findings_built, refresh_findings

    try:
        return refresh_findings(engine) if findings_built(engine) else None
    except (AuditError, SQLAlchemyError) as exc:
        LOG.warning("refreshing the stored rule findings failed: %s", exc)
        return None


def _pruned(conn: Connection) -> int:
    """Old versions deleted; an application role granted before migration 0021 may not delete
    yet (`db grant-app` again): logged, and the warm still counts."""
    try:
        return prune(conn)
    except SQLAlchemyError as exc:
        conn.rollback()
        LOG.warning("pruning old figure results failed (run `fluoro-audit db grant-app` after "
                    "the upgrade?): %s", exc)
        return 0


# --- in the background, from the dashboard -------------------------------------------------
_GUARD = threading.Lock()
_thread: threading.Thread | None = None
_seen: dict[str, int] = {}
#: warms asked for (database -> engine, limit), and calls to compute behind a page (in order)
_warms: dict[str, tuple[Engine, int]] = {}
_behind: dict[tuple[int, str], Any] = {}
_running: set[tuple[int, str]] = set()
_go = threading.Event()
_go.set()


def warm_when_moved(engine: Engine, version: int, limit: int = DEFAULT_LIMIT) -> bool:
    """Have this process's background worker warm the figures if this process has not seen
    `version` yet; True if a warm was asked for. Never waits: the page goes on computing what
    it needs (or showing what it has, audit.analytics.sql.stale)."""
    where = engine.url.render_as_string(hide_password=True)
    with _GUARD:
        if _seen.get(where) == version:
            return False
        _seen[where] = version
        _warms[where] = (engine, limit)
        _start()
    return True


def compute_behind(source: SqlSource, recipes: list[str]) -> None:
    """Compute these public calls on `source` at the current version in the background (a
    page was shown their last finished figures): before the rest of a warm, each once."""
    with _GUARD:
        for recipe in recipes:
            if (id(source), recipe) not in _running:
                _behind.setdefault((id(source), recipe), source)
        _start()


def computing_behind(source: SqlSource) -> bool:
    """Whether calls of `source` wait or run in the background (a page's "updating")."""
    with _GUARD:
        return any(key[0] == id(source) for key in (*_behind, *_running))


def _start() -> None:
    """Under _GUARD: one worker per process, started when there is work and none runs."""
    global _thread
    if _thread is None:
        _thread = threading.Thread(target=_work, daemon=True, name="figures-warmer")
        _thread.start()


def _work() -> None:
    """The worker: calls behind a page first, then a warm (between whose calls it computes the
    calls pages asked for meanwhile), until nothing is left."""
    global _thread
    while True:
        _go.wait()
        _compute_behind()
        with _GUARD:
            if not _warms:
                if not _behind:
                    _thread = None
                    return
                continue
            where = next(iter(_warms))
            engine, limit = _warms.pop(where)
        _warm_quietly(engine, limit)


def _compute_behind() -> None:
    while True:
        with _GUARD:
            if not _behind:
                return
            key = next(iter(_behind))
            source = _behind.pop(key)
            _running.add(key)
        recipe, where = key[1], source.engine.url.render_as_string(hide_password=True)
        try:
            version = source.token
            try:
                replay(source, recipe)
                note_failure(where, recipe, None)
            except Exception as exc:  # shown in the request next time, not here
                note_failure(where, recipe, version)
                LOG.warning("computing %s in the background failed: %s", describe(recipe), exc)
        except Exception as exc:  # the version itself unreadable: a background cache fill
            LOG.warning("computing %s in the background failed: %s", describe(recipe), exc)
        finally:
            with _GUARD:
                _running.discard(key)


def _warm_quietly(engine: Engine, limit: int) -> None:
    try:
        report = warm_figures(engine, limit, between=_compute_behind)
    except Exception as exc:  # a background cache fill: logged, never the page's failure
        LOG.warning("warming the figures failed: %s", exc)
        return
    LOG.info("figures warmed: %s", report.as_dict())


def wait_for_warmer(timeout: float | None = None) -> None:
    """Wait for this process's background worker to finish its work (tests, a clean
    shutdown)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        with _GUARD:
            running = _thread
        if running is None:
            return
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            return
        running.join(left)


@contextmanager
def background_held() -> Iterator[None]:
    """Within, the background worker starts no new job (tests: what a page shows before the
    worker has caught up); it goes on after."""
    _go.clear()
    try:
        yield
    finally:
        _go.set()
