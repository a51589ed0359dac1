"""Cross-site request forgery (CSRF) protection for every form POST of the web app.

A browser session (Starlette's session cookie, signed under the session key) carries a random id; a form's
hidden ``csrf`` field carries a keyed hash of it, under the session key too (templates write it with
``{{ csrf_field() }}``). :func:`csrf_guard`, a dependency of every route, refuses a POST whose body another
site's page could send (form-encoded, multipart or plain text) unless the field matches, and refuses any unsafe
request whose ``Origin`` names another site. Requests without a login cookie have nothing to forge, except
logins themselves (:func:`login_csrf`). Requests with an ``Authorization`` header (programs with API keys)
carry no ambient credentials and are not checked; JSON bodies cannot be sent cross-site without a CORS
preflight, which the app never grants.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any
from urllib.parse import urlsplit

from fastapi import Request
from jinja2 import pass_context
from markupsafe import Markup

from mynacard.errors import Forbidden
from mynacard.sealing import Sealer

__all__ = ["FIELD", "csrf_field", "csrf_guard", "csrf_token", "login_csrf"]

FIELD = "csrf"
_NOT_CREDENTIALS = {"mynacard_session", "lang"}
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data", "text/plain")


def csrf_token(request: Request) -> str:
    """This browser session's token (the session gets its random id on first use)."""
    session = request.scope.get("session")
    if session is None:
        return ""
    browser = session.get("bid")
    if not browser:
        browser = session["bid"] = secrets.token_urlsafe(18)
    key = Sealer(request.app.state.ctx.settings.session_key).lookup_hash("csrf")
    return hmac.new(key.encode(), browser.encode(), "sha256").hexdigest()[:40]


@pass_context
def csrf_field(context: Any) -> Markup:
    """The hidden form field, for templates: ``{{ csrf_field() }}``."""
    return Markup('<input type="hidden" name="csrf" value="{}">').format(csrf_token(context["request"]))


def _foreign_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return False  # "null" (a no-referrer page) proves nothing either way: the token decides
    return urlsplit(origin).netloc.lower() != request.headers.get("host", "").lower()


async def _check(request: Request, *, logged_in_only: bool) -> None:
    if request.method in ("GET", "HEAD", "OPTIONS") or "authorization" in request.headers:
        return
    if logged_in_only and not set(request.cookies) - _NOT_CREDENTIALS:
        return  # no login cookie: nothing another site could borrow (the login forms check regardless)
    if _foreign_origin(request):
        raise Forbidden("request from another site refused (CSRF)")
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type and content_type not in _FORM_TYPES:
        return  # a body that another site's page cannot send
    # FastAPI has parsed (and Starlette cached) the form already when the route takes form fields; otherwise
    # this parses it once, and the route's own ``request.form()`` gets the same.
    sent = (await request.form()).get(FIELD) if content_type != "text/plain" else None
    expected = csrf_token(request)
    if not isinstance(sent, str) or not expected or not hmac.compare_digest(sent, expected):
        raise Forbidden("the form's security token is missing or out of date: reload the page and send it again")


async def csrf_guard(request: Request) -> None:
    """Every route: refuse a forgeable request with a login cookie that does not carry this browser session's
    token (→ 403)."""
    await _check(request, logged_in_only=True)


async def login_csrf(request: Request) -> None:
    """The login forms (staff and Mynaportal): the token is needed without a login cookie too, so that another
    site cannot log a browser in to an account of its choosing."""
    await _check(request, logged_in_only=False)
