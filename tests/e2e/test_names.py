"""Names in a real browser (issue 11): a partial name and Enter in the Site field choose an
existing site and never create one; adding a name near an existing one asks first. The sites and
physicians are counted in the database before and after."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from audit import auth
from audit import reference_data as admin
from audit.auth import cli_actor
from audit.storage.engine import make_engine, migrate
from audit.vocab import Role
from tests.e2e.conftest import PASSWORD, Server, start_server, stop_server
from tests.e2e.test_browser import choose, field, open_add_panel, sign_in, wait_idle

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(600)]
RIVERSIDE = "Riverside Spine Center"


@pytest.fixture(scope="module")
def clinic_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A clinic as set up by its administrator: one site whose C-arm displays µGy·m², Dr.
    Amelia Chen, and the technologist tnguyen."""
    tmp = tmp_path_factory.mktemp("names")
    url = f"sqlite:///{tmp / 'clinic.sqlite3'}"
    migrate(url)
    engine = make_engine(url)
    system = cli_actor()
    auth.add_user(engine, system, "tnguyen", Role.TECHNOLOGIST, PASSWORD)
    admin.add_site(engine, system, RIVERSIDE)
    admin.add_site(engine, system, "Lakeside Surgery")
    admin.add_room(engine, system, RIVERSIDE, "OR 1", dap_display_unit="µGy·m²")
    admin.add_physician(engine, system, "Dr. Amelia Chen")
    engine.dispose()
    proc, server = start_server(tmp / "clinic.sqlite3", tmp / "streamlit.log")
    yield server
    stop_server(proc)


def names(server: Server, kind: str) -> list[str]:
    engine = make_engine(server.db_url)
    try:
        rows = admin.list_sites(engine) if kind == "site" else admin.list_physicians(engine)
        return [r["name"] for r in rows]
    finally:
        engine.dispose()


def test_a_partial_site_name_and_enter_never_creates_a_site(
    page: Any, clinic_server: Server
) -> None:
    before = names(clinic_server, "site")
    sign_in(page, clinic_server, "tnguyen")
    page.get_by_test_id("stHeading").get_by_text("Log procedure").wait_for()
    site = page.get_by_role("combobox", name="Site", exact=True)
    choose(page, "Site", "River")  # what issue 11 found: "Add: River" was highlighted
    assert site.input_value() == RIVERSIDE
    choose(page, "Site", "Northgate")  # no such site: Enter picks nothing, adds nothing
    assert page.get_by_text("Add: Northgate").count() == 0
    site.press("Escape")
    site.press("Tab")  # leaving the field shows the site still chosen
    wait_idle(page)
    assert site.input_value() == RIVERSIDE
    assert names(clinic_server, "site") == before


def test_adding_a_near_physician_asks_first(page: Any, clinic_server: Server) -> None:
    before = names(clinic_server, "physician")
    sign_in(page, clinic_server, "tnguyen")
    page.get_by_test_id("stHeading").get_by_text("Log procedure").wait_for()
    panel = open_add_panel(page)
    panel.get_by_test_id("stRadio").get_by_text("physician", exact=True).click()
    wait_idle(page)
    field(page, "New physician name").fill("Chen")
    page.get_by_role("button", name="Add physician").click()
    page.get_by_text("'Chen' is new; did you mean 'Dr. Amelia Chen'?").wait_for()
    wait_idle(page)
    assert names(clinic_server, "physician") == before  # asked, nothing created
    page.get_by_text("'Chen' is a different physician: add it").click()
    wait_idle(page)
    page.get_by_role("button", name="Add physician").click()
    page.get_by_text("Added physician 'Chen': chosen.").wait_for()
    wait_idle(page)
    assert names(clinic_server, "physician") == ["Chen", *before]
    chosen = page.get_by_role("combobox", name="Physician", exact=True)
    assert chosen.input_value() == "Chen"


def test_a_new_room_asks_for_its_display_unit(page: Any, clinic_server: Server) -> None:
    sign_in(page, clinic_server, "tnguyen")
    page.get_by_test_id("stHeading").get_by_text("Log procedure").wait_for()
    choose(page, "Site", RIVERSIDE)
    panel = open_add_panel(page)
    panel.get_by_test_id("stRadio").get_by_text("room", exact=True).click()
    wait_idle(page)
    field(page, f"New room name (at {RIVERSIDE})").fill("Hybrid 3")
    page.get_by_role("button", name="Add room").click()
    page.get_by_text("the unit the C-arm's DAP display shows").wait_for()
    choose(page, "DAP display unit of this C-arm", "µGy·m²")
    page.get_by_role("button", name="Add room").click()
    page.get_by_text("Added room 'Hybrid 3': chosen.").wait_for()
    engine = make_engine(clinic_server.db_url)
    rooms = {r["name"]: r for r in admin.list_rooms(engine)}
    engine.dispose()
    assert (rooms["Hybrid 3"]["site"], rooms["Hybrid 3"]["dap_display_unit"]) == (
        RIVERSIDE, "µGy·m²")
