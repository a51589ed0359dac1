"""Mynaportal over HTTP (TestClient): card login through the seam, the session cookie, CSRF, pages, downloads
and JSON — and that a staff login is no way in, and that no page shows an individual number."""

from __future__ import annotations

import base64
import csv
import io
import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from mynacard.accounts import service as accounts
from mynacard.context import Context
from mynacard.exchange import demo
from mynacard.exchange import service as ex
from mynacard.portal.api import COOKIE
from mynacard.principal import Principal, Role
from mynacard.registry import service as registry
from mynacard.registry.model import Resident
from mynacard.web.app import create_app
from tests.conftest import NOW
from tests.helpers import SYSTEM, csrf
from tests.portal.conftest import FakeCardAuthenticator, open_test_session, sign

Town = tuple[demo.World, list[Resident]]


def _client(ctx: Context, auth: FakeCardAuthenticator | None = None, *, unconfigured: bool = False) -> TestClient:
    app = create_app(ctx)
    if auth is not None or unconfigured:
        app.state.card_authenticator = auth
    return TestClient(app)


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    assert found, "no CSRF token on the page"
    return found.group(1)


def _login(client: TestClient, auth: FakeCardAuthenticator, key: object, cert: bytes) -> object:
    page = client.get("/portal/login").text
    challenge_id = re.search(r'name="challenge_id" value="([0-9a-f]+)"', page).group(1)  # type: ignore[union-attr]
    nonce = base64.b64decode(re.search(r'id="nonce" value="([^"]+)"', page).group(1))  # type: ignore[union-attr]
    return client.post("/portal/login", follow_redirects=False, data={
        "csrf": _csrf(page), "challenge_id": challenge_id, "certificate": base64.b64encode(cert).decode(),
        "signature": base64.b64encode(sign(key, nonce)).decode()})  # type: ignore[arg-type]


def test_card_login_opens_a_session_and_logout_ends_it(ctx: Context, town: Town) -> None:
    _, people = town
    now = datetime.now(UTC)
    auth = FakeCardAuthenticator()
    key, cert = auth.issue_card(people[0].id, now)
    client = _client(ctx, auth)
    assert "マイナンバーカードでログイン" in client.get("/portal").text
    assert client.get("/portal/records", follow_redirects=False).headers["location"] == "/portal/login"
    assert client.get("/api/portal/records").status_code == 401
    response = _login(client, auth, key, cert)
    assert response.status_code == 303 and response.headers["location"] == "/portal"  # type: ignore[attr-defined]
    cookie = response.cookies.get(COOKIE)  # type: ignore[attr-defined]
    header = response.headers["set-cookie"].lower()  # type: ignore[attr-defined]
    assert cookie and "httponly" in header and "samesite=strict" in header
    top = client.get("/portal")
    assert f"{people[0].facts.name} さんでログイン中" in top.text
    # Logout needs the page's token; then the cookie is dead even if someone kept a copy.
    assert client.post("/portal/logout", data={"csrf": "forged"}).status_code == 403
    client.post("/portal/logout", data={"csrf": _csrf(top.text)})
    stolen = _client(ctx, auth)
    stolen.cookies.set(COOKIE, cookie)
    assert stolen.get("/api/portal/records").status_code == 401


def test_a_bad_or_replayed_card_response_is_refused(ctx: Context, town: Town) -> None:
    _, people = town
    auth = FakeCardAuthenticator()
    key, cert = auth.issue_card(people[0].id, datetime.now(UTC))
    other_key, _ = FakeCardAuthenticator().issue_card(people[1].id, datetime.now(UTC))
    client = _client(ctx, auth)
    bad = _login(client, auth, other_key, cert)  # signed with a key that is not the certificate's
    assert bad.status_code == 403 and "ログインできませんでした" in bad.text  # type: ignore[attr-defined]
    page = client.get("/portal/login").text
    challenge_id = re.search(r'name="challenge_id" value="([0-9a-f]+)"', page).group(1)  # type: ignore[union-attr]
    nonce = base64.b64decode(re.search(r'id="nonce" value="([^"]+)"', page).group(1))  # type: ignore[union-attr]
    form = {"csrf": _csrf(page), "challenge_id": challenge_id, "certificate": base64.b64encode(cert).decode(),
            "signature": base64.b64encode(sign(key, nonce)).decode()}
    assert client.post("/portal/login", data=form, follow_redirects=False).status_code == 303
    fresh = _client(ctx, auth)
    replay = fresh.post("/portal/login", data={**form, "csrf": csrf(fresh, "/portal/login")}, follow_redirects=False)
    assert replay.status_code == 403  # the challenge was single-use
    assert client.post("/portal/login", data={**form, "signature": "***"}).status_code == 403


def test_without_a_relying_party_card_login_is_unavailable(ctx: Context) -> None:
    client = _client(ctx, unconfigured=True)
    assert "カードによるログインが設定されていません" in client.get("/portal/login").text
    assert client.post("/portal/login", data={"challenge_id": "x", "certificate": "x", "signature": "x",
                                              "csrf": csrf(client)}
                       ).status_code == 503


PORTAL_PAGES = ["/portal/records", "/portal/me", "/portal/me.json", "/portal/me.csv", "/portal/notices",
                "/portal/notices/1", "/portal/child", "/portal/applications"]
PORTAL_API = ["/api/portal/records", "/api/portal/own-information", "/api/portal/notices",
              "/api/portal/applications"]


def test_no_staff_or_machine_login_is_a_way_into_the_portal(ctx: Context, town: Town) -> None:
    """Every portal route, with every kind of credential but a resident's session: pages send the browser to
    the card login, JSON answers 401, forms are refused."""
    roles = {"clerk": (Role.CLERK, "131016"), "supervisor": (Role.SUPERVISOR, "131016"),
             "operator": (Role.OPERATOR, None), "agency": (Role.AGENCY, None), "kiosk": (Role.KIOSK, None)}
    clients = {"anonymous": _client(ctx)}
    for name, (role, town_code) in roles.items():
        accounts.create_account(ctx, f"u-{name}", role, "correct horse battery", NOW, town_code)
        with_session = _client(ctx)
        with_session.post("/login", data={
            "csrf": csrf(with_session), "username": f"u-{name}", "password": "correct horse battery", "next": "/"})
        clients[f"{name}-session"] = with_session
        with_key = _client(ctx)
        with_key.headers["authorization"] = f"Bearer {accounts.issue_api_key(ctx, f'u-{name}')}"
        clients[f"{name}-key"] = with_key
    for who, client in clients.items():
        for path in PORTAL_PAGES:
            response = client.get(path, follow_redirects=False)
            assert (response.status_code, response.headers.get("location")) == (303, "/portal/login"), (who, path)
        for path in PORTAL_API:
            assert client.get(path).status_code == 401, (who, path)
        for path in ("/portal/me/refresh", "/portal/child/confirm", "/portal/child/submit"):
            token = csrf(client) if "authorization" not in client.headers else "x"
            assert client.post(path, data={"csrf": token}, follow_redirects=False).status_code == 303, (who, path)
        assert client.post("/api/portal/child-rearing", json={"forms": {}, "key": "k"}).status_code == 401


def _as(ctx: Context, rid: int) -> TestClient:
    client = _client(ctx)
    client.cookies.set(COOKIE, open_test_session(ctx, rid, datetime.now(UTC)))
    return client


def test_pages_and_downloads_for_the_logged_in_person(ctx: Context, town: Town) -> None:
    world, people = town
    demo.run_exchanges(ctx, world, 20, NOW)
    me = people[0]
    client = _as(ctx, me.id)
    records = client.get("/portal/records")
    assert records.status_code == 200 and "やりとり履歴" in records.text
    assert records.headers["cache-control"] == "no-store"
    shown = set(map(int, re.findall(r'data-seq="(\d+)"', records.text)))
    api = client.get("/api/portal/records").json()
    assert shown == {r["seq"] for r in api["records"]} and api["total"] == len(shown)
    me_page = client.get("/portal/me")
    assert "まだ取得していません" in me_page.text and "download-json" not in me_page.text
    assert client.post("/portal/me/refresh", data={"csrf": "nope"}).status_code == 403
    after = client.post("/portal/me/refresh", data={"csrf": _csrf(me_page.text)})
    assert after.status_code == 200 and 'id="own"' in after.text and "地方税関係情報" in after.text
    download = client.get("/portal/me.json")
    assert download.headers["content-disposition"].startswith("attachment;")
    doc = json.loads(download.content)
    assert doc["name"] == me.facts.name and doc["records"]
    rows = list(csv.DictReader(io.StringIO(client.get("/portal/me.csv").content.decode("utf-8-sig"))))
    assert len(rows) == sum(len(r["data"]) for r in doc["records"])
    english = client.get("/portal/me?lang=en")
    assert "Your information" in english.text and f"Logged in as {me.facts.name}" in english.text
    # Someone else's session sees their own, not mine.
    other = _as(ctx, people[1].id)
    assert not set(map(int, re.findall(r'data-seq="(\d+)"', other.get("/portal/records").text))) & shown
    assert other.get("/api/portal/own-information").json() == []
    # No page, no download shows the individual number.
    number = registry.individual_number_of(ctx, SYSTEM, me.id, "test", NOW)
    for path in ("/portal", "/portal/records", "/portal/me", "/portal/me.json", "/portal/me.csv", "/portal/notices",
                 "/portal/child", "/portal/applications", "/api/portal/records", "/api/portal/own-information"):
        body = client.get(path).content.decode("utf-8-sig")
        assert number not in body, path


def test_the_child_rearing_form_from_choice_to_delivery(ctx: Context, town: Town) -> None:
    _, people = town
    client = _as(ctx, people[0].id)
    page = client.get("/portal/child")
    assert page.status_code == 200 and page.text.count('name="procedure"') == 4
    csrf = _csrf(page.text)
    fields = {"csrf": csrf, "procedure": ["child_allowance", "maternal_child_health"],
              "child_allowance.child_name": "山田 一郎", "child_allowance.child_kana": "ヤマダ イチロウ",
              "child_allowance.child_birth_date": "2025-06-01", "child_allowance.relationship": "子",
              "child_allowance.payee_account": "公金受取口座を利用する",
              "maternal_child_health.due_date": "", "maternal_child_health.pregnancies": "1"}
    wrong = client.post("/portal/child/confirm", data=fields)
    assert wrong.status_code == 422 and "出産予定日" in wrong.text and 'value="山田 一郎"' in wrong.text
    fields["maternal_child_health.due_date"] = (datetime.now(UTC) + timedelta(days=120)).date().isoformat()
    confirm = client.post("/portal/child/confirm", data=fields)
    assert confirm.status_code == 200 and f"申請者: {people[0].facts.name}" in confirm.text
    assert "子育て支援課" in confirm.text and "保健センター" in confirm.text
    key = re.search(r'name="key" value="([^"]+)"', confirm.text).group(1)  # type: ignore[union-attr]
    submit = {**fields, "key": key}
    done = client.post("/portal/child/submit", data=submit, follow_redirects=False)
    assert done.status_code == 303
    listing = client.get(done.headers["location"])
    assert "申請を受け付けました" in listing.text and listing.text.count("data-application=") == 2
    client.post("/portal/child/submit", data=submit)  # a double click
    assert len(client.get("/api/portal/applications").json()) == 1
    inbox = ex.inbox(ctx, Principal(Role.AGENCY, "131016-child"), "131016-child")
    assert [i.payload["form"]["child_name"] for i in inbox] == ["山田 一郎"]
    assert client.post("/portal/child/submit", data={**submit, "csrf": "x"}).status_code == 403


@pytest.mark.parametrize("path", ["/api/portal/records", "/api/portal/own-information", "/api/portal/notices",
                                  "/api/portal/applications"])
def test_json_needs_a_resident_session(ctx: Context, path: str) -> None:
    assert _client(ctx).get(path).status_code == 401
