"""The chip part of the receipt check: read a card's chip file through :class:`mynacard.chip.client.CardClient`
as any reader would, and say what is wrong with it (a :data:`mynacard.office.service.ChipInspector`)."""

from __future__ import annotations

from datetime import date

from cryptography.exceptions import InvalidSignature
from cryptography.x509 import Certificate

from mynacard.cards.service import OfficeCard
from mynacard.chip import service as chips
from mynacard.chip.client import CardClient, CardError
from mynacard.chip.transport import InProcessTransport
from mynacard.context import Context
from mynacard.jpki.model import may_hold_sign_certificate
from mynacard.office.service import ChipInspector

__all__ = ["chip_file_inspector", "inspect_chip"]


def _issued_by(cert: Certificate, ca: Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def inspect_chip(client: CardClient, card: OfficeCard, day: date) -> list[str]:
    """Problems of one chip: not a My Number card, another card's manufacture number, the authentication
    certificate missing, not issued by the CA on the chip or not valid today; the signing certificate
    missing when the holder asked for one and was 15 or over when the card was made — JPKI issues none to
    younger holders (it stays PIN-protected: only its presence is checked)."""
    problems: list[str] = []
    try:
        if not client.is_my_number_card():
            return ["the chip is not a My Number card"]
        if card.card_serial and client.manufacture_number() != card.card_serial:
            problems.append("the chip holds another card's manufacture number")
        if card.wants_auth_cert:
            cert = client.read_auth_certificate()
            ca = client.read_auth_ca_certificate()
            if not _issued_by(cert, ca):
                problems.append("authentication certificate not issued by the authentication CA")
            if not client.certificate_valid_on(cert, day):
                problems.append("authentication certificate not valid today")
        made_on = card.issued_on or day
        if (card.wants_sign_cert and may_hold_sign_certificate(card.facts.birth_date, made_on)
                and not client.has_sign_certificate()):
            problems.append("signing certificate missing")
    except CardError as exc:
        problems.append(f"chip read failed: {exc}")
    return problems


def chip_file_inspector(ctx: Context) -> ChipInspector:
    """Read the card file of each card (``$MYNACARD_HOME/chips``); None for a card without one."""

    def inspect(card: OfficeCard, day: date) -> list[str] | None:
        if not card.card_serial or not chips.card_path(ctx, card.card_serial).exists():
            return None
        with chips.insert_card(ctx, card.card_serial) as chip:
            return inspect_chip(CardClient(InProcessTransport(chip)), card, day)

    return inspect
