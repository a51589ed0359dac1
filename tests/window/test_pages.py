"""The window's pages in real Chromium against the real server, and the JSON API over HTTP: a clerk hands
a card over with the PINs set on the chip; another town's clerk finds nothing; the call centre suspends by
API at any hour and only the window lifts it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from mynacard.accounts import service as accounts
from mynacard.cards import service as cards
from mynacard.cards.model import CardState
from mynacard.context import Context
from mynacard.principal import Role
from mynacard.window import service as window
from tests.conftest import NOW
from tests.helpers import SYSTEM

from .support import SAPPORO, chip_cards
from .test_issuance import PINS, _chip_works

PASSWORD = "window-password-1"


def _login(page: Any, base: str, user: str, target: str) -> None:
    page.goto(f"{base}/login?next={target}")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"**{target}")


@pytest.mark.browser
def test_clerk_issues_a_card_in_the_browser(ctx: Context, live_server: str, page: Any) -> None:
    (card_id,) = chip_cards(ctx, 1, NOW)
    now = datetime.now(UTC)
    accounts.create_account(ctx, "chiyoda-clerk", Role.CLERK, PASSWORD, now, "131016")
    accounts.create_account(ctx, "sapporo-clerk", Role.CLERK, PASSWORD, now, SAPPORO)
    _login(page, live_server, "chiyoda-clerk", "/window")
    assert page.locator("h1").inner_text() == "交付窓口"
    page.fill("input[name=card_id]", str(card_id))
    page.click("#find button[type=submit]")
    page.wait_for_url(f"**/window/cards/{card_id}")
    assert page.locator("#state").get_attribute("data-state") == "notice_sent"
    page.shot("card-before")
    # one B document only: refused, nothing changed
    page.check("#issue-person-health_insurance")
    page.fill("input[name=pin_auth]", PINS.auth)
    page.fill("input[name=pin_sign]", "abc12345")  # typed in lower case: the terminal upper-cases it
    page.fill("input[name=pin_card_info]", PINS.card_info)
    page.fill("input[name=pin_residence]", PINS.residence)
    page.click("#issue")
    page.wait_for_selector("#error")
    assert "B 2点" in page.locator("#error").inner_text()
    page.shot("identity-refused")
    assert cards.get_card(ctx, SYSTEM, card_id).state is CardState.NOTICE_SENT
    page.check("#issue-person-driving_licence")
    page.fill("input[name=pin_auth]", PINS.auth)
    page.fill("input[name=pin_sign]", "abc12345")
    page.fill("input[name=pin_card_info]", PINS.card_info)
    page.fill("input[name=pin_residence]", PINS.residence)
    page.click("#issue")
    page.wait_for_selector("#done")
    assert page.locator("#done").inner_text() == "交付しました"
    assert page.locator("#state").get_attribute("data-state") == "issued"
    assert "一致しています" in page.locator("#consistency").inner_text()
    page.shot("issued")
    _chip_works(ctx, card_id, PINS)
    page.goto(f"{live_server}/window?lang=en")
    assert page.locator("h1").inner_text() == "Issuance window"
    assert page.locator(f"#today tr[data-card='{card_id}'] td[data-status]").inner_text() == "issued"
    page.shot("today-en")
    # another town's clerk: nothing there
    page.context.clear_cookies()
    _login(page, live_server, "sapporo-clerk", "/window")
    response = page.goto(f"{live_server}/window/cards/{card_id}")
    assert response is not None and response.status == 404
    page.shot("other-town-404")


def test_other_municipality_and_roles_over_http(ctx: Context, live_server: str) -> None:
    (card_id,) = chip_cards(ctx, 1, NOW)
    now = datetime.now(UTC)
    for name, role, code in [("c-chiyoda", Role.CLERK, "131016"), ("c-sapporo", Role.CLERK, SAPPORO),
                             ("callcentre", Role.OPERATOR, None), ("maker", Role.MANUFACTURER, None)]:
        accounts.create_account(ctx, name, role, None, now, code)
    key = {n: accounts.issue_api_key(ctx, n) for n in ("c-chiyoda", "c-sapporo", "callcentre", "maker")}

    def call(who: str, method: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        return httpx.request(method, live_server + path, json=body, timeout=60,
                             headers={"Authorization": f"Bearer {key[who]}"})

    issue = {"card_id": card_id, "identity": {"person_documents": ["passport"]},
             "pins": {"auth": "1234", "sign": "ABC12345", "card_info": "2345", "residence": "3456"}}
    assert call("c-sapporo", "POST", "/api/window/issuances", issue).status_code == 404
    assert call("maker", "POST", "/api/window/issuances", issue).status_code == 403
    assert call("callcentre", "POST", "/api/window/issuances", issue).status_code == 403  # not in person
    assert call("c-sapporo", "GET", f"/api/window/cards/{card_id}/consistency").status_code == 404
    assert call("c-sapporo", "POST", f"/api/window/issuances/{card_id}/cancel").status_code == 404
    one_b = {**issue, "identity": {"person_documents": ["pension_book"]}}
    bad = call("c-chiyoda", "POST", "/api/window/issuances", one_b)
    assert bad.status_code == 422 and bad.json()["problems"]
    first = call("c-chiyoda", "POST", "/api/window/issuances", issue)
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "issued" and not first.json()["replayed"]
    again = call("c-chiyoda", "POST", "/api/window/issuances", issue)
    assert again.json()["replayed"] is True
    # suspension by phone (call centre), at 03:00 JST, idempotent by the call's ticket
    suspend = {"card_id": card_id, "request_key": "call-0001"}
    assert call("c-sapporo", "POST", "/api/window/suspensions", suspend).status_code == 403
    s1 = call("callcentre", "POST", "/api/window/suspensions", suspend)
    assert s1.status_code == 200, s1.text
    assert s1.json()["state"] == "suspended" and len(s1.json()["held_certificates"]) == 2
    s2 = call("callcentre", "POST", "/api/window/suspensions", suspend)
    assert s2.json()["replayed"] is True
    assert cards.get_card(ctx, SYSTEM, card_id).state is CardState.SUSPENDED
    assert window.check_consistency(ctx, card_id) == []
