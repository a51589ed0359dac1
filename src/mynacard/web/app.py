"""The FastAPI application factory: layout, static files, errors (:mod:`mynacard.webkit.errors`: the request id,
the safety net, refusals and validation errors), login, and every part's router."""

from __future__ import annotations

import importlib
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.resources import files

import anyio.to_thread
from fastapi import Depends, FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import ChoiceLoader, FileSystemLoader
from starlette.middleware.sessions import SessionMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mynacard.context import Context
from mynacard.errors import DomainError
from mynacard.sealing import Sealer
from mynacard.webkit.csrf import csrf_field, csrf_guard
from mynacard.webkit.errors import SafetyNet, domain_error, validation_error

__all__ = ["PART_ROUTERS", "THREADS_ENV", "create_app"]

PART_ROUTERS = ("mynacard.kiosk.api", "mynacard.cards.api", "mynacard.jpki.api", "mynacard.jpki.admin_pages",
                "mynacard.plans.api", "mynacard.exchange.api", "mynacard.portal.api", "mynacard.mykey.api",
                "mynacard.office.api", "mynacard.window.api", "mynacard.accounts.api", "mynacard.jobs.api")
"""Modules with a ``router``; each part mounts its own routes and keeps its templates beside them. FastAPI
finds a request's route by trying every route in this order (twice), so the busiest machine-facing routes —
the kiosks', four requests per certificate — come first; no two parts share a path, so the order decides
nothing else."""

THREADS_ENV = "MYNACARD_WEB_THREADS"
"""How many requests one server process runs at once in its thread pool (anyio's default: 40). The pages and
APIs are synchronous and mostly CPU-bound Python; with a process per core (:mod:`mynacard.web.serve`), a few
threads each keep the cores busy without the threads of one process queuing on its interpreter lock (see
docs/PERFORMANCE.md)."""


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Before the process accepts a connection: size its thread pool, and let each part that has a
    ``warm_up()`` do the once-per-process work its first request would otherwise pay for."""
    threads = os.environ.get(THREADS_ENV)
    if threads:
        if not threads.isdigit() or int(threads) < 1:
            raise ValueError(f"{THREADS_ENV} must be a whole number of at least 1, not {threads!r}")
        anyio.to_thread.current_default_thread_limiter().total_tokens = int(threads)
    for module in PART_ROUTERS:
        warm_up = getattr(importlib.import_module(module), "warm_up", None)
        if warm_up is not None:
            await anyio.to_thread.run_sync(warm_up)
    yield


class SecureCookies:
    """Marks every cookie ``Secure`` when the request came over HTTPS (directly, or from a proxy uvicorn trusts),
    so that no cookie of the app is ever sent back over plain HTTP; on plain HTTP (a developer's machine, the
    demo) cookies work as they must."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("scheme") != "https":
            await self.app(scope, receive, send)
            return

        async def secure_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    (k, v + b"; Secure" if k.lower() == b"set-cookie" and b"secure" not in v.lower() else v)
                    for k, v in message.get("headers", [])]
            await send(message)

        await self.app(scope, receive, secure_send)


def _template_dirs() -> list[str]:
    dirs = [str(files("mynacard.web") / "templates")]
    for module in PART_ROUTERS:
        package = module.rsplit(".", 1)[0]
        folder = files(package) / "templates"
        if folder.is_dir():
            dirs.append(str(folder))
    return dirs


def create_app(ctx: Context) -> FastAPI:
    app = FastAPI(title="mynacard", version="0.1.0", docs_url="/api/docs", openapi_url="/api/openapi.json",
                  lifespan=_lifespan, dependencies=[Depends(csrf_guard)])
    app.state.ctx = ctx
    templates = Jinja2Templates(directory=_template_dirs()[0])
    templates.env.loader = ChoiceLoader([FileSystemLoader(d) for d in _template_dirs()])
    templates.env.globals["csrf_field"] = csrf_field
    app.state.templates = templates
    session_key = Sealer(ctx.settings.session_key).lookup_hash("web-session")
    # The signed session cookie holds no login (staff sessions live on the server, accounts.sessions), only the
    # browser's CSRF id and small page state; it ends with the browser session, and is Secure over HTTPS.
    app.add_middleware(SessionMiddleware, secret_key=session_key, same_site="lax", https_only=False,
                       session_cookie="mynacard_session", max_age=None)
    app.add_middleware(SecureCookies)
    app.mount("/static", StaticFiles(directory=str(files("mynacard.web") / "static")), name="static")

    app.add_exception_handler(DomainError, domain_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_middleware(SafetyNet)  # added last: the outermost, so that it sees what every other layer raised

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    for module in PART_ROUTERS:
        app.include_router(importlib.import_module(module).router)
    _wire(app, ctx)
    return app


def _wire(app: FastAPI, ctx: Context) -> None:
    """The seams between parts (docs/ARCHITECTURE.md): Mynaportal's card login over the JPKI relying party, and —
    only in a demo installation (:mod:`mynacard.installation`) — the server-side demonstration card reader on
    the login page and the chips of the demo's simulated cards at the window (:mod:`mynacard.window.demo`).
    The kiosk centre wires JPKI itself (:func:`mynacard.kiosk.service.build_centre`)."""
    from mynacard.installation import is_demo
    from mynacard.portal.card_login import PortalCardLogin

    app.state.card_authenticator = PortalCardLogin(ctx)
    with ctx.db.connect() as conn:
        demo = is_demo(conn)
    if os.environ.get("MYNACARD_PORTAL_DEMO_READER") == "1" and not demo:
        raise RuntimeError("MYNACARD_PORTAL_DEMO_READER=1 logs in with card files on the server: it works only in a "
                           "demo installation (mynacard demo), and this database is not one")
    app.state.portal_demo_reader = demo and os.environ.get("MYNACARD_PORTAL_DEMO_READER") != "0"
    if demo:
        from mynacard.window.demo import chip_at_window

        app.state.demo_chip_supply = chip_at_window
