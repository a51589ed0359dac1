"""Everything pending driven through production and check-in at once — for the demo's tests, the benchmarks and
the builders of later parts that need cards in a municipality's hands, through the same services as the API.

The day-by-day simulation with capacities is :mod:`mynacard.sim.driver`; this is the "all of it, now" shortcut.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from mynacard.cards import service as cards
from mynacard.context import Context
from mynacard.principal import Principal, Role

__all__ = ["CONTRACTOR", "MANUFACTURER", "Manufacture", "produce_pending", "receive_all", "town_clerk"]

SYSTEM = Principal.system("sim-production")
CONTRACTOR = Principal(Role.CONTRACTOR, "sim-contractor")
MANUFACTURER = Principal(Role.MANUFACTURER, "sim-manufacturer")

Manufacture = Callable[[Context, Principal, int, datetime], int]
"""Make one chunk of a print batch, returning the cards made (0 when done): ``cards.manufacture_batch`` (printed
cards only) or ``window.production.manufacture_with_chips`` (with personalised chips)."""


def town_clerk(code: str) -> Principal:
    return Principal(Role.CLERK, f"clerk-{code}", code)


def produce_pending(ctx: Context, now: datetime, *, manufactured_at: datetime | None = None,
                    shipped_at: datetime | None = None,
                    manufacture: Manufacture = cards.manufacture_batch) -> list[int]:
    """Screen, order, acknowledge, manufacture and ship every pending application; returns the new box ids.
    Stages happen at ``now`` unless ``manufactured_at`` / ``shipped_at`` say otherwise."""
    while sum(cards.screen_applications(ctx, CONTRACTOR, now)):
        pass
    while cards.order_printing(ctx, SYSTEM, now):
        pass
    for batch in cards.pending_print_batches(ctx, MANUFACTURER):
        cards.acknowledge_print_batch(ctx, MANUFACTURER, batch, cards.read_print_file(ctx, batch), now)
        while manufacture(ctx, MANUFACTURER, batch, manufactured_at or now):
            pass
    boxes: list[int] = []
    while shipped := cards.ship_cards(ctx, MANUFACTURER, shipped_at or now):
        boxes.extend(shipped)
    return boxes


def receive_all(ctx: Context, now: datetime, clerk: Callable[[str], Principal] = town_clerk) -> int:
    """Every shipped box checked in whole against its manifest by its municipality's clerk; returns the cards
    received."""
    received = 0
    for box in cards.unreceived_boxes(ctx, SYSTEM):
        manifest = cards.box_manifest(ctx, SYSTEM, box)
        received += cards.receive_box(ctx, clerk(manifest["municipality_code"]), box, manifest["serials"], {},
                                      now).received
    return received
