"""Single sign-on in a real browser (issue 12), against a real OpenID Connect provider: the
oidc-provider-mock server (a Flask OIDC provider, run on a thread on a free port) whose sign-in
form asks for the subject, which it also gives as the e-mail claim.

The app is started as `serve --secrets FILE` starts it, with an [auth] section naming the
provider. A person who signs in there lands in fluoro-audit as the account whose username is
that address (any case), with fluoro-audit's own session; an address with no account is told so
in words; signing out ends the provider's identity too, so a reload shows the sign-in form
rather than signing the person straight back in."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import oidc_provider_mock
import pytest
from sqlalchemy import select

from audit import auth
from audit.auth import cli_actor
from audit.storage.engine import make_engine, migrate, read_session
from audit.storage.models import AuditEvent
from audit.vocab import AuditAction, Role
from tests.e2e.conftest import (
    PASSWORD,
    Server,
    free_port,
    session_cookie,
    start_server,
    stop_server,
)
from tests.e2e.test_browser import field, wait_idle

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(600)]

OFFICER = "qo@example.org"
JOINER = "\u2060"  # dashboard.widgets._JOINER


@pytest.fixture(scope="module")
def provider() -> Iterator[str]:
    """The provider's address (its discovery document is under /.well-known/)."""
    with oidc_provider_mock.run_server_in_thread() as server:
        yield f"http://localhost:{server.server_port}"


@pytest.fixture(scope="module")
def sso_server(tmp_path_factory: pytest.TempPathFactory, provider: str) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("sso")
    db_path = tmp / "sso.sqlite3"
    migrate(f"sqlite:///{db_path}")
    engine = make_engine(f"sqlite:///{db_path}")
    auth.add_user(engine, cli_actor(), "admin", Role.ADMIN, PASSWORD)
    auth.add_user(engine, cli_actor(), OFFICER, Role.QUALITY_OFFICER, PASSWORD)
    engine.dispose()
    port = free_port()
    secrets_file = tmp / "secrets.toml"
    secrets_file.write_text(
        "[auth]\n"
        f'redirect_uri = "http://127.0.0.1:{port}/oauth2callback"\n'
        f'cookie_secret = "{secrets.token_hex(32)}"\n'
        'client_id = "fluoro-audit"\n'
        'client_secret = "not-a-real-secret"\n'
        f'server_metadata_url = "{provider}/.well-known/openid-configuration"\n')
    proc, server = start_server(db_path, tmp / "streamlit.log", port=port,
                                options=("--secrets.files", str(secrets_file)))
    yield server
    stop_server(proc)


def sign_on(page: Any, server: Server, email: str) -> None:
    """From the app's sign-in page through the provider's form, as `email`."""
    page.goto(server.url)
    field(page, "Username").wait_for()
    wait_idle(page)
    page.get_by_role("button", name="Sign in with single sign-on").click()
    page.locator("input[name=sub]").fill(email)
    page.get_by_role("button", name="Authorize").click()


def shown(locator: Any) -> str:
    """A locator's text as read: without the invisible joiner dashboard.widgets.plain() puts
    into anything that looks like an address, so Markdown never makes it a link."""
    locator.wait_for()
    return str(locator.inner_text()).replace(JOINER, "")


def signed_in_as(page: Any, username: str) -> None:
    sidebar = page.get_by_test_id("stSidebar").get_by_text("Signed in as")
    assert f"Signed in as {username}" in shown(sidebar)


def login_events(server: Server) -> list[AuditEvent]:
    engine = make_engine(server.db_url)
    try:
        with read_session(engine) as session:
            return list(session.scalars(select(AuditEvent).where(
                AuditEvent.action.in_([AuditAction.LOGIN, AuditAction.LOGIN_FAILED]))
                .order_by(AuditEvent.id)))
    finally:
        engine.dispose()


def test_single_sign_on_signs_in_the_account_named_by_the_address(
        page: Any, sso_server: Server) -> None:
    sign_on(page, sso_server, "QO@Example.org")  # e-mail addresses compare without case
    signed_in_as(page, OFFICER)
    assert session_cookie(page.context) is not None  # fluoro-audit's own session
    event = login_events(sso_server)[-1]
    assert (event.actor, event.action) == (OFFICER, AuditAction.LOGIN)
    assert "single sign-on" in (event.reason or "")
    page.reload()
    signed_in_as(page, OFFICER)

    page.get_by_role("button", name="Sign out").click()
    # Signing out of fluoro-audit ends the identity at the provider too (RP-initiated logout);
    # this provider asks to confirm, then sends the browser back to the app.
    page.get_by_role("button", name="End session").click()
    field(page, "Username").wait_for()
    session_cookie(page.context, present=False)
    page.reload()  # the provider's identity ended with the session: no silent sign-in
    field(page, "Username").wait_for()
    wait_idle(page)
    page.wait_for_timeout(1500)
    assert page.get_by_test_id("stSidebar").get_by_text("Signed in as").count() == 0
    assert page.get_by_role("button", name="Sign in with single sign-on").is_visible()


def test_an_address_without_an_account_is_told_so_and_audited(
        page: Any, sso_server: Server) -> None:
    sign_on(page, sso_server, "stranger@example.org")
    message = page.get_by_test_id("stAlertContentError")
    assert "No fluoro-audit account can sign in as stranger@example.org" in shown(message)
    assert page.get_by_test_id("stSidebar").get_by_text("Signed in as").count() == 0
    event = login_events(sso_server)[-1]
    assert (event.actor, event.action) == ("stranger@example.org", AuditAction.LOGIN_FAILED)
    assert "no account" in (event.reason or "")
    page.get_by_role("button", name="Use another account").click()
    page.get_by_role("button", name="End session").click()  # the provider confirms
    page.get_by_role("button", name="Sign in with single sign-on").wait_for()
    assert page.get_by_test_id("stAlertContentError").count() == 0


def test_the_password_form_stays_beside_single_sign_on(page: Any, sso_server: Server) -> None:
    page.goto(sso_server.url)
    field(page, "Username").fill("admin")
    field(page, "Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.get_by_test_id("stSidebar").get_by_text("Signed in as admin").wait_for()


def test_a_secrets_file_that_is_not_there_is_refused_by_serve(tmp_path: Path) -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "audit.cli", "--db", f"sqlite:///{tmp_path / 'x.sqlite3'}",
         "serve", "--secrets", str(tmp_path / "missing.toml")],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "--secrets: no file at" in done.stderr
