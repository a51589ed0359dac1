"""The safety net and the error answers (issue 22): a bug answers a generic 500 with a request id and is logged
once without anything the caller sent; refusals keep their 4xx; a 422 names the field but never echoes the
value; every answer carries a request id."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Literal

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel

from mynacard.context import Context
from mynacard.errors import Conflict, Forbidden, InvalidInput, NotFound
from mynacard.web.app import create_app
from mynacard.webkit.errors import REQUEST_ID_HEADER
from mynacard.webkit.params import Id, IdPath, Limit

SECRET = "123456789018"  # an individual number's shape: never in an answer or a log


class Body(BaseModel):
    individual_number: str
    card_id: Id


def broken_app(ctx: Context) -> FastAPI:
    """The real app with test-only routes: one that fails like a bug would, others that refuse."""
    app = create_app(ctx)

    @app.get("/api/test/broken/{card_id}")
    def broken(card_id: IdPath, q: str = "") -> dict[str, str]:
        raise RuntimeError(f"bug while handling {q} for card {card_id}")

    @app.get("/test/broken-page")
    def broken_page(q: str = "") -> dict[str, str]:
        raise KeyError(q)

    @app.get("/api/test/refuse/{kind}")
    def refuse(kind: Literal["invalid", "missing", "forbidden", "conflict"]) -> dict[str, str]:
        raise {"invalid": InvalidInput("bad"), "missing": NotFound("no such thing"), "forbidden": Forbidden("no"),
               "conflict": Conflict("taken")}[kind]

    @app.post("/api/test/typed")
    def typed(body: Body, limit: Limit = 10) -> dict[str, int]:
        return {"card_id": body.card_id, "limit": limit}

    return app


@pytest.fixture
def client(sqlite_ctx: Context) -> Iterator[TestClient]:
    with TestClient(broken_app(sqlite_ctx), raise_server_exceptions=True) as c:
        yield c


def test_a_bug_answers_500_with_a_request_id_and_is_logged_once_without_the_input(
        client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        answer = client.get(f"/api/test/broken/42?q={SECRET}")
    # the net answers (TestClient re-raises what reaches it: nothing did)
    assert answer.status_code == 500
    rid = answer.headers[REQUEST_ID_HEADER]
    assert len(rid) == 32 and answer.json() == {
        "error": "ServerError", "request_id": rid,
        "detail": "an unexpected error occurred on the server; it has been logged with this request id"}
    assert SECRET not in answer.text and "RuntimeError" not in answer.text
    logged = [r for r in caplog.records if r.name == "mynacard.webkit.errors"]
    assert len(logged) == 1, [r.getMessage() for r in caplog.records]
    text = logged[0].getMessage()
    assert rid in text and "GET /api/test/broken/{card_id}" in text and "RuntimeError" in text
    assert "test_errors.py" in text and "in broken" in text  # the traceback's frames
    # the source lines of the frames are code; what the caller sent (the path's 42, the query) is not there,
    # nor the exception's message, which carries it
    assert SECRET not in text and "/broken/42" not in text and f"bug while handling {SECRET}" not in text
    assert all(SECRET not in r.getMessage() for r in caplog.records if r.name.startswith("mynacard"))
    assert logged[0].request_id == rid and logged[0].route == "/api/test/broken/{card_id}"  # type: ignore[attr-defined]


def test_a_browser_gets_a_small_japanese_page(client: TestClient) -> None:
    page = client.get(f"/test/broken-page?q={SECRET}", headers={"Accept": "text/html"})
    assert page.status_code == 500 and page.headers["content-type"].startswith("text/html")
    assert "サーバーで問題が発生しました" in page.text and page.headers[REQUEST_ID_HEADER] in page.text
    assert SECRET not in page.text and "KeyError" not in page.text
    # a program (an API key, or no Accept: text/html) gets JSON on the same route
    assert client.get("/test/broken-page").json()["error"] == "ServerError"


def test_refusals_keep_their_status(client: TestClient) -> None:
    for kind, status in (("invalid", 422), ("missing", 404), ("forbidden", 403), ("conflict", 409)):
        answer = client.get(f"/api/test/refuse/{kind}")
        assert answer.status_code == status and REQUEST_ID_HEADER in answer.headers, (kind, answer.text)
        assert answer.json()["detail"]
    assert client.get("/api/no-such-route").status_code == 404


def test_a_well_formed_request_id_is_kept_and_any_other_replaced(client: TestClient) -> None:
    assert client.get("/healthz", headers={REQUEST_ID_HEADER: "lb-0123456789abcdef"}).headers[
        REQUEST_ID_HEADER] == "lb-0123456789abcdef"
    uuid = "0F8FAD5B-D9CB-469F-A165-70867728950E"
    assert client.get("/healthz", headers={REQUEST_ID_HEADER: uuid}).headers[REQUEST_ID_HEADER] == (
        "0f8fad5bd9cb469fa16570867728950e")
    for bad in ("short", "x" * 65, "has space in it", "<script>alert(1)</script>", SECRET + "\u3042"):
        rid = client.get("/healthz", headers={REQUEST_ID_HEADER: bad.encode()}).headers[
            REQUEST_ID_HEADER]
        assert rid != bad and len(rid) == 32
    one, two = client.get("/healthz"), client.get("/healthz")
    assert one.headers[REQUEST_ID_HEADER] != two.headers[REQUEST_ID_HEADER]


def test_validation_names_the_field_and_never_echoes_the_value(client: TestClient) -> None:
    huge = 2**64
    answer = client.post(f"/api/test/typed?limit={huge}", json={"individual_number": 123456789018, "card_id": huge})
    assert answer.status_code == 422
    problems = answer.json()["detail"]
    assert {tuple(p["loc"]) for p in problems} == {("query", "limit"), ("body", "individual_number"),
                                                   ("body", "card_id")}
    assert all("input" not in p for p in problems)
    assert SECRET not in answer.text and str(huge) not in answer.text
    page = client.get("/api/test/broken/0")  # a path value out of range: 422, never the bug behind it
    assert page.status_code == 422 and page.json()["detail"][0]["loc"] == ["path", "card_id"]
    ok = client.post("/api/test/typed", json={"individual_number": SECRET, "card_id": 2**63 - 1})
    assert ok.status_code == 200 and ok.json() == {"card_id": 2**63 - 1, "limit": 10}


def test_the_exchange_enrolment_never_echoes_the_individual_number(ctx: Context) -> None:
    """The review's finding: a 422 of the enrolment API carried the number in ``input``."""
    from mynacard.accounts import service as accounts
    from mynacard.principal import Role
    from tests.conftest import NOW

    accounts.create_account(ctx, "131016-tax", Role.AGENCY, None, NOW)
    key = {"Authorization": f"Bearer {accounts.issue_api_key(ctx, '131016-tax')}"}
    client = TestClient(create_app(ctx))
    wrong = {"local_ref": "T-1", "individual_number": SECRET, "family_name": "山田", "given_name": "太郎",
             "birth_date": "1980-13-01", "sex": "1", "address": "東京都千代田区"}
    for body in ([wrong], [{**wrong, "individual_number": int(SECRET)}], {"individual_number": SECRET}):
        answer = client.post("/api/exchange/agencies/131016-tax/enrolments", json=body, headers=key)
        assert answer.status_code == 422, answer.text
        assert SECRET not in answer.text
