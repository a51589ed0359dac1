"""How the web app answers what went wrong: a request id on every answer, the global safety net for unexpected
exceptions, and validation errors that name the field but never echo what was sent.

- **Request id.** Every response carries ``X-Request-Id``: the caller's own when it is well formed (a proxy's or a
  load balancer's, so that logs join up), otherwise a fresh random one. Routes read it as
  ``request.state.request_id``.
- **The safety net** (:class:`SafetyNet`, the outermost middleware of the app). An exception that no handler
  turned into an answer is a bug: the caller gets a generic **500** with the request id — JSON for the API and
  for programs, a small page in Japanese (and English) for browsers — and the exception is logged **once**
  (logger ``mynacard.webkit.errors``) with the request id, the method, the route's path *template*, the
  exception's type and its traceback's frames. Nothing the caller sent is logged: no path values, no query
  string, no body, no header, and not the exception's message either (a database error's message quotes the
  statement's parameters, which may be a name or a sealed number). The net never turns a bug into a 4xx;
  :class:`~mynacard.errors.DomainError` keeps its own mapping (:data:`DOMAIN_STATUS`).
- **Validation errors** (:func:`validation_error`): 422 with each problem's ``loc`` (which field), ``msg`` and
  ``type``, without FastAPI's ``input`` (the value sent, which may be an individual number).
"""

from __future__ import annotations

import html
import logging
import re
import secrets
import traceback
from typing import Any

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mynacard.errors import Conflict, DomainError, Forbidden, InvalidInput, NotFound
from mynacard.webkit.deps import LoginRequired, render

__all__ = ["DOMAIN_STATUS", "REQUEST_ID_HEADER", "SafetyNet", "domain_error", "log", "request_id", "server_error",
           "validation_error", "wants_json"]

log = logging.getLogger("mynacard.webkit.errors")

REQUEST_ID_HEADER = "X-Request-Id"
_WELL_FORMED = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{7,31}")
"""An incoming request id is kept when it is 8–32 letters, digits, ``.``, ``_``, ``:`` or ``-`` (a proxy's
``$request_id``, a trace id; a UUID loses its hyphens), the size of the audit logs' ``request_id`` column;
anything else (too long, spaces, control characters) is replaced, never echoed."""
_UUID = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}")
_DROPPED = ("input", "url")
"""Keys of a pydantic error that are left out of a 422: ``input`` is the value sent."""


def _new_id() -> str:
    return secrets.token_hex(16)


def _request_id(incoming: str) -> str:
    """The caller's request id when it is well formed (a UUID without its hyphens), else a fresh one."""
    if _UUID.fullmatch(incoming):
        return incoming.replace("-", "").lower()
    return incoming if _WELL_FORMED.fullmatch(incoming) else _new_id()


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return ""


def request_id(request: Request) -> str:
    """This request's id (set by :class:`SafetyNet`; a fresh one outside the app's middleware)."""
    found = request.scope.get("state", {}).get("request_id")
    return str(found) if found else _new_id()


def wants_json(path: str, accept: str, authorization: bool) -> bool:
    """JSON for the API and for programs; a page only for a browser that asks for one (``Accept: text/html``)."""
    return path.startswith("/api/") or authorization or "text/html" not in accept


def _route_template(scope: Scope) -> str:
    """The matched route's path template (``/api/cards/{card_id}``), never the path with its values."""
    route = scope.get("route")
    template = getattr(route, "path", None)
    return str(template) if template else "(no route)"


def _frames(exc: BaseException) -> str:
    """The traceback without messages: each exception's type (with its cause or context) and its frames."""
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        frames = "".join(traceback.format_list(traceback.extract_tb(current.__traceback__)))
        parts.append(f"{type(current).__module__}.{type(current).__qualname__}\n{frames}")
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    return "caused by / during handling of ".join(reversed(parts)) if len(parts) > 1 else parts[0]


_PAGE = """<!doctype html>
<html lang="ja"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>サーバーエラー (Server error)</title>
<style>body{{font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem;line-height:1.6}}
code{{background:#eee;padding:.1rem .3rem}}</style></head>
<body><main>
<h1>サーバーで問題が発生しました</h1>
<p>ご不便をおかけしています。しばらくしてからもう一度お試しください。
お問い合わせの際は、次の番号をお伝えください。</p>
<p>お問い合わせ番号: <code>{rid}</code></p>
<hr>
<p lang="en">Something went wrong on our side. Please try again later; if you contact us, quote the request id
<code>{rid}</code>.</p>
<p><a href="/">トップページへ (Home)</a></p>
</main></body></html>
"""


def server_error(scope: Scope, rid: str) -> Response:
    """The generic 500: the request id and nothing about the failure."""
    if wants_json(scope.get("path", ""), _header(scope, b"accept"), bool(_header(scope, b"authorization"))):
        return JSONResponse({"error": "ServerError", "detail": "an unexpected error occurred on the server; "
                             "it has been logged with this request id", "request_id": rid}, status_code=500)
    return HTMLResponse(_PAGE.format(rid=html.escape(rid)), status_code=500)


class SafetyNet:
    """The outermost middleware: gives every request an id (in ``scope["state"]`` and the response's
    ``X-Request-Id``), and answers an exception that nothing handled with a generic 500, logged once."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = _request_id(_header(scope, REQUEST_ID_HEADER.lower().encode()))
        scope.setdefault("state", {})["request_id"] = rid
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = rid
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            log.error("unexpected %s in %s %s (request %s)\n%s", type(exc).__name__, scope.get("method", "?"),
                      _route_template(scope), rid, _frames(exc),
                      extra={"request_id": rid, "method": scope.get("method"), "route": _route_template(scope),
                             "exception": type(exc).__qualname__})
            if started:  # part of an answer is out: nothing sound can follow it, the connection just ends
                return
            await server_error(scope, rid)(scope, receive, send_with_id)


def _problem(error: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in error.items() if k not in _DROPPED}


async def validation_error(request: Request, exc: Exception) -> Response:
    """422 naming each field that is wrong (``loc``) and why, without the value that was sent."""
    assert isinstance(exc, RequestValidationError)
    problems = jsonable_encoder([_problem(dict(e)) for e in exc.errors()])
    headers = request.headers
    if wants_json(request.url.path, headers.get("accept", ""), "authorization" in headers):
        return JSONResponse({"detail": problems}, status_code=422)
    fields = ", ".join(".".join(str(p) for p in e.get("loc", ()) if p not in ("body", "query", "path", "form"))
                       or "?" for e in problems)
    return render(request, "error.html", status_code=422,
                  message=f"入力内容を確認してください (please check): {fields}")


DOMAIN_STATUS: dict[type[DomainError], int] = {InvalidInput: 422, NotFound: 404, Forbidden: 403, Conflict: 409,
                                               LoginRequired: 401}
"""The one place where a refusal becomes an HTTP status (any other :class:`DomainError`: 400)."""


async def domain_error(request: Request, exc: Exception) -> Response:
    """A refusal the caller can act on: its status (:data:`DOMAIN_STATUS`) and its message; a browser that
    needs to log in goes to the login page."""
    assert isinstance(exc, DomainError)
    status = next((code for kind, code in DOMAIN_STATUS.items() if isinstance(exc, kind)), 400)
    wants = request.url.path.startswith("/api/") or "application/json" in request.headers.get("accept", "")
    if status == 401 and not wants:
        return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
    if wants:
        body: dict[str, object] = {"error": type(exc).__name__, "detail": str(exc)}
        if isinstance(exc, InvalidInput):
            body["problems"] = exc.problems
        return JSONResponse(body, status_code=status)
    return render(request, "error.html", status_code=status, message=str(exc))
