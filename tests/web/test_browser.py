"""The first page in real Chromium against the real server."""

from __future__ import annotations

from typing import Any

import pytest

from mynacard.context import Context
from tests.conftest import NOW
from tests.helpers import SAPPORO, apply_all, make_residents, produce


@pytest.mark.browser
def test_dashboard_renders_cards_by_state(ctx: Context, live_server: str, page: Any) -> None:
    apply_all(ctx, make_residents(ctx, 12, NOW) + make_residents(ctx, 5, NOW, SAPPORO, seed=4), NOW)
    produce(ctx, NOW)
    page.goto(live_server + "/")
    assert page.locator("h1").inner_text() == "マイナンバーカード 交付状況"
    row = page.locator("#by-state tr[data-code='131016']")
    assert row.locator("td[data-state='shipped']").inner_text() == "12"
    assert page.locator("svg.bars rect").count() >= 2
    assert page.shot("dashboard-ja").stat().st_size > 10_000
    page.click("text=English")
    assert "issuance status" in page.locator("h1").inner_text()
    page.shot("dashboard-en")
