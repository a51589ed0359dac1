"""Clerk and supervisor views: the day's bookings (本日の予約一覧), the backlog (滞留状況), the public
congestion forecast (混雑予想), the notice as printed, and the list of notices."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import and_, func, select

from mynacard.cards import service as cards
from mynacard.clock import JST, local_date
from mynacard.context import Context
from mynacard.errors import NotFound
from mynacard.office.access import MUNICIPAL, scope
from mynacard.office.model import (
    BookingState,
    CounterKind,
    NoticeState,
    expected_wait_minutes,
    parse_notice_number,
)
from mynacard.office.notices import notice_row
from mynacard.office.slots import bookable
from mynacard.office.tables import (
    office_bookings,
    office_notices,
    office_receipt_checks,
    office_setup_runs,
    office_sites,
    office_slots,
)
from mynacard.principal import Principal, Role
from mynacard.registry import service as registry

__all__ = ["Backlog", "CongestionHour", "DayBooking", "NoticePrint", "backlog", "bookings_on", "congestion",
           "notice_for_print", "notices_of"]


@dataclass(frozen=True)
class DayBooking:
    booking_id: int
    starts_at: datetime
    site_name: str
    notice_number: str
    card_id: int
    name: str
    state: BookingState


def bookings_on(ctx: Context, principal: Principal, municipality_code: str, day: date) -> list[DayBooking]:
    """The day's bookings of the municipality's windows (本日の予約一覧), in time order."""
    scope(principal, municipality_code)
    start = datetime.combine(day, time(0), JST)
    with ctx.db.connect() as conn:
        rows = conn.execute(
            select(office_bookings.c.id, office_bookings.c.notice_number, office_bookings.c.state,
                   office_slots.c.starts_at, office_sites.c.name.label("site_name"), office_notices.c.card_id)
            .join(office_slots, office_slots.c.id == office_bookings.c.slot_id)
            .join(office_sites, office_sites.c.id == office_slots.c.site_id)
            .join(office_notices, office_notices.c.notice_number == office_bookings.c.notice_number)
            .where(office_bookings.c.municipality_code == municipality_code,
                   office_bookings.c.state != BookingState.CANCELLED.value,
                   office_slots.c.starts_at >= start, office_slots.c.starts_at < start + timedelta(days=1))
            .order_by(office_slots.c.starts_at, office_bookings.c.id)).all()
        found = cards.office_cards(conn, [r.card_id for r in rows])
    return [DayBooking(r.id, r.starts_at, r.site_name, r.notice_number, r.card_id,
                       f"{found[r.card_id].facts.family_name} {found[r.card_id].facts.given_name}",
                       BookingState(r.state)) for r in rows]


@dataclass(frozen=True)
class Backlog:
    """滞留状況: cards by state, outstanding notices, bookable places and checks of the municipality."""

    cards_by_state: dict[str, int]
    outstanding_notices: int
    booked_ahead: int
    capacity_ahead: int
    defective: int
    setup_runs: int


def backlog(ctx: Context, principal: Principal, municipality_code: str, now: datetime) -> Backlog:
    scope(principal, municipality_code)
    # counted as the town's own clerk would see them: its cards only, not the whole country's
    by_state = cards.counts_by_municipality_and_state(
        ctx, Principal(Role.CLERK, "office-backlog", municipality_code)).get(municipality_code, {})
    with ctx.db.connect() as conn:
        outstanding = int(conn.execute(select(func.count()).select_from(office_notices).where(
            office_notices.c.municipality_code == municipality_code,
            office_notices.c.state == NoticeState.SENT.value)).scalar_one())
        ahead = conn.execute(select(func.coalesce(func.sum(office_slots.c.booked), 0),
                                    func.coalesce(func.sum(office_slots.c.capacity), 0)).where(
            *bookable(municipality_code, now, free=False))).one()
        defective = int(conn.execute(select(func.count()).select_from(office_receipt_checks).where(
            office_receipt_checks.c.municipality_code == municipality_code,
            office_receipt_checks.c.outcome == "defective")).scalar_one())
        runs = int(conn.execute(select(func.count()).select_from(office_setup_runs).where(
            office_setup_runs.c.municipality_code == municipality_code)).scalar_one())
    return Backlog(dict(by_state), outstanding, int(ahead[0]), int(ahead[1]), defective, runs)


@dataclass(frozen=True)
class CongestionHour:
    day: date
    hour: int
    capacity: int
    booked: int
    expected_wait_minutes: int


def congestion(ctx: Context, municipality_code: str, now: datetime, days: int = 14) -> list[CongestionHour]:
    """The public congestion forecast (混雑予想): per day and hour, places, bookings and the expected wait at
    the issuance counters. Aggregates only."""
    registry.get_municipality(ctx, municipality_code)  # NotFound for an unknown code
    first = datetime.combine(local_date(now), time(0), JST)
    with ctx.db.connect() as conn:
        rows = conn.execute(select(office_slots.c.starts_at, office_slots.c.capacity, office_slots.c.booked).where(
            office_slots.c.municipality_code == municipality_code,
            office_slots.c.kind == CounterKind.ISSUANCE.value,
            and_(office_slots.c.starts_at >= first, office_slots.c.starts_at < first + timedelta(days=days)))).all()
    hours: dict[tuple[date, int], list[int]] = defaultdict(lambda: [0, 0])
    for starts_at, capacity, booked in rows:
        local = starts_at.astimezone(JST)
        cell = hours[(local.date(), local.hour)]
        cell[0] += capacity
        cell[1] += booked
    return [CongestionHour(d, h, c, b, expected_wait_minutes(b, c)) for (d, h), (c, b) in sorted(hours.items())]


@dataclass(frozen=True)
class NoticePrint:
    """What the postcard shows: never the individual number."""

    notice_number: str
    sequence: int
    municipality_code: str
    municipality_name: str
    name: str
    address: str
    pickup_deadline: date
    sent_on: date


def notice_for_print(ctx: Context, principal: Principal, notice_number: str) -> NoticePrint:
    principal.require(*MUNICIPAL)
    number = parse_notice_number(notice_number)
    with ctx.db.connect() as conn:
        row = notice_row(conn, number)
        if row is None or not principal.can_see_municipality(row.municipality_code):
            raise NotFound("no such notice")
        card = cards.office_cards(conn, [row.card_id])[row.card_id]
    town = registry.get_municipality(ctx, row.municipality_code)
    return NoticePrint(number, row.sequence, row.municipality_code, town.full_name,
                       f"{card.facts.family_name} {card.facts.given_name}", card.facts.address,
                       row.pickup_deadline, local_date(row.sent_at))


def notices_of(ctx: Context, principal: Principal, municipality_code: str, state: NoticeState | None = None,
               limit: int = 200) -> list[dict[str, Any]]:
    """Notices of the municipality, newest first (for the clerk's list and the demo)."""
    scope(principal, municipality_code)
    query = (select(office_notices.c.notice_number, office_notices.c.card_id, office_notices.c.state,
                    office_notices.c.sequence, office_notices.c.sent_at, office_notices.c.pickup_deadline)
             .where(office_notices.c.municipality_code == municipality_code)
             .order_by(office_notices.c.sent_at.desc(), office_notices.c.notice_number).limit(limit))
    if state is not None:
        query = query.where(office_notices.c.state == state.value)
    with ctx.db.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]
