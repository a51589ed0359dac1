"""The receipt check reads real chips: a card file made by ``chip.service.manufacture_card`` is read through
``CardClient``; a good chip passes, a chip without its authentication certificate is sent back, and a card
without a chip file is checked on its face only."""

from __future__ import annotations

import dataclasses

from mynacard.cards import service as cards
from mynacard.cards.model import CardState
from mynacard.cards.personalisation import CardHolder
from mynacard.chip import service as chips
from mynacard.chip.cardinfo import CardInfoSigner
from mynacard.chip.demo_issuer import DemoCertificateIssuer
from mynacard.context import Context
from mynacard.office import service
from mynacard.office.chipcheck import chip_file_inspector
from mynacard.registry import service as registry
from tests.conftest import NOW
from tests.helpers import CHIYODA, MANUFACTURER, SYSTEM, clerk
from tests.office.support import EVENING, received_cards


def test_receipt_check_reads_the_chip(sqlite_ctx: Context) -> None:
    ctx = sqlite_ctx
    good, broken, chipless = received_cards(ctx, 3)
    issuer, signer = DemoCertificateIssuer.generate(NOW), CardInfoSigner.generate()
    for card_id, with_auth in ((good, True), (broken, False)):
        with ctx.db.connect() as conn:
            card = cards.office_cards(conn, [card_id])[card_id]
        view = cards.get_card(ctx, SYSTEM, card_id)
        assert view.card_valid_until is not None and view.cert_valid_until is not None
        number = registry.individual_number_of(ctx, SYSTEM, card.resident_id, "card manufacture (test)", NOW)
        holder = CardHolder(str(card.card_serial), CHIYODA, card.facts, view.card_valid_until,
                            view.cert_valid_until, card.wants_sign_cert, True, individual_number=number)
        if not with_auth:
            holder = dataclasses.replace(holder, wants_auth_cert=False)  # made without the certificate
        chips.manufacture_card(ctx, MANUFACTURER, holder, issuer, signer, NOW)
    result = service.check_received_cards(ctx, clerk(), CHIYODA, EVENING, chip=chip_file_inspector(ctx))
    assert result.chips_read == 2
    assert sorted(result.passed) == sorted([good, chipless])
    assert list(result.defective) == [broken] and "chip" in result.defective[broken]
    assert cards.get_card(ctx, SYSTEM, broken).state is CardState.DEFECTIVE
    assert cards.verify_ledger(ctx).ok


def test_a_child_card_needs_no_signing_certificate_but_an_adults_does(sqlite_ctx: Context) -> None:
    """JPKI issues no signing certificate to a holder under 15, so its absence is no defect for a child's card
    even when the application asked for one; an adult's card without it is sent back."""
    from datetime import date, timedelta

    from mynacard.chip.client import CardClient
    from mynacard.chip.transport import InProcessTransport
    from mynacard.office.chipcheck import inspect_chip

    ctx = sqlite_ctx
    (card_id,) = received_cards(ctx, 1)
    issuer, signer = DemoCertificateIssuer.generate(NOW), CardInfoSigner.generate()
    with ctx.db.connect() as conn:
        card = cards.office_cards(conn, [card_id])[card_id]
    view = cards.get_card(ctx, SYSTEM, card_id)
    assert view.card_valid_until is not None and view.cert_valid_until is not None and card.issued_on
    number = registry.individual_number_of(ctx, SYSTEM, card.resident_id, "card manufacture (test)", NOW)
    holder = CardHolder(str(card.card_serial), CHIYODA, card.facts, view.card_valid_until,
                        view.cert_valid_until, False, True, individual_number=number)  # no signing key made
    chips.manufacture_card(ctx, MANUFACTURER, holder, issuer, signer, NOW)
    child = dataclasses.replace(card, wants_sign_cert=True, facts=dataclasses.replace(
        card.facts, birth_date=card.issued_on - timedelta(days=365 * 10)))
    adult = dataclasses.replace(card, wants_sign_cert=True, facts=dataclasses.replace(
        card.facts, birth_date=date(1980, 1, 1)))
    with chips.insert_card(ctx, str(card.card_serial)) as chip:
        client = CardClient(InProcessTransport(chip))
        assert inspect_chip(client, child, EVENING.date()) == []
        assert inspect_chip(client, adult, EVENING.date()) == ["signing certificate missing"]
