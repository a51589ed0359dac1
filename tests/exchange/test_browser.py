"""The network's pages in real Chromium against the real server: the public directory and permitted table,
a supervisor deciding a review, and the operator's view of the log (whole, then tampered with)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import update

from mynacard.accounts import service as accounts
from mynacard.context import Context
from mynacard.exchange import demo
from mynacard.exchange import service as ex
from mynacard.exchange.tables import exchange_log
from mynacard.principal import Principal, Role
from mynacard.registry import service as registry
from tests.conftest import NOW
from tests.exchange.conftest import numbers_of
from tests.helpers import SYSTEM


def _login(page: Any, base: str, username: str) -> None:
    page.goto(base + "/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", "correct horse battery")
    page.click("button[type=submit]")


@pytest.mark.browser
def test_directory_reviews_and_log_pages(ctx: Context, small_world: demo.World, live_server: str,
                                         page: Any) -> None:
    accounts.create_account(ctx, "chiyoda-boss", Role.SUPERVISOR, "correct horse battery", NOW, "131016")
    accounts.create_account(ctx, "jlis-ops", Role.OPERATOR, "correct horse battery", NOW)
    demo.run_exchanges(ctx, small_world, 12, NOW)
    rid = sorted(small_world.refs["131016-tax"])[0]
    r = registry.get_resident(ctx, SYSTEM, rid)
    number = numbers_of(ctx, [r])[rid]
    (review,) = ex.enrol(ctx, Principal(Role.AGENCY, "131016-tax"), "131016-tax", [ex.EnrolmentRequest(
        "T-REVIEW", number, r.facts.family_name, r.facts.given_name, r.facts.birth_date, r.facts.sex.value,
        "東京都千代田区どこか9-9")], NOW)

    page.goto(live_server + "/exchange")
    assert page.locator("h1").inner_text() == "情報提供ネットワークシステム"
    assert page.locator("#agencies tbody tr").count() == len(small_world.agencies) + 1  # and Mynaportal
    assert "児童手当の支給" in page.locator("#permissions tr[data-row='C-01']").inner_text()
    page.shot("directory")

    _login(page, live_server, "chiyoda-boss")
    page.goto(live_server + "/exchange/reviews")
    card = page.locator(f"section[data-review='{review.review_id}']")
    assert "address" in card.inner_text() and number not in page.content()
    assert "****-****-" + number[8:] in card.inner_text()
    card.locator("input[name=reason]").fill("住所が一致しないため却下")
    card.locator("button[value=reject]").click()
    page.wait_for_selector("text=確認待ちはありません。")
    page.click("text=ログアウト")

    _login(page, live_server, "jlis-ops")
    page.goto(live_server + "/exchange/log")
    assert page.locator("#chain-status").inner_text() == "記録は改ざんされていません"
    assert page.locator("#log tbody tr").count() == 12
    page.shot("log-whole")
    with ctx.db.begin() as conn:
        conn.execute(update(exchange_log).where(exchange_log.c.seq == 7).values(requester="nenkin"))
    page.reload()
    status = page.locator("#chain-status").inner_text()
    assert status.startswith("記録の連鎖が壊れています: entry 7 (chain") and "書き換えられています" in status
    page.click("text=English")
    assert "The chain is broken at entry 7" in page.locator("#chain-status").inner_text()
    page.shot("log-broken")
