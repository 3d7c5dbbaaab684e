"""`fluoro-audit receive` as its own process: it stops cleanly on SIGTERM; and `serve` starts
it beside the dashboard when the receiver_enabled setting is on, and stops it on exit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from audit.auth import cli_actor
from audit.settings import update_setting
from audit.storage.engine import make_engine, read_session
from audit.storage.models import DicomListener
from tests.conftest import Databases
from tests.dicom_net.net_helpers import free_port, sender

ROOT = Path(__file__).resolve().parents[2]


def echo(port: int, calling_ae: str = "CHECK") -> bool:
    assoc = sender(calling_ae).associate("127.0.0.1", port, ae_title="FLUORO_AUDIT")
    if not assoc.is_established:
        return False
    try:
        return int(assoc.send_c_echo().Status) == 0
    finally:
        assoc.release()


def wait_for(check: object, seconds: float = 60) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return True
        time.sleep(0.3)
    return False


def start(args: list[str], tmp: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "audit.cli", *args], cwd=tmp,
                            env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def listeners(url: str) -> list[DicomListener]:
    engine = make_engine(url)
    try:
        with read_session(engine) as session:
            return list(session.scalars(select(DicomListener).order_by(DicomListener.id)))
    finally:
        engine.dispose()


@pytest.mark.slow
def test_sigterm_stops_the_receiver_cleanly(databases: Databases, tmp_path: Path) -> None:
    url, port = databases.sqlite(), free_port()
    process = start(["--db", url, "receive", "--port", str(port), "--inbox",
                     str(tmp_path / "inbox"), "--allow", "CHECK", "--allow", "OTHER@10.0.0.1"],
                    tmp_path)
    try:
        assert wait_for(lambda: echo(port)), process.stdout.read() if process.stdout else ""
        assert not echo(port, "STRANGER")  # --allow replaces "loopback only"
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, output
    assert "stopped" in output
    assert not echo(port)
    [listener] = listeners(url)
    assert listener.stopped_at is not None and listener.port == port


def alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie nobody reaped has stopped: its sockets are closed)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state not in ("Z", "X")


@pytest.mark.slow
def test_serve_starts_the_receiver_when_enabled_and_stops_it(databases: Databases,
                                                             tmp_path: Path) -> None:
    url, port, web = databases.sqlite(), free_port(), free_port()
    engine = make_engine(url)
    update_setting(engine, cli_actor(), "receiver_enabled", True)
    update_setting(engine, cli_actor(), "receiver_port", port)
    engine.dispose()
    server = start(["--db", url, "serve", "--port", str(web)], tmp_path)
    try:
        # Ours, not whatever else on this machine may answer on the port: the receiver records
        # its port and pid when it listens.
        assert wait_for(lambda: bool(listeners(url)) and echo(port)), \
            server.stdout.read() if server.stdout else ""
        [listener] = listeners(url)
        assert listener.port == port and listener.stopped_at is None and alive(listener.pid)
        server.terminate()
        server.wait(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
    assert wait_for(lambda: not alive(listener.pid), 30), \
        Path(f"/proc/{listener.pid}/status").read_text()  # the receiver went with the dashboard
    assert listeners(url)[-1].stopped_at is not None  # and said so before it went
    assert not echo(port)
