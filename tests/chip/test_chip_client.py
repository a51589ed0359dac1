"""The CardClient suite. Every test runs twice, through the ``transport`` fixture: over the in-process
transport, and through pcscd + the vsmartcard vpcd reader + pyscard (the path a real card in a real reader
takes). The PIN table of the brief is checked here over both, including block and issuer reset."""

from __future__ import annotations

import hashlib
from datetime import date

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.hazmat.primitives.serialization import Encoding

from mynacard.chip.apdu import SW, encode_command
from mynacard.chip.cardface import face_code
from mynacard.chip.client import CardClient, CardError, NotOnCard, PinBlocked, WrongPin, digest_info
from mynacard.chip.issuance import IssuerTerminal, spki_from_template
from mynacard.chip.model import Application, KeyKind, PinKind
from mynacard.chip.transport import Transport
from mynacard.errors import Conflict, InvalidInput
from mynacard.registry.model import Sex

from .conftest import Authorities, CardSetup


@pytest.fixture
def client(transport: Transport) -> CardClient:
    return CardClient(transport)


def _pin(setup: CardSetup, kind: PinKind) -> str:
    return {PinKind.AUTH: setup.pins.auth, PinKind.SIGN: setup.pins.sign or "",
            PinKind.CARD_INFO: setup.pins.card_info, PinKind.RESIDENCE: setup.pins.residence}[kind]


def _wrong(kind: PinKind) -> str:
    return "ZZZZ99" if kind is PinKind.SIGN else "0000"


def test_recognises_a_my_number_card(client: CardClient, card_setup: CardSetup) -> None:
    assert client.is_my_number_card()
    assert client.token_label() == "JPKIAPICCTOKEN2"
    assert client.manufacture_number() == card_setup.holder.card_serial


def test_reads_the_auth_certificate_without_a_pin(client: CardClient, card_setup: CardSetup) -> None:
    cert = client.read_auth_certificate()
    assert cert.public_bytes(Encoding.DER) == card_setup.personalised.auth_certificate
    assert cert.issuer == client.read_auth_ca_certificate().subject
    assert client.read_sign_ca_certificate().subject != cert.issuer
    assert client.tries_left(PinKind.AUTH) == 3  # reading it used no PIN


def test_the_signing_certificate_needs_the_password(client: CardClient, card_setup: CardSetup) -> None:
    raw = client.exchange(0x00, 0xA4, 0x04, 0x0C, Application.JPKI.aid)
    assert raw.sw == SW.OK
    assert client.exchange(0x00, 0xA4, 0x02, 0x0C, b"\x00\x01").sw == SW.OK
    assert client.exchange(0x00, 0xB0, 0x00, 0x00, le=4).sw == SW.SECURITY_STATUS_NOT_SATISFIED
    cert = client.read_sign_certificate((card_setup.pins.sign or "").lower())  # clients upper-case it
    assert cert.public_bytes(Encoding.DER) == card_setup.personalised.sign_certificate
    with pytest.raises(WrongPin) as wrong:
        client.read_sign_certificate("WRONG99")
    assert wrong.value.tries_left == 4 and isinstance(wrong.value, InvalidInput)


@pytest.mark.parametrize("key", list(KeyKind))
def test_signatures_verify_with_the_certificate(client: CardClient, card_setup: CardSetup,
                                                key: KeyKind) -> None:
    pin = card_setup.pins.auth if key is KeyKind.AUTH else card_setup.pins.sign or ""
    der = (card_setup.personalised.auth_certificate if key is KeyKind.AUTH
           else card_setup.personalised.sign_certificate)
    public = x509.load_der_x509_certificate(der or b"").public_key()
    signature = client.sign_message(key, pin, b"\xe7\x94\xb3\xe8\xab\x8b")
    public.verify(signature, b"\xe7\x94\xb3\xe8\xab\x8b", padding.PKCS1v15(), hashes.SHA256())
    for algorithm in (hashes.SHA1(), hashes.SHA384(), hashes.SHA512()):
        digest = hashlib.new(algorithm.name, b"doc").digest()
        signature = client.sign_digest(key, pin, digest, algorithm)
        public.verify(signature, digest, padding.PKCS1v15(), Prehashed(algorithm))
    with pytest.raises(InvalidInput):
        client.sign(key, pin, b"x" * 246)


def test_security_status_does_not_outlive_an_operation(client: CardClient, card_setup: CardSetup) -> None:
    client.sign_message(KeyKind.AUTH, card_setup.pins.auth, b"once")
    client.select(Application.JPKI)
    client.select_ef(0x0017)
    info = digest_info(hashes.SHA256(), bytes(32))
    assert client.exchange(0x80, 0x2A, 0x00, 0x80, info, 256).sw == SW.SECURITY_STATUS_NOT_SATISFIED


def test_reads_the_card_info_with_its_pin(client: CardClient, card_setup: CardSetup) -> None:
    info = client.read_card_info(card_setup.pins.card_info)
    assert info.individual_number == card_setup.number
    assert info.masked_number == "****-****-9018" and card_setup.number not in repr(info)
    assert info.facts.name == "山田\u3000太郎" and info.facts.family_name == "山田"
    assert info.facts.address == card_setup.holder.facts.address
    assert info.facts.birth_date == card_setup.holder.facts.birth_date and info.facts.sex is Sex.MALE
    assert info.signature_valid
    assert client.read_facts_with_number(card_setup.number) == info.facts
    with pytest.raises(WrongPin):
        client.read_card_info("1111")


def test_reads_the_card_face_and_the_residence_code(client: CardClient, card_setup: CardSetup) -> None:
    front = client.read_card_face(individual_number=card_setup.number)
    assert front.signature_valid and front.birth_date == card_setup.holder.facts.birth_date
    assert front.photo[:2] == b"\xff\xd8" and front.name_image[:4] == b"\x89PNG"
    code = face_code(card_setup.holder.facts.birth_date, card_setup.holder.card_valid_until,
                     card_setup.personalised.security_code)
    assert client.read_card_face(face_code=code) == front
    assert client.read_resident_code(card_setup.pins.residence) == card_setup.resident_code
    with pytest.raises(InvalidInput):
        client.read_card_face()


@pytest.mark.parametrize("kind", [PinKind.AUTH, PinKind.SIGN, PinKind.CARD_INFO, PinKind.RESIDENCE])
def test_pin_table_block_and_issuer_reset(client: CardClient, card_setup: CardSetup,
                                         authorities: Authorities, kind: PinKind) -> None:
    """auth 4 digits/3, sign 6–16 A–Z0–9/5, card-info and residence 4 digits/3; a right entry resets the
    counter; a blocked PIN refuses even the right value until the issuer resets it."""
    policy = kind.policy
    expected = {PinKind.AUTH: (4, 4, 3), PinKind.SIGN: (6, 16, 5), PinKind.CARD_INFO: (4, 4, 3),
                PinKind.RESIDENCE: (4, 4, 3)}[kind]
    assert (policy.min_length, policy.max_length, policy.max_tries) == expected
    right = _pin(card_setup, kind)
    assert client.tries_left(kind) == policy.max_tries
    with pytest.raises(WrongPin):
        client.verify(kind, _wrong(kind))
    assert client.tries_left(kind) == policy.max_tries - 1
    client.verify(kind, right)
    assert client.tries_left(kind) == policy.max_tries  # a right entry resets the counter
    # A value of the wrong format is refused before it reaches the card: no try is used.
    with pytest.raises(InvalidInput):
        client.verify(kind, "12" if kind is not PinKind.SIGN else "abc")
    with pytest.raises(InvalidInput):
        client.verify(kind, "12ab" if kind is not PinKind.SIGN else "ABC-123")
    assert client.tries_left(kind) == policy.max_tries
    for left in range(policy.max_tries - 1, 0, -1):
        with pytest.raises(WrongPin) as wrong:
            client.verify(kind, _wrong(kind))
        assert wrong.value.tries_left == left
    with pytest.raises(PinBlocked) as blocked:
        client.verify(kind, _wrong(kind))
    assert isinstance(blocked.value, Conflict)
    assert client.tries_left(kind) == 0
    with pytest.raises(PinBlocked):
        client.verify(kind, right)
    # Resetting is for the issuer only: an ordinary terminal cannot.
    client.select(policy.application)
    client.select_ef(policy.fid)
    assert client.exchange(0x00, 0x2C, 0x03, 0x80).sw == SW.SECURITY_STATUS_NOT_SATISFIED
    assert client.tries_left(kind) == 0
    # The municipal window (issuer key) resets it to a new value the holder chose.
    new = "5678" if kind is not PinKind.SIGN else "NEWPASS7"
    IssuerTerminal(client.transport, authorities.master).reset_pin(kind, new)
    assert client.tries_left(kind) == policy.max_tries
    with pytest.raises(WrongPin):
        client.verify(kind, right)
    client.verify(kind, new)


def test_the_holder_changes_a_pin(client: CardClient, card_setup: CardSetup) -> None:
    client.change_pin(PinKind.AUTH, card_setup.pins.auth, "7410")
    client.verify(PinKind.AUTH, "7410")
    with pytest.raises(WrongPin):
        client.verify(PinKind.AUTH, card_setup.pins.auth)
    with pytest.raises(InvalidInput):  # the issuing rule: at least one letter and one digit
        client.change_pin(PinKind.SIGN, card_setup.pins.sign or "", "ONLYLETTERS")
    client.change_pin(PinKind.SIGN, card_setup.pins.sign or "", "newpass2026")
    client.read_sign_certificate("NEWPASS2026")
    assert client.pin_status() == {PinKind.AUTH: 2, PinKind.SIGN: 5, PinKind.CARD_INFO: 3,
                                   PinKind.RESIDENCE: 3}


def test_exports_only_the_public_key(client: CardClient, card_setup: CardSetup) -> None:
    for key, spki in ((KeyKind.AUTH, card_setup.personalised.auth_public_key),
                      (KeyKind.SIGN, card_setup.personalised.sign_public_key)):
        assert spki_from_template(client.public_key_template(key)) == spki
    # The key EFs cannot be read, with or without the PIN.
    client.verify(PinKind.AUTH, card_setup.pins.auth)
    client.select_ef(0x0017)
    assert client.exchange(0x00, 0xB0, 0x00, 0x00, le=256).sw == SW.INCOMPATIBLE_FILE_STRUCTURE


def test_extended_and_short_reads_agree(client: CardClient, card_setup: CardSetup) -> None:
    client.select(Application.JPKI)
    client.select_ef(0x000A)
    whole = client.exchange(0x00, 0xB0, 0x00, 0x00, le=65536, extended=True)
    assert whole.sw == SW.OK and whole.data == card_setup.personalised.auth_certificate
    assert client.read_ef(0x000A) == whole.data


def test_errors_for_missing_applications_and_files(client: CardClient) -> None:
    assert client.exchange(0x00, 0xA4, 0x04, 0x0C, bytes.fromhex("A0000000030000")).sw == SW.FILE_NOT_FOUND
    client.select(Application.JPKI)
    with pytest.raises(NotOnCard):
        client.select_ef(0x0099)
    with pytest.raises(CardError) as err:
        client.expect_ok(client.exchange(0x00, 0xB0, 0x00, 0x00, le=4), "read")
    assert err.value.sw == SW.NO_CURRENT_EF
    raw = client.transport.transmit(encode_command(0x00, 0xA4, 0x04, 0x0C, Application.CARD_FACE.aid))
    assert raw == b"\x90\x00"


class ShortApdusOnly:
    """A reader without extended-length support: refuses any extended APDU, as such readers do."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.sent = 0

    @property
    def name(self) -> str:
        return f"short-only {self.inner.name}"

    @property
    def supports_extended(self) -> bool:
        return False

    def transmit(self, apdu: bytes) -> bytes:
        assert len(apdu) <= 4 + 1 + 255 + 1 and not (len(apdu) > 5 and apdu[4] == 0), apdu.hex()
        self.sent += 1
        return self.inner.transmit(apdu)

    def reset(self) -> None:
        self.inner.reset()

    def close(self) -> None:
        self.inner.close()


def test_works_through_a_reader_without_extended_length(transport: Transport, card_setup: CardSetup,
                                                        authorities: Authorities) -> None:
    """Certificates are read in 256-byte pieces, the 270-byte public key comes with 61 xx + GET RESPONSE,
    and the issuer writes in 255-byte pieces."""
    short = ShortApdusOnly(transport)
    client = CardClient(short)
    cert = client.read_sign_certificate(card_setup.pins.sign or "")
    assert cert.public_bytes(Encoding.DER) == card_setup.personalised.sign_certificate
    assert spki_from_template(client.public_key_template(KeyKind.AUTH)) == card_setup.personalised.auth_public_key
    assert client.read_card_info(card_setup.pins.card_info).signature_valid
    terminal = IssuerTerminal(short, authorities.master)
    assert terminal.endorse_address("東京都千代田区霞が関1丁目1番1号", authorities.signer, date(2026, 7, 1))
    assert client.read_card_info(card_setup.pins.card_info).facts.address == "東京都千代田区霞が関1丁目1番1号"
    assert short.sent > 20
