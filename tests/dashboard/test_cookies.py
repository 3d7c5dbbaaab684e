"""The session-cookie routes (dashboard/cookies.py), called as the ASGI app st.App serves them,
on both databases: a handoff code becomes an HttpOnly, SameSite=Strict cookie (Secure over https)
once, only for a same-origin request; the end route revokes the session its cookie names and
deletes the cookie."""

from __future__ import annotations

import asyncio
from http.cookies import SimpleCookie
from typing import Any

import pytest
from starlette.applications import Starlette

from audit import sessions
from audit.auth import Actor
from dashboard import cookies, state

SAME_ORIGIN = {"sec-fetch-site": "same-origin", "host": "clinic.example"}


def call(path: str, body: bytes = b"", headers: dict[str, str] | None = None,
         method: str = "POST", scheme: str = "http") -> tuple[int, dict[str, list[str]]]:
    """One request to the routes: (status, response headers, lower-case names)."""
    app = Starlette(routes=cookies.routes())
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": method, "scheme": scheme, "path": path, "raw_path": path.encode(),
             "query_string": b"", "root_path": "", "client": ("127.0.0.1", 1),
             "server": ("clinic.example", 443 if scheme == "https" else 80),
             "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]}
    sent: list[dict[str, Any]] = []
    chunks = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        return chunks.pop(0) if chunks else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    found: dict[str, list[str]] = {}
    for name, value in start["headers"]:
        found.setdefault(name.decode().lower(), []).append(value.decode())
    return start["status"], found


def set_cookie(headers: dict[str, list[str]]) -> tuple[SimpleCookie, str]:
    [line] = headers["set-cookie"]
    jar: SimpleCookie = SimpleCookie()
    jar.load(line)
    return jar, line.lower()


@pytest.fixture
def handoff(people: dict[str, Actor]) -> tuple[int, str]:
    return sessions.start(state.engine(), "tech1")


def test_a_handoff_becomes_an_httponly_strict_cookie_once(handoff: tuple[int, str]) -> None:
    session_id, code = handoff
    status, headers = call("/_session/start", code.encode(), SAME_ORIGIN)
    assert status == 204
    jar, line = set_cookie(headers)
    token = jar[cookies.COOKIE_NAME].value
    assert "httponly" in line and "samesite=strict" in line and "path=/" in line
    assert "secure" not in line and "max-age" not in line and "expires" not in line
    assert headers["cache-control"] == ["no-store"]
    live = sessions.resume(state.engine(), token)
    assert isinstance(live, sessions.Live) and live.session_id == session_id
    assert call("/_session/start", code.encode(), SAME_ORIGIN)[0] == 403  # used


@pytest.mark.parametrize("how", ["scheme", "proxy"])
def test_the_cookie_is_secure_over_https(handoff: tuple[int, str], how: str) -> None:
    headers = {**SAME_ORIGIN, **({"x-forwarded-proto": "https"} if how == "proxy" else {})}
    status, answer = call("/_session/start", handoff[1].encode(), headers,
                          scheme="https" if how == "scheme" else "http")
    assert status == 204 and "secure" in set_cookie(answer)[1]


@pytest.mark.parametrize("headers", [
    {"sec-fetch-site": "cross-site", "host": "clinic.example"},
    {"sec-fetch-site": "same-site", "host": "clinic.example"},
    {"origin": "https://attacker.example", "host": "clinic.example"},
    {"host": "clinic.example"},  # neither header: refused
], ids=["cross-site", "same-site", "other-origin", "no-origin"])
def test_another_site_cannot_use_a_handoff(handoff: tuple[int, str],
                                           headers: dict[str, str]) -> None:
    assert call("/_session/start", handoff[1].encode(), headers) == (403, {"content-length":
                                                                           ["0"]})
    assert sessions.redeem(state.engine(), handoff[1])  # still unused


def test_an_origin_matching_the_host_is_enough(handoff: tuple[int, str]) -> None:
    headers = {"origin": "http://clinic.example", "host": "clinic.example"}
    assert call("/_session/start", handoff[1].encode(), headers)[0] == 204


def test_a_wrong_code_and_a_get_set_nothing(handoff: tuple[int, str]) -> None:
    assert call("/_session/start", b"not-a-code", SAME_ORIGIN)[0] == 403
    assert call("/_session/start", b"x" * 100_000, SAME_ORIGIN)[0] == 403
    assert call("/_session/start", handoff[1].encode(), SAME_ORIGIN, method="GET")[0] == 405


def test_the_end_route_revokes_the_session_and_deletes_the_cookie(
    handoff: tuple[int, str]
) -> None:
    session_id, code = handoff
    token = sessions.redeem(state.engine(), code)
    cookie = {**SAME_ORIGIN, "cookie": f"{cookies.COOKIE_NAME}={token}"}
    assert call("/_session/end", headers={**cookie, "sec-fetch-site": "cross-site"})[0] == 403
    assert isinstance(sessions.resume(state.engine(), token), sessions.Live)
    status, headers = call("/_session/end", headers=cookie)
    assert status == 204
    jar, line = set_cookie(headers)
    assert jar[cookies.COOKIE_NAME].value == "" and "max-age=0" in line
    assert sessions.resume(state.engine(), token) == sessions.Ended(session_id,
                                                                    sessions.SIGNED_OUT)
    assert call("/_session/end", headers=SAME_ORIGIN)[0] == 204  # no cookie: nothing to end
