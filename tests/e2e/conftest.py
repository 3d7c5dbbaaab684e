"""Real-browser fixtures: the app served by `streamlit run` on a temporary SQLite file, driven
by Playwright in headless Chromium (Debian's /usr/bin/chromium, installed by .ci/run).

Without Chromium these tests are skipped locally; under CI=true they fail, because CI must
never pass by skipping. Screenshots go to $FLUORO_AUDIT_SCREENSHOTS (`make screenshots` sets it
to docs/screenshots), else to the test's temporary directory.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from audit import auth
from audit.auth import cli_actor
from audit.storage.engine import make_engine
from audit.vocab import Role
from tests.conftest import Databases

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("FLUORO_AUDIT_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-gpu",
                 "--disable-dev-shm-usage"]
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
PASSWORD = "correct horse battery"
#: The demo technologist the browser tests sign in as (audit.demo.cast creates it unable to sign
#: in; demo_server gives it a password).
DEMO_TECH = "demo-tech1"
VIEWPORT = {"width": 1440, "height": 1000}



def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    db_url: str
    log: Path


def start_server(db_path: Path, log: Path, *, port: int | None = None,
                 options: tuple[str, ...] = ()) -> tuple[subprocess.Popen[bytes], Server]:
    """`python -m streamlit run dashboard/launcher.py` (the app and its session-cookie routes,
    as `fluoro-audit serve` starts it) on `db_path`, with more Streamlit `options` if given;
    waits for /_stcore/health."""
    port = port or free_port()
    db_url = f"sqlite:///{db_path}"
    env = {**os.environ, "FLUORO_AUDIT_DB": db_url}
    out = log.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "dashboard/launcher.py", "--server.headless",
         "true", "--server.port", str(port), "--server.address", "127.0.0.1",
         "--browser.gatherUsageStats", "false", *options],
        cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.read().strip() == b"ok":
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"streamlit did not start; log:\n{log.read_text()[-3000:]}")
        time.sleep(0.3)
    return proc, Server(url, db_url, log)


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def session_cookie(context: Any, present: bool = True) -> dict[str, Any] | None:
    """The session cookie of a browser context once it is there (or gone, `present=False`):
    the page collects it with a fetch() after signing in and drops it after signing out."""
    from dashboard.cookies import COOKIE_NAME

    deadline = time.monotonic() + 15
    while True:
        found = next((c for c in context.cookies() if c["name"] == COOKIE_NAME), None)
        if (found is not None) == present:
            return found
        assert time.monotonic() < deadline, f"session cookie {'never set' if present else 'kept'}"
        time.sleep(0.1)


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[Server]:
    """A server on an empty database (no schema yet: the app migrates it)."""
    proc, server = start_server(tmp_path / "fresh.sqlite3", tmp_path / "streamlit.log")
    yield server
    stop_server(proc)


def migrated_sqlite(databases: Databases) -> Path:
    """A new SQLite file at head: a copy of the session's migrated template (tests/conftest.py),
    not a migration of its own (seconds each), with the rule packs on as a new database has
    them (the template switches them off for the library's fixtures)."""
    url = databases.sqlite()
    eng = make_engine(url)
    with eng.begin() as conn:
        conn.execute(text("UPDATE rule_pack SET enabled = true"))
    eng.dispose()
    return Path(str(make_url(url).database))


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory: pytest.TempPathFactory,
                databases: Databases) -> Iterator[Server]:
    """A server on a database with 600 demo procedures, an administrator `admin`, and the demo
    technologist DEMO_TECH made able to sign in (the demo creates accounts that cannot)."""
    from audit.demo import generate

    tmp = tmp_path_factory.mktemp("e2e")
    db_path = migrated_sqlite(databases)
    engine = make_engine(f"sqlite:///{db_path}")
    generate(engine, procedures=600, seed=7)
    auth.add_user(engine, cli_actor(), "admin", Role.ADMIN, PASSWORD)
    auth.reset_password(engine, cli_actor(), DEMO_TECH, PASSWORD)
    engine.dispose()
    proc, server = start_server(db_path, tmp / "streamlit.log")
    yield server
    stop_server(proc)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        message = f"Chromium not found at {CHROMIUM} (install Debian's chromium package)"
        if IN_CI:
            pytest.fail(message + ": under CI=true the browser tests must run")
        pytest.skip(message)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:  # pragma: no cover - a test dependency
        if IN_CI:
            pytest.fail(f"playwright is not installed: {exc}")
        pytest.skip(f"playwright is not installed: {exc}")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser context (no session) in a fixed time zone."""
    context = browser.new_context(viewport=VIEWPORT, timezone_id="America/Chicago",
                                  locale="en-US")
    context.set_default_timeout(30_000)
    tab = context.new_page()
    yield tab
    context.close()


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = os.environ.get("FLUORO_AUDIT_SCREENSHOTS")
    path = Path(target) if target else tmp_path_factory.mktemp("screenshots")
    if not path.is_absolute():
        path = ROOT / path
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """On a failure, keep a screenshot of what the browser showed (next to the server log)."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    tab = item.funcargs.get("page") if hasattr(item, "funcargs") else None
    if report.when == "call" and report.failed and tab is not None:
        cache = getattr(item.config, "cache", None)
        folder = Path(str(cache.mkdir("e2e-failures"))) if cache else Path(tempfile.gettempdir())
        target = folder / f"{item.name}.png"
        try:
            tab.screenshot(path=str(target))
            report.sections.append(("browser", f"screenshot: {target}"))
        except Exception:  # the browser may be gone; the failure itself matters more
            pass
