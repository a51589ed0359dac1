"""Accessibility (JIS X 8341-3 ≈ WCAG 2.x AA) of a representative set of pages of each kind of user, in real
Chromium against the real server: axe-core finds nothing serious or critical (``tests.a11y``), in Japanese and
in English — the public pages, a resident's booking, the staff pages of an operator, a clerk and a supervisor
(with a form's error, an error page and the one-time password pages), Mynaportal after a resident logs in, and
the screens of the convenience-store kiosk.

The server reads the office tests' evening clock (``office_server``), so that the booking page has slots.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mynacard.accounts import service as accounts
from mynacard.context import Context
from mynacard.exchange import demo as exchange_demo
from mynacard.exchange import service as ex
from mynacard.plans import service as plans
from mynacard.plans.demo import demo_means
from mynacard.plans.model import Month
from mynacard.portal.api import COOKIE as PORTAL_COOKIE
from mynacard.principal import Principal, Role
from mynacard.registry.model import Resident
from tests.a11y import assert_accessible
from tests.conftest import NOW
from tests.exchange.conftest import ctx, network_templates, town  # noqa: F401  (the portal's town)
from tests.helpers import CHIYODA, SYSTEM
from tests.jpki.support import Town as JpkiTown
from tests.kiosk.conftest import jpki_ca  # noqa: F401  (the kiosk's CA)
from tests.kiosk.test_browser import Kiosk, kiosk  # noqa: F401  (a kiosk and its centre, each on a server)
from tests.office.conftest import office_server  # noqa: F401  (the server, at the office tests' evening)
from tests.office.support import EVENING, NEXT_DAY, town_with_notices
from tests.portal.conftest import open_test_session
from tests.window.support import chip_cards

pytestmark = pytest.mark.browser
PASSWORD = "accessible-password-1"
LANGS = ("ja", "en")


def _check(page: Any, url: str, what: str, status: int = 200) -> None:
    """The page at ``url`` passes axe-core in each language (``?lang=``, which the page then remembers)."""
    for lang in LANGS:
        response = page.goto(f"{url}{'&' if '?' in url else '?'}lang={lang}")
        assert response is not None and response.status == status, (what, lang, response and response.status)
        assert page.locator("html").get_attribute("lang") == lang
        assert_accessible(page, context=f"{what} [{lang}]")


def _both_languages(page: Any, base: str, what: str, steps: Any) -> None:
    """``steps(page)`` reach a page that has no URL of its own (a form's answer); checked in each language."""
    for lang in LANGS:
        page.goto(f"{base}/?lang={lang}")  # the language cookie
        steps(page)
        assert page.locator("html").get_attribute("lang") == lang
        assert_accessible(page, context=f"{what} [{lang}]")


def _log_in(page: Any, base: str, username: str) -> None:
    page.context.clear_cookies()
    page.goto(f"{base}/login?lang=ja")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("form[action='/login'] button[type=submit]")
    page.wait_for_load_state()
    assert username in page.locator("header .who").inner_text()


def test_public_and_staff_pages_are_accessible(ctx: Context, office_server: str, page: Any) -> None:  # noqa: F811
    base = office_server
    jpki_town = JpkiTown(ctx)
    issued = jpki_town.card(jpki_town.resident())  # handed over, with its JPKI certificates
    card_id, _ = chip_cards(ctx, 2, NOW)  # at the window: chips made, the issuance notice sent
    office_town = town_with_notices(ctx, 4, seed=7)
    number = office_town.notices[0]
    born = office_town.birth_date(ctx, number).isoformat()
    plans.refresh_actuals(ctx, SYSTEM, EVENING)
    plans.save_plan(ctx, SYSTEM, CHIYODA, target=Month.of(EVENING.date()) + 2, means=demo_means(CHIYODA, 3),
                    now=EVENING)
    now = datetime.now(UTC)
    accounts.create_account(ctx, "a11y-operator", Role.OPERATOR, PASSWORD, now)
    accounts.create_account(ctx, "a11y-clerk", Role.CLERK, PASSWORD, now, CHIYODA)
    accounts.create_account(ctx, "a11y-supervisor", Role.SUPERVISOR, PASSWORD, now, CHIYODA)
    accounts.create_account(ctx, "a11y-newcomer", Role.CLERK, PASSWORD, now, CHIYODA, must_change_password=True)

    # anyone
    for path in ("/", "/login", "/plans", "/plans/pref/13", "/plans/find?q=千代田", f"/plans/m/{CHIYODA}", "/book",
                 f"/book?n={number}", f"/office/m/{CHIYODA}/congestion", "/kiosk/verify", "/jpki", "/exchange",
                 "/portal", "/portal/login"):
        _check(page, base + path, path)
    _check(page, base + "/plans/m/999999", "an error page", status=404)

    def wrong_password(p: Any) -> None:
        p.goto(f"{base}/login")
        p.fill("input[name=username]", "a11y-clerk")
        p.fill("input[name=password]", "not-the-password")
        p.click("form[action='/login'] button[type=submit]")
        p.wait_for_selector("main .error")

    def booking(p: Any) -> None:  # a resident's notice number and birth date, then the slots; one is booked
        p.context.clear_cookies(name="mynacard_session")
        p.goto(f"{base}/book?n={number}")
        p.fill("input[name=birth_date]", born)
        p.click("#start button")
        p.locator("#slots tr").first.locator("button").click()
        p.wait_for_selector("#current")

    def new_password(p: Any) -> None:  # a staff member whose one-time password must be replaced
        p.goto(f"{base}/login")
        p.fill("input[name=username]", "a11y-newcomer")
        p.fill("input[name=password]", PASSWORD)
        p.click("form[action='/login'] button[type=submit]")
        p.wait_for_selector("input[name=new_password]")

    _both_languages(page, base, "/login (wrong password)", wrong_password)
    _both_languages(page, base, "/book/slots (booked)", booking)
    _both_languages(page, base, "/login (one-time password)", new_password)

    _log_in(page, base, "a11y-operator")
    for path in ("/admin/accounts", "/admin/accounts/a11y-clerk", f"/jpki/admin?card={issued.serial}", "/plans/admin",
                 "/exchange/log", "/exchange/reviews", "/admin/jobs"):
        _check(page, base + path, f"operator {path}")
    page.goto(f"{base}/jpki/admin?card={issued.serial}")
    page.click("#card-certificates a")
    page.wait_for_url("**/jpki/admin/certificates/**")
    _check(page, page.url.split("?")[0], "operator: a certificate")
    created = iter(range(len(LANGS)))

    def create_account(p: Any) -> None:
        p.goto(f"{base}/admin/accounts")
        p.fill("#create-form input[name=username]", f"a11y-made-{next(created)}")
        p.select_option("#create-form select[name=role]", "clerk")
        p.fill("#create-form input[name=municipality_code]", CHIYODA)
        p.click("#create-form button[type=submit]")
        p.wait_for_selector("#secret")

    def refused_account(p: Any) -> None:
        p.goto(f"{base}/admin/accounts")
        p.fill("#create-form input[name=username]", "a11y-clerk")  # taken
        p.click("#create-form button[type=submit]")
        p.wait_for_selector("#problem")

    _both_languages(page, base, "operator: a new account's one-time password", create_account)
    _both_languages(page, base, "operator: a refused account", refused_account)

    _log_in(page, base, "a11y-clerk")
    for path in ("/window", f"/window/cards/{card_id}", f"/window/cards/{issued.id}",
                 f"/office/m/{CHIYODA}?day={NEXT_DAY.isoformat()}"):
        _check(page, base + path, f"clerk {path}")
    _check(page, base + "/window/cards/999999", "clerk: an error page", status=404)

    _log_in(page, base, "a11y-supervisor")
    for path in (f"/office/m/{CHIYODA}", f"/office/m/{CHIYODA}/backlog", f"/office/m/{CHIYODA}/receipt",
                 f"/plans/m/{CHIYODA}/edit", f"/mykey/disaster/{CHIYODA}", f"/mykey/points/{CHIYODA}"):
        _check(page, base + path, f"supervisor {path}")


def test_mynaportal_pages_are_accessible(ctx: Context, town: tuple[exchange_demo.World, list[Resident]],  # noqa: F811
                                         office_server: str, page: Any) -> None:  # noqa: F811
    base = office_server
    world, people = town
    me = people[0]
    exchange_demo.run_exchanges(ctx, world, 10, NOW)
    ex.send_notice(ctx, Principal(Role.AGENCY, "131016-tax"), "131016-tax", ex.NoticeInput(
        "住民税額決定通知", "令和8年度の住民税額が決定しました。", local_ref=world.refs["131016-tax"][me.id]),
        datetime.now(UTC) - timedelta(minutes=1))
    page.context.add_cookies([{"name": PORTAL_COOKIE, "value": open_test_session(ctx, me.id, datetime.now(UTC)),
                               "url": base}])
    for path in ("/portal", "/portal/records", "/portal/me", "/portal/notices",
                 "/portal/child", "/portal/applications", "/portal/child-health", "/portal/points"):
        _check(page, base + path, f"Mynaportal {path}")

    def confirm(p: Any) -> None:  # the one-stop application's confirmation
        p.goto(f"{base}/portal/child")
        p.check("input[value=child_allowance]")
        p.fill("input[name='child_allowance.child_name']", "山田 一郎")
        p.fill("input[name='child_allowance.child_kana']", "ヤマダ イチロウ")
        p.fill("input[name='child_allowance.child_birth_date']", "2025-06-01")
        p.select_option("select[name='child_allowance.relationship']", "子")
        p.select_option("select[name='child_allowance.payee_account']", "公金受取口座を利用する")
        p.click("#to-confirm")
        p.wait_for_selector("#applicant")

    def a_notice(p: Any) -> None:
        p.goto(f"{base}/portal/notices")
        p.click("#notices >> text=住民税額決定通知")
        p.wait_for_selector("article")

    def own_information(p: Any) -> None:
        p.goto(f"{base}/portal/me")
        p.click("#refresh")
        p.wait_for_selector("#own")

    _both_languages(page, base, "Mynaportal: the one-stop confirmation", confirm)
    _both_languages(page, base, "Mynaportal: a notice", a_notice)
    _both_languages(page, base, "Mynaportal: own information", own_information)


def test_the_kiosk_touch_screen_is_accessible(kiosk: Kiosk, page: Any) -> None:  # noqa: F811
    """Each screen of the convenience-store kiosk a resident goes through, and its refusal."""
    for lang in LANGS:
        page.goto(f"{kiosk.url}/?lang={lang}")
        assert_accessible(page, context=f"kiosk: start [{lang}]")
        page.click("#start")
        page.wait_for_selector("#screen-refused.on")  # no card on the reader
        assert_accessible(page, context=f"kiosk: refused [{lang}]")
        page.click("#again")
        kiosk.reader.place(kiosk.jpki.issue_card(kiosk.town.adult(household_size=2).id, NOW))
        page.click("#start")
        page.wait_for_selector("#screen-pin.on")
        for digit in "0000":
            page.click(f".key[data-digit='{digit}']")
        page.click("#pin-ok")
        page.wait_for_function("document.getElementById('pin-message').textContent.length > 0")
        assert_accessible(page, context=f"kiosk: PIN, a wrong one [{lang}]")
        for digit in "1234":
            page.click(f".key[data-digit='{digit}']")
        page.click("#pin-ok")
        page.wait_for_selector("#screen-menu.on")
        assert_accessible(page, context=f"kiosk: menu [{lang}]")
        page.click(".doc[data-kind='juminhyo']")
        page.wait_for_selector("#screen-options.on")
        assert_accessible(page, context=f"kiosk: options [{lang}]")
        page.click("#to-fee")
        page.click("#insert")
        assert_accessible(page, context=f"kiosk: fee [{lang}]")
        page.click("#print")
        page.wait_for_selector("#screen-done.on", timeout=30_000)
        assert_accessible(page, context=f"kiosk: done [{lang}]")
        kiosk.reader.place(None)  # the card taken back
