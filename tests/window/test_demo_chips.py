"""No dead ends in the demo: every card that reaches the window of a demo town — notified during the simulated
weeks, or notified later by the town's clerk at /office — can be issued there through the clerk's pages,
although the simulated bulk was made without chips; outside a demo installation nothing makes a chip."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from typer.testing import CliRunner

from mynacard.bootstrap import build_context
from mynacard.cards import service as cards
from mynacard.cards.model import CardState
from mynacard.chip import service as chips
from mynacard.cli import app as cli
from mynacard.context import Context
from mynacard.installation import demo_logins
from mynacard.web.app import create_app
from mynacard.window import service as window
from tests.helpers import SYSTEM, csrf

TOWNS = ("131016", "011002")
FORM = {"person_doc": "passport", "attendance": "in_person", "notification_card": "collected",
        "pin_auth": "4321", "pin_sign": "WINDOW2026", "pin_card_info": "4321", "pin_residence": "4321"}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Context]:
    home: Path = tmp_path_factory.mktemp("demo-chips")
    result = CliRunner().invoke(cli, ["demo", "--home", str(home), "--no-serve", "--residents", "200",
                                      "--days", "21", "--chip-cards", "0"])
    assert result.exit_code == 0, result.output
    ctx = build_context(home=home, database_url=f"sqlite:///{home / 'mynacard.db'}")
    yield ctx
    ctx.db.dispose()


def _password(ctx: Context, username: str) -> str:
    with ctx.db.connect() as conn:
        return next(str(e["password"]) for e in demo_logins(conn) if e["username"] == username)


def _clerk(ctx: Context, code: str) -> TestClient:
    client = TestClient(create_app(ctx))
    answer = client.post("/login", data={"csrf": csrf(client), "username": f"clerk-{code}",
                                         "password": _password(ctx, f"clerk-{code}"), "next": "/window"},
                         follow_redirects=False)
    assert answer.status_code == 303, answer.text
    return client


def _issue(ctx: Context, client: TestClient, card_id: int) -> None:
    page = client.get(f"/window/cards/{card_id}")
    assert page.status_code == 200
    card = cards.get_card(ctx, SYSTEM, card_id)
    assert card.card_serial and chips.card_path(ctx, card.card_serial).exists()
    assert window.check_consistency(ctx, card_id) == []
    token = csrf(client, f"/window/cards/{card_id}")
    answer = client.post(f"/window/cards/{card_id}/issue", data={**FORM, "csrf": token})
    assert answer.status_code == 200, re.sub(r"\s+", " ", answer.text)[-600:]
    assert cards.get_card(ctx, SYSTEM, card_id).state is CardState.ISSUED
    assert window.check_consistency(ctx, card_id) == []


@pytest.mark.parametrize("code", TOWNS)
def test_every_notified_demo_card_can_be_issued_at_the_window(demo: Context, code: str) -> None:
    waiting = cards.card_ids_in_states(demo, SYSTEM, code, [CardState.NOTICE_SENT])
    assert waiting, "the demo leaves cards waiting at the window"
    serials = [cards.get_card(demo, SYSTEM, i).card_serial for i in waiting]
    assert any(s and not chips.card_path(demo, s).exists() for s in serials), "the simulated bulk has no chips"
    client = _clerk(demo, code)
    for card_id in waiting:
        _issue(demo, client, card_id)
    # a card handed over during the simulated weeks (by the stand-in, without a chip) still opens
    handed = [i for i in cards.card_ids_in_states(demo, SYSTEM, code, [CardState.ISSUED])
              if not window.chip_present(demo, cards.get_card(demo, SYSTEM, i))]
    assert handed
    page = client.get(f"/window/cards/{handed[0]}")
    assert page.status_code == 200 and "ICチップを読み取れません" in page.text


def test_cards_the_clerk_notifies_later_can_be_issued_too(demo: Context) -> None:
    code = "131016"
    client = _clerk(demo, code)
    before = set(cards.card_ids_in_states(demo, SYSTEM, code, [CardState.NOTICE_SENT]))
    token = csrf(client, f"/office/m/{code}/backlog")
    assert client.post(f"/office/m/{code}/notices", data={"csrf": token}, follow_redirects=False).status_code == 303
    new = set(cards.card_ids_in_states(demo, SYSTEM, code, [CardState.NOTICE_SENT])) - before
    assert new, "the backlog had cards set up for issuance"
    for card_id in sorted(new)[:5]:
        _issue(demo, client, card_id)


def test_outside_a_demo_no_chip_is_made(demo: Context, tmp_path: Path) -> None:
    """The same data in an installation not marked as a demo: the clerk's card page shows the missing chip
    as a problem (no server path in it) and nothing makes one."""
    copy = tmp_path / "mynacard.db"
    with sqlite3.connect(demo.settings.home / "mynacard.db") as source, sqlite3.connect(copy) as target:
        source.backup(target)
    password = _password(demo, "clerk-131016")
    ctx = build_context(home=tmp_path, database_url=f"sqlite:///{copy}")
    try:
        with ctx.db.begin() as conn:
            conn.execute(text("DELETE FROM installation"))
        app = create_app(ctx)
        assert getattr(app.state, "demo_chip_supply", None) is None
        client = TestClient(app)
        assert client.post("/login", data={"csrf": csrf(client), "username": "clerk-131016", "password": password,
                                           "next": "/window"}, follow_redirects=False).status_code == 303
        card_id = cards.card_ids_in_states(ctx, SYSTEM, "131016", [CardState.NOTICE_SENT])[0]
        page = client.get(f"/window/cards/{card_id}")
        assert page.status_code == 200
        assert "ICチップを読み取れません" in page.text and str(tmp_path) not in page.text
        assert not (tmp_path / "chips").exists() or not list((tmp_path / "chips").glob("*.card"))
        with ctx.db.connect() as conn:
            assert demo_logins(conn) == []
    finally:
        ctx.db.dispose()
