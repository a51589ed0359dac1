"""Who may use the window over HTTP: every window page and API route requires a window role (the rule ``/window``
applies), so a manufacturer's or a contractor's account — national in scope for its own stage — never opens a
card's page with its holder's name and date of birth; and a suspension's request key names one card."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from mynacard.accounts import service as accounts
from mynacard.cards import service as cards
from mynacard.cards.model import CardState
from mynacard.context import Context
from mynacard.principal import Role
from mynacard.registry import service as registry
from mynacard.web.app import create_app
from mynacard.window import api as window_api
from mynacard.window import service as window
from tests.conftest import NOW
from tests.helpers import SYSTEM

from .support import chip_cards, clerk
from .test_issuance import ID, PINS

OUTSIDERS = [("maker", Role.MANUFACTURER), ("acceptance", Role.CONTRACTOR), ("checker", Role.VERIFIER),
             ("store", Role.KIOSK)]


def _window_routes() -> list[tuple[str, str]]:
    """(method, path) of every route the window's router mounts — a route added later is covered too."""
    return [(method, route.path) for route in window_api.router.routes if isinstance(route, APIRoute)
            for method in sorted(route.methods)]


def test_the_window_router_has_its_pages_and_api() -> None:
    paths = {path for _, path in _window_routes()}
    assert {"/window", "/window/cards/{card_id}", "/api/window/suspensions",
            "/api/window/cards/{card_id}/consistency"} <= paths
    assert len(paths) >= 12


def test_only_window_roles_reach_any_window_route(ctx: Context) -> None:
    (card_id,) = chip_cards(ctx, 1, NOW)
    card = cards.get_card(ctx, SYSTEM, card_id)
    holder = registry.get_resident(ctx, SYSTEM, card.resident_id).facts
    now = datetime.now(UTC)
    keys = {}
    for name, role in [*OUTSIDERS, ("chiyoda", Role.CLERK)]:
        accounts.create_account(ctx, name, role, None, now, "131016" if role is Role.CLERK else None)
        keys[name] = {"Authorization": f"Bearer {accounts.issue_api_key(ctx, name)}"}
    client = TestClient(create_app(ctx))
    routes = _window_routes()
    for name, _role in OUTSIDERS:  # the finding first: the card's page named its holder to any national role
        page = client.get(f"/window/cards/{card_id}", headers=keys[name])
        assert page.status_code == 403 and holder.family_name not in page.text, (name, page.status_code)
    for name, _role in OUTSIDERS:
        for method, path in routes:
            url = re.sub(r"\{card_id\}", str(card_id), path)
            answer = client.request(method, url, headers=keys[name], json={} if method == "POST" else None,
                                    follow_redirects=False)
            assert answer.status_code == 403, (name, method, url, answer.status_code)
            assert holder.family_name not in answer.text and holder.birth_date.isoformat() not in answer.text
    assert cards.get_card(ctx, SYSTEM, card_id).state is CardState.NOTICE_SENT  # nothing done by them
    # the window's own staff still get the card's page and the audit
    page = client.get(f"/window/cards/{card_id}", headers=keys["chiyoda"])
    assert page.status_code == 200 and holder.family_name in page.text
    audit = client.get(f"/api/window/cards/{card_id}/consistency", headers=keys["chiyoda"])
    assert audit.status_code == 200 and audit.json()["card_id"] == card_id
    assert client.get("/window", headers=keys["chiyoda"]).status_code == 200
    anonymous = client.get(f"/window/cards/{card_id}", follow_redirects=False)
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/login")


@pytest.mark.parametrize("reuse_as", ["same", "other"])
def test_a_reused_suspension_key_over_http(ctx: Context, reuse_as: str) -> None:
    first, second = chip_cards(ctx, 2, NOW)
    for card_id in (first, second):
        window.issue_card(ctx, clerk(), identity=ID, pins=PINS, notification_card="collected", now=NOW,
                          card_id=card_id)
    accounts.create_account(ctx, "callcentre", Role.OPERATOR, None, datetime.now(UTC))
    auth = {"Authorization": f"Bearer {accounts.issue_api_key(ctx, 'callcentre')}"}
    client = TestClient(create_app(ctx))
    done = client.post("/api/window/suspensions", headers=auth, json={"card_id": first, "request_key": "T-1"})
    assert done.status_code == 200 and done.json()["state"] == "suspended"
    target = first if reuse_as == "same" else second
    again = client.post("/api/window/suspensions", headers=auth, json={"card_id": target, "request_key": "T-1"})
    if reuse_as == "same":
        assert again.status_code == 200 and again.json()["replayed"] is True
    else:
        assert again.status_code == 409 and "another card" in again.json()["detail"]
        assert cards.get_card(ctx, SYSTEM, second).state is CardState.ISSUED
