"""The kiosk's touch screen driven end to end in real Chromium: the kiosk app (its own server) talks over HTTP
to the centre (the main app, another server); screenshots are kept under test-artifacts/."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mynacard.accounts import service as accounts
from mynacard.context import Context
from mynacard.kiosk import pdf
from mynacard.kiosk.centre import Centre, LocalGateway
from mynacard.kiosk.terminal import HttpCentreClient, KioskTerminal, SpoolPrinter, VirtualReader
from mynacard.kiosk.terminal_app import create_terminal_app
from mynacard.kiosk.testing import TestJpki
from mynacard.principal import Role
from mynacard.web.app import create_app
from tests.conftest import NOW
from tests.kiosk.conftest import Town, seed_town, serve


@dataclass
class Kiosk:
    url: str
    centre_url: str
    reader: VirtualReader
    spool: Path
    town: Town
    jpki: TestJpki


@pytest.fixture
def kiosk(sqlite_ctx: Context, tmp_path: Path, jpki_ca: TestJpki) -> Iterator[Kiosk]:
    ctx = sqlite_ctx
    town = seed_town(ctx, 30)
    jpki = TestJpki(NOW, ca_cert=jpki_ca.ca_cert, ca_key=jpki_ca.ca_key)
    jpki.clock = lambda: NOW
    app = create_app(ctx)
    centre_server, centre_thread, centre_url = serve(app)
    app.state.ctx.clock = lambda: NOW
    app.state.kiosk_centre = Centre(ctx, jpki.authenticator(), jpki, LocalGateway(ctx), centre_url)
    accounts.create_account(ctx, "kiosk-seven-0001", Role.KIOSK, None, NOW)
    key = accounts.issue_api_key(ctx, "kiosk-seven-0001")
    reader = VirtualReader()
    terminal = KioskTerminal("kiosk-seven-0001", HttpCentreClient(centre_url, key), reader,
                             SpoolPrinter(tmp_path / "spool"))
    kiosk_server, kiosk_thread, kiosk_url = serve(create_terminal_app(terminal))
    yield Kiosk(kiosk_url, centre_url, reader, tmp_path / "spool", town, jpki)
    for server, thread in ((kiosk_server, kiosk_thread), (centre_server, centre_thread)):
        server.should_exit = True
        thread.join(timeout=10)


@pytest.mark.browser
def test_a_resident_gets_a_resident_record_copy_at_the_kiosk(kiosk: Kiosk, page: Any) -> None:
    holder = kiosk.town.adult(household_size=3)
    kiosk.reader.place(kiosk.jpki.issue_card(holder.id, NOW))
    page.goto(kiosk.url + "/")
    assert page.locator("#screen-start").is_visible()
    assert "マイナンバーカードをカードリーダーに置いて" in page.inner_text("#screen-start")
    page.shot("1-start")
    page.click("#start")
    page.wait_for_selector("#screen-pin.on")
    for digit in "0000":
        page.click(f".key[data-digit='{digit}']")
    assert page.inner_text("#pin-display") == "●●●●"
    page.click("#pin-ok")
    page.wait_for_function("document.getElementById('pin-message').textContent.length > 0")
    assert "あと2回" in page.inner_text("#pin-message")
    page.shot("2-wrong-pin")
    for digit in "1234":
        page.click(f".key[data-digit='{digit}']")
    page.click("#pin-ok")
    page.wait_for_selector("#screen-menu.on")
    assert page.inner_text("#holder") == f"{holder.facts.family_name}　{holder.facts.given_name} 様"
    assert "東京都千代田区" in page.inner_text("#home")
    page.shot("3-menu")
    page.click(".doc[data-kind='juminhyo']")
    page.wait_for_selector("#screen-options.on")
    assert page.locator(".member").count() == 3
    page.check("#opt-relationship")
    page.shot("4-options")
    page.click("#to-fee")
    assert "合計 200円" in page.inner_text("#total")
    assert page.locator("#print").is_disabled()
    page.click("#insert")
    page.shot("5-fee")
    page.click("#print")
    page.wait_for_selector("#screen-done.on", timeout=30_000)
    document_id = page.inner_text("#document-id")
    assert "おつり 0円" in page.inner_text("#change")
    page.shot("6-done")
    spooled = list(kiosk.spool.glob("*.pdf"))
    assert len(spooled) == 1
    facts = pdf.read_facts(spooled[0].read_bytes())
    assert facts.document_id == document_id and spooled[0].stem == facts.request_id
    page.goto(f"{kiosk.centre_url}/kiosk/verify/{document_id}")
    assert page.locator("#status").get_attribute("data-state") == "printed"
    assert page.inner_text("#request-id") == facts.request_id
    content = page.inner_text("#content")
    assert f"{holder.facts.family_name}　{holder.facts.given_name}" in content and "世帯主" in content
    page.shot("7-verification")
    page.click("text=English")
    assert "This certificate was validly issued." in page.inner_text("#status")


@pytest.mark.browser
def test_the_kiosk_refuses_clearly_and_prints_nothing(kiosk: Kiosk, page: Any) -> None:
    page.goto(kiosk.url + "/")
    page.click("#start")
    page.wait_for_selector("#screen-refused.on")
    assert "カードが読み取れません" in page.inner_text("#refusal")
    page.click("#again")
    kiosk.reader.place(kiosk.jpki.issue_card(kiosk.town.child().id, NOW))
    page.click("#start")
    page.wait_for_selector("#screen-pin.on")
    for digit in "1234":
        page.click(f".key[data-digit='{digit}']")
    page.click("#pin-ok")
    page.wait_for_selector("#screen-refused.on")
    assert "15歳未満" in page.inner_text("#refusal")
    assert page.locator("#refusal").get_attribute("data-reason") == "under_15"
    page.shot("refused-under-15")
    page.goto(kiosk.url + "/?lang=en")
    kiosk.reader.place(kiosk.jpki.issue_card(kiosk.town.adult().id, NOW))
    assert "Place your My Number Card" in page.inner_text("#screen-start")
    page.click("#start")
    page.wait_for_selector("#screen-pin.on")
    for _ in range(3):
        for digit in "9999":
            page.click(f".key[data-digit='{digit}']")
        page.click("#pin-ok")
        page.wait_for_timeout(150)
    page.wait_for_selector("#screen-refused.on")
    assert "blocked" in page.inner_text("#refusal")
    page.shot("refused-pin-blocked-en")
    assert not list(kiosk.spool.glob("*.pdf"))
