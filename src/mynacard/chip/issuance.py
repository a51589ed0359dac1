"""The issuer's side of the card: personalisation, initial PINs, PIN reset, endorsement, certificate renewal.

:class:`IssuerTerminal` is a card terminal that holds the issuer's master key (J-LIS at manufacture, the
municipal window afterwards). In every application it touches it first proves the key to the card
(GET CHALLENGE, EXTERNAL AUTHENTICATE — :mod:`mynacard.chip.issuerkey`); only then does the card accept
the issuer's commands (key generation, UPDATE/ERASE BINARY, RESET RETRY COUNTER). An ordinary terminal,
which lacks the key, gets ``69 82`` for all of them. All of it is APDUs, so it works over every transport.

Personalisation follows ``cards.personalisation``: the chip generates both RSA-2048 key pairs inside
itself (GENERATE ASYMMETRIC KEY PAIR) and exports only their public keys; the
:class:`~mynacard.cards.personalisation.CertificateIssuer` issues the certificates from the
SubjectPublicKeyInfo DER; the terminal writes them, the CA certificates and the card-info and card-face data.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mynacard.cards.personalisation import CardHolder, CertificateIssuer
from mynacard.chip import cardface, cardinfo, tlv
from mynacard.chip.apdu import SW
from mynacard.chip.cardface import Endorsement
from mynacard.chip.cardinfo import CardInfoFacts, CardInfoSigner
from mynacard.chip.client import CardClient, CardError
from mynacard.chip.issuerkey import CHALLENGE_LENGTH, IssuerMasterKey
from mynacard.chip.model import TOKEN_LABEL, Application, KeyKind, PinKind, check_new_pin, check_new_pins
from mynacard.chip.transport import Transport
from mynacard.errors import Conflict, InvalidInput
from mynacard.registry.model import normalize_address

__all__ = ["InitialPins", "IssuerTerminal", "PersonalisedCard", "spki_from_template", "token_info"]


def spki_from_template(template: bytes) -> bytes:
    """SubjectPublicKeyInfo DER from the card's ``7F49`` public key template."""
    tag, content, _ = tlv.read_element(template)
    if tag != 0x7F49:
        raise CardError("the card did not return a public key template")
    fields = dict(tlv.iter_tlv(content))
    numbers = rsa.RSAPublicNumbers(int.from_bytes(fields[0x82], "big"), int.from_bytes(fields[0x81], "big"))
    key = numbers.public_key()
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _spki_of(certificate: bytes) -> bytes:
    return x509.load_der_x509_certificate(certificate).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def token_info(serial: str) -> bytes:
    """EF 0006: a 160-byte PKCS#11 ``CK_TOKEN_INFO`` with 32-bit big-endian integers (myna_card's reading,
    **[single]**): label, manufacturer, model, serial number, flags, counts, PIN lengths, versions, time."""
    def text(value: str, size: int) -> bytes:
        return value.encode("ascii")[:size].ljust(size, b" ")

    def ulong(value: int) -> bytes:
        return value.to_bytes(4, "big")

    flags = 0x0002 | 0x0004 | 0x0008 | 0x0400  # write-protected, login required, PIN set, initialised
    out = (text(TOKEN_LABEL, 32) + text("JPKI", 32) + text("mynacard chip", 16) + text(serial, 16)
           + ulong(flags) + ulong(0) * 4 + ulong(16) + ulong(4) + ulong(0) * 4 + bytes((1, 0, 1, 0))
           + bytes(16))
    assert len(out) == 160
    return out


@dataclass(frozen=True)
class InitialPins:
    """The PINs the holder chooses at the window (交付時の暗証番号設定)."""

    auth: str = field(repr=False)
    card_info: str = field(repr=False)
    residence: str = field(repr=False)
    sign: str | None = field(default=None, repr=False)
    """None when the card has no signing certificate."""

    def items(self) -> list[tuple[PinKind, str]]:
        pins = [(PinKind.AUTH, self.auth), (PinKind.CARD_INFO, self.card_info),
                (PinKind.RESIDENCE, self.residence)]
        if self.sign is not None:
            pins.append((PinKind.SIGN, self.sign))
        return pins


@dataclass(frozen=True)
class PersonalisedCard:
    """What personalisation produced."""

    serial: str
    security_code: str = field(repr=False)
    """セキュリティコード printed on the face (part of 照合番号B)."""
    auth_public_key: bytes | None
    """SubjectPublicKeyInfo DER of the authentication key, or None."""
    sign_public_key: bytes | None
    auth_certificate: bytes | None
    sign_certificate: bytes | None


class IssuerTerminal:
    """A terminal holding the issuer's master key; built on a :class:`CardClient`."""

    def __init__(self, transport: Transport, master: IssuerMasterKey) -> None:
        self.client = CardClient(transport)
        self._master = master
        self._serial: str | None = None

    @property
    def serial(self) -> str:
        if self._serial is None:
            self._serial = self.client.manufacture_number()
        return self._serial

    # --- the issuer's commands ----------------------------------------------------------------------------

    def open(self, app: Application) -> None:
        """Select ``app`` and authenticate as the issuer in it."""
        c = self.client
        serial = self.serial
        c.select(app)
        challenge = c.expect_ok(c.exchange(0x00, 0x84, 0x00, 0x00, le=CHALLENGE_LENGTH), "GET CHALLENGE")
        response = c.exchange(0x00, 0x82, 0x00, 0x81, self._master.answer(serial, app.aid, challenge))
        if response.sw == SW.VERIFICATION_FAILED:
            raise CardError("the card refused the issuer key (wrong master key for this card)", response.sw)
        c.expect_ok(response, "EXTERNAL AUTHENTICATE")

    def write(self, fid: int, content: bytes) -> None:
        """Replace EF ``fid`` of the open application with ``content``."""
        c = self.client
        c.select_ef(fid)
        c.expect_ok(c.exchange(0x00, 0x0E, 0x00, 0x00), f"ERASE BINARY {fid:04X}")
        step = 0x0FFF if c.transport.supports_extended else 0xFF
        for offset in range(0, len(content), step):
            chunk = content[offset:offset + step]
            c.expect_ok(c.exchange(0x00, 0xD6, offset >> 8, offset & 0xFF, chunk), f"UPDATE BINARY {fid:04X}")

    def generate_key(self, kind: KeyKind) -> bytes:
        """A new key pair for ``kind`` inside the chip (JPKI must be open); returns its SPKI DER."""
        c = self.client
        c.select_ef(kind.key_fid)
        return spki_from_template(c.expect_ok(c.exchange(0x00, 0x47, 0x80, 0x00, le=256), "GENERATE KEY PAIR"))

    def set_pin(self, kind: PinKind, value: str | None) -> None:
        """RESET RETRY COUNTER in the open application: a new value, or (None) unblock keeping the value."""
        c = self.client
        c.select_ef(kind.policy.fid)
        if value is None:
            c.expect_ok(c.exchange(0x00, 0x2C, 0x03, 0x80), f"unblock {kind.policy.label}")
        else:
            c.expect_ok(c.exchange(0x00, 0x2C, 0x02, 0x80, value.encode("ascii")), f"set {kind.policy.label}")

    # --- use cases ----------------------------------------------------------------------------------------

    def personalise(self, holder: CardHolder, issuer: CertificateIssuer, signer: CardInfoSigner,
                    now: datetime, *, resident_code: str | None = None,
                    security_code: str | None = None) -> PersonalisedCard:
        """Make a blank chip the holder's card (発行): keys, certificates, card-info and card-face data."""
        if holder.card_serial != self.serial:
            raise InvalidInput(f"the card in the reader is {self.serial}, not {holder.card_serial}")
        if holder.individual_number is None:
            raise InvalidInput("personalisation needs the holder's individual number")
        code = security_code or f"{secrets.randbelow(10_000):04d}"
        c = self.client
        self.open(Application.JPKI)
        c.select_ef(0x000A)
        if c.exchange(0x00, 0xB0, 0x00, 0x00, le=4).sw != SW.OFFSET_OUTSIDE_EF:
            raise Conflict(f"card {self.serial} is already personalised")
        auth_spki = self.generate_key(KeyKind.AUTH) if holder.wants_auth_cert else None
        sign_spki = self.generate_key(KeyKind.SIGN) if holder.wants_sign_cert else None
        issued = issuer.issue(holder, auth_spki, sign_spki, now)
        for spki, cert in ((auth_spki, issued.auth_certificate), (sign_spki, issued.sign_certificate)):
            if (spki is None) != (cert is None):
                raise InvalidInput("the issuer's certificates do not match the keys the chip made")
            if spki is not None and cert is not None and _spki_of(cert) != spki:
                raise InvalidInput("a certificate is not for the key the chip made")
        self._write_jpki(issued.auth_certificate, issued.auth_ca_certificate, issued.sign_certificate,
                         issued.sign_ca_certificate)

        f = holder.facts
        facts = CardInfoFacts(f.name, f.address, f.birth_date, f.sex)
        number = holder.individual_number
        self.open(Application.CARD_INFO)
        self._write_card_info(number, facts, signer)
        self.write(0x0005, cardinfo.encode_basic_info_file(signer))
        self.set_pin(PinKind.CARD_INFO_NUMBER, number)

        self.open(Application.CARD_FACE)
        self.write(0x0002, cardface.encode_front(
            name=facts.name, address=facts.address, birth_date=facts.birth_date, sex=facts.sex,
            card_valid_until=holder.card_valid_until, security_code=code, photo=holder.photo, signer=signer))
        self.write(0x0003, cardface.encode_ap_info(holder.municipality_code))
        self.write(0x0005, cardface.encode_back(number, signer))
        self.set_pin(PinKind.FACE_NUMBER, number)
        self.set_pin(PinKind.FACE_CODE, cardface.face_code(facts.birth_date, holder.card_valid_until, code))

        if resident_code is not None:
            self.open(Application.RESIDENCE)
            self.write(0x0001, cardinfo.encode_resident_code_file(resident_code))
        c.transport.reset()
        return PersonalisedCard(self.serial, code, auth_spki, sign_spki, issued.auth_certificate,
                                issued.sign_certificate)

    def _write_jpki(self, auth: bytes | None, auth_ca: bytes, sign: bytes | None, sign_ca: bytes) -> None:
        if auth is not None:
            self.write(0x000A, auth)
        self.write(0x000B, auth_ca)
        if sign is not None:
            self.write(0x0001, sign)
        self.write(0x0002, sign_ca)
        self.write(0x0006, token_info(self.serial))
        self.write(0x0008, bytes((0x8F if sign is not None else 0x00, 0x8F if auth is not None else 0x00, 0)))

    def _write_card_info(self, number: str, facts: CardInfoFacts, signer: CardInfoSigner) -> None:
        number_file = cardinfo.encode_number_file(number)
        facts_file = cardinfo.encode_facts_file(facts)
        self.write(0x0001, number_file)
        self.write(0x0002, facts_file)
        self.write(0x0003, cardinfo.encode_signature_file(number_file, facts_file, signer))
        self.write(0x0004, signer.certificate)

    def set_initial_pins(self, pins: InitialPins, after_each: Callable[[PinKind], None] | None = None) -> None:
        """At the window: the PINs the holder chose, all checked against the issuing rules
        (:func:`~mynacard.chip.model.check_new_pins`) before any is written, then set application by
        application. ``after_each`` is called with each PIN's kind once it is on the chip (the window's saga
        marks its step boundaries with it)."""
        check_new_pins(pins.items())
        by_app: dict[Application, list[tuple[PinKind, str]]] = {}
        for kind, value in pins.items():
            by_app.setdefault(kind.policy.application, []).append((kind, value))
        for app, entries in by_app.items():
            self.open(app)
            for kind, value in entries:
                self.set_pin(kind, value)
                if after_each is not None:
                    after_each(kind)
        self.client.transport.reset()

    def reset_pin(self, kind: PinKind, new_value: str | None = None) -> None:
        """初期化・再設定 at the window: a new PIN (or, with None, the old one unblocked)."""
        if new_value is not None:
            check_new_pin(kind, new_value)
        elif not kind.policy.holder_sets:
            raise InvalidInput(f"{kind.policy.label} is not reset by itself")
        self.open(kind.policy.application)
        self.set_pin(kind, new_value)
        self.client.transport.reset()

    def read_card_info_facts(self) -> tuple[str, CardInfoFacts]:
        """The number and facts on the card, read with the issuer's authentication."""
        self.open(Application.CARD_INFO)
        number = cardinfo.decode_number_file(self.client.read_ef(0x0001))
        facts = cardinfo.decode_facts_file(self.client.read_ef(0x0002))
        return number, facts

    def endorse_address(self, new_address: str, signer: CardInfoSigner, on: date) -> bool:
        """追記: the new address into the card-info AP (re-signed) and the card-face 追記欄.

        Returns False (and changes nothing) when the card already carries this address — a retried
        endorsement does not write twice.
        """
        try:
            address = normalize_address(new_address)
        except ValueError as exc:
            raise InvalidInput(str(exc)) from None
        number, facts = self.read_card_info_facts()
        if facts.address == address:
            self.client.transport.reset()
            return False
        self._write_card_info(number, CardInfoFacts(facts.name, address, facts.birth_date, facts.sex), signer)
        self.open(Application.CARD_FACE)
        entries = cardface.decode_endorsements(self.client.read_ef(0x0006))
        self.write(0x0006, cardface.encode_endorsements([*entries, Endorsement(on, address)]))
        self.client.transport.reset()
        return True

    def replace_sign_certificate(self, holder: CardHolder, issuer: CertificateIssuer, now: datetime) -> bytes:
        """A new signing key pair in the chip and its certificate (再発行, e.g. after the facts changed);
        the old certificate leaves with the old key. Returns the new certificate (DER)."""
        if holder.card_serial != self.serial:
            raise InvalidInput(f"the card in the reader is {self.serial}, not {holder.card_serial}")
        self.open(Application.JPKI)
        spki = self.generate_key(KeyKind.SIGN)
        issued = issuer.issue(holder, None, spki, now)
        if issued.sign_certificate is None:
            raise InvalidInput("the issuer issued no signing certificate")
        if _spki_of(issued.sign_certificate) != spki:
            raise InvalidInput("the new certificate is not for the key the chip made")
        self.write(0x0001, issued.sign_certificate)
        self.write(0x0002, issued.sign_ca_certificate)
        flags = bytearray(self.client.read_ef(0x0008, sized=False) or bytes(3))
        flags[0] = 0x8F
        self.write(0x0008, bytes(flags))
        self.client.transport.reset()
        return issued.sign_certificate
