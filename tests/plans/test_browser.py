"""The plan pages in real Chromium (Playwright), served by uvicorn: after `mynacard demo` (the live database
of a simulated town), and with the deck's 1,741 plans uploaded through the operator's page. Screenshots are
kept under ``test-artifacts/plans/``."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import uvicorn
from playwright.sync_api import Browser, Page
from typer.testing import CliRunner

from mynacard.accounts.service import create_account
from mynacard.bootstrap import build_context
from mynacard.cli import app as cli
from mynacard.context import Context
from mynacard.migrate import upgrade
from mynacard.principal import Role
from mynacard.web.app import create_app
from tests.plans import deck2016

pytestmark = pytest.mark.browser
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "plans"
PASSWORD = "correct horse battery"


def _serve(ctx: Context) -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(ctx), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the web app did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        ctx.db.dispose()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("demo")
    result = CliRunner().invoke(cli, ["demo", "--home", str(home), "--no-serve", "--days", "28",
                                      "--residents", "1200"])
    assert result.exit_code == 0, result.output
    ctx = build_context(home=home, database_url=f"sqlite:///{home / 'mynacard.db'}")
    now = datetime.now(UTC)
    create_account(ctx, "chiyoda-sup", Role.SUPERVISOR, PASSWORD, now, municipality_code="131016")
    yield from _serve(ctx)


def _page(browser: Browser) -> Page:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return browser.new_context(viewport={"width": 1280, "height": 900}, locale="ja-JP").new_page()


def test_dashboard_after_the_demo(browser: Browser, demo: str) -> None:
    page = _page(browser)
    page.goto(f"{demo}/plans")
    assert page.locator("h1").inner_text() == "全国の交付計画"
    assert page.locator("#deck-table tbody tr").count() >= 3
    assert page.locator("#map circle").count() == 2  # the two demo towns
    assert page.locator("#chart-progress polyline").count() >= 3
    page.screenshot(path=str(ARTIFACTS / "demo-national-ja.png"), full_page=True)

    page.goto(f"{demo}/plans?lang=en")
    assert page.locator("h1").inner_text() == "Issuance plans — nation"

    page.goto(f"{demo}/plans/pref/13?lang=ja")
    assert page.locator("#municipalities tr[data-code='131016']").count() == 1
    page.screenshot(path=str(ARTIFACTS / "demo-prefecture-tokyo.png"), full_page=True)

    # A resident finds their town and sees its published plan and forecast.
    page.goto(f"{demo}/plans/find")
    page.fill("input[name=q]", "千代田区")
    page.press("input[name=q]", "Enter")
    page.wait_for_url("**/plans/m/131016")
    assert "千代田区" in page.locator("h1").inner_text()
    assert page.locator("#clearance").count() == 1  # a published plan
    assert page.locator("#chart-burndown polyline").count() >= 1
    assert page.locator("#forecast .big").count() == 1
    page.screenshot(path=str(ARTIFACTS / "demo-municipality-ja.png"), full_page=True)

    # The demo's 千代田区 falls behind; what if it adds a terminal: the expected day moves earlier.
    assert page.locator("#forecast [data-median]").count() == 1
    page.fill("input[name=add_terminals]", "1")
    page.click("#what-if button[type=submit]")
    page.wait_for_selector("#what-if-result")
    assert int(page.locator("#what-if-result").get_attribute("data-shift") or "0") < 0
    page.screenshot(path=str(ARTIFACTS / "demo-municipality-what-if.png"), full_page=True)


def test_a_supervisor_changes_the_plan_in_the_browser(browser: Browser, demo: str) -> None:
    page = _page(browser)
    page.goto(f"{demo}/login?next=/plans/m/131016/edit")
    page.fill("input[name=username]", "chiyoda-sup")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/plans/m/131016/edit")
    page.fill("input[name=terminals_0]", "3")
    page.fill("input[name=staff_0]", "5")
    page.fill("input[name=saturdays_0]", "2;4")
    page.click("button[value=preview]")
    page.wait_for_selector("#figures")
    assert page.locator("#published").count() == 0
    page.click("button[value=publish]")
    page.wait_for_selector("#published")
    page.screenshot(path=str(ARTIFACTS / "demo-edit-published.png"), full_page=True)
    page.goto(f"{demo}/plans/m/131016")
    assert page.locator("#means tbody tr td").nth(2).inner_text() == "3"


@pytest.fixture(scope="module")
def deck_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("deck")
    ctx = build_context(home=home, database_url=f"sqlite:///{home / 'mynacard.db'}")
    upgrade(ctx.db)
    create_account(ctx, "jlis-operator", Role.OPERATOR, PASSWORD, datetime.now(UTC))
    yield from _serve(ctx)


def test_the_deck_table_uploaded_and_shown_in_the_browser(browser: Browser, deck_server: str,
                                                          tmp_path_factory: pytest.TempPathFactory) -> None:
    folder = tmp_path_factory.mktemp("upload")
    targets, monthly = deck2016.build()
    (folder / "targets.csv").write_bytes(targets)
    (folder / "monthly.csv").write_bytes(monthly)
    page = _page(browser)
    page.goto(f"{deck_server}/login?next=/plans/admin")
    page.fill("input[name=username]", "jlis-operator")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/plans/admin")
    page.set_input_files("input[name=files]", [str(folder / "targets.csv"), str(folder / "monthly.csv")])
    page.fill("input[name=as_of]", "2016-06-17")
    page.click("form[action='/plans/admin/import'] button")
    page.wait_for_selector("#message")
    assert "1,741" in page.locator("#message").inner_text()

    page.goto(f"{deck_server}/plans")
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
    page.screenshot(path=str(ARTIFACTS / "deck-national-ja.png"), full_page=True)
    page.goto(f"{deck_server}/plans?lang=en")
    page.screenshot(path=str(ARTIFACTS / "deck-national-en.png"), full_page=True)
    page.goto(f"{deck_server}/plans/pref/04")
    assert page.locator("#municipalities tbody tr").count() == 35  # 宮城県's 35 municipalities
    page.screenshot(path=str(ARTIFACTS / "deck-prefecture-miyagi.png"), full_page=True)
