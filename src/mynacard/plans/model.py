"""Issuance plans (マイナンバーカード交付計画) as a pure model: months, the means of a municipal window and the
capacity they give, and the figures of a plan (deck p.7–10). Open days are counted by :mod:`mynacard.calendar`.

No I/O and no clock: the plan's day comes in as ``as_of``. A plan says by which month a municipality will
have sent the issuance notices (交付通知書) for its backlog of cards (滞留分), the cards per day that takes
over the window's open days, and the means that deliver it: staff, integrated terminals (統合端末) per
site, opening hours, weekend and after-hours openings (土日・時間外開庁) and temporary windows
(臨時交付窓口). A plan whose means cannot deliver its daily number is flagged with the shortfall.

:func:`daily_capacity` is the one function that turns means into cards per day; the municipal window part
(office) can supply real means to it later.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, time, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import Any

from mynacard.calendar import (
    business_days,
    is_year_end_closure,
    public_holiday_name,
    week_of_month,
)
from mynacard.errors import InvalidInput

__all__ = [
    "DEFAULT_HOURS",
    "EVERY_WEEK",
    "Hours",
    "Means",
    "Month",
    "MonthFigure",
    "PlanFigures",
    "PlanInputs",
    "Site",
    "SiteKind",
    "daily_capacity",
    "format_target",
    "parse_target",
    "plan_figures",
]


# --- months -------------------------------------------------------------------------------------------------

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


@dataclass(frozen=True, order=True)
class Month:
    """A calendar month (``2016-06``): application months (申請月) and target months (目標月)."""

    year: int
    month: int

    def __post_init__(self) -> None:
        if not (1 <= self.month <= 12 and 1900 <= self.year <= 2999):
            raise ValueError(f"not a month: {self.year}-{self.month}")

    @classmethod
    def parse(cls, text: str) -> Month:
        """``YYYY-MM`` exactly; anything else raises ``ValueError`` with the text in the message."""
        m = _MONTH.match(text.strip()) if isinstance(text, str) else None
        if m is None:
            raise ValueError(f"not a month (YYYY-MM): {text!r}")
        try:
            return cls(int(m.group(1)), int(m.group(2)))
        except ValueError:
            raise ValueError(f"not a month (YYYY-MM): {text!r}") from None

    @classmethod
    def of(cls, day: date) -> Month:
        return cls(day.year, day.month)

    @property
    def first_day(self) -> date:
        return date(self.year, self.month, 1)

    @property
    def last_day(self) -> date:
        return (self + 1).first_day - timedelta(days=1)

    def __add__(self, months: int) -> Month:
        index = self.year * 12 + self.month - 1 + months
        return Month(index // 12, index % 12 + 1)

    def __sub__(self, other: Month) -> int:
        """Whole months from ``other`` to ``self``."""
        return (self.year - other.year) * 12 + self.month - other.month

    def until(self, last: Month) -> Iterator[Month]:
        """This month and every month after it up to ``last`` (inclusive)."""
        month = self
        while month <= last:
            yield month
            month = month + 1

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"


def parse_target(text: str) -> Month | None:
    """A target month: ``done`` (送付済, nothing left to notify → ``None``) or ``YYYY-MM``."""
    if isinstance(text, str) and text.strip().lower() in ("done", "送付済"):
        return None
    return Month.parse(text)


def format_target(target: Month | None) -> str:
    return "done" if target is None else str(target)


# --- the means of a window (実施体制) -----------------------------------------------------------------------

_HOURS = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")


@dataclass(frozen=True)
class Hours:
    """Opening hours of one day, e.g. 08:30–17:15."""

    start: time
    end: time

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise ValueError(f"closing time {self.end:%H:%M} is not after opening time {self.start:%H:%M}")

    @classmethod
    def parse(cls, text: str) -> Hours:
        m = _HOURS.match(text.strip()) if isinstance(text, str) else None
        if m is None:
            raise ValueError(f"not opening hours (HH:MM-HH:MM): {text!r}")
        h1, m1, h2, m2 = (int(g) for g in m.groups())
        if h1 > 23 or h2 > 24 or m1 > 59 or m2 > 59 or (h2 == 24 and m2):
            raise ValueError(f"not opening hours (HH:MM-HH:MM): {text!r}")
        end = time(23, 59, 59) if h2 == 24 else time(h2, m2)
        return cls(time(h1, m1), end)

    @property
    def minutes(self) -> int:
        return (self.end.hour * 60 + self.end.minute) - (self.start.hour * 60 + self.start.minute)

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


DEFAULT_HOURS = Hours(time(8, 30), time(17, 15))
"""Usual municipal office hours (8:30–17:15)."""
WEEKEND_HOURS = Hours(time(9, 0), time(17, 0))
EVERY_WEEK = frozenset({1, 2, 3, 4, 5})
"""``saturdays=EVERY_WEEK`` opens every Saturday; ``frozenset({2, 4})`` the 2nd and 4th."""


class SiteKind(StrEnum):
    """Where cards are handed over."""

    MAIN = "main"
    """本庁 — the town hall."""
    BRANCH = "branch"
    """支所・出張所 — a branch office."""
    TEMPORARY = "temporary"
    """臨時交付窓口 — a temporary window open for a period."""


@dataclass(frozen=True)
class Site:
    """One issuance window (交付窓口) and what it has."""

    name: str
    """本庁, 北支所, 臨時窓口(市民ホール) …"""
    kind: SiteKind = SiteKind.MAIN
    terminals: int = 1
    """Integrated terminals (統合端末) for pre-issuance setup and PIN setting at this site."""
    staff: int = 2
    """Staff working the issuance window at this site."""
    weekday_hours: Hours = DEFAULT_HOURS
    after_hours_days: frozenset[int] = frozenset()
    """Weekdays (0 = Monday … 4 = Friday) open late (時間外開庁) until :attr:`after_hours_until`."""
    after_hours_until: time = time(19, 0)
    saturdays: frozenset[int] = frozenset()
    """Which Saturdays of the month are open (1–5); :data:`EVERY_WEEK` for all, empty for none."""
    saturday_hours: Hours = WEEKEND_HOURS
    sundays: frozenset[int] = frozenset()
    """Which Sundays of the month are open (休日開庁)."""
    sunday_hours: Hours = WEEKEND_HOURS
    opens_on: date | None = None
    """First day (temporary windows); None = already open."""
    closes_on: date | None = None
    """Last day (temporary windows); None = no end."""
    terminal_minutes_per_card: float = 15.0
    """Terminal time per card: pre-issuance setup (交付前設定) and PIN setting at handover."""
    staff_minutes_per_card: float = 20.0
    """Staff time per card: identity check, explanation, the notice and the handover."""

    def problems(self) -> list[str]:
        out = []
        if not self.name.strip() or len(self.name) > 60:
            out.append("a site needs a name of 1–60 characters")
        if not (0 <= self.terminals <= 500):
            out.append(f"{self.name}: terminals must be 0–500")
        if not (0 <= self.staff <= 2000):
            out.append(f"{self.name}: staff must be 0–2000")
        if not self.after_hours_days <= frozenset(range(5)):
            out.append(f"{self.name}: after-hours days are weekdays 0 (Monday) to 4 (Friday)")
        if self.after_hours_days and self.after_hours_until <= self.weekday_hours.end:
            out.append(f"{self.name}: after-hours closing must be later than {self.weekday_hours.end:%H:%M}")
        for label, weeks in (("saturdays", self.saturdays), ("sundays", self.sundays)):
            if not weeks <= EVERY_WEEK:
                out.append(f"{self.name}: {label} are weeks of the month 1–5")
        for label, minutes in (("terminal", self.terminal_minutes_per_card),
                               ("staff", self.staff_minutes_per_card)):
            if not (1 <= minutes <= 240) or math.isnan(minutes):
                out.append(f"{self.name}: {label} minutes per card must be 1–240")
        if self.opens_on and self.closes_on and self.closes_on < self.opens_on:
            out.append(f"{self.name}: closes before it opens")
        return out

    def open_minutes(self, day: date) -> int:
        """Minutes the window is open on ``day`` (0 when closed). National holidays and 12/29–1/3 are
        closed even when they fall on an opened weekend day."""
        if (self.opens_on and day < self.opens_on) or (self.closes_on and day > self.closes_on):
            return 0
        if is_year_end_closure(day) or public_holiday_name(day) is not None:
            return 0
        weekday = day.weekday()
        if weekday < 5:
            minutes = self.weekday_hours.minutes
            if weekday in self.after_hours_days:
                end = self.after_hours_until.hour * 60 + self.after_hours_until.minute
                minutes += end - (self.weekday_hours.end.hour * 60 + self.weekday_hours.end.minute)
            return minutes
        if weekday == 5:
            return self.saturday_hours.minutes if week_of_month(day) in self.saturdays else 0
        return self.sunday_hours.minutes if week_of_month(day) in self.sundays else 0

    def capacity(self, day: date) -> tuple[int, str | None]:
        """Cards this site can handle on ``day`` and what limits it (``terminals`` or ``staff``)."""
        minutes = self.open_minutes(day)
        if minutes <= 0:
            return 0, None
        by_terminals = self.terminals * minutes / self.terminal_minutes_per_card
        by_staff = self.staff * minutes / self.staff_minutes_per_card
        if by_terminals <= by_staff:
            return math.floor(by_terminals + 1e-9), "terminals"
        return math.floor(by_staff + 1e-9), "staff"


@dataclass(frozen=True)
class Means:
    """The means of a plan (実施体制): the sites that hand cards over."""

    sites: tuple[Site, ...]

    def problems(self) -> list[str]:
        out = [p for site in self.sites for p in site.problems()]
        if not self.sites:
            out.append("the means need at least one site")
        names = [s.name for s in self.sites]
        if len(set(names)) != len(names):
            out.append("site names must be distinct")
        return out

    def check(self) -> Means:
        if problems := self.problems():
            raise InvalidInput("the means are not valid: " + "; ".join(problems), problems)
        return self

    @property
    def terminals(self) -> int:
        return sum(s.terminals for s in self.sites)

    @property
    def staff(self) -> int:
        return sum(s.staff for s in self.sites)

    def is_open(self, day: date) -> bool:
        return any(s.open_minutes(day) > 0 for s in self.sites)

    def open_days(self, first: date, last: date) -> list[date]:
        return list(_calendar_days(self.calendar, first, last))

    @property
    def calendar(self) -> frozenset[tuple[Any, ...]]:
        """What decides which days are open (not how much is done on them): shared by many towns."""
        return frozenset((s.saturdays, s.sundays, s.opens_on, s.closes_on) for s in self.sites)

    # What-ifs (deck p.7: 人員・統合端末の確保, 土日・時間外開庁, 臨時交付窓口). Each returns new means.

    def with_terminals(self, extra: int, site: int = 0) -> Means:
        return self._edit(site, terminals=self.sites[site].terminals + extra)

    def with_staff(self, extra: int, site: int = 0) -> Means:
        return self._edit(site, staff=self.sites[site].staff + extra)

    def with_saturdays(self, weeks: frozenset[int] = EVERY_WEEK, site: int = 0) -> Means:
        return self._edit(site, saturdays=self.sites[site].saturdays | weeks)

    def with_after_hours(self, days: frozenset[int], until: time = time(19, 0), site: int = 0) -> Means:
        return self._edit(site, after_hours_days=self.sites[site].after_hours_days | days,
                          after_hours_until=until)

    def with_site(self, new: Site) -> Means:
        return Means((*self.sites, new))

    def _edit(self, index: int, **changes: Any) -> Means:
        if not 0 <= index < len(self.sites):
            raise InvalidInput(f"no site number {index + 1}")
        sites = list(self.sites)
        sites[index] = replace(sites[index], **changes)
        return Means(tuple(sites))

    # Serialisation (for storage and the JSON API): plain values only.

    def to_dict(self) -> dict[str, Any]:
        return {"sites": [_site_to_dict(s) for s in self.sites]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Means:
        try:
            return cls(tuple(_site_from_dict(s) for s in data["sites"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"the means are not valid: {exc}") from None


@lru_cache(maxsize=4096)
def _calendar_days(calendar: frozenset[tuple[Any, ...]], first: date, last: date) -> tuple[date, ...]:
    sites = [Site("x", saturdays=saturdays, sundays=sundays, opens_on=opens_on, closes_on=closes_on)
             for saturdays, sundays, opens_on, closes_on in calendar]
    days = (first + timedelta(days=i) for i in range((last - first).days + 1))
    return tuple(d for d in days if any(s.open_minutes(d) > 0 for s in sites))


def _weeks(text: str) -> frozenset[int]:
    return frozenset(int(w) for w in text.split(",") if w) if text else frozenset()


def _site_to_dict(s: Site) -> dict[str, Any]:
    return {
        "name": s.name, "kind": s.kind.value, "terminals": s.terminals, "staff": s.staff,
        "weekday_hours": str(s.weekday_hours), "after_hours_days": sorted(s.after_hours_days),
        "after_hours_until": f"{s.after_hours_until:%H:%M}", "saturdays": sorted(s.saturdays),
        "saturday_hours": str(s.saturday_hours), "sundays": sorted(s.sundays),
        "sunday_hours": str(s.sunday_hours),
        "opens_on": s.opens_on.isoformat() if s.opens_on else None,
        "closes_on": s.closes_on.isoformat() if s.closes_on else None,
        "terminal_minutes_per_card": s.terminal_minutes_per_card,
        "staff_minutes_per_card": s.staff_minutes_per_card,
    }


def _site_from_dict(d: Mapping[str, Any]) -> Site:
    def weeks(value: Any) -> frozenset[int]:
        if isinstance(value, str):
            return _weeks(value)
        return frozenset(int(v) for v in value or ())

    default = Site("x")
    return Site(
        name=str(d["name"]), kind=SiteKind(d.get("kind", "main")), terminals=int(d.get("terminals", 1)),
        staff=int(d.get("staff", 2)),
        weekday_hours=Hours.parse(d["weekday_hours"]) if d.get("weekday_hours") else default.weekday_hours,
        after_hours_days=weeks(d.get("after_hours_days")),
        after_hours_until=(time.fromisoformat(d["after_hours_until"]) if d.get("after_hours_until")
                           else default.after_hours_until),
        saturdays=weeks(d.get("saturdays")),
        saturday_hours=(Hours.parse(d["saturday_hours"]) if d.get("saturday_hours")
                        else default.saturday_hours),
        sundays=weeks(d.get("sundays")),
        sunday_hours=Hours.parse(d["sunday_hours"]) if d.get("sunday_hours") else default.sunday_hours,
        opens_on=date.fromisoformat(d["opens_on"]) if d.get("opens_on") else None,
        closes_on=date.fromisoformat(d["closes_on"]) if d.get("closes_on") else None,
        terminal_minutes_per_card=float(d.get("terminal_minutes_per_card", 15.0)),
        staff_minutes_per_card=float(d.get("staff_minutes_per_card", 20.0)),
    )


def daily_capacity(means: Means, day: date) -> int:
    """Cards the means can take through pre-issuance setup, notice and handover on ``day``.

    Each site gives ``min(terminals × minutes ÷ terminal minutes per card, staff × minutes ÷ staff minutes
    per card)`` (rounded down), where minutes are its opening minutes that day; the day's capacity is the sum
    over sites. This is the contract the municipal window part can later feed with real means.
    """
    return sum(site.capacity(day)[0] for site in means.sites)


# --- plan figures -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class MonthFigure:
    """Cumulative notices sent and applications at the end of a month (actual or planned)."""

    month: Month
    notices_sent_cumulative: int
    applications_cumulative: int
    planned: bool


@dataclass(frozen=True)
class PlanInputs:
    """What a municipality knows when it draws up its plan."""

    municipality_code: str
    as_of: date
    """The plan's day; the plan runs from the day after."""
    target: Month
    """The month by the end of which the backlog's notices are to be sent (送付完了目標)."""
    backlog: Mapping[Month, int]
    """Cards received but not yet notified, by application month (滞留分)."""
    means: Means | None = None
    arrivals_per_day: float = 0.0
    """New cards expected from the manufacturer per open day while the plan runs."""
    applications_per_day: float = 0.0
    """New applications expected per calendar day (for the monthly applications line)."""
    notices_sent: int = 0
    """Notices sent so far (cumulative, at ``as_of``)."""
    applications: int = 0
    """Applications so far (cumulative, at ``as_of``)."""
    past_months: Mapping[Month, tuple[int, int]] = field(default_factory=dict)
    """Actual cumulative (notices sent, applications) at the end of months before ``as_of``'s month."""


@dataclass(frozen=True)
class PlanFigures:
    """A plan's arithmetic: the daily number, what the means give, and whether they suffice."""

    first_day: date
    last_day: date
    open_days: int
    """Days the window is open in the plan's period (weekends and holidays as the means choose)."""
    backlog_total: int
    expected_arrivals: int
    required_per_day: int
    """Cards per open day needed to notify the backlog and the new arrivals by the target
    (1日あたり交付枚数)."""
    capacity_total: int | None
    """Cards the means can handle over the period (None without means)."""
    capacity_per_day: float | None
    shortfall_per_day: int
    shortfall_total: int
    bottleneck: str | None
    """``terminals`` or ``staff``: what limits most of the capacity."""
    achievable_month: Month | None
    """When the means would clear the backlog (None without means, or not within three years)."""
    weekend_days: int
    after_hours_days: int
    targets: dict[Month, Month | None]
    """Application month → month its backlog is notified (None = nothing left)."""
    months: list[MonthFigure]

    @property
    def flagged(self) -> bool:
        """The means cannot deliver the daily number."""
        return self.shortfall_total > 0


_HORIZON_DAYS = 3 * 366


def _open_days(means: Means | None, first: date, last: date) -> list[date]:
    return means.open_days(first, last) if means is not None else business_days(first, last)


def plan_figures(inputs: PlanInputs) -> PlanFigures:
    """The figures of a plan; raises :class:`InvalidInput` when the plan cannot be drawn up as asked."""
    first = inputs.as_of + timedelta(days=1)
    last = inputs.target.last_day
    if inputs.target < Month.of(first):
        raise InvalidInput(f"the target month {inputs.target} is already over on {inputs.as_of}")
    if any(n < 0 for n in inputs.backlog.values()) or inputs.arrivals_per_day < 0:
        raise InvalidInput("backlog and arrivals cannot be negative")
    means = inputs.means.check() if inputs.means is not None else None
    days = _open_days(means, first, last)
    if not days:
        raise InvalidInput(f"the window is never open between {first} and {last}")
    backlog_total = sum(inputs.backlog.values())
    expected_arrivals = math.ceil(inputs.arrivals_per_day * len(days) - 1e-9)
    required = math.ceil((backlog_total + expected_arrivals) / len(days) - 1e-9)

    capacity_total = capacity_per_day = None
    bottleneck = achievable = None
    shortfall_total = shortfall_per_day = 0
    weekend = after_hours = 0
    if means is not None:
        by_limit: dict[str, int] = {}
        capacity_total = 0
        for day in days:
            for site in means.sites:
                cards, limit = site.capacity(day)
                capacity_total += cards
                if limit:
                    by_limit[limit] = by_limit.get(limit, 0) + cards
            weekend += day.weekday() >= 5
            after_hours += any(day.weekday() in s.after_hours_days and s.open_minutes(day) > 0
                               for s in means.sites)
        capacity_per_day = capacity_total / len(days)
        bottleneck = max(by_limit, key=lambda k: by_limit[k]) if by_limit else None
        shortfall_total = max(0, backlog_total + expected_arrivals - capacity_total)
        shortfall_per_day = max(0, required - math.floor(capacity_per_day + 1e-9))
        if shortfall_total and not shortfall_per_day:
            shortfall_per_day = 1
        achievable = _achievable_month(means, first, backlog_total, inputs.arrivals_per_day)

    targets, processed_by_day = _fifo_targets(inputs, days, required)
    months = _trajectory(inputs, processed_by_day)
    return PlanFigures(first, last, len(days), backlog_total, expected_arrivals, required, capacity_total,
                       capacity_per_day, shortfall_per_day, shortfall_total, bottleneck, achievable, weekend,
                       after_hours, targets, months)


def _achievable_month(means: Means, first: date, backlog: int, arrivals_per_day: float) -> Month | None:
    """The month in which working at full capacity empties the queue (backlog plus arrivals)."""
    queue = float(backlog)
    if queue <= 0:
        return Month.of(first)
    for offset in range(_HORIZON_DAYS):
        day = first + timedelta(days=offset)
        if not means.is_open(day):
            continue
        queue += arrivals_per_day
        queue -= daily_capacity(means, day)
        if queue <= 1e-9:
            return Month.of(day)
    return None


def _fifo_targets(inputs: PlanInputs, days: list[date],
                  rate: int) -> tuple[dict[Month, Month | None], dict[date, float]]:
    """Notify the backlog oldest application month first at the planned rate, new arrivals behind it.

    New arrivals count with the plan's own month (they are the latest applications), so that month's target
    is the month in which the whole queue is first empty.
    """
    current = Month.of(inputs.as_of)
    targets: dict[Month, Month | None] = {m: None for m in inputs.backlog}
    months = [m for m, n in sorted(inputs.backlog.items()) if n > 0]
    left = [float(inputs.backlog[m]) for m in months]
    waiting = 0.0
    cleared: date | None = None
    processed: dict[date, float] = {}
    for day in days:
        waiting += inputs.arrivals_per_day
        budget = float(rate)
        done = 0.0
        while budget > 1e-9 and months:
            take = min(budget, left[0])
            left[0] -= take
            budget -= take
            done += take
            if left[0] <= 1e-9:
                targets[months.pop(0)] = Month.of(day)
                left.pop(0)
        take = min(budget, waiting)
        waiting -= take
        processed[day] = done + take
        if cleared is None and not months and waiting <= 1e-9:
            cleared = day
    if inputs.arrivals_per_day > 0:
        targets[current] = Month.of(cleared or days[-1])
    return targets, processed


def _trajectory(inputs: PlanInputs, processed: dict[date, float]) -> list[MonthFigure]:
    out = [MonthFigure(m, n, a, planned=False) for m, (n, a) in sorted(inputs.past_months.items())
           if m < Month.of(inputs.as_of)]
    notices = float(inputs.notices_sent)
    applications = float(inputs.applications)
    day = inputs.as_of + timedelta(days=1)
    for month in Month.of(inputs.as_of).until(inputs.target):
        while day <= month.last_day:
            notices += processed.get(day, 0)
            applications += inputs.applications_per_day
            day += timedelta(days=1)
        out.append(MonthFigure(month, round(notices), max(round(applications), round(notices)), planned=True))
    return out
