"""The demo as a person meets it: ``mynacard demo`` started as the README starts it (a smaller town), then in
Chromium each demo role logs in with the logins the login page shows, reaches its pages, and is refused another
role's and another town's; then the README's "Try it" walk-through, step by step as written there."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import CHROMIUM, require

pytestmark = pytest.mark.browser


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    require(Path(CHROMIUM).exists(), f"Chromium not found at {CHROMIUM}")
    home = tmp_path_factory.mktemp("demo-home")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "MYNACARD_DATABASE_URL"}
    env["MYNACARD_HOME"] = str(home)
    # kiosks serve 06:30–23:00 JST: the demo's kiosk clock starts at the next 10:00 in Japan, whenever this runs
    jst = datetime.now(timezone(timedelta(hours=9)))
    opening = jst.replace(hour=10, minute=0, second=0, microsecond=0)
    env["MYNACARD_KIOSK_CLOCK"] = (opening if opening > jst else opening + timedelta(days=1)).isoformat()
    process = subprocess.Popen(
        [sys.executable, "-m", "mynacard.cli", "demo", "--residents", "200", "--days", "21", "--chip-cards", "5",
         "--port", str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 400
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert process.poll() is None, process.stdout.read() if process.stdout else ""
        time.sleep(1)
    else:
        process.kill()
        pytest.fail("mynacard demo did not serve in time")
    yield base, home
    process.terminate()
    process.wait(timeout=20)


def _logins(page: Any, base: str) -> dict[str, str]:
    page.goto(base + "/login")
    rows = page.locator("#demo-logins tbody tr")
    return {rows.nth(i).locator("td").nth(1).inner_text(): rows.nth(i).locator("td").nth(2).inner_text()
            for i in range(rows.count())}


def _log_in(browser: Any, base: str, username: str, password: str) -> Any:
    context = browser.new_context(locale="ja-JP")
    page = context.new_page()
    page.goto(base + "/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("form[action='/login'] button[type=submit]")
    page.wait_for_load_state()
    assert username in page.locator("header .who").inner_text()
    return page


def test_each_demo_role_reaches_its_pages_and_no_others(demo_server: tuple[str, Path], browser: Any,
                                                        page: Any) -> None:
    base, _ = demo_server
    logins = _logins(page, base)
    assert {"demo-operator", "clerk-131016", "supervisor-131016", "clerk-011002", "kiosk-demo-0001",
            "demo-manufacturer", "demo-agency", "partner-demo", "shop-demo"} <= logins.keys()
    page.shot("demo-login")
    mine_and_not = {
        "demo-operator": (["/admin/accounts", "/plans/admin", "/exchange/log"], ["/office/m/131016/reviews"]),
        "clerk-131016": (["/window", "/office/m/131016"], ["/admin/accounts", "/office/m/011002", "/plans/admin"]),
        "supervisor-131016": (["/office/m/131016", "/plans/m/131016/edit"],
                              ["/office/m/011002", "/plans/m/011002/edit", "/admin/accounts"]),
        "clerk-011002": (["/window", "/office/m/011002"], ["/office/m/131016", "/admin/accounts"]),
    }
    for username, (allowed, refused) in mine_and_not.items():
        staff = _log_in(browser, base, username, logins[username])
        for path in allowed:
            response = staff.goto(base + path)
            assert response.status == 200, (username, path)
        for path in refused:
            response = staff.goto(base + path)
            assert response.status in (403, 404), (username, path, response.status)
        staff.context.close()
    for machine in ("kiosk-demo-0001", "demo-manufacturer", "demo-agency"):
        key = {"authorization": f"Bearer {logins[machine]}"}
        assert httpx.get(base + "/api/admin/accounts", headers=key).status_code == 403
        assert httpx.get(base + "/window", headers=key).status_code == 403  # a machine is no clerk
    assert httpx.get(base + "/api/admin/accounts",
                     headers={"authorization": "Bearer myna_not-a-key"}).status_code == 401


@contextmanager
def _kiosk_terminal(base: str, home: Path, key: str, card: Path, spool: Path) -> Iterator[str]:
    """``mynacard kiosk terminal --centre URL --api-key KEY --card FILE``, as the README runs it (in the same
    home as the demo)."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "MYNACARD_DATABASE_URL"}
    env["MYNACARD_HOME"] = str(home)
    process = subprocess.Popen(
        [sys.executable, "-m", "mynacard.cli", "kiosk", "terminal", "--centre", base, "--api-key", key,
         "--card", str(card), "--spool", str(spool), "--port", str(port)], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(url + "/", timeout=2)
            break
        except httpx.HTTPError:
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            time.sleep(0.3)
    try:
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)


def _kiosk_pin(page: Any, url: str) -> None:
    page.goto(url + "/")
    page.click("#start")
    page.wait_for_selector("#screen-pin.on")
    for digit in "1234":
        page.click(f".key[data-digit='{digit}']")
    page.click("#pin-ok")


def test_the_readme_walk_through(demo_server: tuple[str, Path], browser: Any, page: Any,
                                 tmp_path: Path) -> None:
    """README → "Try it", each role in turn, as written there."""
    base, home = demo_server
    logins = _logins(page, base)

    # 1. the clerk issues a card: today's bookings → 交付手続きへ → documents seen, four PINs → 交付する
    clerk = _log_in(browser, base, "clerk-131016", logins["clerk-131016"])
    clerk.goto(base + "/office/m/131016")
    for _ in range(10):  # on a day without bookings (a weekend), step to the next day
        if clerk.locator("#bookings a.serve").count():
            break
        clerk.click("text=→")
        clerk.wait_for_load_state()
    clerk.locator("#bookings a.serve").first.click()
    clerk.wait_for_url("**/window/cards/*")
    clerk.check("#issue-person-driving_licence")
    clerk.fill("input[name=pin_auth]", "2580")
    clerk.fill("input[name=pin_sign]", "TRYIT2026")
    clerk.fill("input[name=pin_card_info]", "2580")
    clerk.fill("input[name=pin_residence]", "2580")
    clerk.click("#issue")
    clerk.wait_for_load_state()
    assert clerk.locator("#state").get_attribute("data-state") == "issued"
    clerk.screenshot(path=str(tmp_path / "clerk.png"))
    clerk.context.close()

    # 2. the resident logs in to Mynaportal with a demo card (listed on the login page of a demo), PIN 1234
    page.goto(base + "/portal/login")
    serial = page.locator("#demo-cards tbody tr").first.locator("td").first.inner_text().strip()
    page.fill("#reader-login input[name=card]", serial)
    page.fill("#reader-login input[name=pin]", "1234")
    page.click("#reader-login button[type=submit]")
    page.wait_for_url(base + "/portal")
    assert page.locator("a[href='/portal/logout'], form[action='/portal/logout']").count()

    # 3. a store prints a 住民票 with that card: mynacard kiosk terminal … → はじめる, PIN, 住民票の写し, pay, print
    card = home / "chips" / f"{serial}.card"
    with _kiosk_terminal(base, home, logins["kiosk-demo-0001"], card, tmp_path / "spool") as kiosk:
        _kiosk_pin(page, kiosk)
        page.wait_for_selector("#screen-menu.on")
        page.click(".doc[data-kind='juminhyo']")
        page.wait_for_selector("#screen-options.on")
        page.click("#to-fee")
        page.click("#insert")
        page.click("#print")
        page.wait_for_selector("#screen-done.on", timeout=30_000)
        document_id = page.inner_text("#document-id")
        assert list((tmp_path / "spool").glob("*.pdf"))
        page.goto(f"{base}/kiosk/verify/{document_id}")
        assert page.locator("#status").get_attribute("data-state") == "printed"

        # 4. the operator revokes the card's authentication certificate at /jpki/admin; the store refuses it
        operator = _log_in(browser, base, "demo-operator", logins["demo-operator"])
        operator.goto(base + "/jpki/admin")
        operator.fill("#search-card input[name=card]", serial)
        operator.click("#search-card button[type=submit]")
        operator.locator("#card-certificates tr[data-status=good]:has-text('利用者証明用') a").first.click()
        operator.select_option("select[name=reason]", "keyCompromise")
        operator.check("input[name=confirm]")
        operator.click("#revoke-button")
        operator.wait_for_load_state()
        assert operator.locator("#status").get_attribute("data-status") == "revoked"
        operator.context.close()
        _kiosk_pin(page, kiosk)
        page.wait_for_selector("#screen-refused.on", timeout=30_000)
        assert "失効" in page.inner_text("#refusal"), page.inner_text("#refusal")
