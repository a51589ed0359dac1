"""The kiosk (マルチコピー機): the card reader, the printer, and the centre on the other end of the line.

A :class:`KioskTerminal` serves one customer at a time. Each customer's session (:class:`KioskSession`) is
its own object — the request ID made when the card went on the reader, the challenge, the card, the menu —
and nothing of it survives the session (the 2023 kiosks printed the *previous* customer's document from a
"current job" kept between requests). Before printing, the terminal checks the PDF's signed facts: the request
ID must be this session's, the document the one released, the bytes the ones the centre named; otherwise it
aborts and prints nothing. A timeout aborts the whole request at the centre and prints nothing.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.client
import json
import os
import ssl
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from mynacard.errors import Conflict, DomainError, Forbidden, InvalidInput, NotFound
from mynacard.kiosk import pdf
from mynacard.kiosk.auth import KioskCard, PinBlocked, WrongPin
from mynacard.kiosk.centre import Centre, b64
from mynacard.kiosk.model import DocumentOptions, RefusalReason, Refused, RequestId
from mynacard.kiosk.municipal import Menu
from mynacard.principal import Principal, Role

__all__ = [
    "CardReader",
    "CentreClient",
    "Delivery",
    "HttpCentreClient",
    "KioskSession",
    "KioskTerminal",
    "KioskTimeout",
    "LineFault",
    "LocalCentreClient",
    "MemoryPrinter",
    "Opened",
    "PrintResult",
    "Printer",
    "PrinterFault",
    "SpoolPrinter",
    "VirtualReader",
]


@dataclass(frozen=True)
class Opened:
    request_id: str
    challenge: bytes


@dataclass(frozen=True)
class Delivery:
    """A document the centre released for printing."""

    request_id: str
    document_id: str
    pdf: bytes = field(repr=False)
    pdf_sha256: str
    copies: int
    change_yen: int


class CentreClient(Protocol):
    """The kiosk's line to the certificate issuance centre."""

    def open_session(self, request_id: str) -> Opened: ...

    def authenticate(self, request_id: str, certificate: bytes, signature: bytes) -> Menu: ...

    def order(self, request_id: str, options: DocumentOptions, paid_yen: int, timeout_ms: int) -> Delivery: ...

    def printed(self, request_id: str, document_id: str, pdf_sha256: str) -> None: ...

    def abort(self, request_id: str, reason: str) -> None: ...

    def register_family_register_use(self, request_id: str) -> Menu: ...


class KioskTimeout(DomainError):
    """The centre did not answer in time (the terminal aborts the request)."""


class PrinterFault(DomainError):
    """The printer failed (paper jam, out of toner): nothing was handed out, the request is aborted."""


@dataclass(frozen=True)
class LocalCentreClient:
    """The centre in the same process (the CLI without a server, tests of the flow)."""

    centre: Centre
    kiosk_id: str
    clock: Any = None

    @property
    def _who(self) -> Principal:
        return Principal(Role.KIOSK, self.kiosk_id)

    def _now(self) -> Any:
        from datetime import UTC, datetime

        return self.clock() if self.clock else datetime.now(UTC)

    def open_session(self, request_id: str) -> Opened:
        opened = self.centre.open_session(self._who, request_id, self._now())
        return Opened(opened.request_id, opened.challenge)

    def authenticate(self, request_id: str, certificate: bytes, signature: bytes) -> Menu:
        return self.centre.authenticate(self._who, request_id, certificate, signature, self._now())

    def order(self, request_id: str, options: DocumentOptions, paid_yen: int, timeout_ms: int) -> Delivery:
        r = self.centre.order(self._who, request_id, options, paid_yen, self._now(), timeout_ms=timeout_ms)
        return Delivery(r.request_id, r.document_id, r.pdf, r.pdf_sha256, r.copies, r.change_yen)

    def printed(self, request_id: str, document_id: str, pdf_sha256: str) -> None:
        self.centre.printed(self._who, request_id, document_id, pdf_sha256, self._now())

    def abort(self, request_id: str, reason: str) -> None:
        self.centre.abort(self._who, request_id, reason, self._now())

    def register_family_register_use(self, request_id: str) -> Menu:
        return self.centre.register_family_register_use(self._who, request_id, self._now())


@dataclass(frozen=True)
class _Answer:
    status: int
    headers: dict[str, str]
    """Lower-case names."""
    content: bytes = field(repr=False)

    def json(self) -> Any:
        return json.loads(self.content)


def _raise_for(answer: _Answer) -> None:
    if answer.status < 400:
        return
    try:
        body = answer.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    detail = str(body.get("detail") or answer.content[:200].decode("utf-8", "replace"))
    if body.get("error") == "Refused" and body.get("reason") in RefusalReason._value2member_map_:
        raise Refused(RefusalReason(body["reason"]), body.get("refusal_detail"))
    error: type[DomainError] = {401: Forbidden, 403: Forbidden, 404: NotFound, 409: Conflict,
                                422: InvalidInput}.get(answer.status, DomainError)
    raise error(detail)


SERVER_KEEP_ALIVE_S = 5.0
"""How long uvicorn (the centre) keeps an idle connection open: its default."""
_LOST = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)
"""How a request whose answer never came shows: the centre closed the connection (an idle kept-alive one it was
closing just as the request went out, or the line dropped the answer)."""


class LineFault(DomainError):
    """The line to the centre failed (refused, dropped twice, not HTTP): the kiosk cannot go on."""


class HttpCentreClient:
    """The centre over HTTP (the kiosk's dedicated line), authenticated with the kiosk's API key.

    A kiosk sends one request at a time, so the line is one kept-alive connection (``http.client``: a third of
    httpx's CPU a request, measured, which counts when the kiosks of a benchmark share the centre's machine). It
    is dropped after ``SERVER_KEEP_ALIVE_S / 2`` idle, well before the centre would close it, so that a request is
    not sent on a connection the centre is closing."""

    def __init__(self, base_url: str, api_key: str, *, timeout: float = 35.0,
                 tls: ssl.SSLContext | None = None) -> None:
        url = urllib.parse.urlsplit(base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise InvalidInput(f"the centre's address is not an http(s) URL: {base_url!r}")
        self._https = url.scheme == "https"
        self._host, self._port = url.hostname, url.port
        self._prefix = url.path.rstrip("/") + "/api/kiosk/centre/sessions"
        self._headers = {"authorization": f"Bearer {api_key}", "accept": "application/json",
                         "content-type": "application/json"}
        self._tls = tls
        self.timeout = timeout
        self._connection: http.client.HTTPConnection | None = None
        self._idle_since = 0.0
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._drop()

    def _drop(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _line(self, timeout: float) -> http.client.HTTPConnection:
        if self._connection is not None and time.monotonic() - self._idle_since > SERVER_KEEP_ALIVE_S / 2:
            self._drop()
        if self._connection is None:
            if self._https:
                self._tls = self._tls or ssl.create_default_context()
                self._connection = http.client.HTTPSConnection(self._host, self._port, timeout=timeout,
                                                               context=self._tls)
            else:
                self._connection = http.client.HTTPConnection(self._host, self._port, timeout=timeout)
        self._connection.timeout = timeout
        if self._connection.sock is not None:
            self._connection.sock.settimeout(timeout)
        return self._connection

    def _post(self, path: str, body: dict[str, Any], timeout: float | None = None) -> _Answer:
        data = json.dumps(body).encode()
        with self._lock:
            for attempt in (1, 2):
                line = self._line(timeout or self.timeout)
                try:
                    line.request("POST", self._prefix + path, data, self._headers)
                    response = line.getresponse()
                    content = response.read()
                except TimeoutError:
                    self._drop()
                    raise KioskTimeout("the centre did not answer in time") from None
                except _LOST as exc:
                    self._drop()
                    # Every step is idempotent by request ID: sending it once more is safe.
                    if attempt == 2:
                        raise LineFault(f"the centre dropped the request twice ({type(exc).__name__})") from None
                    continue
                except (OSError, http.client.HTTPException) as exc:
                    self._drop()
                    raise LineFault(f"the line to the centre failed ({type(exc).__name__}: {exc})") from None
                if response.will_close:
                    self._drop()
                self._idle_since = time.monotonic()
                answer = _Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, content)
                break
        _raise_for(answer)
        return answer

    def open_session(self, request_id: str) -> Opened:
        data = self._post("", {"request_id": request_id}).json()
        return Opened(data["request_id"], base64.b64decode(data["challenge"]))

    def authenticate(self, request_id: str, certificate: bytes, signature: bytes) -> Menu:
        data = self._post(f"/{request_id}/authenticate", {"certificate": b64(certificate),
                                                          "signature": b64(signature)}).json()
        return Menu.from_dict(data["menu"])

    def order(self, request_id: str, options: DocumentOptions, paid_yen: int, timeout_ms: int,
              client_timeout: float | None = None) -> Delivery:
        answer = self._post(f"/{request_id}/order", {"options": options.to_dict(), "paid_yen": paid_yen,
                                                     "timeout_ms": timeout_ms},
                            timeout=client_timeout or timeout_ms / 1000 + 5)
        h = answer.headers
        return Delivery(h["x-kiosk-request-id"], h["x-document-id"], answer.content, h["x-pdf-sha256"],
                        int(h["x-copies"]), int(h["x-change-yen"]))

    def printed(self, request_id: str, document_id: str, pdf_sha256: str) -> None:
        self._post(f"/{request_id}/printed", {"document_id": document_id, "pdf_sha256": pdf_sha256})

    def abort(self, request_id: str, reason: str) -> None:
        self._post(f"/{request_id}/abort", {"reason": reason})

    def register_family_register_use(self, request_id: str) -> Menu:
        return Menu.from_dict(self._post(f"/{request_id}/family-register-use", {}).json()["menu"])


class Printer(Protocol):
    def print(self, job_id: str, pdf: bytes, copies: int) -> None: ...


@dataclass
class MemoryPrinter:
    """Keeps what it printed, by job (the request ID)."""

    jobs: dict[str, tuple[bytes, int]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def print(self, job_id: str, pdf: bytes, copies: int) -> None:
        with self._lock:
            if job_id in self.jobs:
                raise Conflict(f"job {job_id} was printed already")
            self.jobs[job_id] = (pdf, copies)


@dataclass(frozen=True)
class SpoolPrinter:
    """Writes each job to ``<folder>/<request ID>.pdf`` (atomically; never over an earlier job)."""

    folder: Path

    def print(self, job_id: str, pdf_bytes: bytes, copies: int) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        target = self.folder / f"{RequestId(job_id)}.pdf"
        tmp = self.folder / f".{job_id}.tmp"
        tmp.write_bytes(pdf_bytes)
        try:
            os.link(tmp, target)  # fails if the job exists: a job is never printed twice
        except FileExistsError:
            raise Conflict(f"job {job_id} was printed already") from None
        finally:
            tmp.unlink(missing_ok=True)


class CardReader(Protocol):
    def card(self) -> KioskCard | None:
        """The card on the reader now, or None."""
        ...


@dataclass
class VirtualReader:
    """A reader whose card is placed and removed by a test, the demo or the CLI."""

    current: KioskCard | None = None

    def card(self) -> KioskCard | None:
        return self.current

    def place(self, card: KioskCard | None) -> None:
        self.current = card


@dataclass
class KioskSession:
    """One customer, from card to print. Never reused."""

    request_id: str
    challenge: bytes = field(repr=False)
    card: KioskCard = field(repr=False)
    certificate: bytes = field(repr=False)
    menu: Menu | None = None
    state: str = "pin"
    """pin → menu → printed | aborted."""


@dataclass(frozen=True)
class PrintResult:
    request_id: str
    document_id: str
    copies: int
    change_yen: int
    pdf_sha256: str


class KioskTerminal:
    """A kiosk: reader + printer + line to the centre."""

    def __init__(self, kiosk_id: str, centre: CentreClient, reader: CardReader, printer: Printer) -> None:
        self.kiosk_id = kiosk_id
        self.centre = centre
        self.reader = reader
        self.printer = printer

    def start(self) -> KioskSession:
        """The resident chose 証明書交付 with a card on the reader: a new request and its challenge."""
        card = self.reader.card()
        if card is None:
            raise Refused(RefusalReason.NO_CARD)
        request_id = RequestId.new()
        certificate = card.read_auth_certificate()
        opened = self.centre.open_session(request_id)
        if opened.request_id != request_id:
            raise Conflict("the centre answered for another request")
        return KioskSession(request_id, opened.challenge, card, certificate)

    def enter_pin(self, session: KioskSession, pin: str) -> Menu:
        """The card checks the PIN and signs the challenge; the centre authenticates and returns the menu.
        A wrong PIN leaves the session open for another try; a blocked PIN ends it."""
        if session.state != "pin":
            raise Conflict("the PIN was already accepted")
        try:
            signature = session.card.sign_challenge(pin, session.challenge)
        except PinBlocked:
            self.cancel(session, RefusalReason.PIN_BLOCKED.value)
            raise
        except WrongPin:
            raise
        try:
            menu = self.centre.authenticate(session.request_id, session.certificate, signature)
        except Refused:
            session.state = "aborted"
            raise
        except KioskTimeout:
            self.cancel(session, RefusalReason.TIMEOUT.value)
            raise Refused(RefusalReason.TIMEOUT) from None
        session.menu = menu
        session.state = "menu"
        return menu

    def register_family_register_use(self, session: KioskSession) -> Menu:
        if session.state != "menu":
            raise Conflict("authenticate first")
        session.menu = self.centre.register_family_register_use(session.request_id)
        return session.menu

    def order_and_print(self, session: KioskSession, options: DocumentOptions, paid_yen: int, *,
                        timeout_ms: int = 30_000) -> PrintResult:
        """Paid: get the document, check it is this request's, print it, close the transaction."""
        if session.state != "menu":
            raise Conflict("choose a document after authentication")
        try:
            delivery = self.centre.order(session.request_id, options, paid_yen, timeout_ms)
        except KioskTimeout:
            self.cancel(session, RefusalReason.TIMEOUT.value)
            raise Refused(RefusalReason.TIMEOUT) from None
        except Refused as exc:
            if exc.reason is not RefusalReason.WRONG_FEE:  # the centre aborted the request
                session.state = "aborted"
            raise
        problem = self._print_check(session, delivery)
        if problem:
            self.cancel(session, "print_check_failed")
            raise Refused(RefusalReason.ABORTED, problem)
        try:
            self.printer.print(session.request_id, delivery.pdf, delivery.copies)
        except PrinterFault as exc:
            self.cancel(session, "printer_fault")  # the centre voids the document: nothing was delivered
            raise Refused(RefusalReason.ABORTED, str(exc)) from None
        session.state = "printed"
        # printed is printed: if this report is lost, the centre's reconciliation sees a released request
        with contextlib.suppress(DomainError):
            self.centre.printed(session.request_id, delivery.document_id, delivery.pdf_sha256)
        return PrintResult(session.request_id, delivery.document_id, delivery.copies, delivery.change_yen,
                           delivery.pdf_sha256)

    @staticmethod
    def _print_check(session: KioskSession, delivery: Delivery) -> str | None:
        if delivery.request_id != session.request_id:
            return "the delivery names another request"
        if hashlib.sha256(delivery.pdf).hexdigest() != delivery.pdf_sha256:
            return "the PDF is not the one released"
        try:
            facts = pdf.read_facts(delivery.pdf)
        except ValueError as exc:
            return str(exc)
        if facts.request_id != session.request_id:
            return "the PDF carries another request's ID"
        if facts.document_id != delivery.document_id:
            return "the PDF carries another document's ID"
        return None

    def cancel(self, session: KioskSession, reason: str) -> None:
        """End the session without printing (best effort at the centre: it expires the request anyway)."""
        session.state = "aborted"
        with contextlib.suppress(DomainError):
            self.centre.abort(session.request_id, reason)
