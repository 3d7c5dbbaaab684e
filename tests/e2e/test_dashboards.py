"""The audit pages in a real browser, as the RSO opens them: each page draws its charts and the
tables of their numbers, and the high-dose and contrast-omitting physicians of the demo data are
visible without filtering. Screenshots of each page land in docs/screenshots via
`make screenshots`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from audit import auth
from audit.auth import cli_actor
from audit.demo.cast import HIGH_DOSE_PHYSICIAN
from audit.storage.engine import make_engine
from audit.vocab import Role
from tests.e2e.conftest import PASSWORD, Server
from tests.e2e.test_browser import sign_in, snap, wait_idle

# A browser, a served app and (for the dashboards) demo data start inside the first test.
pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def rso_server(demo_server: Server) -> Server:
    engine = make_engine(demo_server.db_url)
    auth.add_user(engine, cli_actor(), "rso1", Role.RSO, PASSWORD)
    engine.dispose()
    return demo_server


def open_page(page: Any, title: str) -> None:
    page.get_by_test_id("stSidebarNav").get_by_role("link", name=title, exact=True).click()
    wait_idle(page)


@pytest.mark.parametrize(
    ("link", "heading", "charts", "tables", "shot"),
    [
        ("Compliance", "Contrast-confirmation compliance", 2, 2, "compliance"),
        ("Dose", "Dose", 2, 2, "dose"),
        ("Alerts", "Dose alerts", 1, 1, "alerts"),
        ("Data quality", "Data quality", 1, 1, "data_quality"),
        ("Complications", "Complications", 3, 3, "complications"),
        ("Coverage and safeguards", "Coverage and safeguards", 3, 4, "coverage"),
        ("Reconciliation", "Reconciliation", 0, 0, "reconciliation"),
        ("Export", "Audit export", 0, 0, "export"),
    ],
)
def test_each_audit_page_shows_its_figures(
    page: Any, rso_server: Server, screenshots: Path, link: str, heading: str, charts: int,
    tables: int, shot: str,
) -> None:
    sign_in(page, rso_server, "rso1")
    open_page(page, link)
    main = page.get_by_test_id("stMain")
    main.get_by_role("heading", name=heading, exact=True).first.wait_for()
    if charts:  # drawn charts (Vega renders to canvas or SVG), each with its numbers in a table
        page.locator("[data-testid=stVegaLiteChart] canvas, [data-testid=stVegaLiteChart] svg"
                     ).nth(charts - 1).wait_for()
    if tables:
        page.get_by_test_id("stDataFrame").nth(tables - 1).wait_for()
    assert page.get_by_test_id("stException").count() == 0
    snap(page, screenshots, shot)


def test_the_dose_pages_tabs_draw_their_figures_when_clicked(
        page: Any, rso_server: Server, screenshots: Path) -> None:
    """Only the open tab is computed: the scorecard appears when its tab is clicked, and the
    tab is still open after going to another page and back."""
    sign_in(page, rso_server, "rso1")
    open_page(page, "Dose")
    main = page.get_by_test_id("stMain")
    main.get_by_role("heading", name="Dose", exact=True).first.wait_for()
    assert main.get_by_text("Physician scorecard (normalised").count() == 0
    main.get_by_role("tab", name="Physicians").click()
    wait_idle(page)
    main.get_by_text("Physician scorecard (normalised").first.wait_for()
    page.locator("[data-testid=stVegaLiteChart] canvas, [data-testid=stVegaLiteChart] svg"
                 ).first.wait_for()
    assert main.get_by_text(HIGH_DOSE_PHYSICIAN).count() > 0  # named in the scorecard
    assert page.get_by_test_id("stException").count() == 0
    snap(page, screenshots, "dose_physicians")
    open_page(page, "Compliance")
    open_page(page, "Dose")
    main.get_by_text("Physician scorecard (normalised").first.wait_for()
    assert main.get_by_role("tab", name="Physicians").get_attribute("aria-selected") == "true"
