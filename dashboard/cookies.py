"""The session cookie: two small HTTP routes served beside the Streamlit app (dashboard/launcher.py
mounts them with st.App), because only an HTTP response can set an HttpOnly cookie.

- POST START_PATH, body = the one-time handoff code the signed-in page received: the code is
  exchanged (audit.sessions.redeem) for the session token, which goes into the cookie and
  nowhere else: `HttpOnly` (no script in the page can read it), `SameSite=Strict` (no other
  site's page sends it), `Secure` when the request came over https (directly, or as the reverse
  proxy's X-Forwarded-Proto says), `Path` the app's base path, no expiry (it ends with the
  browser; the server ends it sooner: idle timeout, sign-out).
- POST END_PATH: ends the session the cookie names (if it is still live) and deletes the cookie.

Both answer only same-origin requests (Sec-Fetch-Site, else the Origin header against Host), so
another site cannot sign a browser in as someone else (a login CSRF with its own code) or out.
The page calls them with fetch() from a script (dashboard.state.cookie_script); the reload that
follows carries the cookie on the WebSocket request, where st.context.cookies reads it.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from audit import sessions

#: The cookie's name. Its value is the session token itself (audit.sessions keeps its hash).
COOKIE_NAME = "fluoro_audit_session"
START_PATH = "_session/start"
END_PATH = "_session/end"
#: A handoff code is 43 characters; anything much longer is not one (and is not read whole).
_MAX_BODY = 256


def base_path() -> str:
    """The app's path prefix ("/" or "/<server.baseUrlPath>/")."""
    from streamlit import config

    base = str(config.get_option("server.baseUrlPath") or "").strip("/")
    return f"/{base}/" if base else "/"


def route_url(path: str) -> str:
    return base_path() + path


def _same_origin(request: Request) -> bool:
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site == "same-origin"
    origin = request.headers.get("origin")
    return origin is not None and urlsplit(origin).netloc == request.headers.get("host")


def _https(request: Request) -> bool:
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return request.url.scheme == "https" or forwarded == "https"


def _answer(request: Request, token: str | None) -> Response:
    response = Response(status_code=204, headers={"Cache-Control": "no-store"})
    options = {"path": base_path(), "secure": _https(request), "httponly": True,
               "samesite": "strict"}
    if token is None:
        response.delete_cookie(COOKIE_NAME, **options)  # type: ignore[arg-type]
    else:
        response.set_cookie(COOKIE_NAME, token, **options)  # type: ignore[arg-type]
    return response


def _redeem(handoff: str) -> str | None:
    from dashboard import state  # the app's engine, one per process

    return sessions.redeem(state.engine(), handoff)


def _end(token: str) -> None:
    from dashboard import state

    sessions.end_by_token(state.engine(), token, sessions.SIGNED_OUT)


async def start(request: Request) -> Response:
    if not _same_origin(request):
        return Response(status_code=403)
    body = b""
    async for chunk in request.stream():  # never more than a code's worth
        body += chunk
        if len(body) > _MAX_BODY:
            return Response(status_code=403)
    handoff = body.decode("ascii", "replace").strip()
    token = await run_in_threadpool(_redeem, handoff)  # the database off the event loop
    if token is None:  # unknown, used or expired code: nothing to set
        return Response(status_code=403)
    return _answer(request, token)


async def end(request: Request) -> Response:
    if not _same_origin(request):
        return Response(status_code=403)
    token = request.cookies.get(COOKIE_NAME)
    if token:
        await run_in_threadpool(_end, token)
    return _answer(request, None)


def routes() -> list[Route]:
    """The routes st.App serves before Streamlit's own."""
    return [Route(route_url(START_PATH), start, methods=["POST"]),
            Route(route_url(END_PATH), end, methods=["POST"])]
