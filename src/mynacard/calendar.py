"""The government calendar (行政機関の休日), the one home of the rule for every part that counts days: national
holidays (国民の祝日, 振替休日, 国民の休日), the year-end closure 12/29–1/3 (年末年始) and the government business
days that follow from them. Plans count open days with it, the office refuses pre-issuance setup on a closed
day, and the kiosk closes over the year end. Pure: days come in as arguments."""

from __future__ import annotations

from datetime import date, timedelta
from functools import lru_cache

import holidays

__all__ = [
    "business_days",
    "is_government_business_day",
    "is_year_end_closure",
    "public_holiday_name",
    "week_of_month",
]


@lru_cache(maxsize=64)
def _holidays(year: int) -> dict[date, str]:
    return dict(holidays.Japan(years=year, language="ja").items())


def public_holiday_name(day: date) -> str | None:
    """The national holiday on ``day`` (国民の祝日, 振替休日, 国民の休日), or None."""
    return _holidays(day.year).get(day)


def is_year_end_closure(day: date) -> bool:
    """12/29–1/3: government offices are closed (年末年始, 行政機関の休日に関する法律 第1条)."""
    return (day.month == 12 and day.day >= 29) or (day.month == 1 and day.day <= 3)


def is_government_business_day(day: date) -> bool:
    """A weekday that is neither a national holiday nor in the year-end closure."""
    return day.weekday() < 5 and not is_year_end_closure(day) and public_holiday_name(day) is None


def business_days(first: date, last: date) -> list[date]:
    """Government business days from ``first`` to ``last`` inclusive."""
    return [first + timedelta(days=i) for i in range((last - first).days + 1)
            if is_government_business_day(first + timedelta(days=i))]


def week_of_month(day: date) -> int:
    """1 for the first such weekday of the month (第1土曜日), … up to 5."""
    return (day.day - 1) // 7 + 1
