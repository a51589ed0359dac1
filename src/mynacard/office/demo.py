"""The municipal office in ``mynacard demo``: each town's windows from its plan's means, then day by day the
office's real flow — receipt checks, the off-peak setup batch, staged notices, residents booking with their
notice number — and the pickup at the window.

The window transaction itself (identity check, PINs on the chip, certificate activation) belongs to the window
part. Until it is wired in, :func:`stand_in_collect` hands the card over through the card ledger and closes
the notice and booking in one transaction. **Hook for the window:** pass its issuance as ``collect`` to
:func:`work_office_day` (``collect(ctx, notice_number, now)``).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import date, datetime, time, timedelta

from mynacard.cards import ledger
from mynacard.cards.model import CardState
from mynacard.clock import JST
from mynacard.context import Context
from mynacard.errors import Conflict
from mynacard.office import service
from mynacard.office.model import BookingState, CounterKind, SiteKind
from mynacard.plans.model import Means, Site, daily_capacity
from mynacard.principal import Principal
from mynacard.registry import service as registry

__all__ = ["Collect", "open_offices", "stand_in_collect", "work_office_day"]

SYSTEM = Principal.system("demo-office")
Collect = Callable[[Context, str, datetime], None]
"""Hand the card of a notice over at the window (the window part's issuance transaction)."""


def stand_in_collect(ctx: Context, notice_number: str, now: datetime) -> None:
    """Stand-in for the window's issuance: the card becomes issued and its notice and booking close, in one
    transaction (no PINs or certificates: that is the window part's step)."""
    found = service.card_for_notice(ctx, SYSTEM, notice_number)
    with ctx.transaction() as tx:
        ledger.advance(tx.conn, [found.card_id], [CardState.NOTICE_SENT], CardState.ISSUED,
                       actor=SYSTEM.subject, now=now, reason="demo window (stand-in)")
        service.mark_notice_collected(tx, notice_number, now)


def _hours(site: Site, day: date) -> tuple[time, time] | None:
    """The opening hours of a plan's site on ``day`` (None when closed)."""
    if site.open_minutes(day) <= 0:
        return None
    weekday = day.weekday()
    if weekday < 5:
        end = site.after_hours_until if weekday in site.after_hours_days else site.weekday_hours.end
        return site.weekday_hours.start, end
    hours = site.saturday_hours if weekday == 5 else site.sunday_hours
    return hours.start, hours.end


def open_offices(ctx: Context, code: str, means: Means, first: date, last: date) -> None:
    """The town's sites with counters (a terminal per issuance counter) and shifts on every open day of its
    means from ``first`` to ``last`` plus the booking horizon, and their slots."""
    until = last + timedelta(days=28)
    for site in means.sites:
        kind = SiteKind(site.kind.value)
        site_id = service.add_site(ctx, SYSTEM, code, site.name, kind,
                                   {CounterKind.ISSUANCE: site.terminals,
                                    CounterKind.DOCUMENT_CHECK: max(1, site.staff - site.terminals)},
                                   datetime.combine(first, time(7), JST))
        day = first
        while day <= until:
            hours = _hours(site, day)
            if hours is not None:
                service.add_shift(ctx, SYSTEM, site_id, day, hours[0], hours[1], max(1, site.staff))
            day += timedelta(days=1)
        service.generate_slots(ctx, SYSTEM, site_id, first, until)


def work_office_day(ctx: Context, code: str, day: date, means: Means, rng: random.Random,
                    collect: Collect = stand_in_collect) -> tuple[int, int]:
    """One day of a town's office. Morning: residents booked for today come (most of them) and collect, as
    many as the window manages that day. Evening (off peak): receipt checks, the setup batch, notices up to
    the day's capacity (staged), and the residents who got one book a slot. Returns (notices, handed over)."""
    capacity = daily_capacity(means, day)
    if capacity <= 0:
        return 0, 0
    capacity = int(capacity * rng.choice([1.0, 1.0, 1.0, 0.9, 0.8, 0.5]))
    issued = 0
    for booking in service.bookings_on(ctx, SYSTEM, code, day):
        if issued >= capacity:
            break
        if booking.state is BookingState.ACTIVE and rng.random() < 0.9:
            collect(ctx, booking.notice_number, booking.starts_at + timedelta(minutes=rng.randrange(0, 30)))
            issued += 1
    evening = datetime.combine(day, time(18, 0), JST)
    service.check_received_cards(ctx, SYSTEM, code, evening, limit=20000)
    while service.run_pre_issuance_setup(ctx, SYSTEM, code, evening):
        pass
    numbers = service.send_notices(ctx, SYSTEM, code, evening + timedelta(minutes=5), limit=capacity)
    _residents_book(ctx, code, numbers, evening + timedelta(hours=2), rng)
    return len(numbers), issued


def _residents_book(ctx: Context, code: str, numbers: list[str], now: datetime, rng: random.Random) -> None:
    if not numbers:
        return
    cards = {n: service.card_for_notice(ctx, SYSTEM, n) for n in numbers}
    people = registry.residents_by_id(ctx, SYSTEM, [c.resident_id for c in cards.values()])
    slots = [s for s in service.open_slots(ctx, code, now) if s.starts_at >= now + timedelta(days=1)]
    for number in numbers:
        if not slots or rng.random() > 0.9:
            continue
        # most residents take the first free place a few days out
        start = min(len(slots) - 1, int(rng.expovariate(1 / 6)))
        for slot in slots[start:] + slots[:start]:
            try:
                service.book(ctx, number, people[cards[number].resident_id].facts.birth_date, slot.id, now)
                break
            except Conflict:
                continue
