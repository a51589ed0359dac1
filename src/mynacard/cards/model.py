"""The card lifecycle as a pure model: application IDs, states, guarded transitions and validity rules.

One card row follows one application (申請) from intake to abolition; a reprint after a defect keeps the row
and takes a new serial, a reissue after loss is a new application. Rules from DOMAIN.md "Rules that are easy
to get wrong" and reference/operations-and-incidents.md §1.4.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from mynacard.errors import Conflict
from mynacard.principal import Role
from mynacard.registry.model import age_on, nth_birthday_after

__all__ = [
    "CERT_YEARS",
    "TRANSITIONS",
    "AbolitionReason",
    "ApplicationId",
    "CardState",
    "Channel",
    "IllegalTransition",
    "Validity",
    "application_id_check_digit",
    "card_expiry",
    "certificate_expiry",
    "check_transition",
    "is_manufacture_number",
    "manufacturer_for",
    "validity",
]


def application_id_check_digit(base: str) -> int:
    """Check digit of a 22-digit application ID base: weights 2–7 cycling from the right, mod 11 → 0 for ≤1."""
    if len(base) != 22 or not base.isascii() or not base.isdigit():
        raise ValueError("an application ID base has 22 digits")
    total = sum(int(d) * (2 + i % 6) for i, d in enumerate(reversed(base)))
    r = total % 11
    return 0 if r <= 1 else 11 - r


class ApplicationId(str):
    """申請書ID: 23 digits = the municipality code (6), a serial (16), a check digit (1).

    The real layout is not public; ours keeps the 23-digit length of the real ID and adds a check digit so
    that a mistyped ID is refused at once instead of finding someone else's form.
    """

    __slots__ = ()

    def __new__(cls, value: str) -> ApplicationId:
        if (not isinstance(value, str) or len(value) != 23 or not value.isascii() or not value.isdigit()
                or application_id_check_digit(value[:22]) != int(value[22])):
            raise ValueError("an application ID (申請書ID) is 23 digits with a correct check digit")
        return super().__new__(cls, value)

    @classmethod
    def make(cls, municipality_code: str, serial: int) -> ApplicationId:
        base = f"{municipality_code}{serial:016d}"
        return cls(base + str(application_id_check_digit(base)))

    @property
    def municipality_code(self) -> str:
        return self[:6]


class Channel(StrEnum):
    """申請方法."""

    MAIL = "mail"
    """郵送."""
    ONLINE = "online"
    """スマートフォン・パソコン."""
    PHOTO_BOOTH = "photo_booth"
    """まちなかの証明写真機."""
    COUNTER = "counter"
    """窓口 (申請時来庁方式)."""


class CardState(StrEnum):
    """States of the card lifecycle (カードの状態)."""

    APPLIED = "applied"
    """申請受付 — received by the application-acceptance contractor."""
    IN_REVIEW = "in_review"
    """確認待ち — the facts did not fully match the registry; a person must decide."""
    ACCEPTED = "accepted"
    """審査済 — full match, waiting for the print order."""
    REJECTED = "rejected"
    """不備返戻 — refused, with a reason."""
    PRINT_ORDERED = "print_ordered"
    """印刷データ送付済."""
    MANUFACTURED = "manufactured"
    """製造済 — printed, chip personalised, inspected (発行)."""
    SHIPPED = "shipped"
    """発送済 — in a box on its way to the municipality."""
    RECEIVED = "received"
    """到着 — the municipality checked it in."""
    DEFECTIVE = "defective"
    """不良 — damaged or misprinted; goes back for a reprint."""
    PRE_ISSUANCE_SET = "pre_issuance_set"
    """交付前設定済."""
    NOTICE_SENT = "notice_sent"
    """交付通知書送付済."""
    ISSUED = "issued"
    """交付済."""
    SUSPENDED = "suspended"
    """一時利用停止."""
    ABOLISHED = "abolished"
    """廃止 — final."""
    VOIDED = "voided"
    """申請無効 — the applicant moved away or died before pickup."""


PIPELINE_ROLES = (Role.OPERATOR, Role.SYSTEM)
"""Who drives the national pipeline: J-LIS' operator and the job runner (print orders, screening, shipping)."""
MUNICIPAL_ROLES = (Role.CLERK, Role.SUPERVISOR, Role.OPERATOR, Role.SYSTEM)
"""Who may act on a town's cards: its own staff, and the national roles (scoped by ``Principal.require``)."""

S = CardState
_BEFORE_PICKUP = (S.APPLIED, S.IN_REVIEW, S.ACCEPTED, S.PRINT_ORDERED, S.MANUFACTURED, S.SHIPPED,
                  S.RECEIVED, S.DEFECTIVE, S.PRE_ISSUANCE_SET, S.NOTICE_SENT)

TRANSITIONS: dict[CardState | None, frozenset[CardState]] = {
    None: frozenset({S.APPLIED}),
    S.APPLIED: frozenset({S.ACCEPTED, S.IN_REVIEW, S.REJECTED, S.VOIDED}),
    S.IN_REVIEW: frozenset({S.ACCEPTED, S.REJECTED, S.VOIDED}),
    # ACCEPTED → IN_REVIEW: the facts changed before printing, so the match must be made again.
    S.ACCEPTED: frozenset({S.PRINT_ORDERED, S.IN_REVIEW, S.VOIDED}),
    S.PRINT_ORDERED: frozenset({S.MANUFACTURED, S.VOIDED}),
    S.MANUFACTURED: frozenset({S.SHIPPED, S.VOIDED}),
    S.SHIPPED: frozenset({S.RECEIVED, S.DEFECTIVE, S.VOIDED}),
    S.RECEIVED: frozenset({S.PRE_ISSUANCE_SET, S.DEFECTIVE, S.VOIDED}),
    S.DEFECTIVE: frozenset({S.PRINT_ORDERED, S.VOIDED}),
    S.PRE_ISSUANCE_SET: frozenset({S.NOTICE_SENT, S.DEFECTIVE, S.VOIDED}),
    # NOTICE_SENT → NOTICE_SENT is a re-notice (再通知); → ABOLISHED is destruction of an uncollected card.
    S.NOTICE_SENT: frozenset({S.NOTICE_SENT, S.ISSUED, S.ABOLISHED, S.VOIDED}),
    S.ISSUED: frozenset({S.SUSPENDED, S.ABOLISHED}),
    S.SUSPENDED: frozenset({S.ISSUED, S.ABOLISHED}),
    S.ABOLISHED: frozenset(),
    S.REJECTED: frozenset(),
    S.VOIDED: frozenset(),
}
"""Every legal move. Anything else is an :class:`IllegalTransition` and changes nothing."""

VOIDABLE = frozenset(_BEFORE_PICKUP)
"""States in which a card can still be voided because the applicant moved or died."""


class IllegalTransition(Conflict):
    """A state change the lifecycle does not allow."""


def check_transition(current: CardState | None, target: CardState) -> None:
    """Raise :class:`IllegalTransition` unless ``current → target`` is allowed."""
    if target not in TRANSITIONS.get(current, frozenset()):
        shown = current.value if current else "(new)"
        raise IllegalTransition(f"a card cannot go from {shown} to {target.value}")


def check_transitions(sources: Iterable[CardState], target: CardState) -> None:
    for source in sources:
        check_transition(source, target)


class AbolitionReason(StrEnum):
    """廃止の理由."""

    RETURNED = "returned"
    """返納 (the holder gave it up, or a new card replaced it)."""
    LOST_REISSUED = "lost_reissued"
    """紛失による再交付."""
    EXPIRED = "expired"
    """有効期限切れ."""
    MOVED_ABROAD = "moved_abroad"
    """国外転出 (without continued use)."""
    DIED = "died"
    """死亡."""
    UNCOLLECTED_DESTROYED = "uncollected_destroyed"
    """受取期限後の廃棄."""
    DAMAGED = "damaged"
    """破損."""


def card_expiry(birth_date: date, issued_on: date, applied_on: date) -> date:
    """Card validity: to the 10th birthday after issuance if the holder is an adult on the issuance day,
    otherwise to the 5th. Adulthood is 18, or 20 for applications accepted before 2022-04-01.

    ``issued_on`` is the J-LIS issuance (発行) day, not the pickup day.
    """
    adult_age = 20 if applied_on < date(2022, 4, 1) else 18
    years = 10 if age_on(birth_date, issued_on) >= adult_age else 5
    return nth_birthday_after(birth_date, issued_on, years)


CERT_YEARS = 5
"""Both JPKI certificates run to the 5th birthday after issuance (reference §3.6)."""


def certificate_expiry(birth_date: date, issued_on: date, card_expires: date, *, renewing: bool = False) -> date:
    """The one rule for the last day of both JPKI certificates: to the 5th birthday after issuance (the 6th
    when renewing a certificate within its last three months), never past the card. ``jpki.model`` adds the
    limits of the CA and of the holder's authentication certificate."""
    return min(nth_birthday_after(birth_date, issued_on, CERT_YEARS + (1 if renewing else 0)), card_expires)


@dataclass(frozen=True)
class Validity:
    """Validity dates fixed when the card is manufactured."""

    card_until: date
    certificates_until: date


def validity(birth_date: date, issued_on: date, applied_on: date) -> Validity:
    card = card_expiry(birth_date, issued_on, applied_on)
    return Validity(card, certificate_expiry(birth_date, issued_on, card))


def manufacturer_for(municipality_code: str) -> str:
    """Which manufacturer prints for a municipality: east (prefectures 01–23) or west (24–47)."""
    return "mfr-east" if int(municipality_code[:2]) <= 23 else "mfr-west"


_MANUFACTURE_NUMBER = re.compile(r"[A-Za-z0-9]{13}")


def is_manufacture_number(value: object) -> bool:
    """製造番号: a card's manufacture number is 13 letters and digits (E000000000101)."""
    return isinstance(value, str) and _MANUFACTURE_NUMBER.fullmatch(value) is not None
