"""A statement whose process died is cancelled by PostgreSQL within seconds
(audit.storage.engine: client_connection_check_interval on every connection).

Without the check, a statement runs to its end after the process that sent it is killed: on
the 10M bench a dashboard stopped during the first alert refresh left its INSERT running for
minutes, holding the alert lock the next refresh waited for. Here a real process connects
through make_engine, starts a two-minute statement, and is killed with SIGKILL; the server's
backend must be gone long before the statement would have ended.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from sqlalchemy import text

from audit.storage.engine import CLIENT_CHECK_MS, make_engine
from tests.conftest import Databases

ROOT = Path(__file__).resolve().parents[2]
SLEEP_S = 120
CHILD = """
import sys
from sqlalchemy import text
from audit.storage.engine import make_engine
with make_engine(sys.argv[1]).connect() as conn:
    conn.execute(text("SELECT pg_sleep({sleep}) /* {marker} */"))
"""


def backends(engine: object, marker: str) -> list[int]:
    with engine.connect() as conn:  # type: ignore[attr-defined]
        return list(conn.execute(text(
            "SELECT pid FROM pg_stat_activity WHERE query LIKE :q AND pid <> pg_backend_pid()"),
            {"q": f"%{marker}%"}).scalars())


def test_the_statement_of_a_killed_process_is_cancelled(databases: Databases) -> None:
    url = databases.postgresql()
    marker = f"orphan-{uuid.uuid4().hex[:8]}"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD.format(sleep=SLEEP_S, marker=marker), url],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    engine = make_engine(url)
    try:
        deadline = time.monotonic() + 30
        while not backends(engine, marker):
            assert child.poll() is None, "the child process ended before its statement ran"
            assert time.monotonic() < deadline, "the child's statement never started"
            time.sleep(0.1)
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        killed = time.monotonic()
        while backends(engine, marker) and time.monotonic() - killed < SLEEP_S / 4:
            time.sleep(0.2)
        left = backends(engine, marker)
        assert not left, f"the statement of the killed process still runs: backend {left}"
        assert time.monotonic() - killed < 5 * CLIENT_CHECK_MS / 1000
    finally:
        if child.poll() is None:
            child.kill()
        engine.dispose()


def test_every_connection_asks_for_the_check(databases: Databases) -> None:
    engine = make_engine(databases.postgresql())
    try:
        with engine.connect() as conn:
            conn.rollback()  # the setting is the session's, not the first transaction's
            assert conn.execute(text("SHOW client_connection_check_interval")).scalar() == \
                f"{CLIENT_CHECK_MS // 1000}s"
    finally:
        engine.dispose()
