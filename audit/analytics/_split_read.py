"""The analysis frame's full read on SQLite in two processes: this one reads the records of
the lower half of the ids while a helper process reads the upper half.

Why: a dashboard process's first page at a million records waited for the frame, 3.0-3.5 s
of CPU on an idle machine, nearly all of it Python turning SQLite's rows into numbers one by
one. Two threads do not help: Python's sqlite3 releases the interpreter lock around each row
and takes it back, so two readers pass the lock back and forth a million times (5.1 s
instead of 3.0). Two processes each read half in about half the time (1.4 s each at a
million records); the helper's start (an interpreter with numpy and sqlite3, nothing of
this package) and sending 40 MB of numbers back through a pipe cost 0.1-0.2 s.

Consistent by construction or not used: the helper reads in one read transaction and
returns, before its rows, the highest audit event id it saw; every write appends an audit
event in its own transaction, so the same id means the same data version as the caller's
own transaction (`head`). Where they differ (a write landed between the two starts), where
the helper fails or is slow, or where it cannot be started, this process reads the upper
half itself: the frame is the same, only slower.

Only where it pays: a file database (not `:memory:`) of at least SPLIT_FROM record ids.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Connection, func, select

from audit.analytics import _packing
from audit.storage.models import Procedure

#: Below this many record ids the helper's start costs more than the half it reads.
SPLIT_FROM = 200_000
#: Seconds to wait for the helper after this process's half: beyond, this process reads it.
HELPER_TIMEOUT_S = 60.0

#: The helper: reads a job (database path, SQL, columns, mmap size) as JSON in its first
#: argument, writes the audit head and row count (two little-endian int64) and then the rows as
#: float64, row by row, on stdout. Imports nothing of this package (its start stays short).
HELPER = r"""
import json, sqlite3, sys
import numpy as np
job = json.loads(sys.argv[1])
db = sqlite3.connect(job["path"], isolation_level=None)
db.execute("PRAGMA mmap_size = %d" % job["mmap"])
db.execute("BEGIN")
head = db.execute("SELECT max(id) FROM audit_event").fetchone()[0] or 0
record = np.dtype([("c%d" % i, np.float64) for i in range(job["width"])])
rows = np.fromiter(db.execute(job["sql"]), dtype=record)
db.execute("COMMIT")
out = sys.stdout.buffer
out.write(np.array([head, len(rows)], dtype="<i8").tobytes())
out.write(rows.tobytes())
out.flush()
"""


def fetch(conn: Connection, query: Any, head: int,
          progress: Callable[[int], None] | None = None) -> list[np.ndarray]:
    """_packing.fetch of every record `query` selects, the upper half of the ids read by a
    helper process where it pays (module doc). `head`: the audit head this connection's
    transaction sees (what the helper's must equal)."""
    path = _file_of(conn)
    if path is None:
        return _packing.fetch(conn, query, progress)
    low, high = conn.execute(select(func.min(Procedure.id), func.max(Procedure.id))).one()
    if high is None or high - low + 1 < SPLIT_FROM:
        return _packing.fetch(conn, query, progress)
    middle = (low + high + 1) // 2
    upper = query.where(Procedure.id >= middle)
    helper = _start(path, upper, conn)
    lower = _packing.fetch(conn, query.where(Procedure.id < middle), progress)
    found = None if helper is None else _finish(helper, head, len(lower))
    if found is None:  # the helper failed, was slow, or saw another version: read it here
        found = _packing.fetch(conn, upper)
    if progress is not None:
        progress(len(lower[0]) + len(found[0]))
    return [np.concatenate([a, b]) for a, b in zip(lower, found, strict=True)]


def _file_of(conn: Connection) -> Path | None:
    """The SQLite file of this connection, where a second process can open it."""
    if conn.dialect.name != "sqlite":
        return None
    database = conn.engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database).resolve()


def _start(path: Path, query: Any, conn: Connection) -> subprocess.Popen[bytes] | None:
    job = {"path": str(path), "sql": _packing.literal_sql(conn, query),
           "width": len(query.selected_columns), "mmap": _packing.MMAP_BYTES}
    try:
        return subprocess.Popen([sys.executable, "-c", HELPER, json.dumps(job)],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL)
    except OSError:  # no process may be started here: one process reads it all
        return None


def _finish(helper: subprocess.Popen[bytes], head: int, width: int) -> list[np.ndarray] | None:
    """The helper's rows as columns, or None (it failed, timed out, or read another data
    version than `head`)."""
    try:
        out, _ = helper.communicate(timeout=HELPER_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        helper.kill()
        helper.communicate()
        return None
    if helper.returncode != 0 or len(out) < 16:
        return None
    seen, rows = (int(x) for x in np.frombuffer(out[:16], dtype="<i8"))
    body = np.frombuffer(out[16:], dtype=np.float64)
    if seen != head or len(body) != rows * width:
        return None
    block = body.reshape(rows, width)
    return [np.ascontiguousarray(block[:, i]) for i in range(width)]
