"""The bookable-slot rule as a pure function: every reason a slot cannot be booked, its boundaries and its
order — no database, the moment is a parameter."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import pytest

from mynacard.clock import JST
from mynacard.office.model import BOOKING_HORIZON_DAYS, CounterKind, SlotRefusal, slot_refusal, slot_requirements

NOW = datetime(2025, 6, 2, 19, 30, tzinfo=JST)
TOWN = "131016"


@dataclass(frozen=True)
class Slot:
    municipality_code: str = TOWN
    kind: str = CounterKind.ISSUANCE.value
    starts_at: datetime = NOW + timedelta(days=1)
    capacity: int = 4
    booked: int = 0


def test_a_free_issuance_slot_of_the_town_within_the_horizon_can_be_booked() -> None:
    assert slot_refusal(Slot(), TOWN, NOW) is None
    assert slot_refusal(Slot(booked=3), TOWN, NOW) is None  # the last place


@pytest.mark.parametrize(("slot", "refusal"), [
    (Slot(municipality_code="011002"), SlotRefusal.ELSEWHERE),
    (Slot(kind=CounterKind.DOCUMENT_CHECK.value), SlotRefusal.ELSEWHERE),
    (Slot(starts_at=NOW - timedelta(minutes=1)), SlotRefusal.BEGUN),
    (Slot(starts_at=NOW), SlotRefusal.BEGUN),  # a slot starting now has begun
    (Slot(starts_at=NOW + timedelta(days=BOOKING_HORIZON_DAYS, microseconds=1)), SlotRefusal.NOT_YET_OPEN),
    (Slot(booked=4), SlotRefusal.FULL),
    (Slot(capacity=0), SlotRefusal.FULL),
])
def test_each_reason(slot: Slot, refusal: SlotRefusal) -> None:
    assert slot_refusal(slot, TOWN, NOW) is refusal


def test_the_edges_of_the_horizon() -> None:
    assert slot_refusal(Slot(starts_at=NOW + timedelta(microseconds=1)), TOWN, NOW) is None
    assert slot_refusal(Slot(starts_at=NOW + timedelta(days=BOOKING_HORIZON_DAYS)), TOWN, NOW) is None
    late = Slot(starts_at=NOW + timedelta(days=10))
    assert slot_refusal(late, TOWN, NOW, horizon_days=7) is SlotRefusal.NOT_YET_OPEN
    assert slot_refusal(late, TOWN, NOW + timedelta(days=3), horizon_days=7) is None  # it opens as time passes


def test_the_first_failing_requirement_is_the_reason() -> None:
    everything_wrong = Slot(municipality_code="011002", starts_at=NOW - timedelta(hours=1), booked=4)
    assert slot_refusal(everything_wrong, TOWN, NOW) is SlotRefusal.ELSEWHERE
    assert slot_refusal(replace(everything_wrong, municipality_code=TOWN), TOWN, NOW) is SlotRefusal.BEGUN
    full_and_far = Slot(starts_at=NOW + timedelta(days=BOOKING_HORIZON_DAYS + 1), booked=4)
    assert slot_refusal(full_and_far, TOWN, NOW) is SlotRefusal.NOT_YET_OPEN
    assert [r for r, _ in slot_requirements(Slot(), TOWN, NOW)] == list(SlotRefusal)


def test_the_kind_asked_for() -> None:
    checks = Slot(kind=CounterKind.DOCUMENT_CHECK.value)
    assert slot_refusal(checks, TOWN, NOW, kind=CounterKind.DOCUMENT_CHECK) is None
    assert slot_refusal(Slot(), TOWN, NOW, kind=CounterKind.DOCUMENT_CHECK) is SlotRefusal.ELSEWHERE
    assert slot_refusal(Slot(kind=CounterKind.ISSUANCE), TOWN, NOW) is None  # the enum reads as its value


def test_the_same_rule_on_the_slot_table_is_its_where_clause() -> None:
    """The office's SQL guard is the rule applied to the table's columns (compiled only, no database)."""
    from mynacard.office.slots import bookable

    full = [str(c) for c in bookable(TOWN, NOW)]
    assert full == ["office_slots.municipality_code = :municipality_code_1 AND office_slots.kind = :kind_1",
                    "office_slots.starts_at > :starts_at_1", "office_slots.starts_at <= :starts_at_1",
                    "office_slots.booked < office_slots.capacity"]
    assert [str(c) for c in bookable(TOWN, NOW, free=False)] == full[:3]  # the places ahead, full or not
