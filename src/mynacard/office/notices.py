"""Issuance notices (交付通知書): staged mailing within what the windows can serve, the re-notice (再通知), and the
destruction of uncollected cards (廃棄). A notice that ends takes its booking with it (:func:`close_bookings`)."""

from __future__ import annotations

from datetime import date, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from mynacard.cards import ledger
from mynacard.cards import service as cards
from mynacard.cards.model import AbolitionReason, CardState
from mynacard.clock import local_date
from mynacard.context import Context
from mynacard.errors import Conflict, NotFound
from mynacard.office.access import MUNICIPAL, SUPERVISING, scope
from mynacard.office.model import (
    BookingState,
    NoticeState,
    destruction_due,
    mailing_allowance,
    new_notice_number,
    parse_notice_number,
    pickup_deadline,
)
from mynacard.office.slots import issuance_capacity
from mynacard.office.tables import office_bookings, office_notices, office_slots
from mynacard.principal import Principal
from mynacard.sealing import Sealer

__all__ = ["destroy_uncollected", "renotice", "send_notices"]

S = CardState


@lru_cache(maxsize=8)
def _sealer(key: bytes) -> Sealer:
    return Sealer(key)


def birth_hash(ctx: Context, notice_number: str, birth_date: date) -> str:
    """The keyed hash of a notice's date of birth: the booking page's second factor, without a copy of it."""
    return _sealer(ctx.settings.data_key).lookup_hash(f"office-notice-birth:{notice_number}:{birth_date}")


def _pg(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


def send_notices(ctx: Context, principal: Principal, municipality_code: str, now: datetime,
                 limit: int | None = None) -> list[str]:
    """Staged mailing: notices for set-up cards, oldest first, never more outstanding than the issuance
    counters can serve within the booking horizon. Returns the new notice numbers."""
    scope(principal, municipality_code)
    with ctx.transaction() as tx:
        conn = tx.conn
        if _pg(conn):  # one mailing run per municipality at a time, so two runs cannot both use the room
            conn.execute(select(func.pg_advisory_xact_lock(func.hashtext("office-mailing:" + municipality_code))))
        _close_void_notices(conn, municipality_code, now)
        outstanding = int(conn.execute(select(func.count()).select_from(office_notices).where(
            office_notices.c.municipality_code == municipality_code,
            office_notices.c.state == NoticeState.SENT.value)).scalar_one())
        room = mailing_allowance(issuance_capacity(conn, municipality_code, now), outstanding)
        if limit is not None:
            room = min(room, max(0, limit))
        if room == 0:
            return []
        ids = cards.claim_in_municipality(conn, [S.PRE_ISSUANCE_SET], municipality_code, room,
                                         changed_before=now)
        found = cards.office_cards(conn, ids)
        deadline = pickup_deadline(local_date(now))
        numbers: list[str] = []
        rows = []
        for card_id in ids:
            card = found[card_id]
            number = new_notice_number()
            numbers.append(number)
            rows.append(_notice_values(ctx, number, card, 1, now, deadline))
        if rows:
            conn.execute(insert(office_notices), rows)
        ledger.advance(conn, ids, [S.PRE_ISSUANCE_SET], S.NOTICE_SENT, actor=principal.subject, now=now,
                       reason="issuance notice 1")
    return numbers


def _close_void_notices(conn: Connection, municipality_code: str, now: datetime) -> int:
    """Outstanding notices whose card is no longer waiting (voided when the holder moved away or died) become
    ``void``, free their booking, and stop counting against the mailing room."""
    open_notices = conn.execute(select(office_notices.c.notice_number, office_notices.c.card_id).where(
        office_notices.c.municipality_code == municipality_code,
        office_notices.c.state == NoticeState.SENT.value)).all()
    states = cards.states_of(conn, [r.card_id for r in open_notices])
    stale = [r.notice_number for r in open_notices if states.get(r.card_id) is not S.NOTICE_SENT]
    for number in stale:
        close_bookings(conn, number, BookingState.CANCELLED, now)
        conn.execute(update(office_notices).where(office_notices.c.notice_number == number).values(
            state=NoticeState.VOID.value, closed_at=now))
    return len(stale)


def _notice_values(ctx: Context, number: str, card: cards.OfficeCard, sequence: int, now: datetime,
                   deadline: date) -> dict[str, Any]:
    return {"notice_number": number, "card_id": card.id, "resident_id": card.resident_id,
            "municipality_code": card.municipality_code, "state": NoticeState.SENT.value, "sequence": sequence,
            "birth_hash": birth_hash(ctx, number, card.facts.birth_date), "failed_attempts": 0,
            "sent_at": now, "pickup_deadline": deadline, "closed_at": None}


def notice_row(conn: Connection, number: str, *, lock: bool = False) -> Any:
    """The notice's row, or None; ``lock`` holds it for the transaction (on PostgreSQL)."""
    query = select(office_notices).where(office_notices.c.notice_number == number)
    if lock and _pg(conn):
        query = query.with_for_update()
    return conn.execute(query).first()


def renotice(ctx: Context, principal: Principal, notice_number: str, now: datetime) -> str:
    """再通知: a new notice (new number, new pickup deadline) replaces an outstanding one; the old number stops
    working and its booking is cancelled. Returns the new number."""
    principal.require(*MUNICIPAL)
    number = parse_notice_number(notice_number)
    with ctx.transaction() as tx:
        conn = tx.conn
        old = notice_row(conn, number, lock=True)
        if old is None or not principal.can_see_municipality(old.municipality_code):
            raise NotFound("no such notice")
        if old.state != NoticeState.SENT.value:
            raise Conflict(f"this notice is {old.state}; only an outstanding notice can be sent again")
        card = cards.office_cards(conn, [old.card_id])[old.card_id]
        close_bookings(conn, number, BookingState.CANCELLED, now)
        conn.execute(update(office_notices).where(office_notices.c.notice_number == number).values(
            state=NoticeState.WITHDRAWN.value, closed_at=now))
        fresh = new_notice_number()
        conn.execute(insert(office_notices).values(
            _notice_values(ctx, fresh, card, old.sequence + 1, now, pickup_deadline(local_date(now)))))
        moved = ledger.advance(conn, [old.card_id], [S.NOTICE_SENT], S.NOTICE_SENT, actor=principal.subject,
                               now=now, reason=f"issuance notice {old.sequence + 1} (re-notice)")
        if not moved:
            raise Conflict("the card is no longer waiting for pickup")
    return fresh


def close_bookings(conn: Connection, number: str, state: BookingState, now: datetime) -> None:
    """Close the notice's active booking (cancelled frees its place; visited keeps it counted)."""
    active = conn.execute(select(office_bookings.c.id, office_bookings.c.slot_id).where(
        office_bookings.c.notice_number == number, office_bookings.c.state == BookingState.ACTIVE.value)).first()
    if active is None:
        return
    conn.execute(update(office_bookings).where(office_bookings.c.id == active.id).values(
        state=state.value, closed_at=now))
    if state is BookingState.CANCELLED:
        conn.execute(update(office_slots).where(office_slots.c.id == active.slot_id).values(
            booked=office_slots.c.booked - 1))


def destroy_uncollected(ctx: Context, principal: Principal, municipality_code: str, now: datetime) -> list[int]:
    """廃棄: cards whose (re-)notice deadline has passed and whose application is about a year old, or that
    expired before pickup, are abolished (uncollected_destroyed); their notices expire and bookings end.
    Returns the card ids destroyed."""
    principal.require(*SUPERVISING)
    scope(principal, municipality_code)
    today = local_date(now)
    with ctx.transaction() as tx:
        conn = tx.conn
        rows = conn.execute(select(office_notices.c.notice_number, office_notices.c.card_id,
                                   office_notices.c.pickup_deadline).where(
            office_notices.c.municipality_code == municipality_code,
            office_notices.c.state == NoticeState.SENT.value, office_notices.c.pickup_deadline < today)).all()
        found = cards.office_cards(conn, [r.card_id for r in rows])
        due = [r for r in rows if r.card_id in found and destruction_due(
            today, r.pickup_deadline, local_date(found[r.card_id].applied_at), found[r.card_id].card_valid_until)]
        for r in due:
            close_bookings(conn, r.notice_number, BookingState.CANCELLED, now)
            conn.execute(update(office_notices).where(office_notices.c.notice_number == r.notice_number).values(
                state=NoticeState.EXPIRED.value, closed_at=now))
        moved = ledger.advance(conn, [r.card_id for r in due], [S.NOTICE_SENT], S.ABOLISHED,
                               actor=principal.subject, now=now, reason="uncollected: destroyed after retention",
                               values={"abolition_reason": AbolitionReason.UNCOLLECTED_DESTROYED.value})
        if len(moved) != len(due):
            raise Conflict("some cards changed state while being destroyed; run again")
    return moved
