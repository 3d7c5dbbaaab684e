"""Results computed once per key in the app process and kept, the most recently used few: a
second caller for a key being computed waits for the first one's result. The Physicians tab
asks its figures at once, in threads, and several need the same read (bucket_mixtures' strata,
month_cells' cells). A failure is not kept: the next caller computes again."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Kept(Generic[T]):
    """At most `most` results by key (least recently used dropped first)."""

    def __init__(self, most: int) -> None:
        self.most = most
        self._entries: OrderedDict[Any, Future[T]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any, compute: Callable[[], T],
            stale: Callable[[Any], bool] | None = None) -> T:
        """The result for `key`: kept, being computed by another caller (waited for), or
        computed here. `stale`: keys to drop when this one is added (an older state)."""
        with self._lock:
            pending = self._entries.get(key)
            mine = pending is None
            if pending is None:
                for old in [k for k in self._entries if stale is not None and stale(k)]:
                    del self._entries[old]
                pending = self._entries[key] = Future()
                while len(self._entries) > self.most:
                    self._entries.popitem(last=False)
            else:
                self._entries.move_to_end(key)
        if mine:
            try:
                pending.set_result(compute())
            except BaseException as exc:
                with self._lock:
                    self._entries.pop(key, None)
                pending.set_exception(exc)
                raise
        return pending.result()

    def fit(self, size: Callable[[T], int], limit: int, newest: Any) -> None:
        """Drop the least recently used results until their sizes sum to `limit` at most
        (`newest` last: it too, where it alone does not fit)."""
        with self._lock:
            sizes = {k: size(f.result()) for k, f in self._entries.items()
                     if f.done() and f.exception() is None}
            total = sum(sizes.values())
            for key in [k for k in self._entries if k != newest] + [newest]:
                if total <= limit:
                    return
                if key in sizes:
                    del self._entries[key]
                    total -= sizes[key]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __iter__(self) -> Iterator[Any]:
        with self._lock:
            return iter(list(self._entries))

    def __len__(self) -> int:
        return len(self._entries)
