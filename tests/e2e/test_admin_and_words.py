"""Issue 12 in a real browser: the Admin page stays on the tab in use after an add, its forms
are empty again, first start lists every unmet password rule, the Overview links the next
page, and the log form's levels hint and errors are in the form's own words."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import PASSWORD, Server
from tests.e2e.test_browser import choose, field, nav, wait_idle

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(600)]
#: A snake_case word: how a dictionary field name or a stored value looks.
SNAKE = re.compile(r"\b[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b")


def selected_tab(page: Any) -> str:
    return str(page.get_by_role("tab", selected=True).first.inner_text()).strip()


def open_tab(page: Any, name: str) -> None:
    page.get_by_role("tab", name=name).click()
    wait_idle(page)
    assert selected_tab(page) == name


def emptied(box: Any) -> None:
    """The field is empty again: the browser shows the rerun's cleared form a moment after the
    notice under load, so wait for it (up to 10 s) rather than read it once."""
    expect(box).to_have_value("", timeout=10_000)


def add(page: Any, button: str, notice: str) -> None:
    page.get_by_role("button", name=button).click()
    page.get_by_text(notice).wait_for()
    wait_idle(page)


def test_admin_tabs_forms_overview_and_the_log_form_in_plain_words(
    page: Any, fresh_server: Server
) -> None:
    page.goto(fresh_server.url)
    page.get_by_text("at least 10 characters, typed the same twice").wait_for()
    field(page, "Administrator username").fill("admin")
    field(page, "Password").fill("short")
    field(page, "Repeat the password").fill("shorter")
    page.get_by_role("button", name="Create administrator account").click()
    page.get_by_text("must be at least 10 characters").wait_for()
    page.get_by_text("the two passwords differ: type the same password twice").wait_for()
    field(page, "Administrator username").fill("admin")
    field(page, "Password").fill(PASSWORD)
    field(page, "Repeat the password").fill(PASSWORD)
    page.get_by_role("button", name="Create administrator account").click()
    page.get_by_text("Administrator admin created").wait_for()

    # The Overview points the administrator to the Admin page, by a link.
    nav(page, "Overview", heading="fluoro-audit")
    assert page.get_by_text("fluoro-audit log").count() == 0
    page.get_by_test_id("stMain").get_by_role("link", name="Admin").click()
    page.get_by_test_id("stHeading").get_by_text("Admin", exact=True).wait_for()
    wait_idle(page)
    page.get_by_text("Passwords need at least 10 characters").first.wait_for()

    # Sites and rooms: each add keeps the tab open and empties its form.
    open_tab(page, "Sites and rooms")
    field(page, "Site name").fill("Main Clinic")
    add(page, "Add site", "Site Main Clinic added.")
    assert selected_tab(page) == "Sites and rooms"
    emptied(field(page, "Site name"))
    choose(page, "Site", "Main Clinic")
    field(page, "Room name").fill("C-arm 1")
    field(page, "Make").fill("Siemens")
    add(page, "Add room", "Room C-arm 1 added at Main Clinic.")
    assert selected_tab(page) == "Sites and rooms"
    emptied(field(page, "Room name"))
    emptied(field(page, "Make"))

    open_tab(page, "Physicians")
    field(page, "Name").fill("Dr. Rivera")
    add(page, "Add physician", "Physician Dr. Rivera added.")
    assert selected_tab(page) == "Physicians"
    emptied(field(page, "Name"))

    # The log form: the levels hint of a caudal epidural, and errors in the form's words.
    nav(page, "Log procedure")
    choose(page, "Physician", "Dr. Rivera")
    choose(page, "Procedure", "CAUDAL")
    page.get_by_placeholder("Type a level: S1 to S5, coccyx or SIJ").wait_for()
    field(page, "Patient ID (MRN)").fill("MRN-WORDS")
    field(page, "Patient ID (MRN)").press("Enter")
    page.get_by_text("Views saved: pick at least 2 views for CAUDAL (AP, LAT, CLO or "
                     "OBL)").wait_for()
    page.get_by_text("Pregnancy status: required: choose Not applicable, Not pregnant, "
                     "Pregnant or Unknown").wait_for()
    wait_idle(page)
    alerts = page.get_by_test_id("stAlert").all_inner_texts()
    assert alerts and not [a for a in alerts if SNAKE.search(a)], alerts
