"""Acceptance: a simulated municipality with known arrivals and capacity, driven through the real card
pipeline and window transitions, gets a forecast from its live data whose band holds the day the simulation
then really clears; adding a terminal moves the forecast earlier by exactly what the capacity implies.
Both databases."""

from __future__ import annotations

import random
from datetime import date, datetime, time, timedelta

import numpy as np

from mynacard.calendar import business_days
from mynacard.cards import service as cards
from mynacard.cards.model import CardState
from mynacard.clock import JST
from mynacard.context import Context
from mynacard.plans import service
from mynacard.plans.forecast import ForecastStatus, WhatIf
from mynacard.plans.model import Means, Month, Site
from mynacard.principal import Principal, Role
from mynacard.sim.population import seed_population
from tests.helpers import notify, receive_at

CODE = "131016"
SUPERVISOR = Principal(Role.SUPERVISOR, "chiyoda-sup", CODE)
# One terminal at 30 minutes a card: 525 / 30 = 17 a weekday (staff: 2 × 525 / 20 = 52).
MEANS = Means((Site("本庁", terminals=1, staff=2, terminal_minutes_per_card=30.0),))


def _at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), JST)


def _window(ctx: Context, day: date, capacity: int) -> list[int]:
    """The window notifies up to ``capacity`` of the cards waiting, oldest first."""
    ids = cards.card_ids_in_states(ctx, service.PUBLIC, CODE, [CardState.RECEIVED], limit=max(capacity, 0))
    notify(ctx, ids, _at(day, 16))
    return ids


def _nth_business_day_after(day: date, n: int) -> date:
    return business_days(day + timedelta(days=1), day + timedelta(days=200))[n - 1]


def test_a_terminal_moves_the_forecast_by_what_the_capacity_implies(ctx: Context) -> None:
    seed_population(ctx, [CODE], 440, seed=1, now=_at(date(2016, 2, 1), 9))
    # 425 cards applied for in March arrive on Sunday 8 May; the window then works 17 a day for two weeks.
    receive_at(ctx, CODE, 425, _at(date(2016, 3, 1), 10), _at(date(2016, 5, 8), 9))
    for day in business_days(date(2016, 5, 9), date(2016, 5, 20)):
        assert len(_window(ctx, day, 17)) == 17
    now = _at(date(2016, 5, 21), 8)  # Saturday morning: the last complete day is Friday the 20th
    service.save_plan(ctx, SUPERVISOR, CODE, target=Month(2016, 7), means=MEANS, now=now)
    base = service.forecast_for(ctx, service.PUBLIC, CODE, now)
    assert base.backlog == 255 and base.basis == "means" and base.efficiency == 1.0
    # 255 cards at 17 a business day: 15 days.
    expected = _nth_business_day_after(date(2016, 5, 20), 15)
    assert base.low == base.median == base.high == expected == date(2016, 6, 10)
    more = service.forecast_for(ctx, service.PUBLIC, CODE, now, what_if=WhatIf(add_terminals=1))
    # Two terminals: 2 × 525 / 30 = 35 a day → ceil(255 / 35) = 8 days.
    assert more.median == _nth_business_day_after(date(2016, 5, 20), 8) == date(2016, 6, 1)
    assert (base.median - more.median).days == 9  # type: ignore[operator]
    plan = service.plan_of(ctx, service.PUBLIC, CODE)
    assert plan is not None and plan.means == MEANS


def test_the_forecast_band_holds_the_simulated_clearance_day(ctx: Context) -> None:
    """Arrivals: Poisson(6) cards a business day (applied and delivered the same day). Capacity: 17 a day,
    of which on 80% of days all, on 15% half (a slow system), on 5% nothing (an outage)."""
    seed_population(ctx, [CODE], 1100, seed=2, now=_at(date(2016, 2, 1), 9))
    rng = np.random.default_rng(2016)
    law = random.Random(2016)
    received_on: dict[int, date] = {}

    def day_of_work(day: date) -> None:
        arriving = int(rng.poisson(6))
        for card_id in receive_at(ctx, CODE, arriving, _at(day, 9), _at(day, 9, 30)):
            received_on[card_id] = day
        capacity = int(17 * law.choices([1.0, 0.5, 0.0], [0.80, 0.15, 0.05])[0])
        _window(ctx, day, capacity)

    for card_id in receive_at(ctx, CODE, 450, _at(date(2016, 3, 1), 10), _at(date(2016, 5, 8), 9)):
        received_on[card_id] = date(2016, 5, 8)
    as_of = date(2016, 6, 10)
    for day in business_days(date(2016, 5, 9), as_of):
        day_of_work(day)
    morning = _at(date(2016, 6, 11), 8)
    service.save_plan(ctx, SUPERVISOR, CODE, target=Month(2016, 8), means=MEANS, now=morning)
    fc = service.forecast_for(ctx, service.PUBLIC, CODE, morning)
    assert fc.status is ForecastStatus.FORECAST and fc.as_of == as_of and fc.low is not None

    # Now live the future with the same law until no card has waited more than 5 business days.
    calendar = business_days(date(2016, 4, 1), date(2016, 12, 31))
    truth = None
    for day in business_days(as_of + timedelta(days=1), date(2016, 12, 31)):
        day_of_work(day)
        cutoff = calendar[calendar.index(day) - 4] - timedelta(days=1)
        waiting = cards.card_ids_in_states(ctx, service.PUBLIC, CODE, [CardState.RECEIVED], limit=100_000)
        if all(received_on[c] > cutoff for c in waiting):
            truth = day
            break
    assert truth is not None
    print(f"\nforecast {fc.low} / {fc.median} / {fc.high}, simulated clearance {truth}")
    assert fc.low <= truth and (fc.high is None or truth <= fc.high), (fc.low, fc.median, fc.high, truth)
    assert fc.median is not None and abs((fc.median - truth).days) < 30
