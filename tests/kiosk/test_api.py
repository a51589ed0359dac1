"""The services' HTTP boundaries: the kiosk talks to the centre over HTTP, the centre to the municipal server
over HTTP (HttpGateway); roles are enforced at each boundary."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import func, select

from mynacard.accounts import service as accounts
from mynacard.context import Context
from mynacard.kiosk import municipal, pdf
from mynacard.kiosk.centre import Centre, HttpGateway
from mynacard.kiosk.model import DocumentKind, DocumentOptions, RefusalReason, Refused
from mynacard.kiosk.tables import kiosk_documents
from mynacard.kiosk.terminal import HttpCentreClient, KioskTerminal, MemoryPrinter, VirtualReader
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
    app.state.kiosk_clock = lambda: NOW
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


class LosesFirstAnswer(httpx.HTTPTransport):
    """A line on which the first answer to every step is lost after the centre acted on the request."""

    def __init__(self) -> None:
        super().__init__()
        self.lost: set[str] = set()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if request.url.path not in self.lost:
            self.lost.add(request.url.path)
            response.read()
            response.close()
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.", request=request)
        return response


def test_a_lost_answer_is_asked_again_and_acts_once(ctx: Context, town: Town, jpki: TestJpki, stack: Stack) -> None:
    holder = town.adult()
    line = LosesFirstAnswer()
    printer = MemoryPrinter()
    terminal = KioskTerminal("kiosk-a", HttpCentreClient(stack.url, stack.kiosk_key,
                                                         client=httpx.Client(transport=line, timeout=30)),
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
