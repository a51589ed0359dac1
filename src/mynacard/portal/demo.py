"""What ``mynacard demo`` adds for Mynaportal and the convenience-store kiosk: the information provision network
seeded over the demo town (agencies, enrolments, a day of permitted exchanges, so that Mynaportal has records
to show), the kiosk service in each municipality, and a few chip cards (JPKI certificates) to log in with."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from mynacard.context import Context
from mynacard.principal import Principal, Role

__all__ = ["DemoCard", "prepare_portal_demo"]

DEMO_PIN = "1234"
"""The authentication PIN of the demo cards (shown on the console when they are made)."""


@dataclass(frozen=True)
class DemoCard:
    serial: str
    resident_id: int
    name: str


def prepare_portal_demo(ctx: Context, municipality_codes: Sequence[str], now: datetime, *,
                        residents_per_town: int = 300, exchanges: int = 300, cards: int = 3) -> list[DemoCard]:
    """Seed the exchange network and the kiosk service; make ``cards`` chip cards for adults who have
    exchange records. Returns the cards (their manufacture numbers are what the demo reader asks for)."""
    from mynacard.exchange import demo as exchange_demo
    from mynacard.exchange import service as exchange_service
    from mynacard.kiosk import demo as kiosk_demo
    from mynacard.kiosk import municipal
    from mynacard.kiosk.chip_card import make_resident_card
    from mynacard.registry import service as registry

    system = Principal.system("demo")
    total = registry.count_residents(ctx, system)
    people = []
    for code in municipality_codes:
        found = registry.residents_by_id(ctx, Principal(Role.CLERK, "demo", code), range(1, total + 1))
        people.extend(sorted(found.values(), key=lambda r: r.id)[:residents_per_town])
    if not people:
        return []
    world = exchange_demo.build_world(ctx, municipality_codes, people, now)
    for start in range(0, exchanges, 50):
        exchange_demo.run_exchanges(ctx, world, min(50, exchanges - start), now, seed=start)
    for code in municipality_codes:
        municipal.configure(ctx, system, code, now)
        kiosk_demo.seed_records(ctx, system, code, now)
    linked = {rid for refs in world.refs.values() for rid in refs}
    adults = [r for r in people if r.id in linked and r.age_on(now.date()) >= 20 and r.status.value == "active"]
    with_records = [r for r in adults
                    if exchange_service.records_about(ctx, Principal(Role.RESIDENT, str(r.id)), now, limit=1)[1]]
    made = []
    for person in with_records[:cards]:
        card = make_resident_card(ctx, system, person.id, DEMO_PIN, now)
        made.append(DemoCard(card.serial, person.id, person.facts.name))
    return made
