"""The web shell and the card pages over HTTP (TestClient): language, login, scope, errors."""

from __future__ import annotations

import base64
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

from mynacard.accounts import service as accounts
from mynacard.cards import service as cards
from mynacard.context import Context
from mynacard.principal import Role
from mynacard.sim.photos import face_photo
from mynacard.web.app import create_app
from tests.conftest import NOW
from tests.helpers import CHIYODA, SAPPORO, SYSTEM, apply_all, csrf, make_residents, produce


@pytest.fixture
def client(ctx: Context) -> TestClient:
    return TestClient(create_app(ctx))


def test_first_page_shows_cards_by_state_in_japanese_and_english(ctx: Context, client: TestClient) -> None:
    assert "まだ申請はありません" in client.get("/").text
    apply_all(ctx, make_residents(ctx, 5, NOW), NOW)
    page = client.get("/")
    assert page.status_code == 200 and "申請受付" in page.text and "131016 東京都千代田区" in page.text
    english = client.get("/?lang=en")
    assert "issuance status" in english.text and english.cookies.get("lang") == "en"
    assert client.get("/api/cards/stats").json()["totals"]["applied"] == 5


def test_api_needs_credentials_and_respects_scope(ctx: Context, client: TestClient) -> None:
    ids = make_residents(ctx, 3, NOW)
    apply_all(ctx, ids, NOW)
    boxes = produce(ctx, NOW)
    assert client.get("/api/boxes").status_code == 401
    accounts.create_account(ctx, "chiyoda-clerk", Role.CLERK, "correct horse battery", NOW, CHIYODA)
    accounts.create_account(ctx, "sapporo-clerk", Role.CLERK, None, NOW, SAPPORO)
    chiyoda = {"authorization": "Bearer " + accounts.issue_api_key(ctx, "chiyoda-clerk")}
    sapporo = {"authorization": "Bearer " + accounts.issue_api_key(ctx, "sapporo-clerk")}
    assert client.get("/api/boxes", headers=chiyoda).json() == {"unreceived": boxes}
    assert client.get("/api/boxes", headers=sapporo).json() == {"unreceived": []}
    assert client.get(f"/api/boxes/{boxes[0]}", headers=sapporo).status_code == 404
    serials = client.get(f"/api/boxes/{boxes[0]}", headers=chiyoda).json()["serials"]
    denied = client.post(f"/api/boxes/{boxes[0]}/receipt", headers=sapporo, json={"scanned": serials})
    assert denied.status_code == 404
    ok = client.post(f"/api/boxes/{boxes[0]}/receipt", headers=chiyoda, json={"scanned": serials})
    assert ok.status_code == 200 and ok.json()["received"] == 3
    card_id = cards.get_card(ctx, SYSTEM, 1).id
    assert client.get(f"/api/cards/{card_id}", headers=chiyoda).json()["state"] == "received"
    assert client.get(f"/api/cards/{card_id}", headers=sapporo).status_code == 404
    assert client.get("/api/boxes", headers={"authorization": "Bearer myna_forged"}).status_code == 401


def test_intake_api_reports_every_problem_and_stores_nothing(ctx: Context, client: TestClient) -> None:
    ids = make_residents(ctx, 2, NOW)
    forms = cards.issue_application_forms(ctx, SYSTEM, ids, NOW)
    accounts.create_account(ctx, "contractor", Role.CONTRACTOR, None, NOW)
    auth = {"authorization": "Bearer " + accounts.issue_api_key(ctx, "contractor")}
    from mynacard.registry import service as registry
    people = registry.residents_by_id(ctx, SYSTEM, ids)

    def body(rid: int, photo: bytes) -> dict[str, object]:
        f = people[rid].facts
        return {"application_id": forms[rid], "channel": "online", "family_name": f.family_name,
                "given_name": f.given_name, "birth_date": f.birth_date.isoformat(), "sex": f.sex.value,
                "address": f.address, "photo_base64": base64.b64encode(photo).decode()}

    bad = client.post("/api/cards/applications", headers=auth,
                      json=[body(ids[0], face_photo(1)), body(ids[1], b"not a photo")])
    assert bad.status_code == 422 and "photo" in bad.json()["problems"][0]
    assert client.get("/api/cards/stats").json()["totals"]["applied"] == 0
    ok = client.post("/api/cards/applications", headers=auth,
                     json=[body(ids[0], face_photo(1)), body(ids[1], face_photo(2))])
    assert ok.status_code == 200 and len(ok.json()["created"]) == 2
    clerk_key = {"authorization": "Bearer myna_nope"}
    assert client.post("/api/cards/applications", headers=clerk_key, json=[]).status_code == 401


def test_login_page_and_session(ctx: Context, client: TestClient) -> None:
    accounts.create_account(ctx, "tanaka", Role.SUPERVISOR, "a long enough password", NOW, CHIYODA)
    assert "職員ログイン" in client.get("/login").text
    wrong = client.post("/login", data={"csrf": csrf(client), "username": "tanaka", "password": "nope", "next": "/"})
    assert wrong.status_code == 401 and "違います" in wrong.text
    right = client.post("/login", data={"csrf": csrf(client), "username": "tanaka",
                                        "password": "a long enough password",
                                        "next": "/api/boxes"}, follow_redirects=False)
    assert right.status_code == 303 and right.headers["location"] == "/api/boxes"
    assert client.get("/api/boxes").json() == {"unreceived": []}
    assert "tanaka" in client.get("/").text
    client.post("/logout", data={"csrf": csrf(client)})
    assert client.get("/api/boxes").status_code == 401
    offsite = client.post("/login", data={"csrf": csrf(client), "username": "tanaka",
                                        "password": "a long enough password",
                                          "next": "//evil.example"}, follow_redirects=False)
    assert offsite.headers["location"] == "/"


def test_the_thread_pool_size_is_set_from_the_environment(sqlite_ctx: Context,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import anyio
    import anyio.to_thread

    from mynacard.web.app import THREADS_ENV

    app = create_app(sqlite_ctx)

    async def tokens_inside_lifespan() -> float:
        async with app.router.lifespan_context(app):
            return anyio.to_thread.current_default_thread_limiter().total_tokens

    def tokens() -> float:
        # a fresh thread with a fresh event loop: another test may have left one running in this thread
        with ThreadPoolExecutor(1) as pool:
            return pool.submit(anyio.run, tokens_inside_lifespan).result()

    assert tokens() == 40  # anyio's default when nothing is set
    monkeypatch.setenv(THREADS_ENV, "3")
    assert tokens() == 3
    monkeypatch.setenv(THREADS_ENV, "zero")
    with pytest.raises(ValueError, match=THREADS_ENV):
        tokens()
