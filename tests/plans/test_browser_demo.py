"""The plan pages in real Chromium against the real server, on the live database that `mynacard demo`
leaves: the nation, a prefecture, a municipality with its forecast and a what-if, a resident finding their
town, a supervisor changing the plan. Screenshots under ``test-artifacts/``."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from mynacard.accounts.service import create_account
from mynacard.bootstrap import build_context
from mynacard.cli import app as cli
from mynacard.context import Context
from mynacard.principal import Role

pytestmark = pytest.mark.browser
PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def demo_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("demo")
    result = CliRunner().invoke(cli, ["demo", "--home", str(home), "--no-serve", "--days", "28",
                                      "--residents", "1200"])
    assert result.exit_code == 0, result.output
    ctx = build_context(home=home, database_url=f"sqlite:///{home / 'mynacard.db'}")
    create_account(ctx, "chiyoda-sup", Role.SUPERVISOR, PASSWORD, datetime.now(UTC), municipality_code="131016")
    ctx.db.dispose()
    return home


@pytest.fixture
def ctx(demo_home: Path) -> Iterator[Context]:
    """The demo's database (served by conftest's ``live_server``)."""
    context = build_context(home=demo_home, database_url=f"sqlite:///{demo_home / 'mynacard.db'}")
    yield context
    context.db.dispose()


def test_dashboard_after_the_demo(live_server: str, page: Any) -> None:
    page.goto(f"{live_server}/plans")
    assert page.locator("h1").inner_text() == "全国の交付計画"
    assert page.locator("#deck-table tbody tr").count() >= 3
    assert page.locator("#map circle").count() == 2  # the two demo towns
    assert page.locator("#chart-progress polyline").count() >= 3
    page.shot("demo-national-ja")

    page.goto(f"{live_server}/plans?lang=en")
    assert page.locator("h1").inner_text() == "Issuance plans — nation"

    page.goto(f"{live_server}/plans/pref/13?lang=ja")
    assert page.locator("#municipalities tr[data-code='131016']").count() == 1
    page.shot("demo-prefecture-tokyo")

    # A resident finds their town and sees its published plan and forecast.
    page.goto(f"{live_server}/plans/find")
    page.fill("input[name=q]", "千代田区")
    page.press("input[name=q]", "Enter")
    page.wait_for_url("**/plans/m/131016")
    assert "千代田区" in page.locator("h1").inner_text()
    assert page.locator("#clearance").count() == 1  # a published plan
    assert page.locator("#chart-burndown polyline").count() >= 1
    assert page.locator("#forecast .big").count() == 1
    page.shot("demo-municipality-ja")

    # The demo's 千代田区 falls behind; what if it adds a terminal: the expected day moves earlier.
    assert page.locator("#forecast [data-median]").count() == 1
    page.fill("input[name=add_terminals]", "1")
    page.click("#what-if button[type=submit]")
    page.wait_for_selector("#what-if-result")
    assert int(page.locator("#what-if-result").get_attribute("data-shift") or "0") < 0
    page.shot("demo-municipality-what-if")


def test_a_supervisor_changes_the_plan_in_the_browser(live_server: str, page: Any) -> None:
    page.goto(f"{live_server}/login?next=/plans/m/131016/edit")
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
    page.shot("demo-edit-published")
    page.goto(f"{live_server}/plans/m/131016")
    assert page.locator("#means tbody tr td").nth(2).inner_text() == "3"
