"""The deck's 1,741 plans uploaded through the operator's page in real Chromium, and the national page
showing exactly the deck's p.10 table and figures. Screenshots under ``test-artifacts/``."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from mynacard.accounts.service import create_account
from mynacard.bootstrap import build_context
from mynacard.context import Context
from mynacard.migrate import upgrade
from mynacard.principal import Role
from tests.plans import deck2016

pytestmark = pytest.mark.browser
PASSWORD = "correct horse battery"


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[Context]:
    """An empty database with the national operator's account (served by conftest's ``live_server``)."""
    context = build_context(home=tmp_path, database_url=f"sqlite:///{tmp_path / 'mynacard.db'}")
    upgrade(context.db)
    create_account(context, "jlis-operator", Role.OPERATOR, PASSWORD, datetime.now(UTC))
    yield context
    context.db.dispose()


def test_the_deck_table_uploaded_and_shown_in_the_browser(live_server: str, page: Any,
                                                          tmp_path: Path) -> None:
    folder = tmp_path
    targets, monthly = deck2016.build()
    (folder / "targets.csv").write_bytes(targets)
    (folder / "monthly.csv").write_bytes(monthly)
    page.goto(f"{live_server}/login?next=/plans/admin")
    page.fill("input[name=username]", "jlis-operator")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/plans/admin")
    page.set_input_files("input[name=files]", [str(folder / "targets.csv"), str(folder / "monthly.csv")])
    page.fill("input[name=as_of]", "2016-06-17")
    page.click("form[action='/plans/admin/import'] button")
    page.wait_for_selector("#message")
    assert "1,741" in page.locator("#message").inner_text()

    page.goto(f"{live_server}/plans")
    rows = page.locator("#deck-table tbody tr[data-row]")
    table = {}
    for i in range(rows.count()):
        row = rows.nth(i)
        cells = row.locator("td").all_inner_texts()
        table[row.get_attribute("data-row")] = [int(c.replace(",", "")) for c in cells[:8]]
    assert table == {("done" if k is None else str(k)): v for k, v in deck2016.TABLE.items()}
    for month, (count, share) in deck2016.CLEARED.items():
        row = page.locator(f"#deck-table tr:has(td:text-is('{month}'))")
        assert row.locator("td[data-col=cleared]").inner_text() == f"{count:,}"
        if share:
            assert row.locator("td[data-col=share]").inner_text() == share
        notices, applications, ratio = deck2016.PROGRESS[month]
        assert row.locator("td[data-col=notices]").inner_text() == f"{notices:,}"
        assert row.locator("td[data-col=applications]").inner_text() == f"{applications:,}"
        assert row.locator("td[data-col=ratio]").inner_text() == ratio
    assert page.locator("#support tbody tr").count() == 76
    assert page.locator("#map circle").count() == 1741
    page.shot("deck-national-ja")
    page.goto(f"{live_server}/plans?lang=en")
    page.shot("deck-national-en")
    page.goto(f"{live_server}/plans/pref/04")
    assert page.locator("#municipalities tbody tr").count() == 35  # 宮城県's 35 municipalities
    page.shot("deck-prefecture-miyagi")
