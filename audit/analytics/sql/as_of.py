"""`AsOf`: a dashboard page's SqlSource, which may show the last finished figures of an older
figures version while the newest are computed in the background (the why, and what is never
served older: audit.analytics.sql.stale)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from audit.analytics.sql.shared import PUBLIC_METHODS
from audit.analytics.sql.stale import Served, StaleInput, serving
from audit.analytics.sql.warm import compute_behind


class AsOf:
    """A SqlSource for a dashboard page: its public calls may serve the last finished figure
    of an older version (noted in `served`), and what was served old is computed in this
    process's background worker (audit.analytics.sql.warm.compute_behind), never waited for.
    Everything else is the source's. `on_stale(served)` is called after a call that served an
    older figure (the page's notice, dashboard/analytics.py)."""

    def __init__(self, source: Any) -> None:
        self.source = source
        self.served = Served()
        self.on_stale: Callable[[Served], None] | None = None

    def __getattr__(self, name: str) -> Any:
        if name == "source":  # not set yet (a copy, an unpickling): no recursion
            raise AttributeError(name)
        found = getattr(self.source, name)
        if name not in PUBLIC_METHODS or not callable(found):
            return found

        @functools.wraps(found)
        def call(*args: Any, **kwargs: Any) -> Any:
            return self._call(found, args, kwargs)
        return call

    def _call(self, method: Callable[..., Any], args: tuple[Any, ...],
              kwargs: dict[str, Any]) -> Any:
        before = self.served.state()
        self.served.in_call = False
        try:
            with serving(self.served):
                result = method(*args, **kwargs)
        except StaleInput:  # an older input and a figure to compute: all of it exact
            self.served.restore(before)
            result = method(*args, **kwargs)
        self.served.in_call = False
        if self.served.behind:
            compute_behind(self.source, self.served.behind)
            self.served.behind = []
        if self.served.stale > before[2] and self.on_stale is not None:
            self.on_stale(self.served)
        return result
