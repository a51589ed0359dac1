"""The day-by-day workload driver: residents apply, the contractor screens, J-LIS orders printing, the
manufacturer makes and ships, municipalities check boxes in — all through the same services the API uses.

Each day runs the stages from the end of the pipeline to its start, so a card moves one stage a day (about
a week from application to the town hall, as in 2016 once the backlog was cleared). The driver keeps no
state of its own: killed at any point and started again, it carries on from what the database holds.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from rich.console import Console
from rich.progress import Progress

from mynacard.cards import service as cards
from mynacard.clock import JST
from mynacard.context import Context
from mynacard.principal import Principal, Role
from mynacard.registry import service as registry
from mynacard.sim.photos import face_photo

__all__ = ["DayReport", "SimulationRates", "run_day", "simulate_days"]

SYSTEM = Principal.system("sim")
CONTRACTOR = Principal(Role.CONTRACTOR, "sim-contractor")
MANUFACTURER = Principal(Role.MANUFACTURER, "sim-manufacturer")


@dataclass(frozen=True)
class SimulationRates:
    """Daily behaviour of the simulated town."""

    apply_share: float = 0.03
    """Share of residents without a card who apply on a given day."""
    typo_share: float = 0.02
    """Applications with a mistake in the facts (they go to review)."""
    damaged_share: float = 0.005
    """Cards damaged in transit (they go back for a reprint)."""
    missing_share: float = 0.001
    """Cards missing from a box."""
    move_share: float = 0.0005
    """Residents moving house each day."""
    manufacturer_capacity: int = 110_000
    """Cards the manufacturer can make per day (about the real 2016 figure)."""
    chip_cards: int = 0
    """How many cards (the first ones made) get a real personalised chip — keys born in the chip, JPKI
    certificates (``window.production``); the rest are made without chips so that national-scale runs stay
    fast. ``mynacard demo`` gives its town's first cards chips, so that they can be issued at the window."""


@dataclass
class DayReport:
    day: date
    applied: int = 0
    accepted: int = 0
    to_review: int = 0
    print_batches: int = 0
    manufactured: int = 0
    boxes_shipped: int = 0
    boxes_received: int = 0
    moves: int = 0
    notes: list[str] = field(default_factory=list)


def _clerk(code: str) -> Principal:
    return Principal(Role.CLERK, "sim-clerk", code)


def _manufacture(ctx: Context, batch_id: int, now: datetime, limit: int, rates: SimulationRates) -> int:
    chips_left = rates.chip_cards
    if chips_left:
        folder = ctx.settings.home / "chips"
        chips_left -= sum(1 for _ in folder.glob("*.card")) if folder.exists() else 0
    if chips_left > 0:
        from mynacard.window.production import manufacture_with_chips

        return manufacture_with_chips(ctx, MANUFACTURER, batch_id, now, limit=min(limit, chips_left, 50))
    return cards.manufacture_batch(ctx, MANUFACTURER, batch_id, now, limit=limit)


def run_day(ctx: Context, day: date, rng: random.Random, rates: SimulationRates) -> DayReport:
    """One working day of the whole pipeline."""
    report = DayReport(day)
    now = datetime.combine(day, time(9, 0), JST)

    # ④ municipalities check in the boxes that arrived
    for box_id in cards.unreceived_boxes(ctx, SYSTEM):
        manifest = cards.box_manifest(ctx, SYSTEM, box_id)
        scanned, damaged = [], {}
        for serial in manifest["serials"]:
            roll = rng.random()
            if roll < rates.missing_share:
                continue
            if roll < rates.missing_share + rates.damaged_share:
                damaged[serial] = "券面の傷 (scratched face)"
            else:
                scanned.append(serial)
        cards.receive_box(ctx, _clerk(manifest["municipality_code"]), box_id, scanned, damaged, now)
        report.boxes_received += 1

    # ③ the manufacturer ships what it made
    while shipped := cards.ship_cards(ctx, MANUFACTURER, now):
        report.boxes_shipped += len(shipped)

    # ② the manufacturer takes the print orders, up to its daily capacity
    capacity = rates.manufacturer_capacity
    for batch_id in cards.pending_print_batches(ctx, MANUFACTURER):
        cards.acknowledge_print_batch(ctx, MANUFACTURER, batch_id, cards.read_print_file(ctx, batch_id), now)
        while capacity > 0 and (made := _manufacture(ctx, batch_id, now, min(capacity, 20000), rates)):
            capacity -= made
            report.manufactured += made

    # J-LIS sends print data for accepted (and defective) cards
    while ordered := cards.order_printing(ctx, SYSTEM, now):
        report.print_batches += len(ordered)

    # ① the contractor screens yesterday's applications
    while True:
        accepted, review = cards.screen_applications(ctx, CONTRACTOR, now)
        report.accepted += accepted
        report.to_review += review
        if accepted + review == 0:
            break

    # residents apply
    report.applied = _apply(ctx, rng, rates, now)

    # life goes on: some people move house
    report.moves = _moves(ctx, rng, rates, now)
    return report


def _apply(ctx: Context, rng: random.Random, rates: SimulationRates, now: datetime) -> int:
    forms = cards.unused_application_forms(ctx, SYSTEM, limit=1_000_000)
    chosen = [f for f in forms if rng.random() < rates.apply_share]
    if not chosen:
        return 0
    people = registry.residents_by_id(ctx, SYSTEM, [rid for _, rid in chosen])
    items = []
    for app_id, rid in chosen:
        facts = people[rid].facts
        given = facts.given_name
        if rng.random() < rates.typo_share:
            given = given + "子" if not given.endswith("子") else given[:-1] or "一"
        items.append(cards.ApplicationInput(
            application_id=app_id, channel=rng.choice(["online", "online", "mail", "photo_booth", "counter"]),
            family_name=facts.family_name, given_name=given, birth_date=facts.birth_date,
            sex=facts.sex.value, address=facts.address, photo=face_photo(rid % 16),
            wants_sign_cert=people[rid].age_on(now.date()) >= 15))
    created = 0
    for i in range(0, len(items), 5000):
        created += len(cards.submit_applications(ctx, CONTRACTOR, items[i:i + 5000], now).created)
    return created


def _moves(ctx: Context, rng: random.Random, rates: SimulationRates, now: datetime) -> int:
    forms = cards.unused_application_forms(ctx, SYSTEM, limit=1_000_000)
    movers = [rid for _, rid in forms if rng.random() < rates.move_share]
    people = registry.residents_by_id(ctx, SYSTEM, movers)
    for rid in movers:
        resident = people[rid]
        new_address = resident.facts.address.rsplit("丁目", 1)[0] + f"丁目{rng.randint(1, 30)}番{rng.randint(1, 20)}号"
        if new_address != resident.facts.address:
            registry.move_resident(ctx, _clerk(resident.municipality_code), rid, new_address, None, now)
    return len(movers)


def simulate_days(ctx: Context, start: date, days: int, *, seed: int, console: Console | None = None,
                  rates: SimulationRates | None = None) -> list[DayReport]:
    """Run ``days`` days from ``start``; Rich shows progress when a console is given."""
    rates = rates or SimulationRates()
    reports = []
    with Progress(console=console, transient=True, disable=console is None) as progress:
        task = progress.add_task("simulating", total=days)
        for offset in range(days):
            day = start + timedelta(days=offset)
            rng = random.Random(f"{seed}:{day.isoformat()}")
            progress.update(task, description=f"simulating {day.isoformat()}")
            if day.weekday() < 5:
                reports.append(run_day(ctx, day, rng, rates))
            progress.advance(task)
    if console is not None and reports:
        applied = sum(r.applied for r in reports)
        made = sum(r.manufactured for r in reports)
        console.print(f"simulated {days} days: {applied:,} applications, {made:,} cards manufactured, "
                      f"{sum(r.boxes_received for r in reports):,} boxes checked in")
    return reports
