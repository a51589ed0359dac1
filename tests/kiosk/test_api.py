"""The services' HTTP boundaries: the kiosk talks to the centre over HTTP, the centre to the municipal server
over HTTP (HttpGateway); roles are enforced at each boundary."""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import func, select

from mynacard.accounts import service as accounts
from mynacard.context import Context
from mynacard.errors import InvalidInput
from mynacard.kiosk import municipal, pdf
from mynacard.kiosk.centre import Centre, HttpGateway
from mynacard.kiosk.model import DocumentKind, DocumentOptions, RefusalReason, Refused
from mynacard.kiosk.tables import kiosk_documents
from mynacard.kiosk.terminal import (
    SERVER_KEEP_ALIVE_S,
    HttpCentreClient,
    KioskTerminal,
    KioskTimeout,
    LineFault,
    MemoryPrinter,
    VirtualReader,
)
from mynacard.kiosk.testing import TestJpki
from mynacard.principal import Role
from mynacard.web.app import create_app
from tests.conftest import NOW
from tests.kiosk.conftest import Town, serve


@dataclass
class Stack:
    url: str
    kiosk_key: str
    other_kiosk_key: str
    operator_key: str


@pytest.fixture
def stack(ctx: Context, town: Town, jpki: TestJpki) -> Iterator[Stack]:
    app = create_app(ctx)
    server, thread, url = serve(app)
    for name, role in (("kiosk-a", Role.KIOSK), ("kiosk-b", Role.KIOSK), ("centre", Role.OPERATOR)):
        accounts.create_account(ctx, name, role, None, NOW)
    keys = {n: accounts.issue_api_key(ctx, n) for n in ("kiosk-a", "kiosk-b", "centre")}
    app.state.ctx.clock = lambda: NOW
    app.state.kiosk_centre = Centre(ctx, jpki.authenticator(), jpki, HttpGateway(url, keys["centre"]), url)
    yield Stack(url, keys["kiosk-a"], keys["kiosk-b"], keys["centre"])
    server.should_exit = True
    thread.join(timeout=10)


def test_the_whole_flow_over_both_http_boundaries(ctx: Context, town: Town, jpki: TestJpki, stack: Stack) -> None:
    holder = town.adult(household_size=3)
    printer = MemoryPrinter()
    terminal = KioskTerminal("kiosk-a", HttpCentreClient(stack.url, stack.kiosk_key),
                             VirtualReader(jpki.issue_card(holder.id, NOW)), printer)
    session = terminal.start()
    menu = terminal.enter_pin(session, "1234")
    assert menu.holder_name == holder.facts.name
    result = terminal.order_and_print(session, DocumentOptions(DocumentKind.SEAL_REGISTRATION), 200)
    facts = pdf.read_facts(printer.jobs[session.request_id][0])
    assert facts.request_id == session.request_id and facts.document_id == result.document_id
    assert municipal.verification(ctx, result.document_id, NOW).state.value == "printed"
    # a refusal crosses both boundaries with its reason
    child = town.child()
    young = KioskTerminal("kiosk-a", HttpCentreClient(stack.url, stack.kiosk_key),
                          VirtualReader(jpki.issue_card(child.id, NOW)), MemoryPrinter())
    with pytest.raises(Refused) as refused:
        young.enter_pin(young.start(), "1234")
    assert refused.value.reason is RefusalReason.UNDER_15


class LosesFirstAnswer:
    """A line (a TCP relay in front of the centre) on which the first answer to every step is lost after the
    centre acted on the request: the relay closes the kiosk's connection instead of passing the answer on."""

    def __init__(self, upstream: str) -> None:
        self.upstream = urllib.parse.urlsplit(upstream)
        self.lost: set[str] = set()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                kiosk, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(kiosk,), daemon=True).start()

    def _relay(self, kiosk: socket.socket) -> None:
        centre = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port, timeout=30)
        incoming = kiosk.makefile("rb")
        with kiosk, incoming, contextlib.closing(centre):
            while (start := incoming.readline()).strip():
                method, path, _ = start.decode().split(" ", 2)
                headers = {}
                while (line := incoming.readline()).strip():
                    name, value = line.decode().split(":", 1)
                    headers[name.strip().lower()] = value.strip()
                body = incoming.read(int(headers.get("content-length", "0")))
                centre.request(method, path, body, {k: v for k, v in headers.items() if k != "host"})
                answer = centre.getresponse()
                content = answer.read()
                if path not in self.lost:
                    self.lost.add(path)
                    return  # the centre acted; the kiosk never hears of it
                head = [f"HTTP/1.1 {answer.status} {answer.reason}"]
                head += [f"{k}: {v}" for k, v in answer.getheaders() if k.lower() != "transfer-encoding"]
                kiosk.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + content)

    def close(self) -> None:
        self.listener.close()


def test_a_lost_answer_is_asked_again_and_acts_once(ctx: Context, town: Town, jpki: TestJpki, stack: Stack) -> None:
    holder = town.adult()
    line = LosesFirstAnswer(stack.url)
    printer = MemoryPrinter()
    terminal = KioskTerminal("kiosk-a", HttpCentreClient(line.url, stack.kiosk_key),
                             VirtualReader(jpki.issue_card(holder.id, NOW)), printer)
    session = terminal.start()
    terminal.enter_pin(session, "1234")
    result = terminal.order_and_print(session, DocumentOptions(DocumentKind.RESIDENT_RECORD_ENTRY), 200)
    assert len(line.lost) == 4  # open, authenticate, order and printed each lost their first answer
    assert list(printer.jobs) == [session.request_id]
    assert municipal.verification(ctx, result.document_id, NOW).state.value == "printed"
    with ctx.db.connect() as conn:
        made = conn.execute(select(func.count()).select_from(kiosk_documents)
                            .where(kiosk_documents.c.request_id == session.request_id)).scalar_one()
    assert made == 1
    line.close()


def test_the_line_is_one_kept_alive_connection_renewed_before_the_centre_drops_it(stack: Stack) -> None:
    line = HttpCentreClient(stack.url, stack.kiosk_key)
    line.open_session("a" * 32)
    kept = line._connection.sock if line._connection else None
    line.open_session("b" * 32)
    assert kept is not None and line._connection is not None and line._connection.sock is kept
    line._idle_since = time.monotonic() - SERVER_KEEP_ALIVE_S  # idle past half the centre's keep-alive
    line.open_session("c" * 32)
    assert line._connection.sock is not kept
    line.close()


def test_the_line_speaks_tls_to_a_centre_it_trusts_and_to_no_other(ctx: Context, tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "centre.test")])
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(datetime.now(UTC) - timedelta(hours=1))
                   .not_valid_after(datetime.now(UTC) + timedelta(hours=1))
                   .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                                  critical=False)
                   .sign(key, hashes.SHA256()))
    (tmp_path / "centre.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "centre.key").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                            serialization.PrivateFormat.PKCS8,
                                                            serialization.NoEncryption()))
    accounts.create_account(ctx, "kiosk-tls", Role.KIOSK, None, NOW)
    app = create_app(ctx)
    app.state.ctx.clock = lambda: NOW
    server, thread, url = serve(app, ssl_certfile=str(tmp_path / "centre.pem"),
                                ssl_keyfile=str(tmp_path / "centre.key"))
    try:
        assert url.startswith("https://")
        trusting = ssl.create_default_context(cafile=str(tmp_path / "centre.pem"))
        line = HttpCentreClient(url, accounts.issue_api_key(ctx, "kiosk-tls"), tls=trusting)
        assert len(line.open_session("f" * 32).challenge) == 32
        line.close()
        with pytest.raises(LineFault, match="SSL"):  # the system's roots do not know the centre's certificate
            HttpCentreClient(url, "key").open_session("f" * 32)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_a_centre_that_does_not_answer_times_out_and_a_dead_line_says_so() -> None:
    silent = socket.create_server(("127.0.0.1", 0))  # accepts (the kernel's backlog) and never answers
    with silent:
        line = HttpCentreClient(f"http://127.0.0.1:{silent.getsockname()[1]}", "key", timeout=0.2)
        started = time.monotonic()
        with pytest.raises(KioskTimeout):
            line.open_session("a" * 32)
        assert time.monotonic() - started < 5
        port = silent.getsockname()[1]
    with pytest.raises(LineFault):
        HttpCentreClient(f"http://127.0.0.1:{port}", "key").open_session("a" * 32)
    with pytest.raises(InvalidInput):
        HttpCentreClient("ftp://centre.example", "key")


def test_each_boundary_admits_only_its_callers(town: Town, jpki: TestJpki, stack: Stack) -> None:
    kiosk = {"authorization": f"Bearer {stack.kiosk_key}"}
    other = {"authorization": f"Bearer {stack.other_kiosk_key}"}
    operator = {"authorization": f"Bearer {stack.operator_key}"}
    opened = httpx.post(f"{stack.url}/api/kiosk/centre/sessions", json={"request_id": "c" * 32}, headers=kiosk)
    assert opened.status_code == 200
    assert httpx.post(f"{stack.url}/api/kiosk/centre/sessions", json={"request_id": "d" * 32}).status_code == 401
    assert httpx.get(f"{stack.url}/api/kiosk/centre/sessions/{'c' * 32}", headers=other).status_code == 404
    assert httpx.post(f"{stack.url}/api/kiosk/centre/sessions", json={"request_id": "e" * 32},
                      headers=operator).status_code == 403
    menu = httpx.post(f"{stack.url}/api/kiosk/municipal/menu", json={"holder_id": town.adult().id}, headers=kiosk)
    assert menu.status_code == 403
    assert httpx.post(f"{stack.url}/api/kiosk/municipal/menu", json={"holder_id": town.adult().id},
                      headers=operator).status_code == 200
    assert httpx.get(f"{stack.url}/kiosk/verify/{'0' * 26}").status_code == 404
    assert httpx.get(f"{stack.url}/kiosk/verify/not-an-id").status_code == 404
    roots = httpx.get(f"{stack.url}/kiosk/verify/ca.pem")
    assert roots.status_code == 200 and roots.text.startswith("-----BEGIN CERTIFICATE-----")
