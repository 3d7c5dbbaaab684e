"""In a real browser, notes and names written as Markdown links and images stay text: no live
link to their address, no image, and no request to it (issue 10)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from audit import auth
from audit import reference_data as admin
from audit.auth import cli_actor
from audit.log.service import ProcedureLog
from audit.storage.engine import make_engine
from audit.vocab import Role
from tests.conftest import Databases, valid_record
from tests.e2e.conftest import PASSWORD, Server, migrated_sqlite, start_server, stop_server
from tests.e2e.test_browser import sign_in, wait_idle

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(600)]

LINK = "[x](https://evil.example)"
IMAGE = "![b](https://evil.example/beacon.png)"
NOTES = f"see {LINK} and {IMAGE} or www.evil.example"


@pytest.fixture
def hostile_server(tmp_path: Path, databases: Databases) -> Iterator[tuple[Server, int]]:
    """A server whose one record names a physician, site and room, and carries notes and an
    amendment reason, written as Markdown links and images."""
    db_path = migrated_sqlite(databases)
    engine = make_engine(f"sqlite:///{db_path}")
    system = cli_actor()
    auth.add_user(engine, system, "admin", Role.ADMIN, PASSWORD)
    auth.add_user(engine, system, "tech1", Role.TECHNOLOGIST, PASSWORD)
    admin.add_site(engine, system, f"Site {LINK}")
    admin.add_room(engine, system, f"Site {LINK}", f"Room {IMAGE}")
    admin.add_physician(engine, system, f"Dr. {LINK}")
    service = ProcedureLog(engine)
    [result] = service.log_many([valid_record(
        site=f"Site {LINK}", room=f"Room {IMAGE}", physician=f"Dr. {LINK}", notes=NOTES)],
        system)
    service.amend(result.record_id, {"notes": f"{NOTES} (amended)"}, system, version=1,
                  reason=f"because {IMAGE}")
    engine.dispose()
    proc, server = start_server(db_path, tmp_path / "streamlit.log")
    yield server, result.record_id
    stop_server(proc)


def test_record_detail_renders_links_and_images_as_text(
    page: Any, hostile_server: tuple[Server, int]
) -> None:
    server, record_id = hostile_server
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    sign_in(page, server, "admin")
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Records").click()
    page.get_by_role("spinbutton", name="Open record number").fill(str(record_id))
    page.get_by_role("spinbutton", name="Open record number").press("Enter")
    page.get_by_text(f"Record {record_id}", exact=True).wait_for()
    page.get_by_test_id("stTable").last.wait_for()
    wait_idle(page)
    page.wait_for_timeout(1000)  # time for any image the page would load

    links = page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)")
    images = page.eval_on_selector_all("img[src]", "els => els.map(e => e.src)")
    assert [h for h in links if "evil.example" in h] == []
    assert [s for s in images if "evil.example" in s] == []
    assert [u for u in requested if "evil.example" in u] == []
    text = page.get_by_test_id("stMain").inner_text().replace("\u2060", "")
    assert f"Notes: {NOTES} (amended)" in text  # shown as typed
    assert f"Physician: Dr. {LINK}" in text and f"Room: Room {IMAGE}" in text
    assert f"because {IMAGE}" in text
