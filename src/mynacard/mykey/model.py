"""The MyKey platform's rules, free of I/O and of the clock.

* マイキーID: 8 characters from an alphabet without look-alikes (no 0/O, 1/I/L), one per person.
* 自治体ポイント: accounts, postings that balance (double entry), one-way conversion at a configured rate.
* 避難所: who of a household is where, who is still missing.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from mynacard.errors import Conflict, InvalidInput

__all__ = [
    "MYKEY_ALPHABET",
    "AccountKind",
    "FacilityKind",
    "InsufficientPoints",
    "Leg",
    "Posting",
    "PostingKind",
    "Rate",
    "ShelterPresence",
    "check_member_number",
    "check_mykey_id",
    "missing_members",
    "mykey_id_from",
    "presence",
]

MYKEY_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
_MYKEY_ID = re.compile(f"[{MYKEY_ALPHABET}]{{8}}")
_MEMBER = re.compile(r"[A-Za-z0-9-]{1,32}")


def mykey_id_from(random_bytes: bytes) -> str:
    """A MyKey ID (マイキーID) from 8 random bytes (the caller draws them; rejection-free: 256 % 31 bias is
    negligible for an identifier that is checked for uniqueness anyway)."""
    if len(random_bytes) < 8:
        raise ValueError("8 random bytes are needed")
    return "".join(MYKEY_ALPHABET[b % len(MYKEY_ALPHABET)] for b in random_bytes[:8])


def check_mykey_id(value: str) -> str:
    value = (value or "").strip().upper()
    if not _MYKEY_ID.fullmatch(value):
        raise InvalidInput("a MyKey ID (マイキーID) is 8 letters and digits")
    return value


def check_member_number(value: str) -> str:
    value = (value or "").strip()
    if not _MEMBER.fullmatch(value):
        raise InvalidInput("a member number is 1–32 letters, digits or hyphens")
    return value


class FacilityKind(StrEnum):
    """Public facilities that link their member cards to MyKey IDs."""

    LIBRARY = "library"
    """図書館."""
    SPORTS = "sports"
    """体育施設."""
    BUS = "bus"
    """コミュニティバス."""


# --- points -----------------------------------------------------------------------------------------------

class AccountKind(StrEnum):
    """Ledger accounts. Issuer-side accounts (the programme, a partner) may go negative: their balance is what
    they have put into circulation. Holders (residents, shops) never go below zero."""

    PROGRAMME = "programme"
    """自治体ポイント事業 of one municipality: points it granted (行政ポイント)."""
    PARTNER = "partner"
    """A partner programme (credit card, airline): points converted in through it, per municipality."""
    RESIDENT = "resident"
    """A resident's points in one municipality's programme, keyed by MyKey ID."""
    SHOP = "shop"
    """A registered local shop or online shop: points it received, to be settled in yen."""

    @property
    def may_go_negative(self) -> bool:
        return self in (AccountKind.PROGRAMME, AccountKind.PARTNER)


class PostingKind(StrEnum):
    CONVERSION = "conversion"
    """地域経済応援ポイント: partner points → municipal points, one way."""
    EARNING = "earning"
    """行政ポイント: volunteering, check-ups, events."""
    REDEMPTION = "redemption"
    """Spent at a registered shop (or online)."""


class InsufficientPoints(Conflict):
    """The account holds fewer points than the posting takes (a double spend is one of these)."""


@dataclass(frozen=True)
class Rate:
    """Conversion rate: ``numerator`` municipal points for every ``denominator`` partner points."""

    numerator: int = 1
    denominator: int = 1

    def __post_init__(self) -> None:
        if self.numerator <= 0 or self.denominator <= 0:
            raise InvalidInput("a conversion rate is two positive whole numbers")

    def convert(self, partner_points: int) -> int:
        """Municipal points for ``partner_points`` (rounded down; nothing comes back the other way)."""
        if partner_points <= 0:
            raise InvalidInput("convert a positive number of points")
        points = partner_points * self.numerator // self.denominator
        if points <= 0:
            raise InvalidInput("too few partner points for one municipal point at this rate")
        return points


@dataclass(frozen=True)
class Leg:
    """One line of a posting: ``amount`` added to the account (negative takes away)."""

    kind: AccountKind
    owner: str
    amount: int


@dataclass(frozen=True)
class Posting:
    """A balanced set of legs within one municipality's programme."""

    kind: PostingKind
    municipality_code: str
    legs: tuple[Leg, ...]
    memo: str = ""

    def __post_init__(self) -> None:
        if len(self.legs) < 2:
            raise InvalidInput("a posting has at least two legs")
        if sum(leg.amount for leg in self.legs) != 0:
            raise InvalidInput("a posting must balance (double entry)")
        if any(leg.amount == 0 for leg in self.legs):
            raise InvalidInput("a leg moves at least one point")

    @property
    def fingerprint(self) -> str:
        """What a retry with the same idempotency key must repeat exactly."""
        legs = ";".join(f"{leg.kind.value}:{leg.owner}:{leg.amount}" for leg in self.legs)
        return hashlib.sha256(f"{self.kind.value}|{self.municipality_code}|{legs}".encode()).hexdigest()

    @classmethod
    def conversion(cls, municipality_code: str, partner: str, mykey_id: str, partner_points: int,
                   rate: Rate) -> Posting:
        points = rate.convert(partner_points)
        return cls(PostingKind.CONVERSION, municipality_code,
                   (Leg(AccountKind.PARTNER, partner, -points), Leg(AccountKind.RESIDENT, mykey_id, points)),
                   f"{partner} {partner_points} → {points}")

    @classmethod
    def earning(cls, municipality_code: str, mykey_id: str, points: int, reason: str) -> Posting:
        if points <= 0:
            raise InvalidInput("grant a positive number of points")
        return cls(PostingKind.EARNING, municipality_code,
                   (Leg(AccountKind.PROGRAMME, municipality_code, -points),
                    Leg(AccountKind.RESIDENT, mykey_id, points)), reason[:128])

    @classmethod
    def redemption(cls, municipality_code: str, mykey_id: str, shop: str, points: int) -> Posting:
        if points <= 0:
            raise InvalidInput("spend a positive number of points")
        return cls(PostingKind.REDEMPTION, municipality_code,
                   (Leg(AccountKind.RESIDENT, mykey_id, -points), Leg(AccountKind.SHOP, shop, points)))


# --- shelters ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ShelterPresence:
    """Where a resident is, from their latest touch (None when never checked in or checked out)."""

    resident_id: int
    shelter_code: str | None


def presence(touches: Iterable[tuple[int, str, str, object]]) -> dict[int, str | None]:
    """From touches (resident, shelter, direction ``in``/``out``, time) in any order: each resident's
    current shelter (None after a check-out). The latest touch wins; at equal times ``in`` wins."""
    latest: dict[int, tuple[object, int, str, str]] = {}
    for resident, shelter, direction, at in touches:
        key = (at, 1 if direction == "in" else 0, shelter, direction)
        if resident not in latest or key > latest[resident]:
            latest[resident] = key
    return {r: (k[2] if k[3] == "in" else None) for r, k in latest.items()}


def missing_members(households: Mapping[int, Sequence[int]], where: Mapping[int, str | None]) -> dict[int, list[int]]:
    """For every household with at least one member checked in: the members not checked in anywhere."""
    out: dict[int, list[int]] = {}
    for household, members in households.items():
        if any(where.get(m) for m in members):
            missing = [m for m in members if not where.get(m)]
            if missing:
                out[household] = missing
    return out
