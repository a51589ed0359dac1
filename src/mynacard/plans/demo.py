"""Issuance plans in `mynacard demo`: the demo towns' means, their windows worked over the simulated days by
the office part (:mod:`mynacard.office.demo`: receipt checks, setup, staged notices, bookings, pickup at the
window), then the actuals snapshotted and a plan published per town.
"""

from __future__ import annotations

import random
from datetime import date, datetime, time, timedelta

from rich.console import Console

from mynacard.calendar import business_days, is_government_business_day
from mynacard.cards import service as cards
from mynacard.cards.model import CardState
from mynacard.clock import JST
from mynacard.context import Context
from mynacard.office import demo as office
from mynacard.plans import service
from mynacard.plans.model import Means, Month, Site
from mynacard.principal import Principal
from mynacard.window.demo import collect_at_window

__all__ = ["demo_means", "prepare_demo"]

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


def prepare_demo(ctx: Context, start: date, days: int, *, console: Console | None = None) -> None:
    """Work the demo towns' windows over the simulated days, snapshot the actuals, publish a plan each."""
    towns = sorted(cards.counts_by_municipality_and_state(ctx, SYSTEM))
    open_days = max(1, len(business_days(start, start + timedelta(days=days - 1))))
    arrived: dict[str, int] = {}
    for c in cards.transition_counts(ctx, SYSTEM, [CardState.RECEIVED]):
        arrived[c.municipality_code] = arrived.get(c.municipality_code, 0) + c.count
    means = {code: demo_means(code, arrived.get(code, 0) / open_days) for code in towns}
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
