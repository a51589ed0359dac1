"""Issuance plans in `mynacard demo`: a stand-in for the municipal window, then a published plan per town.

The municipal window (issue 5, the office part) is not built yet, so nothing in the demo would ever send a
notice or hand a card over, and every plan would face a window that does nothing. Until that part exists,
:func:`work_window` stands in for it, through the card service only: on each business day each town's window
does the pre-issuance setup and sends notices for the cards that have arrived, as many as its means allow that
day (less on a bad day), oldest first; residents who have had a notice for two days come in and collect at
random. When the office part lands, its simulation replaces this module's window.

The office part has landed: :func:`prepare_demo` now runs :mod:`mynacard.office.demo` (receipt checks, setup,
staged notices, bookings, pickup); :func:`work_window` is no longer called by the demo.
"""

from __future__ import annotations

import random
from datetime import date, datetime, time, timedelta

from rich.console import Console

from mynacard.cards import service as cards
from mynacard.cards.model import CardState
from mynacard.clock import JST
from mynacard.context import Context
from mynacard.plans import service
from mynacard.plans.model import (
    Means,
    Month,
    Site,
    business_days,
    daily_capacity,
    is_government_business_day,
)
from mynacard.principal import Principal

__all__ = ["demo_means", "prepare_demo", "work_window"]

SYSTEM = Principal.system("demo-window")

def demo_means(code: str, arrivals_per_day: float) -> Means:
    """A demo town's means, sized to the simulated town so that the demo tells the 2016 story at any size:
    千代田区 (and any other town) gets one terminal that handles about 60% of the cards arriving — it falls
    behind — and 札幌市 two terminals with two Saturdays a month that keep up."""
    share, terminals, saturdays = (1.2, 2, frozenset({2, 4})) if code == "011002" else (0.6, 1, frozenset())
    per_terminal = max(1.0, share * arrivals_per_day / terminals)
    minutes = min(240.0, max(5.0, round(525 / per_terminal, 1)))
    return Means((Site("本庁", terminals=terminals, staff=terminals + 1, saturdays=saturdays,
                       terminal_minutes_per_card=minutes, staff_minutes_per_card=minutes),))


def work_window(ctx: Context, code: str, day: date, means: Means, rng: random.Random) -> tuple[int, int]:
    """One day of a town's window: notices up to the day's capacity, handovers to residents who come.
    Returns (notices sent, cards handed over)."""
    capacity = daily_capacity(means, day)
    if capacity <= 0:
        return 0, 0
    capacity = int(capacity * rng.choice([1.0, 1.0, 1.0, 0.9, 0.8, 0.5]))
    morning = datetime.combine(day, time(10, 0), JST)
    issued = 0
    waiting = cards.card_ids_in_states(ctx, SYSTEM, code, [CardState.NOTICE_SENT],
                                       changed_before=morning - timedelta(days=2), limit=capacity)
    for card_id in waiting:
        if rng.random() < 0.35:
            cards.transition(ctx, SYSTEM, card_id, CardState.ISSUED, "demo window", morning)
            issued += 1
    evening = datetime.combine(day, time(16, 0), JST)
    ready = cards.card_ids_in_states(ctx, SYSTEM, code, [CardState.RECEIVED, CardState.PRE_ISSUANCE_SET],
                                     changed_before=evening, limit=capacity)
    for card_id in ready:
        view = cards.get_card(ctx, SYSTEM, card_id)
        if view.state is CardState.RECEIVED:
            cards.transition(ctx, SYSTEM, card_id, CardState.PRE_ISSUANCE_SET, None, evening)
        cards.transition(ctx, SYSTEM, card_id, CardState.NOTICE_SENT, None, evening + timedelta(minutes=5))
    return len(ready), issued


def prepare_demo(ctx: Context, start: date, days: int, *, console: Console | None = None) -> None:
    """Work the demo towns' windows over the simulated days, snapshot the actuals, publish a plan each."""
    towns = sorted(cards.counts_by_municipality_and_state(ctx, SYSTEM))
    open_days = max(1, len(business_days(start, start + timedelta(days=days - 1))))
    arrived: dict[str, int] = {}
    for c in cards.transition_counts(ctx, SYSTEM, [CardState.RECEIVED]):
        arrived[c.municipality_code] = arrived.get(c.municipality_code, 0) + c.count
    means = {code: demo_means(code, arrived.get(code, 0) / open_days) for code in towns}
    # The municipal office part works each town's windows (receipt checks, setup, staged notices, bookings,
    # pickup); work_window above is the stand-in it replaced, kept for reference and for plans' own tests.
    from mynacard.office import demo as office
    from mynacard.window.demo import collect_at_window

    for code in towns:
        office.open_offices(ctx, code, means[code], start, start + timedelta(days=days - 1))
    for offset in range(days):
        day = start + timedelta(days=offset)
        if not is_government_business_day(day) and day.weekday() != 5:
            continue
        for code in towns:
            office.work_office_day(ctx, code, day, means[code],
                                   random.Random(f"demo-window:{code}:{day.isoformat()}"), collect=collect_at_window)
    now = datetime.combine(start + timedelta(days=days), time(7, 0), JST)
    service.refresh_actuals(ctx, SYSTEM, now)
    for code in towns:
        service.save_plan(ctx, SYSTEM, code, target=Month.of(now.date()) + 2, means=means[code], now=now,
                          note="demo: drawn up from the simulated backlog")
    if console is not None:
        console.print(f"published issuance plans for {len(towns)} municipalities (/plans)")
