"""The network over HTTP (TestClient): public pages, the agency interface with API keys, reviews and the log
for people, and a walk of every route with every role."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from mynacard.accounts import service as accounts
from mynacard.context import Context
from mynacard.exchange import demo
from mynacard.principal import Role
from mynacard.registry import service as registry
from mynacard.web.app import create_app
from tests.conftest import NOW
from tests.exchange.conftest import numbers_of
from tests.helpers import SYSTEM, csrf


@pytest.fixture
def client(ctx: Context) -> TestClient:
    return TestClient(create_app(ctx))


def _key(ctx: Context, username: str, role: Role, municipality: str | None = None) -> dict[str, str]:
    accounts.create_account(ctx, username, role, None, NOW, municipality)
    return {"authorization": f"Bearer {accounts.issue_api_key(ctx, username)}"}


def test_the_public_pages_show_the_directory_and_the_table(ctx: Context, client: TestClient,
                                                           small_world: demo.World) -> None:
    page = client.get("/exchange")
    assert page.status_code == 200 and "情報提供ネットワークシステム" in page.text
    assert "千代田区 税務課" in page.text or "東京都千代田区 税務課" in page.text
    assert 'data-row="C-01"' in page.text and "児童手当の支給" in page.text
    english = client.get("/exchange?lang=en")
    assert "Information provision network" in english.text and "child_allowance" in english.text
    directory = client.get("/api/exchange/agencies").json()
    assert {"131016-tax", "nenkin", "mynaportal"} <= {a["id"] for a in directory}
    assert all(len(a["sign_public_key"]) == 44 and "sealed" not in str(a) for a in directory)
    assert len(client.get("/api/exchange/permissions").json()) >= 25


def test_an_agency_works_through_its_api_key(ctx: Context, client: TestClient, small_world: demo.World) -> None:
    child = _key(ctx, "131016-child", Role.AGENCY)
    tax = _key(ctx, "131016-tax", Role.AGENCY)
    rid = sorted(small_world.refs["131016-child"])[0]
    ref = small_world.refs["131016-child"][rid]
    body = {"provider": "131016-tax", "procedure": "child_allowance", "item": "local_tax", "local_ref": ref,
            "message_id": "api-1"}
    assert client.post("/api/exchange/agencies/131016-child/queries", json=body).status_code == 401
    answer = client.post("/api/exchange/agencies/131016-child/queries", json=body, headers=child)
    assert answer.status_code == 200 and answer.json()["status"] == "provided" and answer.json()["basis"] == "C-01"
    # Another agency's key cannot act for it.
    assert client.post("/api/exchange/agencies/131016-child/queries", json=body, headers=tax).status_code == 403
    refused = client.post("/api/exchange/agencies/131016-child/queries", headers=child, json={
        **body, "procedure": "public_assistance", "message_id": "api-2"})
    assert refused.status_code == 403 and "logged as entry" in refused.json()["detail"]
    # Enrolment of a new resident, a copy of an item, and a notice.
    (new_id,) = registry.register_residents(ctx, SYSTEM, [registry.NewResident(
        "131016", registry.get_resident(ctx, SYSTEM, rid).facts, "ヤマダ", "ハナコ")], NOW)
    r = registry.get_resident(ctx, SYSTEM, new_id)
    number = numbers_of(ctx, [r])[new_id]
    enrolment = {"local_ref": "T-NEW", "individual_number": number, "family_name": r.facts.family_name,
                 "given_name": r.facts.given_name, "birth_date": r.facts.birth_date.isoformat(),
                 "sex": r.facts.sex.value, "address": r.facts.address}
    out = client.post("/api/exchange/agencies/131016-tax/enrolments", headers=tax, json=[enrolment])
    assert out.status_code == 200 and out.json()[0]["outcome"] == "linked"
    assert number not in out.text
    bad = client.post("/api/exchange/agencies/131016-tax/enrolments", headers=tax,
                      json=[{**enrolment, "local_ref": "T-X", "individual_number": "123"}])
    assert bad.status_code == 422 and "123" not in str(bad.json()["problems"]).replace("#1", "")
    stored = client.post("/api/exchange/agencies/131016-tax/records", headers=tax,
                         json=[{"local_ref": "T-NEW", "item": "local_tax", "data": {"所得": 1}}])
    assert stored.json() == {"stored": 1}
    sent = client.post("/api/exchange/agencies/131016-tax/notices", headers=tax,
                       json={"title": "お知らせ", "body": "本文", "local_ref": "T-NEW"})
    assert sent.status_code == 200 and sent.json()["log_seq"] > 0
    history = client.get("/api/exchange/agencies/131016-tax/links/T-NEW/history", headers=tax).json()
    assert history[0]["status"] == "active" and history[0]["events"][0]["kind"] == "linked"
    mine = client.get("/api/exchange/log", headers=tax).json()
    assert mine and all("131016-tax" in (e["requester"], e["provider"]) for e in mine)


def test_people_decide_reviews_and_read_the_log(ctx: Context, client: TestClient, small_world: demo.World) -> None:
    tax = _key(ctx, "131016-tax", Role.AGENCY)
    accounts.create_account(ctx, "chiyoda-boss", Role.SUPERVISOR, "correct horse battery", NOW, "131016")
    accounts.create_account(ctx, "jlis-ops", Role.OPERATOR, "correct horse battery", NOW)
    rid = sorted(small_world.refs["131016-tax"])[0]
    r = registry.get_resident(ctx, SYSTEM, rid)
    wrong = {"local_ref": "T-R", "individual_number": numbers_of(ctx, [r])[rid], "family_name": r.facts.family_name,
             "given_name": r.facts.given_name, "birth_date": r.facts.birth_date.isoformat(),
             "sex": r.facts.sex.value, "address": "東京都千代田区どこか1-1"}
    (result,) = client.post("/api/exchange/agencies/131016-tax/enrolments", headers=tax, json=[wrong]).json()
    assert result["outcome"] == "review"
    client.post("/login", data={
        "csrf": csrf(client), "username": "chiyoda-boss", "password": "correct horse battery", "next": "/"})
    page = client.get("/exchange/reviews")
    assert page.status_code == 200 and f'data-review="{result["review_id"]}"' in page.text
    assert "address" in page.text and wrong["individual_number"] not in page.text
    done = client.post(f"/exchange/reviews/{result['review_id']}", data={
        "decision": "reject", "reason": "別人", "csrf": csrf(client)},
                       follow_redirects=False)
    assert done.status_code == 303 and "確認待ちはありません" in client.get("/exchange/reviews").text
    assert client.get("/exchange/log").status_code == 403  # a supervisor is not the operator
    client.post("/logout", data={"csrf": csrf(client)})
    client.post("/login", data={
        "csrf": csrf(client), "username": "jlis-ops", "password": "correct horse battery", "next": "/"})
    demo.run_exchanges(ctx, small_world, 3, NOW)
    log_page = client.get("/exchange/log")
    assert log_page.status_code == 200 and "記録は改ざんされていません" in log_page.text
    assert client.get("/api/exchange/log/verify").json()["ok"] is True


ROUTES: list[tuple[str, str, dict[str, Any] | list[Any] | None]] = [
    ("GET", "/exchange", None),
    ("GET", "/api/exchange/permissions", None),
    ("GET", "/api/exchange/agencies", None),
    ("POST", "/api/exchange/agencies", {"id": "new-agency", "name": "新機関", "name_en": "New", "kind": "pension"}),
    ("POST", "/api/exchange/agencies/131016-tax/status", {"status": "active", "reason": "確認"}),
    ("POST", "/api/exchange/agencies/131016-tax/enrolments", []),
    ("POST", "/api/exchange/agencies/131016-tax/records", []),
    ("POST", "/api/exchange/agencies/131016-tax/queries",
     {"provider": "nenkin", "procedure": "local_tax_assessment", "item": "pension_benefit", "local_ref": "REF"}),
    ("POST", "/api/exchange/agencies/131016-tax/notices", {"title": "t", "body": "b", "local_ref": "REF"}),
    ("GET", "/api/exchange/agencies/131016-tax/inbox", None),
    ("POST", "/api/exchange/agencies/131016-tax/links/REF/unlink", {"reason": "r"}),
    ("GET", "/api/exchange/agencies/131016-tax/links/REF/history", None),
    ("POST", "/api/exchange/agencies/131016-tax/reconcile", None),
    ("GET", "/api/exchange/reviews", None),
    ("GET", "/api/exchange/log", None),
    ("GET", "/api/exchange/log/verify", None),
    ("GET", "/exchange/log", None),
    ("GET", "/exchange/reviews", None),
]

# Who gets through (2xx) on each route; everyone else is refused: 401 without credentials, 403 otherwise.
ALLOWED = {
    "/exchange": "all", "/api/exchange/permissions": "all", "/api/exchange/agencies GET": "all",
    "/api/exchange/agencies POST": {"operator"},
    "/api/exchange/agencies/131016-tax/status": {"operator"},
    "/api/exchange/agencies/131016-tax/enrolments": {"tax"},
    "/api/exchange/agencies/131016-tax/records": {"tax"},
    "/api/exchange/agencies/131016-tax/queries": {"tax"},
    "/api/exchange/agencies/131016-tax/notices": {"tax"},
    "/api/exchange/agencies/131016-tax/inbox": {"tax"},
    "/api/exchange/agencies/131016-tax/links/REF/unlink": {"tax", "operator", "supervisor"},
    "/api/exchange/agencies/131016-tax/links/REF/history": {"tax", "operator", "supervisor"},
    "/api/exchange/agencies/131016-tax/reconcile": {"tax", "operator", "supervisor"},
    "/api/exchange/reviews": {"tax", "other-agency", "operator", "supervisor", "other-supervisor"},
    "/api/exchange/log": {"tax", "other-agency", "operator"},
    "/api/exchange/log/verify": {"operator"},
    "/exchange/log": {"operator"},
    "/exchange/reviews": {"operator", "supervisor", "other-supervisor"},
}


def test_every_route_with_every_role(ctx: Context, client: TestClient, small_world: demo.World) -> None:
    _walk_every_route(ctx, client, small_world)


def test_the_walk_fails_on_a_scoping_bug_that_hides_data(ctx: Context, client: TestClient, small_world: demo.World,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The walk above is a real check: a route that answers 404 to a role allowed to see the data fails it."""
    from mynacard.errors import NotFound
    from mynacard.exchange import service

    real = service.link_history

    def hides_from_supervisors(ctx: Context, who: Any, *args: Any, **kwargs: Any) -> Any:
        if who.role is Role.SUPERVISOR and who.municipality_code == "131016":  # the town's own supervisor
            raise NotFound("no such link")
        return real(ctx, who, *args, **kwargs)

    monkeypatch.setattr(service, "link_history", hides_from_supervisors)
    with pytest.raises(AssertionError, match=r"/history', 'supervisor', 404"):
        _walk_every_route(ctx, client, small_world)


def _walk_every_route(ctx: Context, client: TestClient, small_world: demo.World) -> None:
    """An allowed role gets 2xx — never a 404, 409 or 422, which would pass a scoping bug that hides its data —
    on data that exists for it: each role works on a live link of its own (an unlink by one would leave the next
    nothing to unlink). Everyone else is refused."""
    live = list(small_world.refs["131016-tax"].values())
    roles = {
        "anonymous": {},
        "tax": _key(ctx, "131016-tax", Role.AGENCY),
        "other-agency": _key(ctx, "nenkin", Role.AGENCY),
        "operator": _key(ctx, "jlis", Role.OPERATOR),
        "supervisor": _key(ctx, "boss", Role.SUPERVISOR, "131016"),
        "other-supervisor": _key(ctx, "boss2", Role.SUPERVISOR, "011002"),
        "clerk": _key(ctx, "clerk", Role.CLERK, "131016"),
        "manufacturer": _key(ctx, "maker", Role.MANUFACTURER),
    }
    assert len(live) >= len(roles)
    ref_of = dict(zip(roles, live, strict=False))
    for method, path, body in ROUTES:
        rule = ALLOWED.get(path) or ALLOWED[f"{path} {method}"]
        for role, headers in roles.items():
            ref = ref_of[role]
            real = path.replace("REF", ref)
            response = client.request(method, real, headers=headers, follow_redirects=False,
                                      json=body if not isinstance(body, dict) else {
                                          k: (ref if v == "REF" else v) for k, v in body.items()})
            allowed = rule == "all" or role in rule
            if allowed:
                assert 200 <= response.status_code < 300, (method, path, role, response.status_code,
                                                           response.text[:300])
                if method == "GET" and "REF" in path:  # the link's own history, not an empty answer
                    assert response.json() and response.json()[0]["events"], (method, path, role, response.text)
            else:
                # A browser without a session is sent to the login page; an API client gets 401.
                expected = 403 if role != "anonymous" else 401 if path.startswith("/api/") else 303
                assert response.status_code == expected, (method, path, role, response.status_code)
