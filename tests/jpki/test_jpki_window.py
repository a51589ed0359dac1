"""Issuance at the window with the chip: the card's chip makes a new signing key after an address change and
the window issuer (``WindowIssuer``) certifies it, linked old → new — through the chip part's own terminal."""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from mynacard.cards.personalisation import CardHolder
from mynacard.chip.cardinfo import CardInfoSigner
from mynacard.chip.client import CardClient
from mynacard.chip.emulator import Chip
from mynacard.chip.image import ChipImage
from mynacard.chip.issuance import InitialPins, IssuerTerminal
from mynacard.chip.issuerkey import IssuerMasterKey
from mynacard.chip.model import Application, KeyKind
from mynacard.chip.transport import InProcessTransport
from mynacard.errors import Conflict, Forbidden, InvalidInput, NotFound
from mynacard.jpki import service
from mynacard.jpki.model import CaKind, CertificateStatus, RevocationReason
from mynacard.jpki.profiles import read_signing_facts
from mynacard.principal import Principal, Role
from mynacard.registry import service as registry
from tests.conftest import NOW
from tests.jpki.support import CHIYODA, CLERK, MANUFACTURER, OTHER_CLERK, SYSTEM, Town, chip_key, spki

PINS = InitialPins(auth="1234", card_info="2580", residence="9753", sign="JPKI2026")
NEW_ADDRESS = "東京都千代田区永田町1番7号"


def _holder(town: Town, card_id: int, serial: str, resident_id: int) -> CardHolder:
    resident = registry.get_resident(town.ctx, SYSTEM, resident_id)
    certificates = service.certificates_of_card(town.ctx, SYSTEM, card_id)
    return CardHolder(card_serial=serial, municipality_code=CHIYODA, facts=resident.facts,
                      card_valid_until=(NOW + timedelta(days=3650)).date(),
                      cert_valid_until=certificates[0].not_after.date(), wants_sign_cert=True, wants_auth_cert=True,
                      individual_number="123456789018", card_id=card_id, resident_id=resident_id)


def test_a_new_signing_key_on_the_chip_is_certified_at_the_window_with_lineage(town: Town) -> None:
    rid = town.resident()
    card = town.card(rid)
    holder = _holder(town, card.id, card.serial, rid)
    # the card's chip, personalised by the manufacturer through the JPKI issuer
    master = IssuerMasterKey(os.urandom(32))
    chip = Chip(ChipImage.blank(card.serial, master.card_key(card.serial)))
    terminal = IssuerTerminal(InProcessTransport(chip), master)
    terminal.personalise(holder, service.JpkiIssuer(town.ctx, MANUFACTURER), CardInfoSigner.generate(), NOW)
    terminal.set_initial_pins(PINS)
    chip.reset()
    first = x509.load_der_x509_certificate(chip.image.file(Application.JPKI, 0x0001))

    # the move revokes that certificate; the window makes a new key on the chip and certifies it
    registry.move_resident(town.ctx, CLERK, rid, NEW_ADDRESS, None, NOW)
    moved = replace(holder, facts=registry.get_resident(town.ctx, SYSTEM, rid).facts)
    later = NOW + timedelta(hours=1)
    with pytest.raises(Forbidden):
        service.WindowIssuer(town.ctx, Principal(Role.KIOSK, "k1"))
    with pytest.raises(NotFound):
        service.WindowIssuer(town.ctx, OTHER_CLERK).issue(moved, None, spki(chip_key()), later)
    with pytest.raises(Conflict, match="differ from the resident registry"):  # the card not yet endorsed
        service.WindowIssuer(town.ctx, CLERK).issue(holder, None, spki(chip_key()), later)
    new_der = IssuerTerminal(InProcessTransport(chip), master).replace_sign_certificate(
        moved, service.WindowIssuer(town.ctx, CLERK), later)

    new = x509.load_der_x509_certificate(new_der)
    assert chip.image.file(Application.JPKI, 0x0001) == new_der
    facts = read_signing_facts(new)
    assert facts is not None and facts.address == NEW_ADDRESS
    client = CardClient(InProcessTransport(chip))
    signature = client.sign_message(KeyKind.SIGN, PINS.sign or "", b"after the move")
    key = new.public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    key.verify(signature, b"after the move", padding.PKCS1v15(), hashes.SHA256())
    chain = service.lineage(town.ctx, SYSTEM, new.serial_number)
    assert [v.serial for v in chain][-2:] == [first.serial_number, new.serial_number]
    assert chain[-2].revocation_reason is RevocationReason.AFFILIATION_CHANGED
    assert chain[-1].status is CertificateStatus.GOOD and chain[-1].subject_cn.endswith("W")
    # the authentication certificate is untouched
    auth = [v for v in service.certificates_of_card(town.ctx, SYSTEM, card.id)
            if v.kind is CaKind.AUTH and v.status is CertificateStatus.GOOD]
    assert [v.serial for v in auth] == [x509.load_der_x509_certificate(
        chip.image.file(Application.JPKI, 0x000A)).serial_number]


def test_a_window_retry_never_leaves_two_good_certificates(town: Town) -> None:
    rid = town.resident()
    card = town.card(rid)
    holder = _holder(town, card.id, card.serial, rid)
    issuer = service.WindowIssuer(town.ctx, CLERK)
    key = spki(chip_key())
    once = issuer.issue(holder, None, key, NOW)
    again = issuer.issue(holder, None, key, NOW + timedelta(minutes=1))  # the same key: the same certificate
    assert once.sign_certificate == again.sign_certificate and once.auth_certificate is None
    # the chip write failed and the chip made another key: the orphan is superseded, one good certificate left
    third = issuer.issue(holder, None, spki(chip_key()), NOW + timedelta(minutes=2))
    signs = [v for v in service.certificates_of_card(town.ctx, SYSTEM, card.id) if v.kind is CaKind.SIGN]
    assert [v.status for v in signs].count(CertificateStatus.GOOD) == 1
    orphan = x509.load_der_x509_certificate(once.sign_certificate or b"").serial_number
    assert next(v for v in signs if v.serial == orphan).revocation_reason is RevocationReason.SUPERSEDED
    assert x509.load_der_x509_certificate(third.sign_certificate or b"").serial_number == signs[-1].serial
    with pytest.raises(InvalidInput):
        issuer.issue(replace(holder, card_id=None), None, key, NOW)
    with pytest.raises(InvalidInput):
        issuer.issue(holder, None, None, NOW)
    assert third.sign_ca_certificate == x509.load_der_x509_certificate(third.sign_ca_certificate).public_bytes(
        serialization.Encoding.DER)
