"""The database server itself stops while a C-arm sends (issue 13): a PostgreSQL cluster of this
test's own (initdb on a free port, so stopping it disturbs no other test) is stopped with
pg_ctl, a report is sent and answered with success, it waits in the inbox, and once the server
is started again the receiver imports it without being restarted."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from audit.dicom_net.inbox import SUCCESS
from audit.dicom_net.scp import Receiver
from audit.storage.engine import make_engine, migrate
from tests.conftest import IN_CI
from tests.dicom_net.net_helpers import receipts, send, stored_uids
from tests.dicom_net.test_receiver_database_down import _wait_until
from tests.dose_reports.dose_helpers import REAL_FILES

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def _bindir() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    return found[-1].parent if found else None


class Cluster:
    """A throwaway PostgreSQL cluster run as an unprivileged account when we are root."""

    def __init__(self, folder: Path, bindir: Path) -> None:
        self.bindir, self.data = bindir, folder / "data"
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_user:
            shutil.chown(folder, "postgres")
        self.folder = folder
        self.run("initdb", "-D", str(self.data), "-U", "fluoro", "--auth=trust", "-E", "UTF8")
        (self.data / "postgresql.conf").open("a").write(
            f"port = {self.port}\nlisten_addresses = '127.0.0.1'\nfsync = off\n"
            f"unix_socket_directories = '{folder}'\n")

    def run(self, tool: str, *args: str) -> None:
        subprocess.run([*self.as_user, str(self.bindir / tool), *args], cwd=self.folder,
                       check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        self.run("pg_ctl", "-D", str(self.data), "-w", "-l", str(self.folder / "log"), "start")

    def stop(self) -> None:
        self.run("pg_ctl", "-D", str(self.data), "-w", "-m", "fast", "stop")

    @property
    def url(self) -> str:
        return f"postgresql://fluoro@127.0.0.1:{self.port}/postgres"


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    bindir = _bindir()
    if bindir is None:
        message = "PostgreSQL server binaries not installed (Debian: postgresql)"
        if IN_CI:
            pytest.fail(message + ": under CI=true this test must run")
        pytest.skip(message)
    # Not under pytest's temporary folder: the server's account cannot enter root's.
    folder = Path(tempfile.mkdtemp(prefix="fluoro-audit-pgstop-"))
    try:
        made = Cluster(folder, bindir)
        made.start()
        yield made
        with contextlib.suppress(subprocess.CalledProcessError):  # stopped already
            made.stop()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_a_report_sent_while_the_server_is_stopped_is_imported_once_it_is_back(
        cluster: Cluster, start_receiver: Callable[..., Receiver]) -> None:
    migrate(cluster.url)
    engine = make_engine(cluster.url)
    try:
        receiver = start_receiver(engine)
        assert send(receiver.port, [REAL_FILES[0]]) == [SUCCESS]  # while it runs: imported
        assert _wait_until(lambda: len(stored_uids(engine)) == 1)

        cluster.stop()
        assert send(receiver.port, [REAL_FILES[1]]) == [SUCCESS]  # safe on disk, answered
        assert len(receiver.inbox.waiting()) == 1

        cluster.start()
        assert _wait_until(lambda: not receiver.inbox.waiting(), seconds=30)
        assert _wait_until(lambda: len(stored_uids(engine)) == 2, seconds=30)
        # the receipt is recorded after the import, in its own step (Intake._imported)
        assert _wait_until(lambda: sorted(row.outcome for row in receipts(engine))
                           == ["imported", "imported"], seconds=30)
    finally:
        engine.dispose()
