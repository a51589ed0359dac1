"""The resident's booking and the clerk's day page in real Chromium against the real server (screenshots in
test-artifacts/)."""

from __future__ import annotations

from typing import Any

import pytest

from mynacard.accounts import service as accounts
from mynacard.context import Context
from mynacard.office import service
from mynacard.office.model import format_notice_number
from mynacard.principal import Role
from mynacard.registry import service as registry
from tests.conftest import NOW
from tests.helpers import CHIYODA, SYSTEM
from tests.office.support import EVENING, open_windows, town_with_notices


@pytest.mark.browser
def test_resident_books_changes_and_cancels_by_notice_number(ctx: Context, office_server: str, page: Any) -> None:
    town = town_with_notices(ctx, 2)
    number = town.notices[0]
    born = town.birth_date(ctx, number)
    page.goto(f"{office_server}/book?n={number}")  # where the postcard's QR code leads
    assert page.locator("h1").inner_text() == "マイナンバーカード受取の予約"
    assert page.input_value("input[name=notice_number]") == number
    page.fill("input[name=birth_date]", "1900-01-01")
    page.click("#start button")
    assert page.locator("#error").is_visible()
    page.shot("book-wrong-birth-date")
    page.fill("input[name=birth_date]", born.isoformat())
    page.click("#start button")
    assert format_notice_number(number) in page.locator("main").inner_text()
    page.shot("book-slots")
    rows = page.locator("#slots tr")
    assert rows.count() == len(service.open_slots(ctx, CHIYODA, EVENING))
    first_slot = int(rows.nth(0).get_attribute("data-slot"))
    rows.nth(0).locator("button").click()
    assert page.locator("#done").inner_text().startswith("予約しました")
    assert page.locator("#current").is_visible()
    page.shot("book-done")
    assert service.find_notice(ctx, number, born)[1].slot.id == first_slot  # type: ignore[union-attr]
    page.locator("#slots tr").nth(3).locator("button").click()  # change the time
    moved = service.find_notice(ctx, number, born)[1]
    assert moved is not None and moved.slot.id != first_slot
    page.click("text=English")
    assert "Your booking" in page.locator("#current").inner_text()
    page.click("#cancel")
    assert "cancelled" in page.locator("#done").inner_text()
    assert service.find_notice(ctx, number, born)[1] is None
    page.shot("book-cancelled-en")


@pytest.mark.browser
def test_clerk_sees_the_days_bookings_of_their_town(ctx: Context, office_server: str, page: Any) -> None:
    town = town_with_notices(ctx, 3)
    slots = service.open_slots(ctx, CHIYODA, EVENING)
    for number, slot in zip(town.notices[:2], slots, strict=False):
        service.book(ctx, number, town.birth_date(ctx, number), slot.id, EVENING)
    accounts.create_account(ctx, "chiyoda-clerk", Role.CLERK, "correct horse battery", NOW, CHIYODA)
    page.goto(f"{office_server}/office")
    page.fill("input[name=username]", "chiyoda-clerk")
    page.fill("input[name=password]", "correct horse battery")
    page.click("button[type=submit]")
    page.goto(f"{office_server}/office/m/{CHIYODA}?day={slots[0].starts_at.date().isoformat()}")
    table = page.locator("#bookings")
    assert table.locator("tbody tr").count() == 2
    card = service.card_for_notice(ctx, SYSTEM, town.notices[0])
    person = registry.residents_by_id(ctx, SYSTEM, [card.resident_id])[card.resident_id]
    assert f"{person.facts.family_name} {person.facts.given_name}" in table.inner_text()
    assert "予約中" in table.inner_text()
    page.shot("clerk-day")
    page.click("text=滞留状況")
    assert page.locator("#backlog").is_visible()
    page.shot("clerk-backlog")
    page.goto(f"{office_server}/office/m/011002")  # another town's page
    assert "見つかりません" in page.locator("main").inner_text() or page.locator("h1").inner_text() == "エラー"


@pytest.mark.browser
def test_clerk_receives_checks_sets_up_and_sends_notices(ctx: Context, office_server: str, page: Any) -> None:
    from mynacard.cards import service as cards
    from tests.helpers import apply_all, make_residents, produce

    apply_all(ctx, make_residents(ctx, 5, NOW), NOW)
    produce(ctx, NOW)
    open_windows(ctx)
    accounts.create_account(ctx, "chiyoda-sup", Role.SUPERVISOR, "correct horse battery", NOW, CHIYODA)
    page.goto(f"{office_server}/login?next=/office/m/{CHIYODA}/receipt")
    page.fill("input[name=username]", "chiyoda-sup")
    page.fill("input[name=password]", "correct horse battery")
    page.click("button[type=submit]")
    assert page.locator("#boxes li").count() == 1
    page.shot("clerk-receipt")
    page.click("#boxes button")
    assert "5 件" in page.locator("main").inner_text()
    page.click("text=券面・ICチップ確認を実行")
    page.click("text=交付前設定を実行")
    assert cards.counts_by_municipality_and_state(ctx, SYSTEM)[CHIYODA] == {"pre_issuance_set": 5}
    page.click("text=滞留状況")
    page.click("text=交付通知書を送付")
    assert page.locator("#notices tr").count() == 5
    page.shot("clerk-notices-sent")
    page.goto(f"{office_server}/office/m/{CHIYODA}/congestion")
    assert page.locator("#congestion tbody tr").count() > 0
    page.shot("public-congestion")
