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
the page never waits for it.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import SQLAlchemyError

from audit.analytics.figure_changes import figures_version
from audit.analytics.sql.shared import LOG, SharedResults, prune, replay
from audit.analytics.sql.source import SqlSource
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

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def describe(recipe: str) -> str:
    """A call in a line: `dose_statistics(Filters(physicians=...), ...)` shortened."""
    found = json.loads(recipe)
    return f"{found['method']} {json.dumps(found['args'])[:120]}"


def warm_figures(engine: Engine, limit: int = DEFAULT_LIMIT,
                 progress: Progress | None = None) -> WarmReport:
    """Replay on the current figures version the calls people asked for under the previous
    ones (most recent first, at most `limit`), then prune old versions; under the advisory
    lock, so a second process returns at once with `busy`."""
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
            replayed = failed = 0
            for done, recipe in enumerate(recipes, start=1):
                try:
                    replay(source, recipe)
                    replayed += 1
                except (AuditError, SQLAlchemyError, ValueError, KeyError, TypeError) as exc:
                    failed += 1
                    LOG.warning("warming %s failed: %s", describe(recipe), exc)
                if progress is not None:
                    progress(done, len(recipes), describe(recipe))
            pruned = _pruned(conn)
        finally:
            conn.rollback()
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": WARM_LOCK})
            conn.commit()
    return WarmReport(figures_version=version, calls=len(recipes), replayed=replayed,
                      computed=source.queries, failed=failed, pruned=pruned,
                      seconds=time.perf_counter() - started)


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


def warm_when_moved(engine: Engine, version: int, limit: int = DEFAULT_LIMIT) -> bool:
    """Start warming in a daemon thread if this process has not seen `version` yet and no warm
    runs in it; True if one started. Never waits: the page goes on computing what it needs."""
    global _thread
    where = engine.url.render_as_string(hide_password=True)
    with _GUARD:
        if _seen.get(where) == version or (_thread is not None and _thread.is_alive()):
            return False
        _seen[where] = version
        _thread = threading.Thread(target=_warm_quietly, args=(engine, limit), daemon=True,
                                   name="figures-warmer")
        _thread.start()
    return True


def _warm_quietly(engine: Engine, limit: int) -> None:
    try:
        report = warm_figures(engine, limit)
    except Exception as exc:  # a background cache fill: logged, never the page's failure
        LOG.warning("warming the figures failed: %s", exc)
        return
    LOG.info("figures warmed: %s", report.as_dict())


def wait_for_warmer(timeout: float | None = None) -> None:
    """Wait for this process's background warm to end (tests, a clean shutdown)."""
    with _GUARD:
        running = _thread
    if running is not None:
        running.join(timeout)
