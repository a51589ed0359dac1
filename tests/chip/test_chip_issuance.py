"""The issuer's side: keys born in the chip, personalisation, initial PINs, reset, endorsement (追記) and
sign-certificate renewal — and that none of it works without the issuer's key."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from mynacard.cards.personalisation import CardHolder, IssuedCertificates
from mynacard.chip.apdu import SW
from mynacard.chip.cardinfo import CardInfoSigner, decode_cv_certificate
from mynacard.chip.client import CardClient, CardError, NotOnCard, PinBlocked, WrongPin
from mynacard.chip.emulator import Chip
from mynacard.chip.image import ChipImage
from mynacard.chip.issuance import IssuerTerminal, spki_from_template
from mynacard.chip.issuerkey import IssuerMasterKey
from mynacard.chip.model import Application, KeyKind, PinKind
from mynacard.chip.transport import InProcessTransport, PcscTransport
from mynacard.errors import Conflict, InvalidInput

from .conftest import NOW, PINS, Authorities, CardSetup, PcscLab, make_holder, personalise


class RecordingIssuer:
    """Wraps the demo issuer and keeps what the chip side handed it."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.calls: list[tuple[bytes | None, bytes | None]] = []

    def issue(self, holder: CardHolder, auth_public_key: bytes | None, sign_public_key: bytes | None,
              now: datetime) -> IssuedCertificates:
        self.calls.append((auth_public_key, sign_public_key))
        return self.inner.issue(holder, auth_public_key, sign_public_key, now)  # type: ignore[attr-defined]


def _blank(authorities: Authorities, serial: str) -> Chip:
    return Chip(ChipImage.blank(serial, authorities.master.card_key(serial)))


def test_keys_are_born_in_the_chip_and_only_public_keys_leave(authorities: Authorities) -> None:
    holder = make_holder("A000000099901")
    chip = _blank(authorities, holder.card_serial)
    recording = RecordingIssuer(authorities.issuer)
    made = IssuerTerminal(InProcessTransport(chip), authorities.master).personalise(
        holder, recording, authorities.signer, NOW)
    (auth_spki, sign_spki), = recording.calls
    for spki in (auth_spki, sign_spki):
        assert spki is not None
        key = serialization.load_der_public_key(spki)
        assert isinstance(key, rsa.RSAPublicKey) and key.key_size == 2048
    assert (made.auth_public_key, made.sign_public_key) == (auth_spki, sign_spki)
    # The private halves exist only in the chip image, and match the certificates.
    for kind, spki, cert_der in ((KeyKind.AUTH, auth_spki, made.auth_certificate),
                                 (KeyKind.SIGN, sign_spki, made.sign_certificate)):
        private = serialization.load_der_private_key(chip.image.keys[kind], password=None)
        assert private.public_key().public_bytes(serialization.Encoding.DER,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo) == spki
        cert = x509.load_der_x509_certificate(cert_der or b"")
        assert cert.public_key().public_bytes(serialization.Encoding.DER,
                                              serialization.PublicFormat.SubjectPublicKeyInfo) == spki
        assert chip.image.file(Application.JPKI, kind.certificate_fid) == cert_der
    client = CardClient(InProcessTransport(chip))
    assert spki_from_template(client.public_key_template(KeyKind.SIGN)) == sign_spki


def test_personalisation_is_once_and_for_the_card_in_the_reader(authorities: Authorities) -> None:
    holder = make_holder("A000000099902")
    chip = _blank(authorities, holder.card_serial)
    terminal = IssuerTerminal(InProcessTransport(chip), authorities.master)
    with pytest.raises(InvalidInput, match="not A000000099999"):
        terminal.personalise(replace(holder, card_serial="A000000099999"), authorities.issuer,
                             authorities.signer, NOW)
    with pytest.raises(InvalidInput):
        terminal.personalise(replace(holder, individual_number=None), authorities.issuer, authorities.signer,
                             NOW)
    terminal.personalise(holder, authorities.issuer, authorities.signer, NOW)
    before = chip.image.to_bytes()
    with pytest.raises(Conflict):
        terminal.personalise(holder, authorities.issuer, authorities.signer, NOW)
    assert chip.image.to_bytes() == before


def test_another_issuer_key_is_refused(authorities: Authorities) -> None:
    holder = make_holder("A000000099903")
    chip = _blank(authorities, holder.card_serial)
    impostor = IssuerTerminal(InProcessTransport(chip), IssuerMasterKey(bytes(32)))
    with pytest.raises(CardError) as err:
        impostor.personalise(holder, authorities.issuer, authorities.signer, NOW)
    assert err.value.sw == SW.VERIFICATION_FAILED
    assert chip.image.keys == {} and chip.image.file(Application.JPKI, 0x000A) == b""


def test_certificates_for_other_keys_are_not_written(authorities: Authorities) -> None:
    class WrongKeys:
        def issue(self, holder: CardHolder, auth_public_key: bytes | None, sign_public_key: bytes | None,
                  now: datetime) -> IssuedCertificates:
            other = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
            return authorities.issuer.issue(holder, other, sign_public_key, now)

    holder = make_holder("A000000099904")
    chip = _blank(authorities, holder.card_serial)
    with pytest.raises(InvalidInput, match="not for the key"):
        IssuerTerminal(InProcessTransport(chip), authorities.master).personalise(
            holder, WrongKeys(), authorities.signer, NOW)
    assert chip.image.file(Application.JPKI, 0x000A) == b""


def test_a_card_without_a_signing_certificate(authorities: Authorities) -> None:
    holder = make_holder("A000000099905", wants_sign=False, birth=date(2015, 1, 10))
    chip, made = personalise(authorities, holder, pins=replace(PINS, sign=None))
    assert made.sign_certificate is None and made.sign_public_key is None
    assert KeyKind.SIGN not in chip.image.keys
    assert chip.image.file(Application.JPKI, 0x0008) == bytes((0x00, 0x8F, 0x00))
    client = CardClient(InProcessTransport(chip))
    assert not client.has_sign_certificate()
    with pytest.raises(NotOnCard):
        client.read_sign_certificate("ABCDEF1")
    with pytest.raises(NotOnCard):
        client.sign_message(KeyKind.SIGN, "ABCDEF1", b"x")
    assert client.pin_status() == {PinKind.AUTH: 3, PinKind.CARD_INFO: 3, PinKind.RESIDENCE: 3}
    client.sign_message(KeyKind.AUTH, PINS.auth, b"x")  # the authentication key works


def test_initial_pins_are_checked_before_anything_is_written(authorities: Authorities) -> None:
    holder = make_holder("A000000099906")
    chip, _ = personalise(authorities, holder, pins=None)
    client = CardClient(InProcessTransport(chip))
    assert client.tries_left(PinKind.AUTH) == 0  # not set yet: no try can succeed
    with pytest.raises(PinBlocked):
        client.verify(PinKind.AUTH, "1234")
    terminal = IssuerTerminal(InProcessTransport(chip), authorities.master)
    for bad in (replace(PINS, sign="ONLYLETTERS"), replace(PINS, sign="12345678"),
                replace(PINS, auth="12345"), replace(PINS, card_info="12a4"), replace(PINS, sign="abc-1234")):
        before = chip.image.to_bytes()
        with pytest.raises(InvalidInput):
            terminal.set_initial_pins(bad)
        assert chip.image.to_bytes() == before
    terminal.set_initial_pins(PINS)
    client.verify(PinKind.AUTH, PINS.auth)
    client.verify(PinKind.SIGN, PINS.sign or "")


def test_unblock_keeping_the_pin(chip: Chip, card_setup: CardSetup, authorities: Authorities) -> None:
    client = CardClient(InProcessTransport(chip))
    for _ in range(3):
        with pytest.raises((WrongPin, PinBlocked)):
            client.verify(PinKind.CARD_INFO, "0000")
    assert client.tries_left(PinKind.CARD_INFO) == 0
    IssuerTerminal(InProcessTransport(chip), authorities.master).reset_pin(PinKind.CARD_INFO)
    assert client.tries_left(PinKind.CARD_INFO) == 3
    client.verify(PinKind.CARD_INFO, card_setup.pins.card_info)
    with pytest.raises(InvalidInput):
        IssuerTerminal(InProcessTransport(chip), authorities.master).reset_pin(PinKind.FACE_NUMBER)


def test_endorsement_writes_the_new_address_once(chip: Chip, card_setup: CardSetup,
                                                authorities: Authorities) -> None:
    terminal = IssuerTerminal(InProcessTransport(chip), authorities.master)
    new_address = "東京都千代田区永田町１丁目７番１号"  # full-width digits: normalised to ASCII
    assert terminal.endorse_address(new_address, authorities.signer, date(2026, 5, 1))
    client = CardClient(InProcessTransport(chip))
    info = client.read_card_info(card_setup.pins.card_info)
    assert info.facts.address == "東京都千代田区永田町1丁目7番1号" and info.signature_valid
    assert info.facts.name == "山田\u3000太郎"
    entries = client.read_endorsements(individual_number=card_setup.number)
    assert [(e.on, e.address) for e in entries] == [(date(2026, 5, 1), "東京都千代田区永田町1丁目7番1号")]
    before = chip.image.to_bytes()
    assert not terminal.endorse_address(new_address, authorities.signer, date(2026, 5, 2))  # a retry
    assert chip.image.to_bytes() == before
    with pytest.raises(InvalidInput):
        terminal.endorse_address("   ", authorities.signer, date(2026, 5, 2))
    # The signer's CV certificate (EF 0004) is written with its signature, so the card stays consistent;
    # which signers to trust is the verifier's policy: it sees the new key.
    other = CardInfoSigner.generate()
    terminal.endorse_address("北海道札幌市中央区北1条西2丁目", other, date(2026, 6, 1))
    assert client.read_card_info(card_setup.pins.card_info).signature_valid
    cv = decode_cv_certificate(chip.image.file(Application.CARD_INFO, 0x0004))
    assert cv.public_key.public_numbers() == other.public_key.public_numbers()
    assert len(client.read_endorsements(individual_number=card_setup.number)) == 2


def test_replacing_the_signing_certificate(chip: Chip, card_setup: CardSetup,
                                           authorities: Authorities) -> None:
    client = CardClient(InProcessTransport(chip))
    old_cert = client.read_sign_certificate(card_setup.pins.sign or "")
    old_signature = client.sign_message(KeyKind.SIGN, card_setup.pins.sign or "", b"before")
    moved = replace(card_setup.holder, facts=replace(card_setup.holder.facts, address="大阪府大阪市北区1-1"))
    new_der = IssuerTerminal(InProcessTransport(chip), authorities.master).replace_sign_certificate(
        moved, authorities.issuer, NOW)
    new_cert = client.read_sign_certificate(card_setup.pins.sign or "")
    assert new_cert.public_bytes(serialization.Encoding.DER) == new_der
    assert new_cert.public_key().public_numbers() != old_cert.public_key().public_numbers()
    signature = client.sign_message(KeyKind.SIGN, card_setup.pins.sign or "", b"after")
    new_cert.public_key().verify(signature, b"after", padding.PKCS1v15(), hashes.SHA256())
    with pytest.raises(InvalidSignature):
        old_cert.public_key().verify(signature, b"after", padding.PKCS1v15(), hashes.SHA256())
    old_cert.public_key().verify(old_signature, b"before", padding.PKCS1v15(), hashes.SHA256())
    # The authentication key and certificate are untouched.
    assert chip.image.file(Application.JPKI, 0x000A) == card_setup.personalised.auth_certificate


@pytest.mark.pcsc
def test_personalisation_over_pc_sc(pcsc_lab: PcscLab, authorities: Authorities) -> None:
    """The whole issuer path (challenge, external authenticate, key generation, long writes) through pcscd
    and vpcd, as a personalisation machine with a PC/SC reader would run it."""
    holder = make_holder("A000000099907")
    chip = _blank(authorities, holder.card_serial)
    pcsc_lab.use(chip)
    with PcscTransport(pcsc_lab.pcscd.reader) as transport:
        terminal = IssuerTerminal(transport, authorities.master)
        made = terminal.personalise(holder, authorities.issuer, authorities.signer, NOW)
        terminal.set_initial_pins(PINS)
        client = CardClient(transport)
        auth = client.read_auth_certificate()
        assert auth.public_bytes(serialization.Encoding.DER) == made.auth_certificate
        assert client.read_card_info(PINS.card_info).signature_valid
