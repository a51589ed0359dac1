"""Request dependencies shared by every part's routes: the context, the clock, the caller, the page renderer."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from mynacard.accounts import service as accounts
from mynacard.context import Context
from mynacard.errors import DomainError
from mynacard.principal import Principal
from mynacard.webkit.csrf import csrf_token
from mynacard.webkit.i18n import LANGUAGES, translator

__all__ = ["STAFF_COOKIE", "LoginRequired", "client_address", "context", "language", "now", "optional_principal",
           "principal", "render"]

STAFF_COOKIE = "mynacard_staff"
"""The staff session's cookie: a random token, checked against the server's session table on every request."""


class LoginRequired(DomainError):
    """No credentials on a route that needs them (→ 401, or the login page for browsers)."""


def context(request: Request) -> Context:
    ctx: Context = request.app.state.ctx
    return ctx


def now(request: Request) -> datetime:
    """The one clock of the HTTP layer: the installation context's (:meth:`Context.now`), which a test or a
    demo sets."""
    return context(request).now()


def client_address(request: Request) -> str:
    """The caller's address (the proxy's ``X-Forwarded-For`` only where uvicorn trusts the proxy)."""
    return request.client.host if request.client else "unknown"


def language(request: Request) -> str:
    lang = request.query_params.get("lang") or request.cookies.get("lang") or "ja"
    return lang if lang in LANGUAGES else "ja"


def optional_principal(request: Request) -> Principal | None:
    """The caller: an API key (``Authorization: Bearer``) or a live staff session; looked up once a request."""
    if "principal" in request.scope.get("state", {}):
        who: Principal | None = request.state.principal
        return who
    auth = request.headers.get("authorization", "")
    who = None
    if auth.lower().startswith("bearer "):
        who = accounts.authenticate_api_key(context(request), auth[7:].strip())
    elif request.cookies.get(STAFF_COOKIE):  # sessions expire by the wall clock, not a simulated one
        who = accounts.resolve_session(context(request), request.cookies[STAFF_COOKIE], datetime.now(UTC))
    request.state.principal = who
    return who


def principal(request: Request) -> Principal:
    who = optional_principal(request)
    if who is None:
        raise LoginRequired("login required")
    return who


def render(request: Request, template: str, status_code: int = 200, **values: Any) -> HTMLResponse:
    """A page in the caller's language, inside the shared layout."""
    templates: Jinja2Templates = request.app.state.templates
    lang = language(request)
    values.setdefault("csrf", csrf_token(request))
    response = templates.TemplateResponse(request, template, {
        "t": translator(lang), "lang": lang, "principal": optional_principal(request), **values},
        status_code=status_code)
    if request.query_params.get("lang") in LANGUAGES:
        response.set_cookie("lang", lang, max_age=365 * 86400, samesite="lax")
    return response
