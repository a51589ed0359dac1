"""The card pipeline on both databases: intake to municipal receipt, refusals, reactions, the ledger."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from mynacard.cards import service as cards
from mynacard.cards.model import CardState, IllegalTransition
from mynacard.cards.tables import card_events, print_batches
from mynacard.cards.tables import cards as cards_table
from mynacard.context import Context
from mynacard.errors import Conflict, InvalidInput, NotFound
from mynacard.registry import service as registry
from tests.conftest import NOW
from tests.helpers import (
    CHIYODA,
    CONTRACTOR,
    MANUFACTURER,
    SAPPORO,
    SYSTEM,
    application_for,
    apply_all,
    clerk,
    make_residents,
    produce,
)

S = CardState


def _states(ctx: Context) -> dict[str, int]:
    with ctx.db.connect() as conn:
        return dict(conn.execute(select(cards_table.c.state, func.count()).group_by(cards_table.c.state)).all())


def _snapshot(ctx: Context) -> tuple[int, int, dict[str, int]]:
    with ctx.db.connect() as conn:
        n_events = conn.execute(select(func.count()).select_from(card_events)).scalar_one()
        n_batches = conn.execute(select(func.count()).select_from(print_batches)).scalar_one()
    return n_events, n_batches, _states(ctx)


def test_applications_travel_to_the_town_hall_and_defects_are_reprinted(ctx: Context) -> None:
    ids = make_residents(ctx, 40, NOW) + make_residents(ctx, 10, NOW, SAPPORO, seed=3)
    apply_all(ctx, ids, NOW)
    assert _states(ctx) == {"applied": 50}
    boxes = produce(ctx, NOW)
    assert _states(ctx) == {"shipped": 50}
    assert len(boxes) == 2  # one per municipality (capacity 200)

    box = next(b for b in boxes if cards.box_manifest(ctx, SYSTEM, b)["municipality_code"] == CHIYODA)
    manifest = cards.box_manifest(ctx, clerk(CHIYODA), box)
    serials = manifest["serials"]
    assert len(serials) == 40 and manifest["sha256"] == cards.manifest_digest(serials)
    with pytest.raises(NotFound):  # Sapporo's clerk cannot see Chiyoda's box
        cards.receive_box(ctx, clerk(SAPPORO), box, serials, {}, NOW)
    stray = "E999999999901"  # a card that is not on this box's manifest
    result = cards.receive_box(ctx, clerk(CHIYODA), box, [*serials[2:], stray], {serials[2]: "券面印字ずれ"},
                               NOW + timedelta(days=3))
    assert (result.received, result.damaged, result.missing, result.unexpected) == (
        37, [serials[2]], sorted(serials[:2]), [stray])
    again = cards.receive_box(ctx, clerk(CHIYODA), box, [], {}, NOW + timedelta(days=4))
    assert again == result  # a retried check-in changes nothing
    assert _states(ctx) == {"received": 37, "defective": 1, "shipped": 12}

    # the defective card is reprinted under a new serial and arrives in a new box
    later = NOW + timedelta(days=5)
    new_boxes = produce(ctx, later)
    assert len(new_boxes) == 1
    reprint = cards.box_manifest(ctx, clerk(CHIYODA), new_boxes[0])["serials"]
    assert len(reprint) == 1 and reprint[0] != serials[2] and reprint[0][:11] == serials[2][:11]
    report = cards.verify_ledger(ctx)
    assert report.ok, report


def test_a_bad_application_refuses_the_whole_batch(ctx: Context) -> None:
    ids = make_residents(ctx, 3, NOW)
    forms = cards.issue_application_forms(ctx, SYSTEM, ids, NOW)
    good = [application_for(ctx, rid, forms[rid]) for rid in ids]
    before = _snapshot(ctx)
    bad_photo = application_for(ctx, ids[2], forms[ids[2]], photo=b"GIF89a...")
    with pytest.raises(InvalidInput) as err:
        cards.submit_applications(ctx, CONTRACTOR, [*good[:2], bad_photo], NOW)
    assert "photo" in err.value.problems[0] and "nothing was stored" in str(err.value)
    form = forms[ids[0]]
    unknown = application_for(ctx, ids[0], form[:-2] + ("11" if form.endswith("00") else "00"))  # never the real one
    with pytest.raises(InvalidInput, match="1 application"):
        cards.submit_applications(ctx, CONTRACTOR, [good[1], unknown], NOW)
    with pytest.raises(InvalidInput):
        cards.submit_applications(ctx, CONTRACTOR, [good[0], good[0]], NOW)
    assert _snapshot(ctx) == before


def test_retries_are_recognised_and_second_applications_rejected(ctx: Context) -> None:
    ids = make_residents(ctx, 2, NOW)
    forms = cards.issue_application_forms(ctx, SYSTEM, ids, NOW)
    item = application_for(ctx, ids[0], forms[ids[0]])
    first = cards.submit_applications(ctx, CONTRACTOR, [item], NOW)
    again = cards.submit_applications(ctx, CONTRACTOR, [item], NOW)
    assert len(first.created) == 1 and again.created == [] and again.already_received == [forms[ids[0]]]
    with pytest.raises(InvalidInput, match="already used"):
        cards.submit_applications(ctx, CONTRACTOR, [application_for(ctx, ids[0], forms[ids[0]], given_name="別人")],
                                  NOW)
    second_form = cards.issue_application_forms(ctx, SYSTEM, [ids[0]], NOW)[ids[0]]
    dup = cards.submit_applications(ctx, CONTRACTOR, [application_for(ctx, ids[0], second_form)], NOW)
    assert dup.duplicates_rejected == [second_form] and dup.created == []
    assert _states(ctx) == {"applied": 1, "rejected": 1}


def test_only_a_full_match_is_accepted_and_people_decide_the_rest(ctx: Context) -> None:
    ids = make_residents(ctx, 4, NOW)
    forms = cards.issue_application_forms(ctx, SYSTEM, ids, NOW)
    r0 = registry.residents_by_id(ctx, SYSTEM, [ids[0]])[ids[0]]
    items = [application_for(ctx, ids[0], forms[ids[0]], given_name=r0.facts.given_name + "子"),
             application_for(ctx, ids[1], forms[ids[1]]), application_for(ctx, ids[2], forms[ids[2]])]
    # resident 2 moves after the form was printed but before applying: the form is stale
    cards.submit_applications(ctx, CONTRACTOR, items, NOW)
    registry.move_resident(ctx, clerk(), ids[2], "東京都千代田区永田町1-7-1", None, NOW)
    assert cards.screen_applications(ctx, CONTRACTOR, NOW) == (1, 2)
    in_review = [c for c in _cards(ctx) if c.state is S.IN_REVIEW]
    assert {c.resident_id for c in in_review} == {ids[0], ids[2]}
    typo = next(c for c in in_review if c.resident_id == ids[0])
    assert "name" in (typo.review_reason or "")
    with pytest.raises(Conflict, match="still not a full match"):
        cards.decide_review(ctx, CONTRACTOR, typo.id, "rescreen", "called the applicant", NOW)
    assert cards.decide_review(ctx, CONTRACTOR, typo.id, "reject", "氏名の記載誤り", NOW) is S.REJECTED
    with pytest.raises(Conflict):
        cards.decide_review(ctx, CONTRACTOR, typo.id, "reject", "again", NOW)


def _cards(ctx: Context) -> list[cards.CardView]:
    with ctx.db.connect() as conn:
        ids = conn.execute(select(cards_table.c.id)).scalars().all()
    return [cards.get_card(ctx, SYSTEM, i) for i in ids]


def test_a_broken_print_file_is_refused_and_nothing_is_made(ctx: Context) -> None:
    apply_all(ctx, make_residents(ctx, 5, NOW), NOW)
    cards.screen_applications(ctx, CONTRACTOR, NOW)
    (batch,) = cards.order_printing(ctx, SYSTEM, NOW)
    data = cards.read_print_file(ctx, batch)
    with pytest.raises(Conflict, match="not been acknowledged"):
        cards.manufacture_batch(ctx, MANUFACTURER, batch, NOW)
    for broken in (data[:-10], data.replace(b"\n", b"\r\n", 1), b"", data + b"1,2,3\n"):
        with pytest.raises(InvalidInput, match="print batch"):
            cards.acknowledge_print_batch(ctx, MANUFACTURER, batch, broken, NOW)
    assert cards.pending_print_batches(ctx, MANUFACTURER) == [batch]
    with pytest.raises(Conflict):
        cards.manufacture_batch(ctx, MANUFACTURER, batch, NOW)
    cards.acknowledge_print_batch(ctx, MANUFACTURER, batch, data, NOW)
    cards.acknowledge_print_batch(ctx, MANUFACTURER, batch, data, NOW)  # idempotent
    assert cards.manufacture_batch(ctx, MANUFACTURER, batch, NOW) == 5
    made = _cards(ctx)
    assert all(c.state is S.MANUFACTURED and c.card_serial and c.card_valid_until for c in made)


def test_an_illegal_transition_raises_and_changes_nothing(ctx: Context) -> None:
    apply_all(ctx, make_residents(ctx, 1, NOW), NOW)
    card = _cards(ctx)[0]
    before = _snapshot(ctx)
    with pytest.raises(IllegalTransition):
        cards.transition(ctx, SYSTEM, card.id, S.ISSUED, "skip the queue", NOW)
    with pytest.raises(NotFound):
        cards.transition(ctx, clerk(SAPPORO), card.id, S.VOIDED, "not mine", NOW)
    assert _snapshot(ctx) == before
    assert cards.transition(ctx, SYSTEM, card.id, S.VOIDED, "withdrawn", NOW).state is S.VOIDED


def test_moving_away_voids_pending_cards_and_death_abolishes_issued_ones(ctx: Context) -> None:
    ids = make_residents(ctx, 3, NOW)
    apply_all(ctx, ids, NOW)
    produce(ctx, NOW)
    by_resident = {c.resident_id: c for c in _cards(ctx)}
    registry.move_resident(ctx, clerk(), ids[0], "北海道札幌市中央区1", SAPPORO, NOW)
    assert cards.get_card(ctx, SYSTEM, by_resident[ids[0]].id).state is S.VOIDED
    # hand card 1 over (the office part does this at the window), then the holder dies
    for target in (S.RECEIVED, S.PRE_ISSUANCE_SET, S.NOTICE_SENT, S.ISSUED):
        cards.transition(ctx, clerk(), by_resident[ids[1]].id, target, None, NOW)
    registry.record_death(ctx, clerk(), ids[1], NOW)
    registry.record_move_abroad(ctx, clerk(), ids[2], NOW)
    assert cards.get_card(ctx, SYSTEM, by_resident[ids[1]].id).state is S.ABOLISHED
    assert cards.get_card(ctx, SYSTEM, by_resident[ids[2]].id).state is S.VOIDED
    assert cards.verify_ledger(ctx).ok


def test_the_ledger_check_finds_each_kind_of_damage(ctx: Context) -> None:
    from sqlalchemy import delete, insert, update

    from mynacard.cards.tables import boxes

    apply_all(ctx, make_residents(ctx, 6, NOW), NOW)
    produce(ctx, NOW)
    assert cards.verify_ledger(ctx).ok
    with ctx.db.begin() as conn:
        ids = conn.execute(select(cards_table.c.id).order_by(cards_table.c.id)).scalars().all()
        conn.execute(update(cards_table).where(cards_table.c.id == ids[0]).values(state="issued"))
        last = conn.execute(select(func.max(card_events.c.id)).where(card_events.c.card_id == ids[1])).scalar()
        conn.execute(delete(card_events).where(card_events.c.id == last))
        conn.execute(insert(card_events).values(card_id=ids[2], from_state="shipped", to_state="print_ordered",
                                                actor="x", at=NOW, reason="forged"))
        conn.execute(insert(card_events).values(card_id=ids[3], from_state="applied", to_state="shipped",
                                                actor="x", at=NOW, reason="out of nowhere"))
        conn.execute(update(boxes).values(card_count=boxes.c.card_count + 1))
    report = cards.verify_ledger(ctx)
    assert not report.ok
    assert ids[0] in report.cards_whose_state_differs_from_last_event
    assert ids[1] in report.cards_whose_state_differs_from_last_event
    assert ids[2] in report.cards_with_duplicate_print_orders
    assert report.cards_with_broken_chains == [ids[3]]
    assert report.boxes_whose_manifest_differs_from_shipments
    assert report.state_counts != report.last_event_counts


def test_residents_and_kiosks_cannot_move_cards(ctx: Context) -> None:
    from mynacard.errors import Forbidden
    from mynacard.principal import Principal, Role

    ids = make_residents(ctx, 1, NOW)
    apply_all(ctx, ids, NOW)
    card = _cards(ctx)[0]
    assert cards.get_card(ctx, Principal(Role.RESIDENT, str(ids[0])), card.id).id == card.id
    for who in (Principal(Role.RESIDENT, str(ids[0])), Principal(Role.KIOSK, "k1"), MANUFACTURER):
        with pytest.raises(Forbidden):
            cards.transition(ctx, who, card.id, S.VOIDED, "not allowed", NOW)
