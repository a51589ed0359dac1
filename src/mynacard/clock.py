"""Business time. Nothing deep inside reads the wall clock; services take ``now`` and use these helpers to
turn it into Japanese business days (a card issued at 08:30 JST is issued on that JST day)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

__all__ = ["JST", "local_date", "utc_now"]

JST = ZoneInfo("Asia/Tokyo")


def utc_now() -> datetime:
    """The wall clock, aware and in UTC: the default clock of a :class:`~mynacard.context.Context`."""
    return datetime.now(UTC)


def local_date(moment: datetime) -> date:
    """The JST calendar day of an aware moment."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: pass an aware time")
    return moment.astimezone(JST).date()
