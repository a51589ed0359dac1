"""Mother-and-child health records: recorded by the health centre, shown to the parent in Mynaportal with
reminders for missed vaccinations; nobody else's children."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from mynacard.clock import local_date
from mynacard.context import Context
from mynacard.errors import Conflict, InvalidInput, NotFound
from mynacard.mykey import child_health
from mynacard.mykey.child_health import months_old, reminders
from mynacard.principal import Principal, Role
from mynacard.registry import service as registry
from mynacard.registry.model import BasicFacts
from tests.conftest import NOW
from tests.jpki.support import CHIYODA, SAPPORO, SYSTEM
from tests.mykey.support import portal_session

NURSE = Principal(Role.CLERK, "hoken-center", CHIYODA)


def _family(ctx: Context, today: date) -> tuple[int, int, int]:
    baby_birth = date(today.year - 1, today.month, 1) - timedelta(days=60)  # about 14 months old
    people = [registry.NewResident(CHIYODA, BasicFacts.parse("高橋", given, birth, sex, "東京都千代田区麹町1番1号"),
                                   "タカハシ", kana, household_key="t", relationship=rel)
              for given, kana, birth, sex, rel in (("美咲", "ミサキ", date(1990, 3, 3), "2", "世帯主"),
                                                   ("翔", "ショウ", baby_birth, "1", "子"))]
    mother, baby = registry.register_residents(ctx, SYSTEM, people, NOW - timedelta(days=400))
    stranger = registry.register_residents(ctx, SYSTEM, [registry.NewResident(
        CHIYODA, BasicFacts.parse("伊藤", "健", date(1985, 1, 1), "1", "東京都千代田区麹町2番1号"),
        "イトウ", "ケン")], NOW - timedelta(days=400))[0]
    return mother, baby, stranger


def test_reminders_are_pure_and_follow_the_schedule() -> None:
    birth = date(2025, 1, 15)
    assert months_old(birth, date(2025, 3, 14)) == 1 and months_old(birth, date(2025, 3, 15)) == 2
    on = date(2025, 10, 20)  # 9 months
    found = {r.item.code: r.state for r in reminders(birth, on, {("vaccination", "HepB-1")})}
    assert "HepB-1" not in found
    assert found["Rota-1"] == "missed" and found["HepB-3"] == "due" and found["BCG"] == "due"
    assert "MR-1" not in found  # not yet


def test_the_parent_sees_records_and_missed_vaccinations(ctx: Context) -> None:
    today = local_date(NOW)
    mother, baby, stranger = _family(ctx, today)
    birth = registry.get_resident(ctx, SYSTEM, baby).facts.birth_date
    assert child_health.record(ctx, NURSE, baby, "vaccination", "HepB-1", birth + timedelta(days=70), NOW)
    assert not child_health.record(ctx, NURSE, baby, "vaccination", "HepB-1", birth + timedelta(days=70), NOW)
    with pytest.raises(Conflict):
        child_health.record(ctx, NURSE, baby, "vaccination", "HepB-1", birth + timedelta(days=71), NOW)
    child_health.record(ctx, NURSE, baby, "checkup", "4m", birth + timedelta(days=125), NOW)
    with pytest.raises(InvalidInput):
        child_health.record(ctx, NURSE, baby, "vaccination", "COVID-99", today, NOW)
    with pytest.raises(NotFound):
        child_health.record(ctx, Principal(Role.CLERK, "x", SAPPORO), baby, "checkup", "18m", today, NOW)

    (child,) = child_health.for_parent(ctx, Principal(Role.RESIDENT, str(mother)), today)
    assert child.resident_id == baby and [r.item.code for r in child.records] == ["HepB-1", "4m"]
    states = {r.item.code: r.state for r in child.reminders}
    assert states["HepB-2"] == "missed" and states["BCG"] == "missed" and states["MR-1"] == "due"
    assert "HepB-1" not in states and "4m" not in states
    assert child_health.for_parent(ctx, Principal(Role.RESIDENT, str(stranger)), today) == []
    assert child_health.for_parent(ctx, Principal(Role.RESIDENT, str(baby)), today) == []  # a child sees nothing


@pytest.mark.browser
def test_child_health_page_in_mynaportal(ctx: Context, live_server: str, page: Any) -> None:
    now = datetime.now(UTC)
    today = local_date(now)
    mother, baby, _ = _family(ctx, today)
    birth = registry.get_resident(ctx, SYSTEM, baby).facts.birth_date
    child_health.record(ctx, NURSE, baby, "vaccination", "HepB-1", birth + timedelta(days=70), now)
    token = portal_session(ctx, mother, now)
    page.context.add_cookies([{"name": "mynaportal_session", "value": token, "url": live_server}])
    page.goto(live_server + "/portal/notices")
    page.click("header >> text=母子保健")
    page.wait_for_url(live_server + "/portal/child-health")
    assert page.locator("h1").inner_text() == "母子保健 (予防接種・健診)"
    section = page.locator(f"section.child[data-child='{baby}']")
    assert section.locator("table.records tr[data-code='HepB-1']").count() == 1
    assert section.locator("li.reminder.missed[data-code='HepB-2']").count() == 1
    assert "保健センターにご相談ください" in section.locator("li.reminder.missed").first.inner_text()
    page.shot("child-health-ja")
    page.goto(live_server + "/portal/child-health?lang=en")
    assert "Missed" in page.locator("li.reminder.missed").first.inner_text()
    page.shot("child-health-en")
    page.context.clear_cookies()
    page.goto(live_server + "/portal/child-health")
    assert page.url.endswith("/portal/login")
