"""The municipal issuance office (市区町村の交付窓口) as a pure model: notice numbers, the rules of notices,
pickup deadlines and destruction, appointment slots made from staffed counters, the rule of a bookable slot
(:func:`slot_refusal`), the staged-mailing limit and the expected wait. No I/O and no clock: every function
takes the day or moment it is about.

Rules from reference/operations-and-incidents.md §1.5: the notice (交付通知書) states a pickup deadline of
about three months; after it a re-notice (再通知) follows; an uncollected card is destroyed once the re-notice
deadline has passed and about a year has gone by since the application, or when the card expired before
pickup.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import Any, Protocol

from mynacard.errors import InvalidInput

__all__ = [
    "BOOKABLE_KIND",
    "BOOKING_HORIZON_DAYS",
    "NOTICE_ALPHABET",
    "PICKUP_DAYS",
    "RETENTION_DAYS",
    "BookingState",
    "CounterKind",
    "NoticeCard",
    "NoticeState",
    "SiteKind",
    "SlotFacts",
    "SlotPlan",
    "SlotRefusal",
    "destruction_due",
    "expected_wait_minutes",
    "format_notice_number",
    "mailing_allowance",
    "new_notice_number",
    "notice_check_char",
    "parse_notice_number",
    "pickup_deadline",
    "plan_slots",
    "slot_refusal",
    "slot_requirements",
]

NOTICE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
"""Crockford's base 32 (no I, L, O, U): easy to read aloud and to type from a postcard."""
_CHECK_ALPHABET = NOTICE_ALPHABET + "*~$=U"
"""Crockford's check symbols: 37 values, so a check mod 37 (a prime) catches every single-character error
and every swap of neighbours."""
_BODY = 16
"""16 random characters = 80 bits: a notice number cannot be guessed."""

PICKUP_DAYS = 90
"""受取期限: about three months after the notice is sent."""
RETENTION_DAYS = 365
"""A card not collected about a year after its application (and past its re-notice deadline) is destroyed."""
BOOKING_HORIZON_DAYS = 28
"""How far ahead residents can book; staged mailing keeps notices within what the windows serve in it."""


class SiteKind(StrEnum):
    """交付場所の種別."""

    MAIN = "main"
    """本庁."""
    BRANCH = "branch"
    """支所・出張所."""
    TEMPORARY = "temporary"
    """臨時交付窓口 (in a shopping centre, a gym, …)."""


class CounterKind(StrEnum):
    """窓口の種別: document checks and the issuance itself are separate counters."""

    DOCUMENT_CHECK = "document_check"
    """本人確認書類の確認 — no terminal needed."""
    ISSUANCE = "issuance"
    """交付・暗証番号設定 — needs an integrated terminal (統合端末)."""


VISIT_MINUTES = {CounterKind.DOCUMENT_CHECK: 10, CounterKind.ISSUANCE: 15}
"""How long one resident takes at each kind of counter."""
BOOKABLE_KIND = CounterKind.ISSUANCE
"""Residents book the issuance counters (they hold the terminals); the document checks are not booked."""


class NoticeState(StrEnum):
    """交付通知書の状態."""

    SENT = "sent"
    """送付済 — outstanding."""
    COLLECTED = "collected"
    """交付済 — the card was handed over."""
    WITHDRAWN = "withdrawn"
    """再通知で差し替え — a newer notice replaced it."""
    EXPIRED = "expired"
    """廃棄 — the card was destroyed uncollected."""
    VOID = "void"
    """無効 — the card was voided before pickup (the holder moved away or died)."""


class BookingState(StrEnum):
    """予約の状態."""

    ACTIVE = "active"
    CANCELLED = "cancelled"
    VISITED = "visited"
    """来庁済 — the card was handed over at this booking."""


@dataclass(frozen=True)
class NoticeCard:
    """What the window needs to know when a notice is scanned."""

    notice_number: str
    card_id: int
    resident_id: int
    municipality_code: str
    pickup_deadline: date
    booking_id: int | None


# --- notice numbers (交付通知書番号) -------------------------------------------------------------------------

_TYPOS = str.maketrans("OIL", "011")
"""Letters Crockford's alphabet leaves out because they look like digits: read them as those digits."""


def notice_check_char(body: str) -> str:
    """The check character of a notice number body (Crockford's mod-37 check symbol)."""
    value = 0
    for ch in body:
        value = (value * 32 + NOTICE_ALPHABET.index(ch)) % 37
    return _CHECK_ALPHABET[value]


def new_notice_number() -> str:
    """A fresh random notice number: 16 characters of Crockford base 32 and a check character."""
    body = "".join(secrets.choice(NOTICE_ALPHABET) for _ in range(_BODY))
    return body + notice_check_char(body)


def parse_notice_number(text: str) -> str:
    """Normalise what a resident typed (spaces, hyphens, lower case, O→0, I/L→1) and check it."""
    raw = "".join(ch for ch in str(text).upper() if ch not in " -\u3000")
    raw = raw.translate(_TYPOS)
    body, check = raw[:-1], raw[-1:]
    if len(body) != _BODY or any(ch not in NOTICE_ALPHABET for ch in body) or not check:
        raise InvalidInput("a notice number (交付通知書番号) has 17 characters; check the postcard")
    if notice_check_char(body) != check:
        raise InvalidInput("the notice number is mistyped (check character does not match)")
    return body + check


def format_notice_number(number: str) -> str:
    """For print and screens: ``XXXX-XXXX-XXXX-XXXX-C``."""
    return "-".join([number[i:i + 4] for i in range(0, 16, 4)] + [number[16:]])


# --- deadlines -----------------------------------------------------------------------------------------------

def pickup_deadline(sent_on: date, days: int = PICKUP_DAYS) -> date:
    return sent_on + timedelta(days=days)


def destruction_due(today: date, deadline: date, applied_on: date, card_valid_until: date | None,
                    retention_days: int = RETENTION_DAYS) -> bool:
    """Whether an uncollected card must now be destroyed: the (re-)notice deadline has passed and about a year
    has gone by since the application — or the card itself expired before pickup."""
    if card_valid_until is not None and today > card_valid_until:
        return True
    return today > deadline and today >= applied_on + timedelta(days=retention_days)


# --- appointment slots -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SlotPlan:
    """One slot to offer: a counter kind, a start and end, and how many residents it takes."""

    kind: CounterKind
    starts_at: datetime
    ends_at: datetime
    capacity: int


def plan_slots(day: date, start: time, end: time, staff: int, counters: dict[CounterKind, int],
               tz: object, slot_minutes: int = 30) -> list[SlotPlan]:
    """Slots of one staffed opening (a shift): every ``slot_minutes`` from ``start`` to ``end``, for each kind of
    counter, as many residents as the staffed counters can serve in it. Staff go to issuance counters first
    (they need the terminals), the rest to document checks."""
    if end <= start:
        raise InvalidInput("a shift must end after it starts")
    if staff < 0 or any(n < 0 for n in counters.values()):
        raise InvalidInput("staff and counters cannot be negative")
    staffed: dict[CounterKind, int] = {}
    left = staff
    for kind in (CounterKind.ISSUANCE, CounterKind.DOCUMENT_CHECK):
        staffed[kind] = min(left, counters.get(kind, 0))
        left -= staffed[kind]
    out: list[SlotPlan] = []
    moment = datetime.combine(day, start, tz)  # type: ignore[arg-type]
    finish = datetime.combine(day, end, tz)  # type: ignore[arg-type]
    while moment + timedelta(minutes=slot_minutes) <= finish:
        for kind in (CounterKind.DOCUMENT_CHECK, CounterKind.ISSUANCE):
            capacity = staffed[kind] * (slot_minutes // VISIT_MINUTES[kind])
            if capacity > 0:
                out.append(SlotPlan(kind, moment, moment + timedelta(minutes=slot_minutes), capacity))
        moment += timedelta(minutes=slot_minutes)
    return out


# --- the bookable-slot rule (予約できる枠) -----------------------------------------------------------------------

class SlotRefusal(StrEnum):
    """Why a slot cannot be booked, in the order :func:`slot_requirements` checks."""

    ELSEWHERE = "elsewhere"
    """Not a slot of the kind asked for at the resident's municipality's windows."""
    BEGUN = "begun"
    """The slot has already begun (or is over)."""
    NOT_YET_OPEN = "not_yet_open"
    """Beyond the booking horizon: bookings open ``BOOKING_HORIZON_DAYS`` days ahead."""
    FULL = "full"
    """Every place of the slot is taken."""


class SlotFacts(Protocol):
    """What the rule reads of a slot: a row of the slot table, or that table's columns (then every requirement
    is an SQL condition)."""

    @property
    def municipality_code(self) -> Any: ...
    @property
    def kind(self) -> Any: ...
    @property
    def starts_at(self) -> Any: ...
    @property
    def capacity(self) -> Any: ...
    @property
    def booked(self) -> Any: ...


def slot_requirements(slot: SlotFacts, municipality_code: str, now: datetime, kind: CounterKind = BOOKABLE_KIND,
                      horizon_days: int = BOOKING_HORIZON_DAYS) -> list[tuple[SlotRefusal, Any]]:
    """The bookable-slot rule, written once: what must hold of ``slot`` for a resident of ``municipality_code``
    to book it at ``now``, each with the refusal when it does not, in the order they are checked.

    Given a slot's values, each requirement is a bool (:func:`slot_refusal` reads them). Given the slot table's
    columns, each is an SQL condition: the office lists slots and takes a place with them in its WHERE (the
    guarded UPDATE's ``booked < capacity`` lets the last place be taken once), so what the database lets
    through and why a refusal says no never disagree. Hence only ``==``, ``<``, ``<=``, ``>`` and ``&``: they
    mean the same on values and on columns."""
    return [
        (SlotRefusal.ELSEWHERE, (slot.municipality_code == municipality_code) & (slot.kind == kind.value)),
        (SlotRefusal.BEGUN, slot.starts_at > now),
        (SlotRefusal.NOT_YET_OPEN, slot.starts_at <= now + timedelta(days=horizon_days)),
        (SlotRefusal.FULL, slot.booked < slot.capacity),
    ]


def slot_refusal(slot: SlotFacts, municipality_code: str, now: datetime, kind: CounterKind = BOOKABLE_KIND,
                 horizon_days: int = BOOKING_HORIZON_DAYS) -> SlotRefusal | None:
    """Why a resident of ``municipality_code`` cannot book ``slot`` at ``now`` (the first requirement of
    :func:`slot_requirements` it fails), or None when it can be booked."""
    for refusal, holds in slot_requirements(slot, municipality_code, now, kind, horizon_days):
        if not holds:
            return refusal
    return None


def mailing_allowance(issuance_capacity_in_horizon: int, outstanding: int) -> int:
    """Staged mailing (段階的な通知): how many more notices may go out so that never more are outstanding
    than the issuance counters can serve within the booking horizon."""
    return max(0, issuance_capacity_in_horizon - outstanding)


def expected_wait_minutes(booked: int, capacity: int, kind: CounterKind = CounterKind.ISSUANCE) -> int:
    """Expected wait in an hour with ``booked`` of ``capacity`` places taken: an M/D/1 queue's mean wait
    ρ/(2(1−ρ)) service times, counting walk-ins as filling a fifth of what is left; 0 when closed."""
    if capacity <= 0:
        return 0
    rho = min(0.95, (booked + 0.2 * (capacity - booked)) / capacity)
    return round(VISIT_MINUTES[kind] * rho / (2 * (1 - rho)))
