"""The app as `fluoro-audit serve` gives it, started from a folder that is not the repository (as
a service manager starts it: no .streamlit/config.toml in sight), seen in a real browser: no
Deploy button, and no "Download as CSV" on a table that shows MRNs, for a role that sees them.

Each absence is checked against a control that shows the same thing present, so that a renamed
test id cannot make the test pass by finding nothing: a bare `streamlit run` shows the Deploy
button, and the table's toolbar is shown (its Search button) when the download is looked for.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from audit import auth
from audit.auth import cli_actor
from audit.storage.engine import make_engine, migrate
from audit.vocab import Role
from tests.e2e.conftest import PASSWORD, ROOT, Server, free_port, stop_server
from tests.e2e.test_browser import nav, sign_in, wait_idle

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(600)]
RSO = "rso-serve"


def start(command: list[str], folder: Path, port: int, env: dict[str, str],
          log: Path) -> subprocess.Popen[bytes]:
    """Start `command` in `folder`; wait for Streamlit's health check on 127.0.0.1:port."""
    out = log.open("wb")
    proc = subprocess.Popen(command, cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health",
                                        timeout=2) as response:
                if response.read().strip() == b"ok":
                    return proc
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"the server did not start; log:\n{log.read_text()[-3000:]}")
        time.sleep(0.3)


@pytest.fixture(scope="module")
def elsewhere(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A working directory outside the repository, and in it a database with 300 demo
    procedures and an RSO (a role that sees MRNs)."""
    from audit.demo import generate

    folder = tmp_path_factory.mktemp("elsewhere")
    url = f"sqlite:///{folder / 'clinic.sqlite3'}"
    migrate(url)
    engine = make_engine(url)
    generate(engine, procedures=300, seed=11)
    auth.add_user(engine, cli_actor(), RSO, Role.RSO, PASSWORD)
    engine.dispose()
    assert not (folder / ".streamlit").exists()
    return folder


@pytest.fixture(scope="module")
def served(elsewhere: Path) -> Iterator[Server]:
    """`fluoro-audit serve` from that folder, with no --address."""
    port = free_port()
    url = f"sqlite:///{elsewhere / 'clinic.sqlite3'}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = start([sys.executable, "-m", "audit.cli", "--db", url, "serve", "--port", str(port)],
                 elsewhere, port, env, elsewhere / "serve.log")
    yield Server(f"http://127.0.0.1:{port}", url, elsewhere / "serve.log")
    stop_server(proc)


def test_no_deploy_button_when_served_from_another_folder(
        page: Any, served: Server, elsewhere: Path) -> None:
    page.goto(served.url)
    page.get_by_role("textbox", name="Username", exact=True).wait_for()
    wait_idle(page)
    assert page.get_by_test_id("stAppDeployButton").count() == 0
    sign_in(page, served, RSO)
    wait_idle(page)
    assert page.get_by_test_id("stAppDeployButton").count() == 0

    # The control: the same app under a bare `streamlit run` from the same folder shows it.
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FLUORO_AUDIT_DB": served.db_url}
    bare = start([sys.executable, "-m", "streamlit", "run", str(ROOT / "dashboard" / "app.py"),
                  "--server.port", str(port), "--server.address", "127.0.0.1",
                  "--server.headless", "true", "--browser.gatherUsageStats", "false"],
                 elsewhere, port, env, elsewhere / "bare.log")
    try:
        page.goto(f"http://127.0.0.1:{port}")
        page.get_by_test_id("stAppDeployButton").wait_for()
    finally:
        stop_server(bare)


def test_the_records_table_offers_no_download_to_a_role_that_sees_mrns(
        page: Any, served: Server) -> None:
    sign_in(page, served, RSO)
    nav(page, "Records")
    table = page.get_by_test_id("stDataFrame").first
    table.wait_for()
    wait_idle(page)
    # The rows carry MRNs for this role (the grid draws on a canvas; its hidden accessible
    # cells hold the text).
    table.get_by_role("gridcell", name=re.compile(r"^DEMO\d+$"), include_hidden=True
                      ).first.wait_for(state="attached")
    table.hover()  # the toolbar shows while the pointer is over the table
    toolbar = page.get_by_test_id("stElementToolbar")
    toolbar.get_by_role("button", name="Search").wait_for()
    names = [b.get_attribute("aria-label") for b in toolbar.get_by_role("button").all()]
    assert "Fullscreen" in names, names
    assert not any(n and "download" in n.lower() for n in names), names
    assert toolbar.get_by_role("button", name="Download as CSV").count() == 0
