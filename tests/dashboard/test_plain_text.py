"""User-supplied text is shown as typed, never as Markdown: a name or note written as a link or
an image must not become a live link, nor make the browser fetch anything (issue 10)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pandas as pd
from sqlalchemy import Engine
from streamlit.testing.v1 import AppTest

from audit import reference_data as admin
from audit.auth import Actor, cli_actor
from audit.log.service import ProcedureLog
from dashboard.widgets import plain
from tests.conftest import valid_record
from tests.dashboard.conftest import AppFactory, page
from tests.dashboard.test_log_procedure import FORM, fill, log_page, open_form, save

LINK = "[x](https://evil.example)"
IMAGE = "![b](https://evil.example/beacon.png)"
HOSTILE = f"{LINK} {IMAGE}"
DOCTOR = f"Dr. {LINK}"
SITE = f"Site {LINK}"
ROOM = f"Room {IMAGE}"
#: Proto fields Streamlit renders as Markdown: element bodies, labels, help tooltips.
MARKDOWN_FIELDS = {"body", "label", "help"}


def _strings(message: Any) -> Iterator[str]:
    """The Markdown-rendered strings of one proto message, nested messages included."""
    for field, value in message.ListFields():
        values = value if isinstance(value, Sequence) and not isinstance(value, str) \
            else [value]
        for item in values:
            if hasattr(item, "ListFields"):
                yield from _strings(item)
            elif isinstance(item, str) and field.name in MARKDOWN_FIELDS:
                yield item


def rendered(at: AppTest) -> list[str]:
    """Every string of the page that Streamlit renders as Markdown (st.table cells too)."""
    found: list[str] = []

    def walk(node: Any) -> None:
        proto = getattr(node, "proto", None)
        if proto is not None and hasattr(proto, "ListFields"):
            found.extend(_strings(proto))
        if getattr(node, "type", None) == "table":
            frame: pd.DataFrame = node.value
            found.extend(str(c) for c in frame.columns)
            found.extend(str(v) for v in frame.to_numpy().ravel())
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at._tree)
    return found


def assert_plain(at: AppTest, *shown: str) -> None:
    """No Markdown string builds a link, image or autolink from the hostile text, and each of
    `shown` appears escaped (so the test checks text that is really on the page)."""
    assert not at.exception, [e.value for e in at.exception]
    strings = rendered(at)
    live = [s for s in strings if "](https://evil.example" in s or "https://evil.example" in s]
    assert live == []
    body = "\n".join(strings)
    for text in shown:
        assert plain(text) in body, f"{text!r} is not shown"


def hostile_record(service: ProcedureLog, engine: Engine) -> int:
    system = cli_actor()
    admin.add_site(engine, system, SITE)
    admin.add_room(engine, system, SITE, ROOM)
    admin.add_physician(engine, system, DOCTOR)
    [result] = service.log_many([valid_record(site=SITE, room=ROOM, physician=DOCTOR,
                                              notes=HOSTILE, patient_id="MRN0666")], system)
    return result.record_id


def test_plain_escapes_links_images_and_autolinks() -> None:
    assert plain(LINK) == "\\[x\\](https:\u2060//evil.example)"
    assert plain(IMAGE).startswith(r"!\[b\]")
    assert plain("www.evil.example a@b.c <https://x>") == \
        "www\u2060.evil.example a@\u2060b.c \\<https:\u2060//x\\>"
    assert plain("- one\n1. two") == "\\- one\n1\\. two"
    assert plain("required: say why (0-59).") == "required: say why (0-59)."
    assert plain("by_level _emphasis_") == r"by_level \_emphasis\_"  # only at a word's edge
    assert plain(None) == ""


def test_record_detail_and_history_show_user_text_literally(
    app: AppFactory, people: dict[str, Actor], service: ProcedureLog, engine: Engine
) -> None:
    rid = hostile_record(service, engine)
    service.amend(rid, {"notes": f"{HOSTILE} again"}, cli_actor(), version=1, reason=HOSTILE)
    at = app("boss").run().switch_page(page("records")).run()
    at = at.number_input(key="rec_open").set_value(rid).run()
    assert_plain(at, DOCTOR, SITE, ROOM, HOSTILE, f"{HOSTILE} again")
    # Voided with a hostile reason: the VOID banner quotes it.
    at.text_input(key=f"void_{rid}_2_reason").input(HOSTILE)
    [button] = [b for b in at.button if b.label == "Void record"]
    at = button.click().run()
    assert service.get(rid, cli_actor())["status"] == "void"
    assert_plain(at, HOSTILE)


def test_admin_notices_and_errors_show_names_literally(
    app: AppFactory, people: dict[str, Actor], engine: Engine
) -> None:
    at = app("boss").run().switch_page(page("admin")).run()
    at.text_input(key="ap_name").input(DOCTOR)
    [button] = [b for b in at.button if b.label == "Add physician"]
    at = button.click().run()
    assert_plain(at, DOCTOR)
    at.text_input(key="as_name").input(SITE)
    [button] = [b for b in at.button if b.label == "Add site"]
    at = button.click().run()
    assert_plain(at, SITE)
    at.text_input(key="as_name").input(SITE)  # a duplicate: the error quotes the name
    [button] = [b for b in at.button if b.label == "Add site"]
    at = button.click().run()
    assert at.error
    assert_plain(at)
    at.selectbox(key="ep_doc").select(next(
        p["physician_id"] for p in admin.list_physicians(engine) if p["name"] == DOCTOR)).run()
    assert_plain(at)


def test_log_procedure_shows_names_literally(
    app: AppFactory, people: dict[str, Actor], service: ProcedureLog, engine: Engine
) -> None:
    hostile_record(service, engine)
    at = log_page(app)
    at.selectbox(key="lp_site").select(SITE).run()
    at = fill(open_form(at, room=ROOM, physician=DOCTOR),
              {**FORM, "dap_value": "0.71", "notes": HOSTILE})  # the room shows Gy·cm²
    assert_plain(at, ROOM)  # the DAP unit's help names the room
    at = save(at)
    assert not at.error and not at.warning, [e.value for e in [*at.error, *at.warning]]
    assert_plain(at, ROOM, DOCTOR)  # the saved summary names room and physician
