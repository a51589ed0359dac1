"""The forecast model: exact answers where the future is certain, calibrated bands where it is not."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pytest

from mynacard.calendar import business_days
from mynacard.errors import InvalidInput
from mynacard.plans.forecast import DayObservation, ForecastInputs, ForecastStatus, WhatIf, forecast
from mynacard.plans.model import Means, Month, Site, daily_capacity

MEANS = Means((Site("本庁", terminals=1, staff=2),))  # 35 a weekday, terminal-limited (staff 52)
AS_OF = date(2016, 6, 14)


def _nth_business_day_after(day: date, n: int) -> date:
    days = business_days(day + timedelta(days=1), day + timedelta(days=400))
    return days[n - 1]


def _worked_history(backlog_before: int, rate: int, first: date,
                    last: date) -> tuple[list[DayObservation], int]:
    """A queue that arrived before ``first`` and is worked at ``rate`` a business day until ``last``."""
    history = [DayObservation(first - timedelta(days=1), arrivals=backlog_before)]
    queue = backlog_before
    day = first
    while day <= last:
        sent = rate if business_days(day, day) else 0
        queue -= sent
        history.append(DayObservation(day, notices=sent))
        day += timedelta(days=1)
    return history, queue


def test_a_certain_future_gives_one_date_and_a_terminal_moves_it_by_what_the_capacity_implies() -> None:
    history, queue = _worked_history(1400, 35, date(2016, 5, 30), AS_OF)  # Sunday before, then work
    assert queue == 1400 - 35 * 12
    base = forecast(ForecastInputs("131016", AS_OF, {Month(2016, 4): queue}, 0, history, MEANS))
    assert base.status is ForecastStatus.FORECAST and base.basis == "means" and base.efficiency == 1.0
    # 980 cards at 35 a day: 28 business days.
    assert base.low == base.median == base.high == _nth_business_day_after(AS_OF, 28) == date(2016, 7, 25)
    # A second terminal: 2 × 525 / 15 = 70 by terminals, 2 × 525 / 20 = 52 by staff → 52 a day, 19 days.
    more = forecast(ForecastInputs("131016", AS_OF, {Month(2016, 4): queue}, 0, history, MEANS,
                                   WhatIf(add_terminals=1)))
    assert more.median == _nth_business_day_after(AS_OF, 19) == date(2016, 7, 11)
    # With a third staff member as well the window is terminal-limited again at 70: 14 days.
    both = forecast(ForecastInputs("131016", AS_OF, {Month(2016, 4): queue}, 0, history, MEANS,
                                   WhatIf(add_terminals=1, add_staff=1)))
    assert both.median == _nth_business_day_after(AS_OF, 14)


def test_a_terminal_does_not_help_a_staff_limited_window_but_saturdays_do() -> None:
    staff_bound = Means((Site("本庁", terminals=3, staff=1),))  # 26 a day by staff
    history, queue = _worked_history(800, 26, date(2016, 5, 30), AS_OF)
    inputs = dict(municipality_code="131016", as_of=AS_OF, queue={Month(2016, 4): queue}, pipeline=0,
                  history=history, means=staff_bound)
    base = forecast(ForecastInputs(**inputs))  # type: ignore[arg-type]
    assert forecast(ForecastInputs(**inputs, what_if=WhatIf(add_terminals=2))).median == base.median  # type: ignore[arg-type]
    saturdays = forecast(ForecastInputs(**inputs, what_if=WhatIf(saturdays=True)))  # type: ignore[arg-type]
    # 488 cards: 26 a weekday, and 1 × 480 / 20 = 24 each Saturday.
    left, day = float(queue), AS_OF
    while left > 0:
        day += timedelta(days=1)
        left -= daily_capacity(staff_bound.with_saturdays(), day)
    assert saturdays.median == day < base.median  # type: ignore[operator]
    temporary = forecast(ForecastInputs(**inputs, what_if=WhatIf(temporary_days=30, temporary_terminals=2,  # type: ignore[arg-type]
                                                                 temporary_staff=3)))
    assert temporary.median is not None and base.median is not None and temporary.median < base.median


def test_arrivals_keep_the_queue_alive() -> None:
    """New cards arrive at 20 a business day: the queue shrinks by only 15 a day."""
    history = [DayObservation(date(2016, 5, 29), arrivals=600)]
    queue = 600
    day = date(2016, 5, 30)
    while day <= AS_OF:
        on = bool(business_days(day, day))
        queue += 20 * on - 35 * on
        history.append(DayObservation(day, applications=20 * on, arrivals=20 * on, notices=35 * on))
        day += timedelta(days=1)
    fc = forecast(ForecastInputs("131016", AS_OF, {Month(2016, 5): queue}, 0, history, MEANS))
    # 420 waiting, 15 fewer each business day. Cleared when only the last 5 business days' arrivals
    # (5 × 20 = 100) are waiting: 420 − 15n ≤ 100 → n = 22.
    assert queue == 420
    assert fc.median == _nth_business_day_after(AS_OF, 22) == date(2016, 7, 14)
    assert fc.arrivals_per_day == pytest.approx(20, rel=0.05)


def test_statuses() -> None:
    cleared = forecast(ForecastInputs("131016", AS_OF, {}, 0, [], MEANS))
    assert cleared.status is ForecastStatus.CLEARED and cleared.median == AS_OF
    fresh = [DayObservation(AS_OF - timedelta(days=1), arrivals=30)]
    assert forecast(ForecastInputs("131016", AS_OF, {Month(2016, 6): 30}, 0, fresh, None)).status \
        is ForecastStatus.CLEARED  # the only cards came yesterday: normal handling, no backlog
    # A queue and nothing observed about the window (no business day in the history): nothing to learn.
    sunday = date(2016, 6, 12)
    none = forecast(ForecastInputs("131016", sunday, {Month(2016, 3): 500}, 0, [], None))
    assert none.status is ForecastStatus.NO_THROUGHPUT and none.median is None
    # With means, their nominal capacity stands in: 500 / 35 → 15 business days.
    nominal = forecast(ForecastInputs("131016", sunday, {Month(2016, 3): 500}, 0, [], MEANS))
    assert nominal.basis == "nominal" and nominal.median == _nth_business_day_after(sunday, 15)
    # Two and a half months of a queue and not one notice (the 2016 hold-back): never, as observed.
    stuck = [DayObservation(date(2016, 4, 1), arrivals=500)]
    held = forecast(ForecastInputs("131016", AS_OF, {Month(2016, 3): 500}, 0, stuck, None, horizon_days=60))
    assert held.status is ForecastStatus.BEYOND_HORIZON and held.probability_cleared == 0
    history, queue = _worked_history(2000, 5, date(2016, 5, 30), AS_OF)
    swamped = [DayObservation(o.day, applications=50, arrivals=50 if business_days(o.day, o.day) else 0,
                              notices=o.notices) for o in history[1:]]
    late = forecast(ForecastInputs("131016", AS_OF, {Month(2016, 3): queue}, 0, [history[0], *swamped],
                                   None, horizon_days=200))
    assert late.status is ForecastStatus.BEYOND_HORIZON and late.probability_cleared < 0.5
    with pytest.raises(InvalidInput, match="means"):
        forecast(ForecastInputs("131016", AS_OF, {Month(2016, 3): 500}, 0, stuck, None,
                                WhatIf(add_terminals=1)))


def _truth(rng: np.random.Generator, arrivals_rate: float, initial: int, first: date, days: int,
           horizon: int) -> tuple[list[DayObservation], dict[Month, int], date | None, date]:
    """Simulate a window: Poisson arrivals on business days, 35 a day nominal capacity, of which on a day
    80% is worked, 15% half (a system slowdown) and 5% nothing (an outage). Returns the observed history,
    the queue at the end of it, and the day the true future clears (the same rule as the model)."""
    queue: list[list[object]] = [[first - timedelta(days=1), initial]]
    history: list[DayObservation] = [DayObservation(first - timedelta(days=1), arrivals=initial)]
    as_of = first + timedelta(days=days - 1)
    calendar = business_days(first - timedelta(days=30), first + timedelta(days=days + horizon + 30))
    cleared = None
    day = first
    snapshot = 0
    while day <= as_of + timedelta(days=horizon):
        on = day in set(calendar)
        arriving = int(rng.poisson(arrivals_rate)) if on else 0
        if arriving:
            queue.append([day, arriving])
        capacity = int(35 * rng.choice([1.0, 0.5, 0.0], p=[0.8, 0.15, 0.05])) if on else 0
        sent = 0
        while capacity > sent and queue:
            take = min(capacity - sent, int(queue[0][1]))  # type: ignore[call-overload]
            queue[0][1] = int(queue[0][1]) - take  # type: ignore[call-overload]
            sent += take
            if queue[0][1] == 0:
                queue.pop(0)
        if day == as_of:
            snapshot = sum(int(n) for _, n in queue)  # type: ignore[call-overload]
        if day <= as_of:
            history.append(DayObservation(day, applications=arriving, arrivals=arriving, notices=sent))
        if day >= as_of:  # cleared: nothing waiting that came before the last 5 business days
            cutoff = [d for d in calendar if d <= day][-5] - timedelta(days=1)
            if all(d > cutoff for d, _ in queue):  # type: ignore[operator]
                cleared = day
                break
        day += timedelta(days=1)
    return history, {Month.of(as_of): snapshot}, cleared, as_of


def test_the_band_holds_the_true_clearance_day_about_nine_times_in_ten() -> None:
    """60 simulated windows with random arrivals and outages: the 90% band must hold the true day in
    most of them (a band that is too narrow fails), and must not be uselessly wide (a band from the report
    day to the horizon would be ten times wider than the time to the median)."""
    covered, widths, spans = 0, [], []
    for k in range(60):
        rng = np.random.default_rng(1000 + k)
        rate = [8.0, 14.0, 20.0][k % 3]  # against about 30.6 a day through the window
        history, queue, truth, as_of = _truth(rng, rate, int(rng.integers(500, 1400)), date(2016, 5, 9), 35,
                                              500)
        assert truth is not None
        fc = forecast(ForecastInputs("131016", as_of, queue, 0, history, MEANS, seed=k))
        assert fc.low is not None and fc.median is not None
        covered += fc.low <= truth and (fc.high is None or truth <= fc.high)
        widths.append((fc.high - fc.low).days if fc.high else float("inf"))
        spans.append((fc.median - as_of).days)
    assert covered >= 50, f"band held the truth in only {covered} of 60 runs"
    ratios = [w / s for w, s in zip(widths, spans, strict=True) if s > 0]
    assert np.median(ratios) < 1.5, "the band is uselessly wide"
