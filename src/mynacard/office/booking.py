"""Booking by the resident (予約): with the notice number and date of birth, one active booking per notice —
book, rebook, cancel, and the resident's view of their notice. Whether a slot can be booked is the rule of
:func:`mynacard.office.model.slot_requirements`: the guarded UPDATE takes a place with it, and a refusal
says why with :func:`~mynacard.office.model.slot_refusal`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, NoReturn

from sqlalchemy import Connection, and_, insert, select, update
from sqlalchemy.exc import IntegrityError

from mynacard.context import Context
from mynacard.errors import Conflict, InvalidInput, NotFound
from mynacard.office.model import (
    BOOKING_HORIZON_DAYS,
    BookingState,
    CounterKind,
    NoticeCard,
    NoticeState,
    SlotRefusal,
    parse_notice_number,
    slot_refusal,
)
from mynacard.office.notices import birth_hash, close_bookings, notice_row
from mynacard.office.slots import SlotView, bookable, site_name, slot_query, slot_view
from mynacard.office.tables import office_bookings, office_notices, office_slots

__all__ = ["MAX_BIRTH_DATE_FAILURES", "Booking", "book", "cancel_booking", "find_notice", "rebook"]

MAX_BIRTH_DATE_FAILURES = 5
"""After this many wrong dates of birth a notice can no longer be used on the web (call the office)."""


@dataclass(frozen=True)
class Booking:
    id: int
    notice_number: str
    slot: SlotView
    state: BookingState
    created_at: datetime


def _booking(conn: Connection, booking_id: int) -> Booking:
    r = conn.execute(select(office_bookings).where(office_bookings.c.id == booking_id)).one()
    slot = conn.execute(slot_query().where(office_slots.c.id == r.slot_id)).one()
    return Booking(r.id, r.notice_number, slot_view(slot), BookingState(r.state), r.created_at)


def _resident_notice(ctx: Context, conn: Connection, number: str, birth_date: date) -> Any:
    """The outstanding notice, if the date of birth matches; a wrong date counts against the notice."""
    row = notice_row(conn, number)
    if row is None:
        raise NotFound("the notice number and date of birth do not match a notice")
    if row.failed_attempts >= MAX_BIRTH_DATE_FAILURES:
        raise Conflict("too many wrong dates of birth for this notice: please call the office")
    if row.birth_hash != birth_hash(ctx, number, birth_date):
        return None
    if row.state != NoticeState.SENT.value:
        raise Conflict(f"this notice is {row.state} and can no longer be used to book")
    return row


def _count_failure(ctx: Context, number: str) -> None:
    with ctx.transaction() as tx:
        conn = tx.conn
        conn.execute(update(office_notices).where(office_notices.c.notice_number == number).values(
            failed_attempts=office_notices.c.failed_attempts + 1))


def find_notice(ctx: Context, notice_number: str, birth_date: date) -> tuple[NoticeCard, Booking | None]:
    """The resident's view: their notice (number + date of birth) and its active booking."""
    number = parse_notice_number(notice_number)
    with ctx.db.connect() as conn:
        row = _resident_notice(ctx, conn, number, birth_date)
        if row is not None:
            active = conn.execute(select(office_bookings.c.id).where(
                office_bookings.c.notice_number == number,
                office_bookings.c.state == BookingState.ACTIVE.value)).scalar()
            booking = _booking(conn, active) if active is not None else None
            return (NoticeCard(number, row.card_id, row.resident_id, row.municipality_code, row.pickup_deadline,
                               active), booking)
    _count_failure(ctx, number)
    raise NotFound("the notice number and date of birth do not match a notice")


def book(ctx: Context, notice_number: str, birth_date: date, slot_id: int, now: datetime,
         idempotency_key: str | None = None) -> Booking:
    """Book an issuance slot with the notice number and date of birth. One active booking per notice (rebook
    to change it); a full slot is refused; the same ``idempotency_key`` returns the first booking."""
    number = parse_notice_number(notice_number)
    if idempotency_key is not None and not 8 <= len(idempotency_key) <= 80:
        raise InvalidInput("an Idempotency-Key has 8–80 characters")
    try:
        return _book(ctx, number, birth_date, slot_id, now, idempotency_key, rebooking=False)
    except IntegrityError:
        # Another request of the same notice (or key) committed first: answer as that one would have.
        with ctx.db.connect() as conn:
            if idempotency_key is not None:
                again = _by_key(conn, idempotency_key, number)
                if again is not None:
                    return again
        raise Conflict("this notice already has a booking: cancel it or change it (rebook)") from None


def _by_key(conn: Connection, key: str, number: str) -> Booking | None:
    row = conn.execute(select(office_bookings.c.id, office_bookings.c.notice_number).where(
        office_bookings.c.idempotency_key == key)).first()
    if row is None:
        return None
    if row.notice_number != number:
        raise Conflict("this Idempotency-Key was used for another request")
    return _booking(conn, row.id)


def _book(ctx: Context, number: str, birth_date: date, slot_id: int, now: datetime, key: str | None, *,
          rebooking: bool) -> Booking:
    # The hot path is four statements: the idempotency key, the notice with its active booking, the slot's
    # guarded UPDATE (the whole bookable-slot rule, `bookable`, in its WHERE, so the last place cannot be taken
    # twice), and the INSERT. Only a refusal reads more, to say why (`slot_refusal`: the same rule).
    with ctx.transaction() as tx:
        conn = tx.conn
        if key is not None and (again := _by_key(conn, key, number)) is not None:
            return again
        notice = conn.execute(
            select(office_notices.c.municipality_code, office_notices.c.state, office_notices.c.birth_hash,
                   office_notices.c.failed_attempts, office_bookings.c.id.label("active_id"),
                   office_bookings.c.slot_id.label("active_slot"))
            .outerjoin(office_bookings, and_(office_bookings.c.notice_number == office_notices.c.notice_number,
                                             office_bookings.c.state == BookingState.ACTIVE.value))
            .where(office_notices.c.notice_number == number)).first()
        if notice is None:
            raise NotFound("the notice number and date of birth do not match a notice")
        if notice.failed_attempts >= MAX_BIRTH_DATE_FAILURES:
            raise Conflict("too many wrong dates of birth for this notice: please call the office")
        matches = notice.birth_hash == birth_hash(ctx, number, birth_date)
        if matches:
            if notice.state != NoticeState.SENT.value:
                raise Conflict(f"this notice is {notice.state} and can no longer be used to book")
            if notice.active_id is not None:
                if notice.active_slot == slot_id:
                    return _booking(conn, notice.active_id)
                if not rebooking:
                    raise Conflict("this notice already has a booking: cancel it or change it (rebook)")
                close_bookings(conn, number, BookingState.CANCELLED, now)
            taken = conn.execute(update(office_slots).where(
                office_slots.c.id == slot_id, *bookable(notice.municipality_code, now))
                .values(booked=office_slots.c.booked + 1)
                .returning(office_slots.c.site_id, office_slots.c.kind, office_slots.c.starts_at,
                           office_slots.c.ends_at, office_slots.c.capacity, office_slots.c.booked)).first()
            if taken is None:
                _refuse_slot(conn, slot_id, notice.municipality_code, now)
            booking_id = int(conn.execute(insert(office_bookings).values(
                notice_number=number, slot_id=slot_id, municipality_code=notice.municipality_code,
                state=BookingState.ACTIVE.value, idempotency_key=key, created_at=now, closed_at=None)
                .returning(office_bookings.c.id)).scalar_one())
            slot = SlotView(slot_id, taken.site_id, site_name(conn, taken.site_id), CounterKind(taken.kind),
                            taken.starts_at, taken.ends_at, taken.capacity, taken.booked)
            return Booking(booking_id, number, slot, BookingState.ACTIVE, now)
    _count_failure(ctx, number)
    raise NotFound("the notice number and date of birth do not match a notice")


_REFUSALS = {SlotRefusal.BEGUN: "this slot has already begun",
             SlotRefusal.NOT_YET_OPEN: f"bookings open {BOOKING_HORIZON_DAYS} days ahead",
             SlotRefusal.FULL: "this slot is full: please choose another time"}
"""What a resident is told when a slot of their municipality cannot be booked (Conflict)."""


def _refuse_slot(conn: Connection, slot_id: int, municipality_code: str, now: datetime) -> NoReturn:
    """Say why the guarded UPDATE took no place: NotFound for no slot of the resident's windows, else Conflict
    with the rule's reason (a slot that passes the rule now was full when the UPDATE ran)."""
    slot = conn.execute(select(office_slots).where(office_slots.c.id == slot_id)).first()
    refusal = SlotRefusal.ELSEWHERE if slot is None else slot_refusal(slot, municipality_code, now)
    if refusal is SlotRefusal.ELSEWHERE:
        raise NotFound("no such slot at your municipality's windows")
    raise Conflict(_REFUSALS[refusal or SlotRefusal.FULL])


def rebook(ctx: Context, notice_number: str, birth_date: date, slot_id: int, now: datetime,
           idempotency_key: str | None = None) -> Booking:
    """Move the notice's booking to another slot in one transaction (the old place is freed only if the new
    one is taken)."""
    number = parse_notice_number(notice_number)
    try:
        return _book(ctx, number, birth_date, slot_id, now, idempotency_key, rebooking=True)
    except IntegrityError:
        raise Conflict("the booking changed meanwhile: reload and try again") from None


def cancel_booking(ctx: Context, notice_number: str, birth_date: date, now: datetime) -> bool:
    """Cancel the notice's active booking; False if there was none (a repeated cancel changes nothing)."""
    number = parse_notice_number(notice_number)
    with ctx.transaction() as tx:
        notice = _resident_notice(ctx, tx.conn, number, birth_date)
        if notice is not None:
            active = tx.conn.execute(select(office_bookings.c.id).where(
                office_bookings.c.notice_number == number,
                office_bookings.c.state == BookingState.ACTIVE.value)).scalar()
            close_bookings(tx.conn, number, BookingState.CANCELLED, now)
            return active is not None
    _count_failure(ctx, number)
    raise NotFound("the notice number and date of birth do not match a notice")
