"""The last finished figure while the newest is computed: "as of" figures for the dashboard.

Why: after a write the figures version moves, and every figure is computed again for it (by the
warmer, audit.analytics.sql.warm, or by the first page that asks). At 5M records the warmer takes
minutes and the Dose page's figures tens of seconds, so on a site that writes every few minutes
a page would often wait for a scan. A dashboard page may instead show the last figure finished
under an older version at once, say so (the page shows when that version's last write was and
how many changes followed), and have the figure computed in the background: the next rerun shows
it.

Opt-in per caller, never the default: `AsOf(source)` (audit.analytics.sql.as_of) is a
SqlSource whose public calls may be answered from an older version; a SqlSource used directly
(the CLI reports, exports, the committee report, the alert refresh, the tests that compare
figures) always answers at the current version.

What is never served older: a row that fails its MAC (audit.analytics.sql.shared), a figure
nobody computed before (nothing to serve: computed in the request), a figure whose background
computation failed at this version (computed in the request, so the page shows the error it
would show), and any input of a computation: while a figure is computed, the figures it reads
are exact, and a call that already served an older figure and must then compute another one is
run again exactly (`StaleInput`), so no result stored for a version ever mixes in an older one.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


class StaleInput(Exception):
    """A call that served an older figure now has to compute one: it is run again exactly."""


@dataclass
class Served:
    """What a page's figures were: the current figures version, and the oldest version a
    figure was served from (None: every figure is current), how many were older, and the
    recipes to compute in the background (public calls as JSON, audit.analytics.sql.shared)."""

    current: int | None = None
    oldest: int | None = None
    stale: int = 0
    behind: list[str] = field(default_factory=list)
    in_call: bool = False  # this public call served an older figure

    def served(self, version: int, current: int, recipe: str) -> None:
        self.current = current if self.current is None else max(self.current, current)
        self.oldest = version if self.oldest is None else min(self.oldest, version)
        self.stale += 1
        self.in_call = True
        if recipe not in self.behind:
            self.behind.append(recipe)

    def must_compute(self) -> None:
        """Called before computing in the request: not after an older figure in this call."""
        if self.in_call:
            raise StaleInput

    def state(self) -> tuple[int | None, int | None, int, list[str]]:
        return self.current, self.oldest, self.stale, list(self.behind)

    def restore(self, state: tuple[int | None, int | None, int, list[str]]) -> None:
        self.current, self.oldest, self.stale, self.behind = state
        self.in_call = False


_SERVING: contextvars.ContextVar[Served | None] = contextvars.ContextVar("figures_as_of",
                                                                          default=None)
_COMPUTING: contextvars.ContextVar[bool] = contextvars.ContextVar("figure_computing",
                                                                  default=False)


def allowed() -> Served | None:
    """Where to note an older figure served, if this caller allows one here (None: exact).
    Never inside a computation: what a figure is computed from is exact."""
    return None if _COMPUTING.get() else _SERVING.get()


@contextmanager
def computing() -> Iterator[None]:
    """While a figure is computed, the figures it reads are at the current version."""
    token = _COMPUTING.set(True)
    try:
        yield
    finally:
        _COMPUTING.reset(token)


@contextmanager
def serving(served: Served) -> Iterator[None]:
    """Within, a SqlSource may answer with the last finished figure (noted in `served`)."""
    token = _SERVING.set(served)
    try:
        yield
    finally:
        _SERVING.reset(token)


#: (database, recipe) -> the figures version at which its background computation failed
_FAILED: dict[tuple[str, str], int] = {}


def failed_at(database: str, recipe: str) -> int | None:
    """The version at which computing this call in the background failed, if it did: at that
    version it is computed in the request instead (the page shows the error it would show)."""
    return _FAILED.get((database, recipe))


def note_failure(database: str, recipe: str, version: int | None) -> None:
    """Noted by the background worker: the version it failed at, or None once it succeeded."""
    if version is None:
        _FAILED.pop((database, recipe), None)
    else:
        _FAILED[(database, recipe)] = version
