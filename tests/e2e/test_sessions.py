"""Sessions and links in a real browser (issue 12): a reload stays signed in until sign-out; the
session cookie is HttpOnly and SameSite=Strict; a copy of it, put into another browser, works
while the session lives and is useless after sign-out or deactivation; a deep link reaches its
page after sign-in for a role that may open it, and nothing for one that may not."""

from __future__ import annotations

from typing import Any

import pytest

from audit import auth
from audit.auth import cli_actor
from audit.storage.engine import make_engine
from audit.vocab import Role
from dashboard.cookies import COOKIE_NAME
from tests.e2e.conftest import PASSWORD, VIEWPORT, Server, session_cookie
from tests.e2e.test_browser import field, sign_in, wait_idle

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(600)]


def add_account(server: Server, username: str, role: Role) -> str:
    engine = make_engine(server.db_url)
    try:
        auth.add_user(engine, cli_actor(), username, role, PASSWORD)
    finally:
        engine.dispose()
    return username


def signed_in_as(page: Any, username: str) -> None:
    page.get_by_test_id("stSidebar").get_by_text(f"Signed in as {username}").wait_for()


def sign_in_form(page: Any) -> None:
    field(page, "Username").wait_for()
    wait_idle(page)
    assert page.get_by_test_id("stSidebar").get_by_text("Signed in as").count() == 0


def other_browser(browser: Any, cookie: dict[str, Any] | None = None) -> Any:
    """A new browser context (another computer), holding a copy of `cookie` if given."""
    context = browser.new_context(viewport=VIEWPORT, timezone_id="America/Chicago")
    context.set_default_timeout(30_000)
    if cookie is not None:
        context.add_cookies([cookie])
    return context


def test_a_reload_stays_signed_in_until_sign_out(page: Any, demo_server: Server) -> None:
    user = add_account(demo_server, "reload-tech", Role.TECHNOLOGIST)
    sign_in(page, demo_server, user)
    cookie = session_cookie(page.context)
    assert cookie is not None
    assert (cookie["httpOnly"], cookie["sameSite"], cookie["path"]) == (True, "Strict", "/")
    assert COOKIE_NAME not in page.evaluate("document.cookie")  # no script can read it
    page.reload()
    signed_in_as(page, user)
    page.get_by_test_id("stHeading").get_by_text("Log procedure").wait_for()
    assert field(page, "Username").count() == 0

    page.get_by_role("button", name="Sign out").click()
    page.get_by_text("You have signed out.").wait_for()
    session_cookie(page.context, present=False)
    page.reload()
    sign_in_form(page)


def test_a_copied_cookie_works_while_the_session_lives_and_never_after_sign_out(
    page: Any, browser: Any, demo_server: Server
) -> None:
    user = add_account(demo_server, "copy-tech", Role.TECHNOLOGIST)
    sign_in(page, demo_server, user)
    cookie = session_cookie(page.context)
    thief = other_browser(browser, cookie)
    try:
        elsewhere = thief.new_page()
        elsewhere.goto(demo_server.url)
        signed_in_as(elsewhere, user)  # the copy works while the session lives

        page.get_by_role("button", name="Sign out").click()
        page.get_by_text("You have signed out.").wait_for()
        elsewhere.reload()
        sign_in_form(elsewhere)  # ended on the server: the copy is useless
        later = other_browser(browser, cookie)
        late = later.new_page()
        late.goto(demo_server.url)
        sign_in_form(late)
        later.close()
    finally:
        thief.close()


def test_a_copied_cookie_is_useless_once_the_account_is_deactivated(
    page: Any, browser: Any, demo_server: Server
) -> None:
    user = add_account(demo_server, "leaver-tech", Role.TECHNOLOGIST)
    sign_in(page, demo_server, user)
    copy = other_browser(browser, session_cookie(page.context))
    try:
        elsewhere = copy.new_page()
        elsewhere.goto(demo_server.url)
        signed_in_as(elsewhere, user)
        engine = make_engine(demo_server.db_url)
        auth.deactivate_user(engine, cli_actor(), user)
        engine.dispose()
        elsewhere.reload()
        elsewhere.get_by_text("Your account is no longer active").wait_for()
        sign_in_form(elsewhere)
        page.get_by_test_id("stSidebarNav").get_by_role("link", name="Records").click()
        page.get_by_text("Your account is no longer active").wait_for()  # at the next click
        sign_in_form(page)
    finally:
        copy.close()


def test_a_deep_link_reaches_compliance_after_a_quality_officer_signs_in(
    page: Any, demo_server: Server
) -> None:
    user = add_account(demo_server, "link-qo", Role.QUALITY_OFFICER)
    page.goto(f"{demo_server.url}/compliance")
    sign_in_form(page)
    assert page.get_by_text("Page not found").count() == 0
    field(page, "Username").fill(user)
    field(page, "Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    signed_in_as(page, user)
    page.get_by_test_id("stMain").get_by_role(
        "heading", name="Contrast-confirmation compliance").first.wait_for()
    assert page.url.rstrip("/").endswith("/compliance")
    assert page.get_by_text("Page not found").count() == 0


def test_a_deep_link_reaches_nothing_for_a_technologist(page: Any, demo_server: Server) -> None:
    user = add_account(demo_server, "link-tech", Role.TECHNOLOGIST)
    page.goto(f"{demo_server.url}/compliance")
    sign_in_form(page)
    field(page, "Username").fill(user)
    field(page, "Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    signed_in_as(page, user)
    page.get_by_text("Compliance is not available for your role (technologist).").wait_for()
    page.get_by_test_id("stHeading").get_by_text("Log procedure").wait_for()  # the start page
    wait_idle(page)
    main = page.get_by_test_id("stMain")
    assert main.get_by_role("heading", name="Contrast-confirmation compliance").count() == 0
    assert not page.url.rstrip("/").endswith("/compliance")
    assert page.get_by_text("Page not found").count() == 0

    session_cookie(page.context)  # signed in: typing the address again reaches nothing either
    page.goto(f"{demo_server.url}/compliance")
    page.get_by_text("Compliance is not available for your role (technologist).").wait_for()
    signed_in_as(page, user)
    assert main.get_by_role("heading", name="Contrast-confirmation compliance").count() == 0


def test_a_link_to_a_record_opens_it_after_sign_in(page: Any, demo_server: Server) -> None:
    page.goto(f"{demo_server.url}/records?record=5")
    sign_in_form(page)
    field(page, "Username").fill("admin")
    field(page, "Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    signed_in_as(page, "admin")
    page.get_by_test_id("stMain").get_by_text("Record 5", exact=True).wait_for()
    assert "record=5" in page.url
