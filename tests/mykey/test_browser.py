"""The disaster page and the point programme's page in real Chromium against the real server, fed by a
shelter client syncing over HTTP and by ledger postings; Japanese first, English available."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert

from mynacard.accounts import service as accounts
from mynacard.errors import Forbidden
from mynacard.mykey import platform, points, shelter
from mynacard.mykey.model import Rate
from mynacard.mykey.shelter_client import HttpUplink, ShelterClient
from mynacard.mykey.tables import mykey_ids
from mynacard.mykey.terminal import prove
from mynacard.principal import Principal, Role
from tests.conftest import NOW
from tests.jpki.support import CHIYODA, Town
from tests.mykey.support import PINS, chip_card, portal_session
from tests.mykey.test_shelter import STAFF, _family

PASSWORD = "correct horse battery"


def _login(page: Any, base: str, target: str) -> None:
    page.goto(base + target)
    page.fill("input[name=username]", "bousai-chiyoda")
    page.fill("input[name=password]", PASSWORD)
    page.click("form button[type=submit]")
    page.wait_for_url(base + target)


@pytest.mark.browser
def test_disaster_page_in_chromium(town: Town, live_server: str, page: Any, tmp_path: Path) -> None:
    ctx = town.ctx
    father, _mother, son = _family(town)
    accounts.create_account(ctx, "bousai-chiyoda", Role.CLERK, PASSWORD, NOW, CHIYODA)
    accounts.create_account(ctx, "shelter-02", Role.CLERK, None, NOW, CHIYODA)
    key = accounts.issue_api_key(ctx, "shelter-02")
    shelter.register_shelter(ctx, STAFF, "kanda-es", "神田小学校", CHIYODA, 300)
    shelter.register_shelter(ctx, STAFF, "kudan-ms", "九段中学校", CHIYODA, 200)
    now = datetime.now(UTC) - timedelta(minutes=5)
    for code, card in (("kanda-es", father), ("kudan-ms", son)):
        client = ShelterClient(tmp_path / f"{code}.db", code, HttpUplink(live_server, key))
        client.touch(card.client, now, pin=PINS.auth)
        assert client.sync().accepted == 1

    _login(page, live_server, f"/mykey/disaster/{CHIYODA}")
    assert page.locator("h1").inner_text().startswith("避難所の状況")
    assert page.locator("#total").inner_text() == "避難者 合計 2 人"
    assert page.locator("#counts tr[data-shelter=kanda-es] .present").inner_text() == "1"
    assert page.locator("#counts tr[data-shelter=kudan-ms] .present").inner_text() == "1"
    assert page.locator("#missing .absent").count() == 1
    assert page.locator("#missing .absent").inner_text() == "鈴木\u3000花子 (妻)"  # the mother, still missing
    page.shot("disaster-ja")
    page.goto(live_server + f"/mykey/disaster/{CHIYODA}?lang=en")
    assert page.locator("#total").inner_text() == "2 people in shelters"
    page.shot("disaster-en")
    response = page.goto(live_server + "/mykey/disaster/011002")
    assert response is not None and response.status == 404  # another municipality's page: not there


@pytest.mark.browser
def test_points_page_in_chromium(town: Town, live_server: str, page: Any) -> None:
    ctx = town.ctx
    rid = town.resident()
    with ctx.db.begin() as conn:
        conn.execute(insert(mykey_ids).values(mykey_id="ABCDEFGH", resident_id=rid, created_at=NOW))
    accounts.create_account(ctx, "bousai-chiyoda", Role.CLERK, PASSWORD, NOW, CHIYODA)
    op = Principal(Role.OPERATOR, "point-cloud")
    points.register_partner(ctx, op, "jal", "JAL", Rate(1, 1))
    points.register_shop(ctx, STAFF, "bakery", "神田ベーカリー", CHIYODA)
    points.convert(ctx, op, "jal", "ABCDEFGH", CHIYODA, 1200, "browser-cv-0001", NOW)
    points.earn(ctx, STAFF, CHIYODA, "ABCDEFGH", 100, "防災訓練参加", "browser-earn-01", NOW)
    points.redeem(ctx, op, "bakery", "ABCDEFGH", CHIYODA, 500, "browser-rd-0001", NOW)

    _login(page, live_server, f"/mykey/points/{CHIYODA}")
    assert page.locator("#ledger").inner_text() == "元帳は貸借が一致しています。"
    rows = {(r.get_attribute("data-kind"), r.get_attribute("data-owner")): r.locator(".balance").inner_text()
            for r in page.locator("#accounts tbody tr").all()}
    assert rows == {("partner", "jal"): "-1,200", ("programme", CHIYODA): "-100", ("resident", "ABCDEFGH"): "800",
                    ("shop", "bakery"): "500"}
    page.shot("points-ja")


@pytest.mark.browser
def test_resident_spends_with_the_card_and_reads_the_statement_in_mynaportal(town: Town, live_server: str,
                                                                            page: Any) -> None:
    ctx = town.ctx
    card = chip_card(town)
    now = datetime.now(UTC)
    mykey_id = platform.create_mykey_id(ctx, prove(card.client, platform.issue_challenge(ctx, now), PINS.auth), now)
    op = Principal(Role.OPERATOR, "point-cloud")
    bakery = Principal(Role.AGENCY, "shop-bakery")
    points.register_partner(ctx, op, "jal", "JAL", Rate(1, 1))
    points.register_shop(ctx, STAFF, "bakery", "神田ベーカリー", CHIYODA)
    points.convert(ctx, op, "jal", mykey_id, CHIYODA, 1200, "portal-cv-0001", now)
    till = prove(card.client, platform.issue_challenge(ctx, now), PINS.auth)
    points.redeem_with_card(ctx, bakery, "bakery", till, CHIYODA, 450, "bakery-till-77", now)
    with pytest.raises(Forbidden):  # the signature was for one challenge, used up
        points.redeem_with_card(ctx, bakery, "bakery", till, CHIYODA, 450, "bakery-till-78", now)

    token = portal_session(ctx, card.resident_id, now)
    page.context.add_cookies([{"name": "mynaportal_session", "value": token, "url": live_server}])
    page.goto(live_server + "/portal/points")
    assert page.locator("#mykey-id").inner_text() == f"マイキーID: {mykey_id}"
    holding = page.locator(f"section.holding[data-municipality='{CHIYODA}']")
    assert holding.locator("h2").inner_text() == "東京都千代田区 のポイント"
    assert holding.locator(".balance").inner_text() == "残高 750 ポイント"
    assert [a.inner_text() for a in holding.locator("td.amount").all()] == ["-450", "+1,200"]
    page.shot("my-points-ja")
