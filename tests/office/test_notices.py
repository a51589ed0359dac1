"""Receipt checks, the setup batch, staged mailing, the window's interface, re-notice and destruction."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from mynacard.cards import service as cards
from mynacard.cards.model import CardState
from mynacard.context import Context
from mynacard.errors import Conflict, Forbidden, InvalidInput, NotFound
from mynacard.office import service
from mynacard.office.model import (
    BookingState,
    NoticeCard,
    format_notice_number,
    new_notice_number,
    notice_check_char,
    parse_notice_number,
)
from mynacard.office.tables import office_bookings
from mynacard.registry import service as registry
from tests.conftest import NOW
from tests.helpers import CHIYODA, SAPPORO, SYSTEM, clerk
from tests.office.support import EVENING, NEXT_DAY, at, open_windows, received_cards, supervisor, town_with_notices


def test_notice_numbers_are_random_checked_and_forgiving_to_type() -> None:
    numbers = {new_notice_number() for _ in range(500)}
    assert len(numbers) == 500
    number = next(iter(numbers))
    assert parse_notice_number(format_notice_number(number).lower()) == number
    body = number[:16]
    for i in range(16):  # every single-character change is caught by the check character
        for ch in "0123456789ABCDEFGHJKMNPQRSTVWXYZ":
            if ch != body[i]:
                changed = body[:i] + ch + body[i + 1:]
                assert notice_check_char(changed) != number[16]
    with pytest.raises(InvalidInput):
        parse_notice_number(body + ("0" if number[16] != "0" else "1"))
    with pytest.raises(InvalidInput):
        parse_notice_number("123")


def test_the_window_finds_the_card_of_a_notice_only_in_its_own_town(ctx: Context) -> None:
    town = town_with_notices(ctx, 3)
    assert len(town.notices) == 3
    found = service.card_for_notice(ctx, clerk(CHIYODA), format_notice_number(town.notices[0]))
    assert isinstance(found, NoticeCard)
    assert found.card_id in town.card_ids and found.municipality_code == CHIYODA and found.booking_id is None
    assert found.pickup_deadline == EVENING.date() + timedelta(days=90)
    assert cards.get_card(ctx, SYSTEM, found.card_id).state is CardState.NOTICE_SENT
    with pytest.raises(NotFound):
        service.card_for_notice(ctx, clerk(SAPPORO), town.notices[0])
    with pytest.raises(NotFound):
        service.card_for_notice(ctx, clerk(CHIYODA), new_notice_number())
    assert cards.verify_ledger(ctx).ok


def test_collecting_closes_notice_and_booking_once(ctx: Context) -> None:
    town = town_with_notices(ctx, 2)
    number = town.notices[0]
    slot = service.open_slots(ctx, CHIYODA, EVENING)[0]
    booking = service.book(ctx, number, town.birth_date(ctx, number), slot.id, EVENING)
    noticed = service.card_for_notice(ctx, clerk(), number)
    assert noticed.booking_id == booking.id and noticed.card_id in town.card_ids
    with ctx.transaction() as tx:
        service.mark_notice_collected(tx, number, EVENING + timedelta(days=1))
    with ctx.transaction() as tx:  # a retried issuance: nothing changes
        service.mark_notice_collected(tx, number, EVENING + timedelta(days=1))
    with ctx.db.connect() as conn:
        states = list(conn.execute(select(office_bookings.c.state).where(
            office_bookings.c.notice_number == number)).scalars())
    assert states == [BookingState.VISITED.value]
    # the place stays counted as used, and the collected notice is still found for a retrying window
    assert service.open_slots(ctx, CHIYODA, EVENING, only_free=False)[0].booked == 1
    assert service.card_for_notice(ctx, clerk(), number).card_id == noticed.card_id
    with pytest.raises(Conflict):
        service.book(ctx, number, town.birth_date(ctx, number), slot.id, EVENING)


def test_renotice_withdraws_the_old_number(ctx: Context) -> None:
    town = town_with_notices(ctx, 1)
    old = town.notices[0]
    slot = service.open_slots(ctx, CHIYODA, EVENING)[0]
    service.book(ctx, old, town.birth_date(ctx, old), slot.id, EVENING)
    later = EVENING + timedelta(days=95)
    fresh = service.renotice(ctx, clerk(), old, later)
    assert fresh != old
    with pytest.raises(Conflict):
        service.card_for_notice(ctx, clerk(), old)
    with pytest.raises(Conflict):
        service.renotice(ctx, clerk(), old, later)
    with pytest.raises(NotFound):
        service.renotice(ctx, clerk(SAPPORO), fresh, later)
    found = service.card_for_notice(ctx, clerk(), fresh)
    assert found.pickup_deadline == later.date() + timedelta(days=90) and found.booking_id is None
    assert service.open_slots(ctx, CHIYODA, EVENING, only_free=False)[0].booked == 0  # the place was freed
    with ctx.transaction() as tx, pytest.raises(Conflict):
        service.mark_notice_collected(tx, old, later)
    history = cards.card_history(ctx, SYSTEM, found.card_id)
    assert [h["to_state"] for h in history][-2:] == ["notice_sent", "notice_sent"]
    assert cards.verify_ledger(ctx).ok


def test_uncollected_cards_are_destroyed_after_the_retention_period(ctx: Context) -> None:
    town = town_with_notices(ctx, 2)
    keep, drop = town.notices
    dropped_card = service.card_for_notice(ctx, SYSTEM, drop).card_id
    kept = service.renotice(ctx, clerk(), keep, EVENING + timedelta(days=300))  # a later re-notice: not yet due
    assert service.destroy_uncollected(ctx, supervisor(), CHIYODA, EVENING + timedelta(days=200)) == []
    gone = service.destroy_uncollected(ctx, supervisor(), CHIYODA, EVENING + timedelta(days=370))
    assert gone == [dropped_card]
    assert service.card_for_notice(ctx, clerk(), kept).card_id != dropped_card
    view = cards.get_card(ctx, SYSTEM, dropped_card)
    assert view.state is CardState.ABOLISHED
    with pytest.raises(Conflict):
        service.card_for_notice(ctx, clerk(), drop)
    with pytest.raises(Forbidden):  # a clerk may not destroy cards
        service.destroy_uncollected(ctx, clerk(), CHIYODA, EVENING + timedelta(days=370))
    assert cards.verify_ledger(ctx).ok


def test_staged_mailing_never_exceeds_what_the_windows_can_serve(ctx: Context) -> None:
    received_cards(ctx, 30)
    open_windows(ctx, issuance=2, staff=3, days=1)  # 6 half-hours × 2 counters × 2 = 24 places
    service.check_received_cards(ctx, SYSTEM, CHIYODA, EVENING)
    assert service.run_pre_issuance_setup(ctx, SYSTEM, CHIYODA, EVENING) == 30
    assert len(service.send_notices(ctx, clerk(), CHIYODA, EVENING)) == 24
    assert service.send_notices(ctx, clerk(), CHIYODA, EVENING) == []
    counts = cards.counts_by_municipality_and_state(ctx, SYSTEM)[CHIYODA]
    assert counts == {"notice_sent": 24, "pre_issuance_set": 6}
    # another day of openings makes room for the rest
    open_windows(ctx, issuance=2, staff=3, days=1, first=NEXT_DAY + timedelta(days=1), site="支所")
    assert len(service.send_notices(ctx, clerk(), CHIYODA, EVENING)) == 6
    with pytest.raises(NotFound):
        service.send_notices(ctx, clerk(SAPPORO), CHIYODA, EVENING)


def test_cards_that_passed_the_check_do_not_crowd_out_those_still_to_check(ctx: Context) -> None:
    # passed cards wait, still "received", for a setup run: the next check must reach past them
    ids = received_cards(ctx, 53)
    first = service.check_received_cards(ctx, SYSTEM, CHIYODA, EVENING, limit=52)
    assert len(first.passed) == 52
    second = service.check_received_cards(ctx, SYSTEM, CHIYODA, EVENING, limit=1)
    assert second.passed == sorted(set(ids) - set(first.passed))
    assert service.check_received_cards(ctx, SYSTEM, CHIYODA, EVENING, limit=1).passed == []


def test_setup_runs_off_peak_within_terminal_capacity(ctx: Context) -> None:
    received_cards(ctx, 7)
    service.check_received_cards(ctx, SYSTEM, CHIYODA, EVENING)
    with pytest.raises(Conflict, match="terminals"):
        service.run_pre_issuance_setup(ctx, SYSTEM, CHIYODA, EVENING)
    open_windows(ctx, issuance=2)
    with pytest.raises(Conflict, match="off peak"):
        service.run_pre_issuance_setup(ctx, SYSTEM, CHIYODA, at(NEXT_DAY, 10))
    assert service.run_pre_issuance_setup(ctx, SYSTEM, CHIYODA, EVENING, per_terminal=2) == 4
    assert service.run_pre_issuance_setup(ctx, SYSTEM, CHIYODA, EVENING, per_terminal=2) == 3
    assert service.run_pre_issuance_setup(ctx, SYSTEM, CHIYODA, EVENING, per_terminal=2) == 0
    assert cards.verify_ledger(ctx).ok


def test_receipt_check_sends_a_misprinted_card_back_for_a_reprint(ctx: Context) -> None:
    card_ids = received_cards(ctx, 3)
    # the registry changed after printing: the printed face no longer matches
    victim = cards.get_card(ctx, SYSTEM, card_ids[0]).resident_id
    registry.change_name(ctx, SYSTEM, victim, "改姓", "花子", "カイセイ", "ハナコ", NOW - timedelta(days=1))
    bad_chip = cards.get_card(ctx, SYSTEM, card_ids[1]).card_serial

    def chip(card: cards.OfficeCard, day: object) -> list[str] | None:
        return ["authentication certificate missing"] if card.card_serial == bad_chip else None

    result = service.check_received_cards(ctx, clerk(), CHIYODA, EVENING, chip=chip)
    assert result.passed == [card_ids[2]]
    assert set(result.defective) == {card_ids[0], card_ids[1]}
    assert "family_name" in result.defective[card_ids[0]] or "name" in result.defective[card_ids[0]]
    assert "certificate" in result.defective[card_ids[1]]
    assert cards.get_card(ctx, SYSTEM, card_ids[1]).state is CardState.DEFECTIVE
    history = cards.card_history(ctx, SYSTEM, card_ids[1])
    assert history[-1]["reason"].startswith("receipt check:")
    # checking again does not check twice; the reprint is ordered with the next print run
    assert service.check_received_cards(ctx, clerk(), CHIYODA, EVENING, chip=chip).passed == []
    assert cards.order_printing(ctx, SYSTEM, EVENING)
    assert cards.get_card(ctx, SYSTEM, card_ids[1]).state is CardState.PRINT_ORDERED
    with pytest.raises(NotFound):
        service.check_received_cards(ctx, clerk(SAPPORO), CHIYODA, EVENING)
    assert cards.verify_ledger(ctx).ok


def test_booking_link_carries_every_check_character() -> None:
    from urllib.parse import parse_qs, urlsplit

    from mynacard.office.pdf import booking_url

    wanted = set("*~$=U")
    while wanted:
        number = new_notice_number()
        if number[16] in wanted:
            wanted.discard(number[16])
            link = urlsplit(booking_url("https://example.jp/", number))
            assert link.path == "/book" and parse_qs(link.query) == {"n": [number]}


def test_a_card_voided_before_pickup_frees_its_place_in_the_mailing(ctx: Context) -> None:
    received_cards(ctx, 26)
    open_windows(ctx, issuance=2, staff=3, days=1)  # 24 places
    service.check_received_cards(ctx, SYSTEM, CHIYODA, EVENING)
    service.run_pre_issuance_setup(ctx, SYSTEM, CHIYODA, EVENING)
    numbers = service.send_notices(ctx, clerk(), CHIYODA, EVENING)
    assert len(numbers) == 24
    gone = service.card_for_notice(ctx, SYSTEM, numbers[0])
    born = registry.residents_by_id(ctx, SYSTEM, [gone.resident_id])[gone.resident_id].facts.birth_date
    slot = service.open_slots(ctx, CHIYODA, EVENING)[0]
    service.book(ctx, numbers[0], born, slot.id, EVENING)
    registry.move_resident(ctx, SYSTEM, gone.resident_id, "北海道札幌市中央区北1条西2丁目1番地", SAPPORO,
                           EVENING + timedelta(minutes=5))
    assert cards.get_card(ctx, SYSTEM, gone.card_id).state is CardState.VOIDED
    with pytest.raises(Conflict, match="no longer waiting"):
        service.card_for_notice(ctx, clerk(), numbers[0])
    later = EVENING + timedelta(minutes=10)
    assert len(service.send_notices(ctx, clerk(), CHIYODA, later)) == 1  # the voided card's place is free again
    with pytest.raises(Conflict, match="void"):
        service.card_for_notice(ctx, clerk(), numbers[0])
    assert service.open_slots(ctx, CHIYODA, EVENING, only_free=False)[0].booked == 0
    assert cards.verify_ledger(ctx).ok
