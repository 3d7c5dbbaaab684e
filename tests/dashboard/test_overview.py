"""The Overview page points each role to its next action in the app: a sentence and a link to
the page where it is done (issue 12: an administrator was told to use `fluoro-audit log`)."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from audit.auth import Actor, cli_actor
from audit.log.service import ProcedureLog
from tests.conftest import valid_record
from tests.dashboard.conftest import AppFactory, page


def overview(app: AppFactory, user: str) -> AppTest:
    at = app(user).run().switch_page(page("home")).run()
    assert not at.exception
    return at


def shown(at: AppTest) -> str:
    return " ".join(str(e.value) for e in [*at.markdown, *at.info, *at.caption])


def links(at: AppTest) -> list[str]:
    return [link.value for link in at.page_link]


@pytest.mark.parametrize(("user", "sentence", "link"), [
    ("tech1", "Log the case you have just finished", "Log procedure"),
    ("drchen", "Look up your patients' procedures", "Records"),
    ("quality", "See how often contrast confirmed the needle placement", "Compliance"),
    ("rso1", "Follow up the open dose alerts", "Alerts"),
    ("boss", "Add the people who use fluoro-audit", "Admin"),
])
def test_each_role_is_pointed_to_its_next_action_with_a_link(
    app: AppFactory, people: dict[str, Actor], service: ProcedureLog, user: str,
    sentence: str, link: str,
) -> None:
    service.log(valid_record(), cli_actor())
    at = overview(app, user)
    assert "Next" in [h.value for h in at.subheader]
    assert sentence in shown(at)
    assert link in links(at)
    assert "fluoro-audit log" not in shown(at)


def test_an_empty_log_points_who_may_log_to_the_form(
    app: AppFactory, people: dict[str, Actor]
) -> None:
    at = overview(app, "boss")
    assert "No procedures yet. Log the first one" in shown(at)
    assert links(at) == ["Log procedure", "Admin"]  # each page linked once
    assert "fluoro-audit log" not in shown(at)


def test_an_empty_log_links_no_page_a_role_cannot_open(
    app: AppFactory, people: dict[str, Actor]
) -> None:
    at = overview(app, "quality")
    assert "Technologists log them on the Log procedure page" in shown(at)
    assert "Log procedure" not in links(at)
    assert links(at) == ["Compliance", "Reconciliation"]
