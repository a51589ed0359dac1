"""The public first page never re-verifies the card ledger (a scan of every card event: at national scale, a
denial of service for anyone who reloads it); the check is a job (``mynacard status``) and the page shows its
last result and when it ran. Both databases."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, update

from mynacard.cards import service as cards
from mynacard.cards.ledger_checks import LEDGER_CHECKS_KEPT
from mynacard.cards.tables import cards as card_table
from mynacard.context import Context
from mynacard.web.app import create_app
from tests.conftest import NOW
from tests.helpers import SYSTEM, apply_all, make_residents


@pytest.fixture
def statements(ctx: Context) -> Iterator[list[str]]:
    """Every SQL statement the database runs while the test does."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(ctx.db.engine, "before_cursor_execute", record)
    yield seen
    event.remove(ctx.db.engine, "before_cursor_execute", record)


def _page(client: TestClient, statements: list[str], lang: str = "ja") -> str:
    statements.clear()
    page = client.get(f"/?lang={lang}")
    assert page.status_code == 200
    assert not [s for s in statements if "card_events" in s or "ledger_check " in s.lower()], \
        "the first page read the card history"
    return page.text


def test_the_first_page_shows_the_last_ledger_check_and_never_runs_it(ctx: Context,
                                                                      statements: list[str]) -> None:
    apply_all(ctx, make_residents(ctx, 4, NOW), NOW)
    client = TestClient(create_app(ctx))
    text = _page(client, statements)
    assert 'data-ok="unknown"' in text and "まだ実行されていません" in text
    report, check = cards.check_ledger(ctx, SYSTEM, NOW)  # the job (`mynacard status` runs it)
    assert report.ok and check.ok and cards.last_ledger_check(ctx) == check
    text = _page(client, statements)
    assert 'data-ok="true"' in text and "2026-04-06 09:30 JST" in text and "4 枚" in text
    assert "checked at 2026-04-06 09:30 JST (4 cards" in _page(client, statements, "en")
    # damage the ledger: the page keeps showing the last check (it does not scan), the next job finds it
    with ctx.db.begin() as conn:
        conn.execute(update(card_table).values(state="issued"))
    assert 'data-ok="true"' in _page(client, statements)
    later = NOW + timedelta(hours=24)
    report, check = cards.check_ledger(ctx, SYSTEM, later)
    assert not report.ok and check.problems["cards_whose_state_differs_from_last_event"]
    text = _page(client, statements)
    assert 'data-ok="false"' in text and "台帳と履歴が一致しません" in text and "2026-04-07 09:30 JST" in text


def test_only_the_newest_checks_are_kept(ctx: Context) -> None:
    for hour in range(LEDGER_CHECKS_KEPT + 5):
        cards.check_ledger(ctx, SYSTEM, NOW + timedelta(hours=hour))
    from sqlalchemy import func, select

    from mynacard.cards.tables import ledger_checks

    with ctx.db.connect() as conn:
        assert conn.execute(select(func.count()).select_from(ledger_checks)).scalar_one() == LEDGER_CHECKS_KEPT
    last = cards.last_ledger_check(ctx)
    assert last is not None and last.checked_at == NOW + timedelta(hours=LEDGER_CHECKS_KEPT + 4)
