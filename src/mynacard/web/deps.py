"""Request dependencies shared by every part's routes: the context, the caller, the page renderer."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from mynacard.accounts import service as accounts
from mynacard.context import Context
from mynacard.errors import DomainError
from mynacard.principal import Principal, Role
from mynacard.web.i18n import LANGUAGES, translator

__all__ = ["LoginRequired", "context", "language", "optional_principal", "principal", "render"]


class LoginRequired(DomainError):
    """No credentials on a route that needs them (→ 401, or the login page for browsers)."""


def context(request: Request) -> Context:
    ctx: Context = request.app.state.ctx
    return ctx


def language(request: Request) -> str:
    lang = request.query_params.get("lang") or request.cookies.get("lang") or "ja"
    return lang if lang in LANGUAGES else "ja"


def optional_principal(request: Request) -> Principal | None:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return accounts.authenticate_api_key(context(request), auth[7:].strip())
    session = request.scope.get("session") or {}
    who = session.get("principal")
    if isinstance(who, dict):
        return Principal(Role(who["role"]), who["subject"], who.get("municipality_code"))
    return None


def principal(request: Request) -> Principal:
    who = optional_principal(request)
    if who is None:
        raise LoginRequired("login required")
    return who


def render(request: Request, template: str, status_code: int = 200, **values: Any) -> HTMLResponse:
    """A page in the caller's language, inside the shared layout."""
    templates: Jinja2Templates = request.app.state.templates
    lang = language(request)
    response = templates.TemplateResponse(request, template, {
        "t": translator(lang), "lang": lang, "principal": optional_principal(request), **values},
        status_code=status_code)
    if request.query_params.get("lang") in LANGUAGES:
        response.set_cookie("lang", lang, max_age=365 * 86400, samesite="lax")
    return response
