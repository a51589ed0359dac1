"""The CA repository page in real Chromium against the real server."""

from __future__ import annotations

from typing import Any

import pytest

from mynacard.context import Context
from mynacard.jpki import service
from mynacard.jpki.model import CaKind
from tests.conftest import NOW
from tests.jpki.support import CLERK, OPERATOR, Town


@pytest.mark.browser
def test_repository_page_shows_generations_fingerprints_and_counts(ctx: Context, live_server: str, page: Any) -> None:
    town = Town(ctx)
    card = town.card(town.resident())
    service.hold_card_certificates(ctx, CLERK, card.id, NOW)
    new = service.rollover(ctx, OPERATOR, CaKind.SIGN, NOW)
    page.goto(live_server + "/jpki")
    assert page.locator("h1").inner_text() == "公的個人認証サービス 認証局"
    sign = page.locator("#ca-sign")
    assert sign.locator("tr[data-generation]").count() == 2
    assert new.fingerprint_sha256 in sign.locator("tr[data-generation='2'] code.fp").inner_text()
    assert "発行終了" in sign.locator("tr[data-generation='1']").inner_text()
    assert sign.locator("[data-status='revoked']").inner_text() == "1"
    assert page.locator("#ca-auth tr[data-generation]").count() == 1
    page.shot("jpki-repository-ja")
    reply = page.request.get(live_server + "/jpki/ca/sign.pem?generation=2")  # what the PEM link serves
    assert reply.ok and b"BEGIN CERTIFICATE" in reply.body()
    page.click("text=English")
    assert page.locator("h1").inner_text() == "JPKI certificate authorities"
    assert "retired" in page.locator("#ca-sign tr[data-generation='1']").inner_text()
    page.shot("jpki-repository-en")

