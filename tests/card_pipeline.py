"""Test helper: take residents of a municipality through the real card pipeline (every stage a service
call), so that tests of later parts start from cards in the state they need at the times they choose."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from mynacard.cards import service as cards
from mynacard.cards.model import CardState
from mynacard.context import Context
from mynacard.principal import Principal, Role
from mynacard.registry import service as registry
from mynacard.sim.photos import face_photo

SYSTEM = Principal.system("test")
CONTRACTOR = Principal(Role.CONTRACTOR, "contractor")
MANUFACTURER = Principal(Role.MANUFACTURER, "maker")


def receive(ctx: Context, code: str, count: int, applied_at: datetime, received_at: datetime) -> list[int]:
    """``count`` residents of ``code`` apply at ``applied_at``; their cards are screened, printed, made and
    shipped at once and checked in at ``received_at``. Returns the card ids."""
    if count <= 0:
        return []
    forms = cards.unused_application_forms(ctx, SYSTEM, limit=count, municipality_code=code)
    assert len(forms) == count, f"only {len(forms)} unused forms left in {code}"
    people = registry.residents_by_id(ctx, SYSTEM, [rid for _, rid in forms])
    items = [cards.ApplicationInput(
        application_id=app_id, channel="online", family_name=people[rid].facts.family_name,
        given_name=people[rid].facts.given_name, birth_date=people[rid].facts.birth_date,
        sex=people[rid].facts.sex.value, address=people[rid].facts.address, photo=face_photo(rid % 16))
        for app_id, rid in forms]
    created = cards.submit_applications(ctx, CONTRACTOR, items, applied_at).created
    step = applied_at + timedelta(minutes=5)
    while sum(cards.screen_applications(ctx, CONTRACTOR, step)):
        pass
    while cards.order_printing(ctx, SYSTEM, step):
        pass
    for batch in cards.pending_print_batches(ctx, MANUFACTURER):
        cards.acknowledge_print_batch(ctx, MANUFACTURER, batch, cards.read_print_file(ctx, batch), step)
        while cards.manufacture_batch(ctx, MANUFACTURER, batch, step):
            pass
    while cards.ship_cards(ctx, MANUFACTURER, step):
        pass
    for box in cards.unreceived_boxes(ctx, SYSTEM):
        manifest = cards.box_manifest(ctx, SYSTEM, box)
        cards.receive_box(ctx, Principal(Role.CLERK, "clerk", manifest["municipality_code"]), box,
                          manifest["serials"], {}, received_at)
    return created


def notify(ctx: Context, ids: Sequence[int], at: datetime) -> None:
    """Pre-issuance setup and the issuance notice for each card, one transaction per step as a window does."""
    for card_id in ids:
        cards.transition(ctx, SYSTEM, card_id, CardState.PRE_ISSUANCE_SET, None, at)
        cards.transition(ctx, SYSTEM, card_id, CardState.NOTICE_SENT, None, at)
