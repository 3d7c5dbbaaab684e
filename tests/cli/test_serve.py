"""`fluoro-audit serve`: migrates, then serves the dashboard over HTTP, on 127.0.0.1 unless
--address says otherwise, with its Streamlit settings on the command line so that they hold
from any working directory (no .streamlit/config.toml there)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import func, select

from audit.storage.engine import ENV_DB, current_revision, head_revision, make_engine
from audit.storage.models import Procedure

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(server: subprocess.Popen[str], port: int, seconds: float = 90,
                 host: str = "127.0.0.1") -> str:
    """The health check's answer once the server gives one (the server must not exit)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://{host}:{port}/_stcore/health",
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


def listening(port: int) -> set[str]:
    """The local addresses a TCP socket listens on at `port`, as the kernel lists them in
    /proc/net/tcp and /proc/net/tcp6 (what `ss -ltn` reads): each address is hex, in 32-bit
    words of host byte order."""
    found = set()
    for table, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
        path = Path("/proc/net") / table
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, _, hex_port = local.partition(":")
            if state != "0A" or int(hex_port, 16) != port:  # 0A: LISTEN
                continue
            raw = b"".join(bytes.fromhex(address[i:i + 8])[::-1]
                           for i in range(0, len(address), 8))
            found.add(socket.inet_ntop(family, raw))
    return found


def connects(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=3):
            return True
    except OSError:
        return False


def serve_elsewhere(folder: Path, port: int, *args: str) -> subprocess.Popen[str]:
    """`fluoro-audit serve` started from `folder`, which holds no .streamlit/config.toml: only
    what serve passes reaches Streamlit."""
    assert not (folder / ".streamlit").exists()
    return subprocess.Popen(
        [sys.executable, "-m", "audit.cli", "--db", f"sqlite:///{folder / 'served.sqlite3'}",
         "serve", "--port", str(port), *args],
        cwd=folder, env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads Linux's socket table")
def test_serve_listens_on_127_0_0_1_only_by_default_from_any_folder(tmp_path: Path) -> None:
    port = free_port()
    server = serve_elsewhere(tmp_path, port)
    try:
        assert wait_healthy(server, port) == "ok"
        assert listening(port) == {"127.0.0.1"}
        # Linux routes all of 127.0.0.0/8 to this machine: a server on every interface
        # (0.0.0.0) would answer on 127.0.0.2 too; one bound to 127.0.0.1 alone does not.
        assert connects("127.0.0.1", port) and not connects("127.0.0.2", port)
        # Every setting is on Streamlit's own command line (serve became that process).
        command = Path(f"/proc/{server.pid}/cmdline").read_bytes().split(b"\0")
        settings = dict(zip(command[5::2], command[6::2], strict=False))
        assert {k.decode(): settings[k].decode() for k in settings
                if k.startswith(b"--")} == {
            "--server.address": "127.0.0.1", "--server.port": str(port),
            "--server.headless": "true", "--server.runOnSave": "false",
            "--server.fileWatcherType": "none", "--browser.gatherUsageStats": "false",
            "--client.toolbarMode": "minimal", "--client.disableDataExport": "true"}
    finally:
        stop(server)
    out = server.stdout.read() if server.stdout else ""
    assert f"fluoro-audit dashboard on http://localhost:{port} (" in out


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads Linux's socket table")
def test_serve_listens_where_address_says(tmp_path: Path) -> None:
    """--address moves the listening socket (127.0.0.2 stands in for a LAN address: a test
    must not open a server to the network)."""
    port = free_port()
    server = serve_elsewhere(tmp_path, port, "--address", "127.0.0.2")
    try:
        assert wait_healthy(server, port, host="127.0.0.2") == "ok"
        assert listening(port) == {"127.0.0.2"}
        assert not connects("127.0.0.1", port)
    finally:
        stop(server)
    out = server.stdout.read() if server.stdout else ""
    assert f"fluoro-audit dashboard on http://127.0.0.2:{port} (" in out
