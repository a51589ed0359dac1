"""Manufacture with real chips (発行): the manufacturer's run that personalises each card's chip with keys
born in it, JPKI certificates and signed card-info and face data, then advances the cards.

RSA key generation in the chip and certificate signing take tens of milliseconds per card, so they run
**outside** the manufacturing transaction:

1. read the chunk to make (:func:`cards.service.cards_to_manufacture`, nothing claimed or held);
2. per card, :func:`chip.service.manufacture_card` — idempotent per manufacture number: an existing card
   file is reused as it is. The certificates commit (JPKI, own short transaction) before the card file is
   written atomically, so a crash in between leaves certificates for keys no chip holds; the retry makes
   new keys and JPKI revokes those orphans as destroyed before handover (交付前に破棄) while issuing the
   new ones — never two good certificates for one card and kind;
3. one short transaction advances the chunk ``print_ordered → manufactured``, and only cards whose chip
   file exists (a guard inside the transaction).

Chips are optional per run: the national-scale simulation and ``bench/pipeline.py`` call
``cards.service.manufacture_batch`` directly (no chips); ``mynacard demo`` and the window use this.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from mynacard.cards import service as cards
from mynacard.cards.personalisation import CardHolder
from mynacard.cards.photo import PhotoStore
from mynacard.chip import service as chips
from mynacard.chip.signerkey import card_info_signer
from mynacard.clock import local_date
from mynacard.context import Context, Transaction
from mynacard.errors import Conflict
from mynacard.jpki.model import may_hold_sign_certificate
from mynacard.jpki.service import JpkiIssuer
from mynacard.principal import Principal
from mynacard.registry import service as registry
from mynacard.registry.model import Resident, ResidentStatus
from mynacard.sealing import Sealer

__all__ = ["manufacture_with_chips", "personalise_made_card"]

_SYSTEM = Principal.system("card-manufacture")


def _holder(ctx: Context, item: cards.ManufactureItem, resident: Resident, photos: PhotoStore,
            now: datetime) -> tuple[CardHolder, str] | None:
    if resident.status is not ResidentStatus.ACTIVE:
        return None  # the card is being voided (moved away, died): no chip, no certificates
    number = registry.individual_number_of(ctx, _SYSTEM, item.resident_id,
                                           "個人番号カードの発行 (card manufacture)", now)
    try:
        photo: bytes | None = photos.get(item.photo_sha256)
    except OSError:
        photo = None
    holder = CardHolder(card_serial=item.card_serial, municipality_code=item.municipality_code,
                        facts=resident.facts, card_valid_until=item.card_valid_until,
                        cert_valid_until=item.cert_valid_until,
                        wants_sign_cert=item.wants_sign_cert and may_hold_sign_certificate(
                            resident.facts.birth_date, local_date(now)),
                        wants_auth_cert=item.wants_auth_cert, individual_number=number, photo=photo,
                        card_id=item.card_id, resident_id=item.resident_id)
    return holder, resident.resident_code


def manufacture_with_chips(ctx: Context, principal: Principal, batch_id: int, now: datetime,
                           limit: int = 50) -> int:
    """Make up to ``limit`` cards of a batch with personalised chips; returns the cards made (0 when done).

    Safe to call again after a crash at any point, and by several workers (a card's chip is made once;
    a card already advanced by another worker is simply not advanced twice).
    """
    items = cards.cards_to_manufacture(ctx, principal, batch_id, now, limit)
    if not items:
        return cards.manufacture_batch(ctx, principal, batch_id, now, limit)  # stamps the batch as made
    signer = card_info_signer(ctx.settings)
    issuer = JpkiIssuer(ctx, principal)
    residents = registry.residents_by_id(ctx, _SYSTEM, [item.resident_id for item in items])
    photos = PhotoStore(ctx.settings.photo_dir, Sealer(ctx.settings.data_key))
    serials: dict[int, str] = {}
    for item in items:
        made = _holder(ctx, item, residents[item.resident_id], photos, now)
        if made is None:
            continue
        holder, resident_code = made
        chips.manufacture_card(ctx, principal, holder, issuer, signer, now, resident_code=resident_code)
        serials[item.card_id] = item.card_serial
    if not serials:
        return 0

    def require_chips(tx: Transaction, rows: Sequence[Any], at: datetime) -> None:
        missing = [r.id for r in rows if not chips.card_path(ctx, serials[r.id]).exists()]
        if missing:
            raise Conflict(f"no chip was made for cards {missing[:5]}")

    return cards.manufacture_batch(ctx, principal, batch_id, now, limit, personalise=require_chips,
                                   card_ids=list(serials))


def personalise_made_card(ctx: Context, principal: Principal, card_id: int, now: datetime) -> bool:
    """The chip of a card that was made without one (``mynacard demo``'s simulated bulk), personalised now as
    :func:`manufacture_with_chips` would have done; False when its holder no longer gets one (moved away,
    died). Idempotent: an existing chip is kept."""
    item = cards.made_card_item(ctx, principal, card_id)
    resident = registry.residents_by_id(ctx, _SYSTEM, [item.resident_id])[item.resident_id]
    made = _holder(ctx, item, resident, PhotoStore(ctx.settings.photo_dir, Sealer(ctx.settings.data_key)), now)
    if made is None:
        return False
    holder, resident_code = made
    chips.manufacture_card(ctx, principal, holder, JpkiIssuer(ctx, principal), card_info_signer(ctx.settings),
                           now, resident_code=resident_code)
    return True
