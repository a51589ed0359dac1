"""Mynaportal in real Chromium against the real server: card login on the login page, the records, own
information with both downloads, a notice, the one-stop child-rearing application, English, and logout."""

from __future__ import annotations

import base64
import csv
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mynacard.context import Context
from mynacard.exchange import demo
from mynacard.exchange import service as ex
from mynacard.principal import Principal, Role
from mynacard.registry.model import Resident
from tests.conftest import NOW
from tests.portal.conftest import FakeCardAuthenticator, resident, sign


@pytest.mark.browser
def test_a_resident_uses_mynaportal_end_to_end(ctx: Context, town: tuple[demo.World, list[Resident]],
                                               portal_server: tuple[str, FakeCardAuthenticator], page: Any) -> None:
    world, people = town
    me = people[0]
    base, auth = portal_server
    demo.run_exchanges(ctx, world, 25, NOW)
    ex.send_notice(ctx, Principal(Role.AGENCY, "131016-tax"), "131016-tax", ex.NoticeInput(
        "住民税額決定通知", "令和8年度の住民税額が決定しました。", local_ref=world.refs["131016-tax"][me.id]),
        datetime.now(UTC))
    key, cert = auth.issue_card(me.id, datetime.now(UTC))

    page.goto(base + "/portal")
    assert page.locator("h1").inner_text() == "マイナポータル"
    page.click("#to-login")
    nonce = base64.b64decode(page.input_value("#nonce"))
    page.fill("textarea[name=certificate]", base64.b64encode(cert).decode())
    page.fill("textarea[name=signature]", base64.b64encode(sign(key, nonce)).decode())
    page.click("#card-login button[type=submit]")
    page.wait_for_url(base + "/portal")
    assert page.locator("#whoami").inner_text() == f"{me.facts.name} さんでログイン中"
    assert page.locator("#unread").inner_text() == "未読 1"
    page.shot("top")

    page.click("header >> text=やりとり履歴")
    expected, total = ex.records_about(ctx, resident(me.id), datetime.now(UTC), limit=50)
    assert page.locator("#records tbody tr").count() == min(total, 50) > 0
    first = page.locator("#records tbody tr").first
    assert int(first.get_attribute("data-seq")) == expected[0].seq
    page.shot("records")

    page.click("header >> text=あなたの情報")
    assert page.locator("#no-items").is_visible()
    page.click("#refresh")
    page.wait_for_selector("#own")
    assert page.locator("#own tbody tr").count() > 3 and page.locator("text=地方税関係情報").count() >= 1
    with page.expect_download() as info:
        page.click("#download-json")
    doc = json.loads(Path(info.value.path()).read_text(encoding="utf-8"))
    assert doc["name"] == me.facts.name and len(doc["records"]) >= 3
    with page.expect_download() as info:
        page.click("#download-csv")
    rows = list(csv.DictReader(Path(info.value.path()).read_text(encoding="utf-8-sig").splitlines()))
    assert len(rows) == page.locator("#own tbody tr").count() == sum(len(r["data"]) for r in doc["records"])
    page.shot("own-information")

    page.click("header >> text=お知らせ")
    page.click("#notices >> text=住民税額決定通知")
    assert "令和8年度の住民税額が決定しました。" in page.locator("article").inner_text()
    page.goto(base + "/portal")
    assert page.locator("#unread").count() == 0

    page.click("header >> text=子育てワンストップ")
    page.check("input[value=child_allowance]")
    page.fill("input[name='child_allowance.child_name']", "山田 一郎")
    page.fill("input[name='child_allowance.child_kana']", "ヤマダ イチロウ")
    page.fill("input[name='child_allowance.child_birth_date']", "2025-06-01")
    page.select_option("select[name='child_allowance.relationship']", "子")
    page.select_option("select[name='child_allowance.payee_account']", "公金受取口座を利用する")
    page.check("input[value=maternal_child_health]")
    page.fill("input[name='maternal_child_health.due_date']",
              (datetime.now(UTC) + timedelta(days=150)).date().isoformat())
    page.fill("input[name='maternal_child_health.pregnancies']", "1")
    page.click("#to-confirm")
    assert me.facts.name in page.locator("#applicant").inner_text()
    page.shot("child-confirm")
    page.click("#submit")
    page.wait_for_selector("#done")
    assert page.locator("#applications tbody tr").count() == 2
    (item,) = [i for i in ex.inbox(ctx, Principal(Role.AGENCY, "131016-child"), "131016-child")]
    ex.update_inbox_status(ctx, Principal(Role.AGENCY, "131016-child"), "131016-child", item.id, "accepted",
                           "支給を決定しました。", datetime.now(UTC))
    page.reload()
    row = page.locator("#applications tr[data-procedure=child_allowance]")
    assert row.get_attribute("data-status") == "accepted" and "受理" in row.inner_text()
    page.shot("applications")

    page.click("text=English")
    assert page.locator("h1").inner_text() == "My applications"
    assert page.locator("#whoami").inner_text() == f"Logged in as {me.facts.name}"
    page.click("#logout")
    page.wait_for_url(base + "/portal")
    page.goto(base + "/portal/records")
    assert page.url == base + "/portal/login"
