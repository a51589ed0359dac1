"""Booking by notice number: one active booking per notice, full slots refused, cancel, rebook, retries."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from mynacard.context import Context
from mynacard.errors import Conflict, InvalidInput, NotFound
from mynacard.office import service
from mynacard.office.model import BookingState, format_notice_number
from mynacard.office.tables import office_bookings, office_slots
from tests.helpers import SAPPORO
from tests.office.support import EVENING, Town, open_windows, town_with_notices


def test_book_cancel_and_rebook(ctx: Context) -> None:
    town = town_with_notices(ctx, 3)
    number = town.notices[0]
    born = town.birth_date(ctx, number)
    first, second = service.open_slots(ctx, town.code, EVENING)[:2]
    booking = service.book(ctx, format_notice_number(number).lower(), born, first.id, EVENING)
    assert booking.state is BookingState.ACTIVE and booking.slot.id == first.id and booking.slot.booked == 1
    again = service.book(ctx, number, born, first.id, EVENING)  # the same booking asked again
    assert again.id == booking.id
    with pytest.raises(Conflict, match="already has a booking"):
        service.book(ctx, number, born, second.id, EVENING)
    moved = service.rebook(ctx, number, born, second.id, EVENING)
    slots = {s.id: s for s in service.open_slots(ctx, town.code, EVENING, only_free=False)}
    assert moved.slot.id == second.id and slots[first.id].booked == 0 and slots[second.id].booked == 1
    notice, active = service.find_notice(ctx, number, born)
    assert active is not None and active.id == moved.id and notice.booking_id == moved.id
    assert service.cancel_booking(ctx, number, born, EVENING) is True
    assert service.cancel_booking(ctx, number, born, EVENING) is False
    assert service.open_slots(ctx, town.code, EVENING, only_free=False)[1].booked == 0


def test_a_full_slot_is_refused_and_nothing_changes(ctx: Context) -> None:
    town = town_with_notices(ctx, 6, issuance=1, staff=1)  # 2 places a half-hour
    slot = service.open_slots(ctx, town.code, EVENING)[0]
    assert slot.capacity == 2
    for number in town.notices[:2]:
        service.book(ctx, number, town.birth_date(ctx, number), slot.id, EVENING)
    late = town.notices[2]
    with pytest.raises(Conflict, match="full"):
        service.book(ctx, late, town.birth_date(ctx, late), slot.id, EVENING)
    with pytest.raises(Conflict, match="full"):  # a rebook into a full slot keeps the old booking
        _rebook_into_full(ctx, town, slot.id)
    with ctx.db.connect() as conn:
        assert conn.execute(select(office_slots.c.booked).where(office_slots.c.id == slot.id)).scalar() == 2
        assert conn.execute(select(func.count()).select_from(office_bookings).where(
            office_bookings.c.state == "active")).scalar() == 3


def _rebook_into_full(ctx: Context, town: Town, full_slot: int) -> None:
    number = town.notices[3]
    born = town.birth_date(ctx, number)
    other = service.open_slots(ctx, town.code, EVENING)[1]
    service.book(ctx, number, born, other.id, EVENING)
    service.rebook(ctx, number, born, full_slot, EVENING)


def test_idempotency_key_returns_the_first_booking(ctx: Context) -> None:
    town = town_with_notices(ctx, 2)
    number, other = town.notices
    slot = service.open_slots(ctx, town.code, EVENING)[0]
    first = service.book(ctx, number, town.birth_date(ctx, number), slot.id, EVENING, idempotency_key="key-00000001")
    retry = service.book(ctx, number, town.birth_date(ctx, number), slot.id, EVENING, idempotency_key="key-00000001")
    assert retry.id == first.id
    assert service.open_slots(ctx, town.code, EVENING, only_free=False)[0].booked == 1
    with pytest.raises(Conflict, match="Idempotency-Key"):
        service.book(ctx, other, town.birth_date(ctx, other), slot.id, EVENING, idempotency_key="key-00000001")
    with pytest.raises(InvalidInput):
        service.book(ctx, other, town.birth_date(ctx, other), slot.id, EVENING, idempotency_key="short")


def test_wrong_birth_date_is_refused_and_locks_after_five(ctx: Context) -> None:
    town = town_with_notices(ctx, 1)
    number = town.notices[0]
    born = town.birth_date(ctx, number)
    slot = service.open_slots(ctx, town.code, EVENING)[0]
    wrong = born + timedelta(days=1)
    for _ in range(5):
        with pytest.raises(NotFound):
            service.book(ctx, number, wrong, slot.id, EVENING)
    with pytest.raises(Conflict, match="too many"):
        service.book(ctx, number, born, slot.id, EVENING)
    assert service.open_slots(ctx, town.code, EVENING)[0].booked == 0


def test_slots_of_another_town_or_the_past_are_refused(ctx: Context) -> None:
    town = town_with_notices(ctx, 1)
    number = town.notices[0]
    born = town.birth_date(ctx, number)
    sapporo_site = open_windows(ctx, SAPPORO, site="札幌本庁")
    foreign = service.open_slots(ctx, SAPPORO, EVENING)[0]
    assert foreign.site_id == sapporo_site
    with pytest.raises(NotFound):
        service.book(ctx, number, born, foreign.id, EVENING)
    slot = service.open_slots(ctx, town.code, EVENING)[0]
    with pytest.raises(Conflict, match="begun"):
        service.book(ctx, number, born, slot.id, slot.starts_at + timedelta(minutes=1))
    with pytest.raises(NotFound):
        service.book(ctx, number, date(1900, 1, 1), 10**9, EVENING)


@pytest.mark.postgres
def test_1000_concurrent_requests_for_10_slots_make_exactly_10_bookings(pg_ctx: Context) -> None:
    """1,000 residents press 予約 at once for the same ten places: ten bookings, 990 clear refusals."""
    ctx = pg_ctx
    ctx.db.dispose()
    from mynacard.db import Database
    ctx.db = Database(ctx.settings.database_url, pool_size=40)
    # 5 counters × 2 = 10 places a half-hour; 25 days of openings make room to mail all 1,000 notices
    town = town_with_notices(ctx, 1000, issuance=5, staff=5, days=25)
    assert len(town.notices) == 1000
    slot = service.open_slots(ctx, town.code, EVENING)[0]
    assert slot.capacity == 10
    births = {n: town.birth_date(ctx, n) for n in town.notices}
    start = threading.Barrier(50)
    results: list[str] = []
    lock = threading.Lock()

    def attempt(number: str) -> None:
        try:
            service.book(ctx, number, births[number], slot.id, EVENING, idempotency_key=f"k-{number}")
            outcome = "booked"
        except Conflict as exc:
            outcome = str(exc)
        with lock:
            results.append(outcome)

    def worker(chunk: list[str]) -> None:
        start.wait()
        for number in chunk:
            attempt(number)

    chunks = [town.notices[i::50] for i in range(50)]
    with ThreadPoolExecutor(max_workers=50) as pool:
        list(pool.map(worker, chunks))
    assert results.count("booked") == 10
    refusals = [r for r in results if r != "booked"]
    assert len(refusals) == 990 and set(refusals) == {"this slot is full: please choose another time"}
    with ctx.db.connect() as conn:
        assert conn.execute(select(office_slots.c.booked).where(office_slots.c.id == slot.id)).scalar() == 10
        assert conn.execute(select(func.count()).select_from(office_bookings)).scalar() == 10
