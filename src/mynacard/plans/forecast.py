"""The forecast (交付見込み): when a municipality's backlog will be cleared, with an uncertainty band.

Pure (no I/O, no clock; randomness from a seed the caller gives). Inputs are the live queue — cards received
but not yet notified, by application month — the cards still on their way from the manufacturer, and the
recent days: applications, cards arriving, notices sent. From those recent days the model learns

- how many cards the window really gets through on a day when cards are left waiting (a *saturated* day;
  on other days it ran out of work, so its count says nothing about capacity). With the plan's means it
  learns the ratio of that count to the nominal :func:`~mynacard.plans.model.daily_capacity` (absences,
  system outages, no-shows), so that a what-if that changes the means changes the forecast by exactly what
  the capacity implies;
- how many applications come in per day, and how many cards the manufacturer delivers per business day.

It then runs the future a few hundred times (a Bayesian bootstrap of the recent days: each run weights the
days afresh, then draws each future day from them), notifying first in, first out. The backlog is *cleared*
on the first day on which no card has been waiting longer than ``settle_days`` business days (the normal
handling time). The band is the 5th–95th percentile of the runs' clearance days.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, time, timedelta
from enum import StrEnum
from functools import lru_cache

import numpy as np

from mynacard.calendar import (
    business_days,
    is_government_business_day,
    is_year_end_closure,
    public_holiday_name,
    week_of_month,
)
from mynacard.errors import InvalidInput
from mynacard.plans.model import EVERY_WEEK, Means, Month, Site, SiteKind, daily_capacity

__all__ = ["DayObservation", "Forecast", "ForecastInputs", "ForecastStatus", "PathPoint", "WhatIf",
           "capacity_array", "forecast"]


@dataclass(frozen=True)
class DayObservation:
    """One past day of a municipality, from the card events."""

    day: date
    applications: int = 0
    """Applications received (申請)."""
    arrivals: int = 0
    """Cards checked in from the manufacturer (到着)."""
    notices: int = 0
    """First issuance notices sent (交付通知書)."""
    issued: int = 0
    """Cards handed over (交付)."""


@dataclass(frozen=True)
class WhatIf:
    """Changes to the means to try (deck p.7): more terminals or staff, Saturdays, evenings, a temporary
    window."""

    add_terminals: int = 0
    """Integrated terminals added at the main site."""
    add_staff: int = 0
    saturdays: bool = False
    """Open the main site every Saturday (土曜開庁)."""
    after_hours: bool = False
    """Open the main site until 19:00 on every weekday (時間外開庁)."""
    temporary_days: int = 0
    """Open a temporary window (臨時交付窓口) from the next day for this many days."""
    temporary_terminals: int = 1
    temporary_staff: int = 2

    def __post_init__(self) -> None:
        problems = []
        if not (0 <= self.add_terminals <= 100 and 0 <= self.add_staff <= 500):
            problems.append("add 0–100 terminals and 0–500 staff")
        if not 0 <= self.temporary_days <= 730:
            problems.append("a temporary window runs 0–730 days")
        if not (1 <= self.temporary_terminals <= 100 and 1 <= self.temporary_staff <= 500):
            problems.append("a temporary window has 1–100 terminals and 1–500 staff")
        if problems:
            raise InvalidInput("; ".join(problems), problems)

    @property
    def empty(self) -> bool:
        return self == WhatIf()

    def apply(self, means: Means, as_of: date) -> Means:
        out = means
        if self.add_terminals:
            out = out.with_terminals(self.add_terminals)
        if self.add_staff:
            out = out.with_staff(self.add_staff)
        if self.saturdays:
            out = out.with_saturdays(EVERY_WEEK)
        if self.after_hours:
            out = out.with_after_hours(frozenset(range(5)), time(19, 0))
        if self.temporary_days:
            first = as_of + timedelta(days=1)
            out = out.with_site(Site("臨時交付窓口", SiteKind.TEMPORARY, self.temporary_terminals,
                                     self.temporary_staff, opens_on=first,
                                     closes_on=first + timedelta(days=self.temporary_days - 1)))
        return out


class ForecastStatus(StrEnum):
    CLEARED = "cleared"
    """No card has been waiting longer than the normal handling time."""
    FORECAST = "forecast"
    """Cleared in at least half the runs within the horizon: the median date is meaningful."""
    BEYOND_HORIZON = "beyond_horizon"
    """More than half the runs never clear within the horizon: the window cannot keep up."""
    NO_THROUGHPUT = "no_throughput"
    """A backlog but no means and no day on which the window worked through a queue: nothing to learn from."""


@dataclass(frozen=True)
class ForecastInputs:
    municipality_code: str
    as_of: date
    """The last observed day; the forecast runs from the day after."""
    queue: Mapping[Month, int]
    """Cards received but not yet notified, by application month."""
    pipeline: int
    """Cards applied for that have not reached the municipality yet (screening, printing, shipping)."""
    history: Sequence[DayObservation]
    """Recent days up to ``as_of`` (missing days count as days with nothing happening)."""
    means: Means | None = None
    """The plan's means, if it has any: the forecast then scales their nominal capacity."""
    what_if: WhatIf = field(default_factory=WhatIf)
    settle_days: int = 5
    horizon_days: int = 730
    runs: int = 400
    seed: int = 0
    with_path: bool = True
    """Compute the queue's percentiles day by day (for charts; batch forecasts leave it out)."""


@dataclass(frozen=True)
class PathPoint:
    day: date
    low: float
    median: float
    high: float


@dataclass(frozen=True)
class Forecast:
    as_of: date
    status: ForecastStatus
    low: date | None
    """5th percentile of the clearance day (None: not within the horizon)."""
    median: date | None
    high: date | None
    """95th percentile (None: later than the horizon in more than 5% of runs)."""
    probability_cleared: float
    """Share of runs that clear within the horizon."""
    backlog: int
    pipeline: int
    basis: str
    """``means`` (nominal capacity × observed ratio), ``nominal`` (means, no observed ratio yet) or
    ``observed`` (no means: the observed daily counts)."""
    efficiency: float | None
    """Mean observed ratio of cards notified to nominal capacity on saturated days (with means)."""
    throughput_per_day: float
    """Mean cards the window gets through per open day in the runs."""
    arrivals_per_day: float
    """Mean cards arriving per business day in the runs."""
    applications_per_day: float
    lead_days: int
    cohorts: dict[Month, date | None]
    """Median day on which each application month's queued cards are all notified."""
    path: tuple[PathPoint, ...]
    """The queue's 5th/50th/95th percentile, day by day."""
    horizon_end: date


@lru_cache(maxsize=64)
def _business_ordinals(first: date, last: date) -> np.ndarray:
    return np.array([d.toordinal() for d in business_days(first, last)], dtype=np.int64)


@lru_cache(maxsize=64)
def _calendar(first: date, days: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(weekday, week of the month, closed for a holiday or the year end, ordinal) for ``days`` days."""
    dates = [first + timedelta(days=i) for i in range(days)]
    weekday = np.array([d.weekday() for d in dates])
    week = np.array([week_of_month(d) for d in dates])
    closed = np.array([is_year_end_closure(d) or public_holiday_name(d) is not None for d in dates])
    ordinal = np.array([d.toordinal() for d in dates], dtype=np.int64)
    return weekday, week, closed, ordinal


def capacity_array(means: Means, first: date, days: int) -> np.ndarray:
    """:func:`~mynacard.plans.model.daily_capacity` for ``days`` days from ``first``, all at once."""
    weekday, week, closed, ordinal = _calendar(first, days)
    total = np.zeros(days)
    for s in means.sites:
        end = s.weekday_hours.end.hour * 60 + s.weekday_hours.end.minute
        late = s.after_hours_until.hour * 60 + s.after_hours_until.minute - end
        minutes = np.where(weekday < 5, s.weekday_hours.minutes
                           + np.where(np.isin(weekday, list(s.after_hours_days)), late, 0), 0)
        saturday = (weekday == 5) & np.isin(week, list(s.saturdays))
        sunday = (weekday == 6) & np.isin(week, list(s.sundays))
        weekend = np.where(sunday, s.sunday_hours.minutes, minutes)
        minutes = np.where(saturday, s.saturday_hours.minutes, weekend)
        minutes = np.where(closed, 0, minutes)
        if s.opens_on is not None:
            minutes = np.where(ordinal < s.opens_on.toordinal(), 0, minutes)
        if s.closes_on is not None:
            minutes = np.where(ordinal > s.closes_on.toordinal(), 0, minutes)
        by_terminals = s.terminals * minutes / s.terminal_minutes_per_card
        by_staff = s.staff * minutes / s.staff_minutes_per_card
        total += np.floor(np.minimum(by_terminals, by_staff) + 1e-9)
    return total


class _Bootstrap:
    """Draws future days from past ones, re-weighting the past for each run (a double bootstrap: each run
    first resamples the observed days with replacement, then draws every future day from that resample), so
    that the band carries the uncertainty of the rate as well as day-to-day noise."""

    def __init__(self, rng: np.random.Generator, values: np.ndarray, runs: int) -> None:
        self.rng = rng
        self.runs = runs
        self.constant = len(values) == 1 or bool(np.all(values == values[0]))
        self.values = values
        self.resampled = values[rng.integers(0, len(values), size=(runs, len(values)))]

    def draw(self, days: int) -> np.ndarray:
        if self.constant:
            return np.full((self.runs, days), float(self.values[0]))
        n = self.resampled.shape[1]
        index = self.rng.integers(0, n, size=(self.runs, days))
        return np.take_along_axis(self.resampled, index, axis=1)


def _first_day(hit: np.ndarray, start: int) -> np.ndarray:
    """Per run, the day number (``start`` + 1 for the block's first column) of the first True; inf if none."""
    return np.where(hit.any(axis=1), hit.argmax(axis=1) + start + 1.0, np.inf)


def _nearest_rank(sorted_values: np.ndarray, q: float) -> float:
    k = max(0, math.ceil(q * len(sorted_values)) - 1)
    return float(sorted_values[k])


def forecast(inputs: ForecastInputs) -> Forecast:
    """Forecast the clearance day; see the module docstring for the model.

    One function on purpose (longer than the house's ~80 lines): its stages — the past queue, the throughput
    samples, the cut-off rule, the simulated blocks of days, the summary — share a dozen arrays over the same
    days and runs, and split apart they would pass them all back and forth; each stage is marked by a comment."""
    as_of = inputs.as_of
    if inputs.settle_days < 0 or inputs.horizon_days < 1 or not 20 <= inputs.runs <= 5000:
        raise InvalidInput("settle days ≥ 0, horizon ≥ 1 day and 20–5,000 runs")
    means = inputs.what_if.apply(inputs.means, as_of) if inputs.means is not None else None
    if means is None and not inputs.what_if.empty:
        raise InvalidInput("a what-if changes the plan's means: draw up a plan with means first")
    if means is not None:
        means.check()
    history = sorted((o for o in inputs.history if o.day <= as_of), key=lambda o: o.day)
    first = history[0].day if history else as_of
    by_day = {o.day: o for o in history}
    past = [by_day.get(first + timedelta(days=i), DayObservation(first + timedelta(days=i)))
            for i in range((as_of - first).days + 1)]
    backlog = sum(n for n in inputs.queue.values() if n > 0)
    horizon_end = as_of + timedelta(days=inputs.horizon_days)

    # The queue at the end of each past day, walking back from today's; saturated = cards were left over.
    queue_end = np.zeros(len(past))
    q = float(backlog)
    for i in range(len(past) - 1, -1, -1):
        queue_end[i] = q
        q = max(0.0, q - past[i].arrivals + past[i].notices)
    saturated = queue_end > 0

    old_means = inputs.means
    efficiency: float | None = None
    if old_means is not None:
        nominal_past = np.array([daily_capacity(old_means, o.day) for o in past], dtype=float)
        use = saturated & (nominal_past > 0)
        ratios = np.array([o.notices for o in past], dtype=float)[use] / nominal_past[use]
        basis = "means" if len(ratios) else "nominal"
        if not len(ratios):
            ratios = np.array([1.0])
        efficiency = float(ratios.mean())
        samples_cap = ratios
    else:
        worked = np.array([is_government_business_day(o.day) or o.notices > 0 for o in past])
        samples_cap = np.array([o.notices for o in past], dtype=float)[saturated & worked]
        basis = "observed"

    business_past = np.array([is_government_business_day(o.day) for o in past], dtype=bool)

    def split(values: list[int]) -> tuple[np.ndarray, np.ndarray]:
        arr = np.array(values, dtype=float)
        on, off = arr[business_past], arr[~business_past]
        return (on if len(on) else np.zeros(1)), (off if len(off) else np.zeros(1))

    apps_on, apps_off = split([o.applications for o in past])
    arr_on, arr_off = split([o.arrivals for o in past])
    apps_per_day = float(np.mean([o.applications for o in past])) if past else 0.0
    lead = 0 if apps_per_day <= 0 else min(120, round(inputs.pipeline / apps_per_day))

    # Cutoff rule: cards that arrived on or before the day before the settle_days-th most recent business
    # day must have been notified. Past arrivals of today's queue (FIFO: the newest arrivals are queued).
    arrivals_after = np.concatenate([np.cumsum([o.arrivals for o in reversed(past)])[::-1][1:], [0.0]])
    past_index = {o.day: i for i, o in enumerate(past)}

    def old_at(cutoff: date) -> float:
        """Cards of today's queue that arrived on or before ``cutoff`` (a past day)."""
        i = past_index.get(cutoff)
        if i is None:  # before the observed days: whatever the observed arrivals do not explain
            return max(0.0, backlog - float(arrivals_after[0] + past[0].arrivals))
        return max(0.0, backlog - float(arrivals_after[i]))

    calendar_first = min(first, as_of) - timedelta(days=60)
    ordinals = _business_ordinals(calendar_first, horizon_end)

    def cutoffs_of(days: np.ndarray) -> np.ndarray:
        """Per day (ordinals): the day before its ``settle_days``-th most recent business day (ordinal)."""
        if not inputs.settle_days:
            return days
        k = np.searchsorted(ordinals, days, side="right") - inputs.settle_days
        return np.where(k >= 0, ordinals[np.maximum(k, 0)] - 1, calendar_first.toordinal())

    def cutoff_for(day: date) -> date:
        return date.fromordinal(int(cutoffs_of(np.array([day.toordinal()]))[0]))

    settle_now = cutoff_for(as_of) if inputs.settle_days else as_of
    cohorts_sorted = sorted((m, n) for m, n in inputs.queue.items() if n > 0)
    if backlog == 0 or old_at(settle_now) <= 1e-9:
        return Forecast(as_of, ForecastStatus.CLEARED, as_of, as_of, as_of, 1.0, backlog, inputs.pipeline,
                        basis, efficiency, 0.0, 0.0, apps_per_day, lead,
                        {m: as_of for m, _ in cohorts_sorted}, (), horizon_end)
    if not len(samples_cap):
        return Forecast(as_of, ForecastStatus.NO_THROUGHPUT, None, None, None, 0.0, backlog, inputs.pipeline,
                        basis, None, 0.0, 0.0, apps_per_day, lead, {m: None for m, _ in cohorts_sorted}, (),
                        horizon_end)

    runs, horizon = inputs.runs, inputs.horizon_days
    rng = np.random.default_rng(inputs.seed)
    future = [as_of + timedelta(days=t) for t in range(1, horizon + 1)]
    business = np.zeros(horizon, dtype=bool)
    capacity = np.zeros(horizon)  # nominal cards a day (with means) or 1.0 on open days (observed)
    cap_boot = _Bootstrap(rng, samples_cap, runs)
    boots = {name: (_Bootstrap(rng, on, runs), _Bootstrap(rng, off, runs))
             for name, (on, off) in (("apps", (apps_on, apps_off)), ("arr", (arr_on, arr_off)))}
    thresholds = np.cumsum([float(n) for _, n in cohorts_sorted])

    # Both queues — cards on their way (fed by applications, served by the manufacturer's deliveries) and
    # cards at the window (fed by deliveries, served by the window) — follow Lindley's recursion
    # q_t = max(0, q_{t-1} + in_t - out_t), which in closed form is q_t = S_t - min(-q_0, min_{k<=t} S_k)
    # with S the running sum of in - out: whole blocks of days at once for every run.
    def lindley(start_queue: np.ndarray, inflow: np.ndarray, outflow: np.ndarray) -> np.ndarray:
        running = np.cumsum(inflow - outflow, axis=1)
        lowest = np.minimum.accumulate(running, axis=1)
        result: np.ndarray = running - np.minimum(-start_queue[:, None], lowest)
        return result

    pool = np.full(runs, float(inputs.pipeline))
    queue = np.full(runs, float(backlog))
    cum_arrivals = np.zeros((runs, horizon + 1))  # cards arrived after as_of, by the end of day t
    notified_total = np.zeros(runs)
    apps = np.zeros((runs, horizon))
    caps = np.zeros((runs, horizon))
    cleared_at = np.full(runs, np.inf)
    cohort_at = np.full((runs, len(thresholds)), np.inf)
    queue_path = np.zeros((runs, horizon))
    last_t = horizon
    block = 91
    for start in range(0, horizon, block):
        stop = min(horizon, start + block)
        width = stop - start
        days = future[start:stop]
        weekday, _, closed, ordinal = _calendar(days[0], width)
        business[start:stop] = (weekday < 5) & ~closed
        capacity[start:stop] = (capacity_array(means, days[0], width) if means is not None
                                else business[start:stop])
        on = business[start:stop][None, :]
        caps[:, start:stop] = cap_boot.draw(width) * capacity[None, start:stop]
        apps[:, start:stop] = np.where(on, boots["apps"][0].draw(width), boots["apps"][1].draw(width))
        deliveries = np.where(on, boots["arr"][0].draw(width), boots["arr"][1].draw(width))
        inflow = np.zeros((runs, width))
        lagged = np.arange(start, stop) - lead  # applications reach the pipeline's end after `lead` days
        usable = lagged >= 0
        inflow[:, usable] = apps[:, lagged[usable]]
        pools = lindley(pool, inflow, deliveries)
        arriving = np.concatenate([pool[:, None], pools[:, :-1]], axis=1) + inflow - pools
        pool = pools[:, -1]
        cum_arrivals[:, start + 1:stop + 1] = cum_arrivals[:, start:start + 1] + np.cumsum(arriving, axis=1)
        queues = lindley(queue, arriving, caps[:, start:stop])
        sent = np.concatenate([queue[:, None], queues[:, :-1]], axis=1) + arriving - queues
        queue = queues[:, -1]
        notified = notified_total[:, None] + np.cumsum(sent, axis=1)
        notified_total = notified[:, -1]
        queue_path[:, start:stop] = queues
        # Cleared on day t: every card that arrived on or before the cutoff of day t has been notified.
        cutoffs = cutoffs_of(ordinal)
        index = np.maximum(cutoffs - as_of.toordinal(), 0)
        before = np.zeros(width)
        for c in np.unique(cutoffs[index == 0]):  # the first days still look back at today's queue
            before[cutoffs == c] = old_at(date.fromordinal(int(c)))
        must = np.where(index[None, :] > 0, backlog + cum_arrivals[:, index], before[None, :])
        cleared_at = np.minimum(cleared_at, _first_day(notified >= must - 1e-6, start))
        for k, threshold in enumerate(thresholds):
            cohort_at[:, k] = np.minimum(cohort_at[:, k], _first_day(notified >= threshold - 1e-6, start))
        if not np.isinf(cleared_at).any():
            last_t = min(stop, max(14, int(cleared_at.max())))
            break
    open_days = capacity[:last_t] > 0
    cap_used = caps[:, :last_t][:, open_days]

    ordered = np.sort(cleared_at)

    def to_day(value: float) -> date | None:
        return None if math.isinf(value) else as_of + timedelta(days=int(value))

    low, median, high = (to_day(_nearest_rank(ordered, q)) for q in (0.05, 0.5, 0.95))
    probability = float(np.mean(~np.isinf(cleared_at)))
    status = ForecastStatus.FORECAST if median is not None else ForecastStatus.BEYOND_HORIZON
    cohorts = {}
    for k, (m, _) in enumerate(cohorts_sorted):
        cohorts[m] = to_day(_nearest_rank(np.sort(cohort_at[:, k]), 0.5))
    # The path shown: to a week past the 95th percentile, or twice the median when the band is open-ended.
    if high is not None:
        span = min(last_t, max(14, (high - as_of).days + 7))
    elif median is not None:
        span = min(last_t, max(60, 2 * (median - as_of).days))
    else:
        span = min(last_t, 365)
    path: tuple[PathPoint, ...] = ()
    if inputs.with_path:
        qs = np.quantile(queue_path[:, :span], [0.05, 0.5, 0.95], axis=0)
        path = tuple(PathPoint(future[i], float(qs[0, i]), float(qs[1, i]), float(qs[2, i]))
                     for i in range(span))
    business_count = max(1, int(business[:last_t].sum()))
    return Forecast(
        as_of=as_of, status=status, low=low, median=median, high=high, probability_cleared=probability,
        backlog=backlog, pipeline=inputs.pipeline, basis=basis, efficiency=efficiency,
        throughput_per_day=float(cap_used.mean()) if cap_used.size else 0.0,
        arrivals_per_day=float(cum_arrivals[:, last_t].mean() / business_count),
        applications_per_day=apps_per_day, lead_days=lead, cohorts=cohorts, path=path,
        horizon_end=horizon_end)
