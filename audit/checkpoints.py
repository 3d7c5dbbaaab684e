"""Chain heads recorded outside the database, so that a cut trail shows.

Why: the keyed chain (audit.trail) stops whoever lacks the trail key from editing or forging
an event, but not from removing the newest ones: any prefix of a valid chain is a valid chain,
and an empty trail is one too. So after every committed transaction that appended events the
application appends the new head (event id, MAC, UTC time) as one line to a file in the key
directory (audit.keys.checkpoint_path), which a holder of the database alone (a dump, the
PostgreSQL owner role) cannot reach. `verify-audit` then checks that every recorded head is
still in the chain with the same MAC, and that the chain ends on a recorded head.

The file is named from the database's URL, never from its content (audit.keys), so nothing
written into the database can pick the file it is checked against. The price: a database that
was moved, restored under another name or reached by another host name has no checkpoint file
yet; verify-audit says so as a warning and starts one.

Each line is written with one write() on a file opened O_APPEND, so lines from concurrent
processes never interleave; the file is 0600 in a 0700 directory like the keys.
"""

from __future__ import annotations

import json
import logging
import os
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine

from audit.keys import checkpoint_path

log = logging.getLogger(__name__)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def engine_of(bind: Engine | Connection) -> Engine:
    """The engine behind a session's bind (a Connection inside migrations)."""
    return bind if isinstance(bind, Engine) else bind.engine


def path_for(bind: Engine | Connection) -> Path | None:
    """The checkpoint file of the database behind `bind` (None for in-memory SQLite)."""
    return checkpoint_path(engine_of(bind))


@dataclass(frozen=True)
class RecordedHead:
    """One line of the file: a head the application saw committed, and when."""

    event_id: int
    mac: str
    at: str

    def describe(self) -> str:
        return f"event {self.event_id} (recorded at {self.at})"


def append(path: Path, event_id: int, mac: str, at: datetime | None = None) -> None:
    """Append one head as one line (O_APPEND, one write); make the file 0600 and its
    directory 0700 when missing."""
    when = (at or datetime.now(UTC)).astimezone(UTC)
    line = json.dumps({"event_id": int(event_id), "mac": mac,
                       "at": when.isoformat(timespec="microseconds").replace("+00:00", "Z")},
                      separators=(",", ":")) + "\n"
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode("ascii"))
    finally:
        os.close(fd)


def append_quietly(path: Path, event_id: int, mac: str) -> None:
    """append(), logging instead of raising: called after a commit, when the change is already
    in the database and an exception would only tell the user it failed. The next commit
    records a newer head, which covers this one."""
    try:
        append(path, event_id, mac)
    except OSError as exc:
        log.error("could not record the audit trail head (event %s) in %s: %s; verify-audit "
                  "will report the chain's end as unseen until a later change is recorded",
                  event_id, path, exc)


class Recorded:
    """Every head in one checkpoint file, compactly (a million lines take about 50 MB):
    ids and times in arrays, MACs as 32 raw bytes each."""

    def __init__(self) -> None:
        self.ids = array("q")
        self._micros = array("q")
        self._macs = bytearray()
        self.unreadable = 0

    def __len__(self) -> int:
        return len(self.ids)

    def add(self, event_id: int, mac: str, at: str) -> None:
        when = datetime.fromisoformat(at.replace("Z", "+00:00"))
        raw = bytes.fromhex(mac)
        if len(raw) != 32:
            raise ValueError("a MAC is 32 bytes")
        self._micros.append((when - _EPOCH) // _MICROSECOND)
        self._macs += raw
        self.ids.append(event_id)

    def head(self, index: int) -> RecordedHead:
        when = _EPOCH + self._micros[index] * _MICROSECOND
        at = when.isoformat(timespec="microseconds").replace("+00:00", "Z")
        return RecordedHead(self.ids[index], self._macs[32 * index:32 * index + 32].hex(), at)

    def in_order(self) -> Iterator[RecordedHead]:
        """The heads by event id (lines from concurrent writers may be slightly out of order)."""
        ids = self.ids
        if all(ids[i] <= ids[i + 1] for i in range(len(ids) - 1)):
            order: Any = range(len(ids))
        else:
            order = sorted(range(len(ids)), key=ids.__getitem__)
        for index in order:
            yield self.head(index)

    def has(self, event_id: int, mac: str) -> bool:
        raw = bytes.fromhex(mac)
        return any(self.ids[i] == event_id and self._macs[32 * i:32 * i + 32] == raw
                   for i in range(len(self.ids) - 1, -1, -1))


_MICROSECOND = datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC) - _EPOCH


def read(path: Path) -> Recorded | None:
    """The heads recorded in `path`, or None when there is no such file. A line that does not
    parse (a write cut short by a crash) is counted, not fatal."""
    recorded = Recorded()
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return None
    with handle:
        for raw in handle:
            try:
                item = json.loads(raw)
                recorded.add(int(item["event_id"]), str(item["mac"]), str(item["at"]))
            except (ValueError, KeyError, TypeError):
                recorded.unreadable += 1
    return recorded


# --- Heads noted on a Connection: migrations write the trail without a Session -------------------

def note_pending(info: dict[str, Any], path: Path | None, event_id: int, mac: str) -> None:
    """Record this head once the connection's transaction has committed (audit.storage.engine
    runs what a migration leaves in Connection.info under AFTER_COMMIT)."""
    from audit.storage.engine import AFTER_COMMIT

    if path is not None:
        info.setdefault(AFTER_COMMIT, []).append(partial(append_quietly, path, event_id, mac))
