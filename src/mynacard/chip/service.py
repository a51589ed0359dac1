"""Card use cases on the installation's card store, for the parts that hold cards: the manufacturer makes
them, the municipal window sets and resets PINs, endorses moves and renews signing certificates.

Each card is a card file (:mod:`mynacard.chip.cardfile`) named by its manufacture number under
``$MYNACARD_HOME/chips``, sealed with the data key; the issuer key comes from the settings
(:meth:`IssuerMasterKey.from_settings`). Every use case checks the caller's role and municipality (the
card's municipality is kept with the image), works through the issuer's APDUs, and records a domain event
(serial, municipality, what — never a PIN or the individual number) in the same transaction.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from mynacard.cards.model import is_manufacture_number
from mynacard.cards.personalisation import CardHolder, CertificateIssuer
from mynacard.chip.cardfile import CardFile, load_image
from mynacard.chip.cardinfo import CardInfoSigner
from mynacard.chip.emulator import Chip
from mynacard.chip.image import ChipImage
from mynacard.chip.issuance import InitialPins, IssuerTerminal
from mynacard.chip.issuerkey import IssuerMasterKey
from mynacard.chip.model import PinKind
from mynacard.chip.transport import InProcessTransport
from mynacard.clock import local_date
from mynacard.context import Context
from mynacard.errors import InvalidInput, NotFound
from mynacard.principal import Principal, Role

__all__ = [
    "ManufacturedCard",
    "card_municipality",
    "card_path",
    "endorse_address",
    "insert_card",
    "manufacture_card",
    "replace_sign_certificate",
    "reset_pin",
    "set_initial_pins",
]

_MAKERS = (Role.MANUFACTURER, Role.OPERATOR, Role.SYSTEM)
_WINDOW = (Role.CLERK, Role.SUPERVISOR, Role.OPERATOR, Role.SYSTEM)


@dataclass(frozen=True)
class ManufacturedCard:
    serial: str
    path: Path
    created: bool
    """False when the card already existed (a retried request makes no second card)."""
    security_code: str | None
    """The セキュリティコード printed on the face; None when the card already existed."""


def card_path(ctx: Context, serial: str) -> Path:
    """Where the card file of ``serial`` lives."""
    if not is_manufacture_number(serial):
        raise InvalidInput("a manufacture number (製造番号) is 13 letters and digits")
    return ctx.settings.home / "chips" / f"{serial}.card"


def _image(ctx: Context, serial: str) -> ChipImage:
    return load_image(card_path(ctx, serial), ctx.settings.data_key)


def card_municipality(ctx: Context, serial: str) -> str:
    return _image(ctx, serial).meta.get("municipality_code", "")


def _require_window(ctx: Context, principal: Principal, serial: str) -> ChipImage:
    principal.require(*_WINDOW)
    image = _image(ctx, serial)
    if not principal.can_see_municipality(image.meta.get("municipality_code", "")):
        raise NotFound(f"no card {serial}")  # another town's card is not there for this clerk
    return image


@contextmanager
def insert_card(ctx: Context, serial: str) -> Iterator[Chip]:
    """The card of ``serial`` in a reader of this process (exclusive while inside the block)."""
    with CardFile(card_path(ctx, serial), ctx.settings.data_key, wait=5.0) as chip:
        yield chip


@contextmanager
def _terminal(ctx: Context, serial: str) -> Iterator[tuple[IssuerTerminal, CardFile]]:
    card = CardFile(card_path(ctx, serial), ctx.settings.data_key, wait=5.0)
    with card as chip:
        yield IssuerTerminal(InProcessTransport(chip), IssuerMasterKey.from_settings(ctx.settings)), card


def manufacture_card(ctx: Context, principal: Principal, holder: CardHolder, issuer: CertificateIssuer,
                     signer: CardInfoSigner, now: datetime, *,
                     resident_code: str | None = None) -> ManufacturedCard:
    """発行: a chip for ``holder`` with keys made inside it, certificates from ``issuer``, card-info and face
    data signed by ``signer``; PINs are set later at the window. Idempotent per manufacture number."""
    principal.require(*_MAKERS)
    path = card_path(ctx, holder.card_serial)
    if path.exists():
        return ManufacturedCard(holder.card_serial, path, False, None)
    master = IssuerMasterKey.from_settings(ctx.settings)
    chip = Chip(ChipImage.blank(holder.card_serial, master.card_key(holder.card_serial)))
    chip.image.meta.update({"municipality_code": holder.municipality_code,
                            "personalised_on": local_date(now).isoformat()})
    made = IssuerTerminal(InProcessTransport(chip), master).personalise(holder, issuer, signer, now,
                                                                        resident_code=resident_code)
    with ctx.transaction() as tx:
        CardFile.create(path, chip.image, ctx.settings.data_key)
        tx.record("chip.manufactured", {"serial": holder.card_serial,
                                        "municipality_code": holder.municipality_code}, now)
    return ManufacturedCard(holder.card_serial, path, True, made.security_code)


def set_initial_pins(ctx: Context, principal: Principal, serial: str, pins: InitialPins,
                     now: datetime) -> None:
    """交付: the PINs the holder chose, at the window of the card's municipality."""
    image = _require_window(ctx, principal, serial)
    with ctx.transaction() as tx, _terminal(ctx, serial) as (terminal, _card):
        terminal.set_initial_pins(pins)
        tx.record("chip.pins_set", {"serial": serial, "by": principal.subject,
                                    "municipality_code": image.meta.get("municipality_code")}, now)


def reset_pin(ctx: Context, principal: Principal, serial: str, kind: PinKind, new_value: str | None,
              now: datetime) -> None:
    """暗証番号の初期化・再設定 at the window: a new value (or, with None, the old one unblocked)."""
    image = _require_window(ctx, principal, serial)
    with ctx.transaction() as tx, _terminal(ctx, serial) as (terminal, _card):
        terminal.reset_pin(kind, new_value)
        tx.record("chip.pin_reset", {"serial": serial, "pin": kind.value,
                                     "municipality_code": image.meta.get("municipality_code"),
                                     "by": principal.subject}, now)


def endorse_address(ctx: Context, principal: Principal, serial: str, new_address: str, signer: CardInfoSigner,
                    now: datetime, *, new_municipality_code: str | None = None) -> bool:
    """追記 of a new address. The window of the card's municipality endorses a move within it; for a move in
    from elsewhere (転入) the new municipality's window endorses and the card becomes its card.

    Returns False when the card already carries the address (a retry changes nothing).
    """
    principal.require(*_WINDOW)
    image = _image(ctx, serial)
    current = image.meta.get("municipality_code", "")
    target = new_municipality_code or current
    if not (principal.can_see_municipality(current) or
            (new_municipality_code is not None and principal.can_see_municipality(new_municipality_code))):
        raise NotFound(f"no card {serial}")
    with ctx.transaction() as tx, _terminal(ctx, serial) as (terminal, card):
        changed = terminal.endorse_address(new_address, signer, local_date(now))
        if target != current:
            card.set_meta("municipality_code", target)
            changed = True
        if changed:
            tx.record("chip.endorsed", {"serial": serial, "municipality_code": target,
                                        "by": principal.subject}, now)
    return changed


def replace_sign_certificate(ctx: Context, principal: Principal, serial: str, holder: CardHolder,
                             issuer: CertificateIssuer, now: datetime) -> bytes:
    """署名用電子証明書の再発行: a new key pair in the chip and its certificate; returns the certificate."""
    image = _require_window(ctx, principal, serial)
    with ctx.transaction() as tx, _terminal(ctx, serial) as (terminal, _card):
        certificate = terminal.replace_sign_certificate(holder, issuer, now)
        tx.record("chip.sign_certificate_replaced", {"serial": serial,
                                                     "municipality_code": image.meta.get("municipality_code"),
                                                     "by": principal.subject}, now)
    return certificate
