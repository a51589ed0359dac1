"""Mynaportal's card login with the real parts: a chip card (keys made in the emulated chip, certificates from
the JPKI CAs) signing through ``CardClient``, and the production wiring of the web app (the JPKI relying
party, challenges kept in the database, holders from J-LIS's issuance records)."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from fastapi.testclient import TestClient

from mynacard import installation
from mynacard.chip import service as chips
from mynacard.chip.client import CardClient, PinBlocked, WrongPin
from mynacard.chip.model import KeyKind
from mynacard.chip.transport import InProcessTransport
from mynacard.context import Context
from mynacard.exchange import demo
from mynacard.exchange import service as ex
from mynacard.jpki import service as jpki
from mynacard.jpki.model import RevocationReason
from mynacard.kiosk.chip_card import make_resident_card
from mynacard.portal.card_login import PortalCardLogin
from mynacard.registry.model import Resident
from mynacard.web.app import create_app
from tests.helpers import SYSTEM, csrf
from tests.portal.conftest import resident

Town = tuple[demo.World, list[Resident]]


@contextmanager
def serve_app(app: Any) -> Iterator[str]:
    from tests.kiosk.conftest import serve

    server, thread, base = serve(app)
    try:
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _now() -> datetime:
    return datetime.now(UTC)  # the portal's pages run on the wall clock


def _card(ctx: Context, resident_id: int, pin: str = "1234") -> str:
    """A chip card for the resident (a demo card: the test database is marked as a demo installation, since
    ``make_resident_card`` skips the application and the window); returns its manufacture number."""
    with ctx.db.begin() as conn:
        installation.mark_demo(conn, _now())
    return make_resident_card(ctx, SYSTEM, resident_id, pin, _now() - timedelta(days=1)).serial


def _answer(ctx: Context, serial: str, pin: str, nonce: bytes) -> tuple[bytes, bytes]:
    """What the resident's card reader does: read the authentication certificate, sign with the PIN."""
    with chips.insert_card(ctx, serial) as chip:
        client = CardClient(InProcessTransport(chip))
        cert = client.read_auth_certificate().public_bytes(serialization.Encoding.DER)
        return cert, client.sign_message(KeyKind.AUTH, pin, nonce)


def _challenge(client: TestClient) -> tuple[str, bytes]:
    page = client.get("/portal/login").text
    challenge_id = re.search(r'id="card-login">\s*<input type="hidden" name="challenge_id" value="([^"]+)"', page)
    nonce = re.search(r'id="nonce" value="([^"]+)"', page)
    assert challenge_id and nonce, page
    return challenge_id.group(1), base64.b64decode(nonce.group(1))


def _post(client: TestClient, challenge_id: str, cert: bytes, signature: bytes) -> object:
    return client.post("/portal/login", follow_redirects=False, data={
        "csrf": csrf(client, "/portal/login"), "challenge_id": challenge_id,
        "certificate": base64.b64encode(cert).decode(),
        "signature": base64.b64encode(signature).decode()})


def test_a_resident_logs_in_with_the_chip_and_sees_only_their_records(ctx: Context, town: Town) -> None:
    world, people = town
    me, other = people[0], people[1]
    demo.run_exchanges(ctx, world, 40, _now())
    app = create_app(ctx)
    assert isinstance(app.state.card_authenticator, PortalCardLogin)
    serial = _card(ctx, me.id, "4321")
    client = TestClient(app)
    challenge_id, nonce = _challenge(client)
    cert, signature = _answer(ctx, serial, "4321", nonce)
    # the login page came from one worker; the answer is checked by another (the challenge is in the database)
    response = _post(TestClient(create_app(ctx)), challenge_id, cert, signature)
    assert response.status_code == 303, response.text  # type: ignore[attr-defined]
    client.cookies.update(response.cookies)  # type: ignore[attr-defined]
    assert f"{me.facts.name} さんでログイン中" in client.get("/portal").text
    mine, total = ex.records_about(ctx, resident(me.id), _now(), limit=500)
    theirs, _ = ex.records_about(ctx, resident(other.id), _now(), limit=500)
    shown = client.get("/api/portal/records").json()
    assert shown["total"] == total and {r["seq"] for r in shown["records"]} == {r.seq for r in mine[:50]}
    assert not {r["seq"] for r in shown["records"]} & {r.seq for r in theirs}
    # the same answer again is refused: the challenge was used up
    replay = _post(TestClient(app), challenge_id, cert, signature)
    assert replay.status_code == 403 and "すでに使われています" in replay.text  # type: ignore[attr-defined]


def test_a_revoked_certificate_and_a_foreign_signature_are_refused(ctx: Context, town: Town) -> None:
    _, people = town
    serial = _card(ctx, people[2].id)
    other = _card(ctx, people[3].id)
    client = TestClient(create_app(ctx))
    challenge_id, nonce = _challenge(client)
    cert, _ = _answer(ctx, serial, "1234", nonce)
    _, foreign = _answer(ctx, other, "1234", nonce)  # another card's key over the right challenge
    bad = _post(client, challenge_id, cert, foreign)
    assert bad.status_code == 403 and "カードの署名を確認できませんでした" in bad.text  # type: ignore[attr-defined]
    assert "mynaportal_session" not in bad.cookies  # type: ignore[attr-defined]

    number = x509.load_der_x509_certificate(cert).serial_number
    jpki.revoke_certificate(ctx, SYSTEM, number, RevocationReason.KEY_COMPROMISE, _now() - timedelta(minutes=1))
    challenge_id, nonce = _challenge(client)
    revoked = _post(client, challenge_id, *_answer(ctx, serial, "1234", nonce))
    assert revoked.status_code == 403  # type: ignore[attr-defined]
    assert "この利用者証明用電子証明書は失効しています" in revoked.text  # type: ignore[attr-defined]
    assert client.get("/api/portal/records").status_code == 401


def test_a_wrong_pin_never_leaves_the_card_and_three_block_it(ctx: Context, town: Town) -> None:
    _, people = town
    serial = _card(ctx, people[4].id)
    client = TestClient(create_app(ctx))
    _, nonce = _challenge(client)
    with pytest.raises(WrongPin) as first:
        _answer(ctx, serial, "0000", nonce)
    assert first.value.tries_left == 2
    with pytest.raises(WrongPin):
        _answer(ctx, serial, "1111", nonce)
    with pytest.raises(PinBlocked):
        _answer(ctx, serial, "2222", nonce)
    with pytest.raises(PinBlocked):
        _answer(ctx, serial, "1234", nonce)


def test_the_demo_reader_signs_with_a_card_file_and_says_why_it_refuses(ctx: Context, town: Town,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    _, people = town
    me = people[5]
    serial = _card(ctx, me.id, "2468")  # the database is now a demo installation
    monkeypatch.setenv("MYNACARD_PORTAL_DEMO_READER", "0")  # a demo started with the reader turned off
    app = create_app(ctx)
    client = TestClient(app)
    assert 'id="reader-login"' not in client.get("/portal/login").text  # off unless started for a demonstration
    off = client.post("/portal/login/reader", data={
        "challenge_id": "x", "nonce": "AA==", "card": serial, "csrf": csrf(client),
                                                    "pin": "2468"})
    assert off.status_code == 404 and "mynaportal_session" not in off.cookies
    app.state.portal_demo_reader = True
    page = client.get("/portal/login").text
    assert "デモ用です" in page and 'id="reader-login"' in page

    def reader(pin: str, card: str = serial) -> object:
        text = client.get("/portal/login").text
        challenge_id = re.search(r'id="reader-login">\s*<input type="hidden" name="challenge_id" value="([^"]+)"',
                                 text)
        nonce = re.search(r'name="nonce" value="([^"]+)"', text)
        assert challenge_id and nonce
        return client.post("/portal/login/reader", follow_redirects=False, data={
            "csrf": csrf(client), "challenge_id": challenge_id.group(1), "nonce": nonce.group(1), "card": card,
            "pin": pin})

    wrong = reader("1357")
    assert wrong.status_code == 403 and "暗証番号が違います。あと 2 回" in wrong.text  # type: ignore[attr-defined]
    missing = reader("2468", "Z000000000001")
    assert missing.status_code == 403 and "デモ用リーダーにありません" in missing.text  # type: ignore[attr-defined]
    ok = reader("2468")
    assert ok.status_code == 303  # type: ignore[attr-defined]
    client.cookies.update(ok.cookies)  # type: ignore[attr-defined]
    assert f"{me.facts.name} さんでログイン中" in client.get("/portal").text


@pytest.mark.browser
def test_the_login_page_with_a_chip_card_in_chromium(ctx: Context, town: Town, page: Any) -> None:
    """The production app (JPKI relying party) with the demonstration reader on, in Chromium, JS-free."""
    world, people = town
    me = people[6]
    demo.run_exchanges(ctx, world, 30, _now())
    serial = _card(ctx, me.id, "9753")
    app = create_app(ctx)
    app.state.portal_demo_reader = True
    with serve_app(app) as base:
        page.goto(base + "/portal/login")
        assert "デモ用です" in page.locator("#demo-reader").inner_text()
        page.fill("#reader-login input[name=card]", serial)
        page.fill("#reader-login input[name=pin]", "1111")
        page.click("#reader-login button[type=submit]")
        assert "暗証番号が違います。あと 2 回" in page.locator("[role=alert]").inner_text()
        page.shot("wrong-pin")
        page.fill("#reader-login input[name=card]", serial)
        page.fill("#reader-login input[name=pin]", "9753")
        page.click("#reader-login button[type=submit]")
        page.wait_for_url(base + "/portal")
        assert page.locator("#whoami").inner_text() == f"{me.facts.name} さんでログイン中"
        page.click("header >> text=やりとり履歴")
        _, total = ex.records_about(ctx, resident(me.id), _now(), limit=50)
        assert page.locator("#records tbody tr").count() == min(total, 50) > 0
        page.shot("records")
        page.goto(base + "/portal/login?lang=en")
        assert "For demonstration" in page.locator("#demo-reader").inner_text()
        page.shot("login-en")


def test_the_command_line_answers_the_login_page_like_reader_software(ctx: Context, town: Town) -> None:
    """``mynacard portal answer`` signs the page's challenge with a card file; the page accepts it."""
    from typer.testing import CliRunner

    from mynacard.portal.cli import app as portal_cli

    _, people = town
    me = people[7]
    serial = _card(ctx, me.id, "8642")
    client = TestClient(create_app(ctx))
    challenge_id, nonce = _challenge(client)
    card = str(chips.card_path(ctx, serial))
    runner = CliRunner()
    wrong = runner.invoke(portal_cli, ["answer", "--challenge", base64.b64encode(nonce).decode(), "--card", card,
                                       "--pin", "0000", "--home", str(ctx.settings.home)])
    assert wrong.exit_code == 1 and "2 tries left" in wrong.output
    done = runner.invoke(portal_cli, ["answer", "--challenge", base64.b64encode(nonce).decode(), "--card", card,
                                      "--pin", "8642", "--home", str(ctx.settings.home)])
    assert done.exit_code == 0, done.output
    lines = dict(line.split(": ", 1) for line in done.output.splitlines() if ": " in line)
    response = client.post("/portal/login", follow_redirects=False, data={
        "csrf": csrf(client), "challenge_id": challenge_id, "certificate": lines["certificate"],
        "signature": lines["signature"]})
    assert response.status_code == 303
    client.cookies.update(response.cookies)
    assert f"{me.facts.name} さんでログイン中" in client.get("/portal").text


def test_the_demo_reader_is_refused_outside_a_demo_installation(ctx: Context,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Security review: ``MYNACARD_PORTAL_DEMO_READER=1`` let anyone log in as any card file on the server. On a
    database that is not a demo installation the app now refuses to start with it, and without it the reader's
    route does not exist."""
    jpki.ensure_authorities(ctx, SYSTEM, datetime.now(UTC) - timedelta(days=1))  # the login page is up
    monkeypatch.setenv("MYNACARD_PORTAL_DEMO_READER", "1")
    with pytest.raises(RuntimeError, match="only in a demo installation"):
        create_app(ctx)
    monkeypatch.delenv("MYNACARD_PORTAL_DEMO_READER")
    client = TestClient(create_app(ctx))
    assert 'id="reader-login"' not in client.get("/portal/login").text
    tried = client.post("/portal/login/reader", data={"challenge_id": "x", "nonce": "AA==", "card": "E000000000101",
                                                      "pin": "1234", "csrf": csrf(client)})
    assert tried.status_code == 404 and "mynaportal_session" not in tried.cookies
