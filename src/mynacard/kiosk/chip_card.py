"""The My Number Card on the kiosk's reader: the chip part's :class:`~mynacard.chip.client.CardClient` as a
:class:`~mynacard.kiosk.auth.KioskCard`.

The card, not the kiosk, checks the 4-digit PIN of the authentication key (利用者証明用電子証明書の暗証番号)
and counts the tries; the kiosk only relays the chip's answers.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives import serialization

from mynacard.chip import client as chip_client
from mynacard.chip.cardfile import CardFile
from mynacard.chip.client import CardClient
from mynacard.chip.model import KeyKind
from mynacard.chip.transport import InProcessTransport
from mynacard.errors import InvalidInput
from mynacard.kiosk.auth import PinBlocked, WrongPin
from mynacard.principal import Principal, Role

if TYPE_CHECKING:
    from mynacard.chip.service import ManufacturedCard
    from mynacard.context import Context

__all__ = ["CardFileKioskCard", "ChipKioskCard", "make_resident_card"]


class ChipKioskCard:
    """A card reached through ``CardClient`` (any transport: in process, PC/SC)."""

    def __init__(self, client: CardClient) -> None:
        self.client = client

    def read_auth_certificate(self) -> bytes:
        return self.client.read_auth_certificate().public_bytes(serialization.Encoding.DER)

    def sign_challenge(self, pin: str, challenge: bytes) -> bytes:
        """VERIFY the PIN on the card, then COMPUTE DIGITAL SIGNATURE over SHA-256(challenge) (DigestInfo,
        PKCS#1 v1.5) with the authentication key."""
        try:
            return self.client.sign_message(KeyKind.AUTH, pin, challenge)
        except chip_client.WrongPin as exc:
            raise WrongPin(exc.tries_left) from None
        except chip_client.PinBlocked:
            raise PinBlocked() from None
        except InvalidInput:
            # not 4 digits: refused before it reaches the chip, no try is used
            raise WrongPin(self.client.tries_left(KeyKind.AUTH.pin)) from None


class CardFileKioskCard:
    """A card file (the chip part's sealed card image) on a reader of this process: the card is inserted
    for each step and taken out after it, so no lock is held between the kiosk's screens."""

    def __init__(self, path: Path, key: bytes, *, wait: float = 5.0) -> None:
        self.path = Path(path)
        self._key = key
        self._wait = wait

    @contextmanager
    def _inserted(self) -> Iterator[ChipKioskCard]:
        with CardFile(self.path, self._key, wait=self._wait) as chip:
            yield ChipKioskCard(CardClient(InProcessTransport(chip)))

    def read_auth_certificate(self) -> bytes:
        with self._inserted() as card:
            return card.read_auth_certificate()

    def sign_challenge(self, pin: str, challenge: bytes) -> bytes:
        with self._inserted() as card:
            return card.sign_challenge(pin, challenge)


def make_resident_card(ctx: Context, principal: Principal, resident_id: int, auth_pin: str, now: datetime, *,
                       sign_password: str = "KIOSK2026", serial: str | None = None) -> ManufacturedCard:
    """A real chip card for a registered resident (for demonstrations, the command line and tests): keys
    generated inside the emulated chip, certificates from the JPKI CAs (recorded against the resident, so
    they can be revoked and are found by serial), card-info data signed by this installation's card-info
    signer, the PINs set. The card file lands in ``$MYNACARD_HOME/chips``.

    This skips the application pipeline (申請 → 製造 → 交付) on purpose: the card row is not made; the card
    holder's certificates are what the kiosk and Mynaportal rely on. Hence DEMONSTRATION ONLY: good JPKI
    certificates for any resident with no application, identity check or window step, and a known PIN — a
    database that is not a demo installation refuses (:class:`~mynacard.kiosk.demo_guard.DemoOnly`)."""
    from mynacard.cards.model import validity
    from mynacard.cards.personalisation import CardHolder
    from mynacard.chip import service as chips
    from mynacard.chip.issuance import InitialPins
    from mynacard.chip.signerkey import card_info_signer
    from mynacard.clock import local_date
    from mynacard.jpki.model import may_hold_sign_certificate
    from mynacard.jpki.service import JpkiIssuer
    from mynacard.kiosk.demo_guard import require_demo
    from mynacard.registry import service as registry

    principal.require(Role.OPERATOR, Role.SYSTEM)
    require_demo(ctx, "making a chip card without an application or the window (kiosk make-card)")
    resident = registry.get_resident(ctx, principal, resident_id)
    number = registry.individual_number_of(ctx, principal, resident_id, "personalise a My Number Card", now)
    today = local_date(now)
    v = validity(resident.facts.birth_date, today, today)
    wants_sign = may_hold_sign_certificate(resident.facts.birth_date, today)
    holder = CardHolder(serial or f"K{resident_id:010d}01", resident.municipality_code, resident.facts,
                        v.card_until, v.certificates_until, wants_sign, True, resident.maiden_name,
                        individual_number=number, resident_id=resident_id)
    made = chips.manufacture_card(ctx, principal, holder, JpkiIssuer(ctx, principal), card_info_signer(ctx.settings),
                                  now, resident_code=resident.resident_code)
    if made.created:
        pins = InitialPins(auth=auth_pin, card_info=auth_pin, residence=auth_pin,
                           sign=sign_password if wants_sign else None)
        chips.set_initial_pins(ctx, principal, made.serial, pins, now)
    return made
