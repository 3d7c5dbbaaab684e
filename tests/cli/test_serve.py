"""`fluoro-audit serve`: migrates, then serves the dashboard over HTTP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from sqlalchemy import func, select

from audit.storage.engine import ENV_DB, current_revision, head_revision, make_engine
from audit.storage.models import Procedure

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(server: subprocess.Popen[str], port: int, seconds: float = 90) -> str:
    """The health check's answer once the server gives one (the server must not exit)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health",
                                        timeout=2) as response:
                return str(response.read().decode())
        except OSError:
            assert server.poll() is None, server.stdout.read() if server.stdout else ""
            time.sleep(0.5)
    return ""


def stop(server: subprocess.Popen[str]) -> None:
    server.terminate()
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()


def test_serve_migrates_and_answers_health_checks(tmp_path: Path) -> None:
    db = tmp_path / "served.sqlite3"
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "audit.cli", "--db", f"sqlite:///{db}", "serve", "--port",
         str(port), "--address", "127.0.0.1"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        assert wait_healthy(server, port) == "ok"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
            assert response.status == 200
        engine = make_engine(f"sqlite:///{db}")
        assert current_revision(engine) == head_revision()
        engine.dispose()
    finally:
        stop(server)


def test_serve_demo_serves_the_demos_own_database(tmp_path: Path) -> None:
    """`serve --demo` (make demo) without --db or FLUORO_AUDIT_DB: the demo's own file, loaded
    because it is empty; the real default database (make run's) is never created."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != ENV_DB}
    server = subprocess.Popen(
        [sys.executable, "-m", "audit.cli", "serve", "--demo", "--demo-procedures", "200",
         "--port", str(port), "--address", "127.0.0.1"],
        cwd=tmp_path, env={**env, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        assert wait_healthy(server, port) == "ok"
        demo = tmp_path / "var" / "fluoro-audit-demo.sqlite3"
        engine = make_engine(f"sqlite:///{demo}")
        with engine.connect() as conn:
            assert conn.scalar(select(func.count()).select_from(Procedure)) == 200
        engine.dispose()
        assert not (tmp_path / "var" / "fluoro-audit.sqlite3").exists()
    finally:
        stop(server)
    out = server.stdout.read() if server.stdout else ""
    assert "demo database: sqlite:///var/fluoro-audit-demo.sqlite3 (its own" in out
    assert "loaded 200 demo records" in out
    assert "dashboard on http://localhost" in out and "fluoro-audit-demo.sqlite3" in out
