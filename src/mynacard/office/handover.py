"""What the window needs (交付窓口): the card a scanned notice is for (:func:`card_for_notice`), and closing
the notice and its booking inside the window's issuance transaction (:func:`mark_notice_collected`)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, select, update

from mynacard.cards import service as cards
from mynacard.cards.model import CardState
from mynacard.context import Context, Transaction
from mynacard.errors import Conflict, InvalidInput, NotFound
from mynacard.office.access import MUNICIPAL
from mynacard.office.model import BookingState, NoticeCard, NoticeState, parse_notice_number
from mynacard.office.notices import close_bookings, notice_row
from mynacard.office.tables import office_bookings, office_notices
from mynacard.principal import Principal

__all__ = ["card_for_notice", "mark_notice_collected"]

S = CardState


def _active_booking_id(conn: Connection, number: str) -> int | None:
    return conn.execute(select(office_bookings.c.id).where(
        office_bookings.c.notice_number == number,
        office_bookings.c.state.in_([BookingState.ACTIVE.value, BookingState.VISITED.value]))
        .order_by(office_bookings.c.id.desc()).limit(1)).scalar()


def card_for_notice(ctx: Context, principal: Principal, notice_number: str) -> NoticeCard:
    """The card a scanned notice is for. NotFound for an unknown notice or one of another municipality;
    Conflict for a withdrawn (re-noticed) or expired one. A collected notice is still answered, so that a
    retried issuance finds its card."""
    principal.require(*MUNICIPAL)
    try:
        number = parse_notice_number(notice_number)
    except InvalidInput:
        raise NotFound("no such notice") from None
    with ctx.db.connect() as conn:
        row = notice_row(conn, number)
        if row is None or not principal.can_see_municipality(row.municipality_code):
            raise NotFound("no such notice")
        if row.state in (NoticeState.WITHDRAWN.value, NoticeState.EXPIRED.value, NoticeState.VOID.value):
            raise Conflict(f"this notice is {row.state}: " + {
                NoticeState.WITHDRAWN.value: "a newer notice replaced it",
                NoticeState.EXPIRED.value: "the card was destroyed uncollected",
                NoticeState.VOID.value: "the card was voided"}[row.state])
        if row.state == NoticeState.SENT.value:
            card = cards.office_cards(conn, [row.card_id]).get(row.card_id)
            if card is None or card.state is not S.NOTICE_SENT:
                raise Conflict("the card of this notice is no longer waiting for pickup "
                               f"({card.state.value if card else 'gone'})")
        booking = _active_booking_id(conn, number)
    return NoticeCard(number, row.card_id, row.resident_id, row.municipality_code, row.pickup_deadline, booking)


def mark_notice_collected(tx: Transaction, notice_number: str, now: datetime) -> None:
    """Close the notice and its booking (visited), inside the window's issuance transaction. Idempotent: a
    collected notice stays as it is. Raises Conflict for a withdrawn or expired notice, NotFound if unknown."""
    conn = tx.conn
    number = parse_notice_number(notice_number)
    row = notice_row(conn, number, lock=True)
    if row is None:
        raise NotFound("no such notice")
    if row.state == NoticeState.COLLECTED.value:
        return
    if row.state != NoticeState.SENT.value:
        raise Conflict(f"this notice is {row.state} and cannot be collected")
    conn.execute(update(office_notices).where(office_notices.c.notice_number == number,
                                              office_notices.c.state == NoticeState.SENT.value)
                 .values(state=NoticeState.COLLECTED.value, closed_at=now))
    close_bookings(conn, number, BookingState.VISITED, now)
