"""Several workers running the same stage at once on PostgreSQL never take the same card twice."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import func, select

from mynacard.cards import service as cards
from mynacard.cards.tables import card_events
from mynacard.context import Context
from tests.conftest import NOW
from tests.helpers import CONTRACTOR, MANUFACTURER, SYSTEM, apply_all, make_residents


def _race(workers: int, job: Callable[[], object]) -> list[BaseException]:
    errors: list[BaseException] = []
    start = threading.Barrier(workers)

    def run() -> None:
        try:
            start.wait()
            while job():
                pass
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def test_four_workers_per_stage_move_each_card_exactly_once(pg_ctx: Context) -> None:
    ctx = pg_ctx
    apply_all(ctx, make_residents(ctx, 400, NOW), NOW)
    assert not _race(4, lambda: sum(cards.screen_applications(ctx, CONTRACTOR, NOW, limit=37)))
    assert not _race(4, lambda: cards.order_printing(ctx, SYSTEM, NOW, limit=41))
    batches = cards.pending_print_batches(ctx, MANUFACTURER)
    assert len(batches) >= 4
    for b in batches:
        cards.acknowledge_print_batch(ctx, MANUFACTURER, b, cards.read_print_file(ctx, b), NOW)
    later = NOW + timedelta(days=1)
    assert not _race(4, lambda: sum(cards.manufacture_batch(ctx, MANUFACTURER, b, later, limit=13)
                                    for b in batches))
    assert not _race(4, lambda: cards.ship_cards(ctx, MANUFACTURER, later, box_capacity=25, limit=29))
    with ctx.db.connect() as conn:
        per_state = dict(conn.execute(select(card_events.c.to_state, func.count()).group_by(
            card_events.c.to_state)).all())
    assert per_state == {s: 400 for s in ("applied", "accepted", "print_ordered", "manufactured", "shipped")}
    report = cards.verify_ledger(ctx)
    assert report.ok and report.state_counts == {"shipped": 400}, report
