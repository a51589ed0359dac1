"""The demo as a person meets it: ``mynacard demo`` started as the README starts it (a smaller town), then in
Chromium each demo role logs in with the logins the login page shows, reaches its pages, and is refused another
role's and another town's."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
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
    process = subprocess.Popen(
        [sys.executable, "-m", "mynacard.cli", "demo", "--residents", "200", "--days", "7", "--chip-cards", "5",
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
    yield base
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


def test_each_demo_role_reaches_its_pages_and_no_others(demo_server: str, browser: Any, page: Any) -> None:
    base = demo_server
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
