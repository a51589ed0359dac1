"""Acceptance, end to end through HTTP and the browser: a card goes from shipped to issued — the clerk
receives the box, runs the receipt checks (the chip is read) and the pre-issuance setup, mails the notice
(a real PDF), the resident books a slot on the web with the notice number, and at the window the clerk
scans the notice, checks identity and the resident sets the four PINs on the chip; the card is issued.
Then the resident logs in to Mynaportal on the same server with the authentication certificate: the login
page's challenge is signed by the chip through ``CardClient`` with the PIN set at the window."""

from __future__ import annotations

import base64
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization

from mynacard.accounts import service as accounts
from mynacard.cards import service as cards
from mynacard.cards.model import CardState
from mynacard.chip import service as chips
from mynacard.chip.cardfile import CardFile
from mynacard.chip.client import CardClient, CardError
from mynacard.chip.model import KeyKind
from mynacard.chip.transport import InProcessTransport
from mynacard.context import Context
from mynacard.jpki.relying_party import RelyingParty
from mynacard.office import service as office
from mynacard.principal import Principal, Role
from mynacard.registry import service as registry
from mynacard.window import service as window
from tests.conftest import NOW
from tests.helpers import SYSTEM, csrf
from tests.office.support import EVENING, open_windows

from .support import chip_cards
from .test_issuance import PINS

PASSWORD = "window-e2e-password"


class Clock:
    """The server's clock, moved by the test."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@contextmanager
def serve(ctx: Context, clock: Clock) -> Iterator[str]:
    import uvicorn

    from mynacard.web.app import create_app

    app = create_app(ctx)
    app.state.ctx.clock = clock
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _login(page: Any, base: str, user: str, target: str) -> None:
    page.goto(f"{base}/login?next={target}")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"**{target}")


def _sign_login(ctx: Context, serial: str, rp: RelyingParty, now: datetime) -> tuple[bool, tuple[str, ...]]:
    challenge = rp.issue_challenge(now)
    with CardFile(chips.card_path(ctx, serial), ctx.settings.data_key) as chip:
        client = CardClient(InProcessTransport(chip))
        certificate = client.read_auth_certificate()
        signature = client.sign_message(KeyKind.AUTH, PINS.auth, challenge.nonce)
    result = rp.verify_login(challenge.id, signature, certificate, now)
    return result.valid, result.problems


@pytest.mark.browser
def test_shipped_to_issued_then_login_with_the_card(ctx: Context, browser: Any) -> None:
    (card_id,) = chip_cards(ctx, 1, NOW, receive=False)
    card = cards.get_card(ctx, SYSTEM, card_id)
    assert card.state is CardState.SHIPPED and card.card_serial
    serial = card.card_serial
    resident = registry.get_resident(ctx, SYSTEM, card.resident_id)
    open_windows(ctx)  # the town's sites, counters and shifts are configuration
    accounts.create_account(ctx, "chiyoda-window", Role.CLERK, PASSWORD, NOW, "131016")
    rp = RelyingParty.for_service(ctx, Principal(Role.OPERATOR, "mynaportal"))
    with pytest.raises(CardError):  # before the window no PIN is set: the card cannot log in
        _sign_login(ctx, serial, rp, NOW)

    clock = Clock(EVENING - timedelta(hours=2))  # 17:30 JST: after the windows close
    artifacts: dict[str, Any] = {}
    with serve(ctx, clock) as base:
        staff = browser.new_context(locale="ja-JP", viewport={"width": 1280, "height": 900})
        page = staff.new_page()
        _login(page, base, "chiyoda-window", "/office/m/131016/receipt")
        page.click("#boxes button")  # receive the box whole
        page.wait_for_url("**/receipt?message=1")
        page.click("form[action$='/checks'] button")  # receipt checks read the chip
        page.wait_for_url("**/receipt?message=1")
        assert cards.get_card(ctx, SYSTEM, card_id).state is CardState.RECEIVED
        page.click("form[action$='/setup'] button")
        page.wait_for_url("**/receipt?message=1")
        assert cards.get_card(ctx, SYSTEM, card_id).state is CardState.PRE_ISSUANCE_SET
        page.goto(f"{base}/office/m/131016/backlog")
        page.click("form[action$='/notices'] button")
        page.wait_for_url("**/backlog?message=1")
        (notice,) = [n["notice_number"] for n in office.notices_of(ctx, SYSTEM, "131016")]
        pdf = page.request.get(f"{base}/office/notices/{notice}.pdf")
        assert pdf.status == 200 and pdf.body()[:5] == b"%PDF-" and len(pdf.body()) > 5000
        artifacts["pdf"] = pdf.body()

        # the resident books with the number on the postcard
        home = browser.new_context(locale="ja-JP")
        resident_page = home.new_page()
        resident_page.goto(f"{base}/book?n={notice}")
        resident_page.fill("input[name=birth_date]", resident.facts.birth_date.isoformat())
        resident_page.click("#start button[type=submit]")
        resident_page.wait_for_url("**/book/slots")
        resident_page.locator("form[action^='/book/slots/'] button").first.click()
        resident_page.wait_for_url("**/book/slots?done=booked")
        _, booking = office.find_notice(ctx, notice, resident.facts.birth_date)
        assert booking is not None
        home.close()

        # the booked day, at the window
        clock.now = booking.slot.starts_at + timedelta(minutes=5)
        page.goto(f"{base}/window")
        page.fill("input[name=notice]", notice)
        page.click("#find button[type=submit]")
        page.wait_for_url(f"**/window/cards/{card_id}?notice={notice}")
        page.check("#issue-person-passport")
        page.fill("input[name=pin_auth]", PINS.auth)
        page.fill("input[name=pin_sign]", PINS.sign or "")
        page.fill("input[name=pin_card_info]", PINS.card_info)
        page.fill("input[name=pin_residence]", PINS.residence)
        page.screenshot(path=str(_artifact("e2e-window-form.png")), full_page=True)
        page.click("#issue")
        page.wait_for_selector("#done")
        assert page.locator("#state").get_attribute("data-state") == "issued"
        page.screenshot(path=str(_artifact("e2e-issued.png")), full_page=True)
        staff.close()
        assert f"{resident.facts.name} さんでログイン中" in _portal_login(ctx, base, serial)

    assert cards.get_card(ctx, SYSTEM, card_id).state is CardState.ISSUED
    assert [n["state"] for n in office.notices_of(ctx, SYSTEM, "131016")] == ["collected"]
    assert window.check_consistency(ctx, card_id) == []
    _artifact("e2e-notice.pdf").write_bytes(artifacts["pdf"])
    valid, problems = _sign_login(ctx, serial, rp, clock.now)
    assert valid, problems


def _portal_login(ctx: Context, base: str, serial: str) -> str:
    """Log in to Mynaportal over HTTP as the resident's card reader software does; return the portal's page."""
    with httpx.Client(base_url=base) as http:
        page = http.get("/portal/login").text
        challenge_id = re.search(r'name="challenge_id" value="([^"]+)"', page)
        nonce = re.search(r'id="nonce" value="([^"]+)"', page)
        assert challenge_id and nonce, page
        with CardFile(chips.card_path(ctx, serial), ctx.settings.data_key) as chip:
            client = CardClient(InProcessTransport(chip))
            certificate = client.read_auth_certificate().public_bytes(serialization.Encoding.DER)
            signature = client.sign_message(KeyKind.AUTH, PINS.auth, base64.b64decode(nonce.group(1)))
        answer = http.post("/portal/login", data={"csrf": csrf(http, "/portal/login"),
            "challenge_id": challenge_id.group(1), "certificate": base64.b64encode(certificate).decode(),
            "signature": base64.b64encode(signature).decode()})
        assert answer.status_code == 303, answer.text
        return http.get("/portal").text


def _artifact(name: str) -> Any:
    from tests.conftest import ARTIFACTS

    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / f"test_shipped_to_issued-{name}"
