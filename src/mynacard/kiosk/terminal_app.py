"""The kiosk's touch screen: a small web app served on the kiosk itself, in front of a :class:`KioskTerminal`.

The page is one screen at a time (start → PIN → menu → options → fee → printing → done); every step calls this
app, which talks to the card on the reader and to the centre. The app holds at most one customer's session:
starting a new one cancels whatever the previous customer left, so nothing carries over (the shared-terminal
failures of 2022–23). ``mynacard kiosk terminal`` serves it.
"""

from __future__ import annotations

import threading
from importlib.resources import files
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import ChoiceLoader, FileSystemLoader
from pydantic import BaseModel, Field

from mynacard.errors import Conflict, DomainError, InvalidInput
from mynacard.kiosk.auth import WrongPin
from mynacard.kiosk.model import DocumentKind, DocumentOptions, RefusalReason, Refused
from mynacard.kiosk.terminal import KioskSession, KioskTerminal
from mynacard.webkit.deps import render
from mynacard.webkit.i18n import register

__all__ = ["create_terminal_app"]

register({
    "kiosk.t.title": ("行政サービス　証明書交付", "Government services — certificates"),
    "kiosk.t.start_lead": ("マイナンバーカードをカードリーダーに置いて、「はじめる」を押してください。",
                           "Place your My Number Card on the reader and press Start."),
    "kiosk.t.start": ("はじめる", "Start"),
    "kiosk.t.pin_lead": ("利用者証明用電子証明書の暗証番号（数字4桁）を入力してください。",
                         "Enter the 4-digit PIN of the card's user-authentication certificate."),
    "kiosk.t.clear": ("訂正", "Clear"),
    "kiosk.t.ok": ("確認", "OK"),
    "kiosk.t.cancel": ("中止", "Cancel"),
    "kiosk.t.tries": ("暗証番号が違います。あと{n}回間違えるとロックされます。",
                      "Wrong PIN. {n} more wrong tries will block it."),
    "kiosk.t.holder": ("{name} 様", "{name}"),
    "kiosk.t.menu_lead": ("必要な証明書を選んでください。", "Choose a certificate."),
    "kiosk.t.yen": ("{n}円", "¥{n}"),
    "kiosk.t.options": ("記載内容を選んでください。", "Choose what the certificate shows."),
    "kiosk.t.members": ("記載する方", "People to include"),
    "kiosk.t.relationship": ("世帯主・続柄を記載する", "Show head of household and relationship"),
    "kiosk.t.domicile": ("本籍・筆頭者を記載する", "Show registered domicile and its head"),
    "kiosk.t.number": ("個人番号（マイナンバー）を記載する", "Show the individual number (My Number)"),
    "kiosk.t.copies": ("部数", "Copies"),
    "kiosk.t.next": ("次へ", "Next"),
    "kiosk.t.register_koseki": ("本籍地への利用登録申請をする", "Register for family-register certificates"),
    "kiosk.t.fee_lead": ("料金をお支払いください。", "Please pay the fee."),
    "kiosk.t.total": ("合計 {n}円", "Total ¥{n}"),
    "kiosk.t.insert": ("お金を入れる", "Insert money"),
    "kiosk.t.paid": ("投入金額 {n}円", "Paid ¥{n}"),
    "kiosk.t.print": ("印刷する", "Print"),
    "kiosk.t.printing": ("印刷しています。2分ほどかかることがあります。その場を離れないでください。",
                         "Printing. It can take up to two minutes; please stay."),
    "kiosk.t.done": ("印刷が終わりました。カードと証明書、おつりをお取りください。",
                     "Printed. Take your card, your certificate and your change."),
    "kiosk.t.change": ("おつり {n}円", "Change ¥{n}"),
    "kiosk.t.document": ("証明書番号", "Certificate number"),
    "kiosk.t.finish": ("終了", "Finish"),
    "kiosk.t.again": ("最初に戻る", "Back to start"),
    "kiosk.t.take_card": ("カードの取り忘れにご注意ください。", "Do not forget your card."),
})


class StartIn(BaseModel):
    pass


class PinIn(BaseModel):
    request_id: str
    pin: str = Field(max_length=16)


class OrderIn(BaseModel):
    request_id: str
    kind: str
    member_ids: list[int] = []
    include_relationship: bool = False
    include_domicile: bool = False
    include_individual_number: bool = False
    copies: int = 1
    paid_yen: int = 0


class RequestIn(BaseModel):
    request_id: str


def _refusal(exc: Refused) -> JSONResponse:
    body: dict[str, Any] = {"refused": exc.reason.value, "message_ja": exc.reason.message_ja,
                            "message_en": exc.reason.message_en}
    if isinstance(exc, WrongPin):
        body["tries_left"] = exc.tries_left
    return JSONResponse(body, status_code=403)


def create_terminal_app(terminal: KioskTerminal) -> FastAPI:
    """The touch-screen app of one kiosk. Its routes close over this kiosk's terminal, so they are written
    inside the factory (which makes it longer than ~80 lines)."""
    app = FastAPI(title=f"kiosk {terminal.kiosk_id}", docs_url=None, redoc_url=None, openapi_url=None)
    dirs = [str(files("mynacard.kiosk") / "templates"), str(files("mynacard.web") / "templates")]
    templates = Jinja2Templates(directory=dirs[0])
    templates.env.loader = ChoiceLoader([FileSystemLoader(d) for d in dirs])
    app.state.templates = templates
    app.mount("/static", StaticFiles(directory=str(files("mynacard.web") / "static")), name="static")
    lock = threading.Lock()
    current: dict[str, KioskSession] = {}
    """The one live session (by request ID); replaced, never shared, when the next customer starts."""

    def session_for(request_id: str) -> KioskSession:
        with lock:
            found = current.get(request_id)
        if found is None:
            raise Conflict("this session is over; start again")
        return found

    @app.exception_handler(DomainError)
    async def domain_error(request: Request, exc: DomainError) -> Response:
        status = 422 if isinstance(exc, InvalidInput) else 409
        return JSONResponse({"error": type(exc).__name__, "detail": str(exc)}, status_code=status)

    @app.get("/", response_class=HTMLResponse)
    def page(request: Request) -> HTMLResponse:
        return render(request, "kiosk_terminal.html", kiosk_id=terminal.kiosk_id,
                      refusals={r.value: (r.message_ja, r.message_en) for r in RefusalReason})

    @app.post("/terminal/start")
    def start() -> Response:
        with lock:
            previous = list(current.values())
            current.clear()
        for old in previous:  # the last customer walked away: cancel it before anything else happens
            if old.state in ("pin", "menu"):
                terminal.cancel(old, "abandoned")
        try:
            session = terminal.start()
        except Refused as exc:
            return _refusal(exc)
        with lock:
            current[session.request_id] = session
        return JSONResponse({"request_id": session.request_id})

    @app.post("/terminal/pin")
    def pin(body: PinIn) -> Response:
        session = session_for(body.request_id)
        try:
            menu = terminal.enter_pin(session, body.pin)
        except Refused as exc:
            if not isinstance(exc, WrongPin):
                _forget(session)
            return _refusal(exc)
        return JSONResponse({"menu": menu.to_dict()})

    @app.post("/terminal/family-register-use")
    def family_register_use(body: RequestIn) -> Response:
        session = session_for(body.request_id)
        try:
            menu = terminal.register_family_register_use(session)
        except Refused as exc:
            return _refusal(exc)
        return JSONResponse({"menu": menu.to_dict()})

    @app.post("/terminal/order")
    def order(body: OrderIn) -> Response:
        session = session_for(body.request_id)
        try:
            options = DocumentOptions(DocumentKind(body.kind), tuple(body.member_ids), body.include_relationship,
                                      body.include_domicile, body.include_individual_number, body.copies)
        except ValueError as exc:
            raise InvalidInput(str(exc)) from None
        try:
            result = terminal.order_and_print(session, options, body.paid_yen)
        except Refused as exc:
            if session.state == "aborted":
                _forget(session)
            return _refusal(exc)
        _forget(session)
        return JSONResponse({"document_id": result.document_id, "copies": result.copies,
                             "change_yen": result.change_yen})

    @app.post("/terminal/cancel")
    def cancel(body: RequestIn) -> Response:
        with lock:
            session = current.pop(body.request_id, None)
        if session is not None and session.state in ("pin", "menu"):
            terminal.cancel(session, "cancelled")
        return JSONResponse({"cancelled": session is not None})

    def _forget(session: KioskSession) -> None:
        with lock:
            current.pop(session.request_id, None)

    return app
