"""The card client: what every other part (window, kiosk, portal, verifiers) uses to talk to a card.

:class:`CardClient` speaks the card's APDUs over any :class:`~mynacard.chip.transport.Transport` — the
emulated chip in process, the emulated chip through pcscd and vpcd, or a real My Number Card in a real
reader — and turns status words into errors a caller can act on:

* :class:`WrongPin` (an :class:`~mynacard.errors.InvalidInput`) with the tries left;
* :class:`PinBlocked` (a :class:`~mynacard.errors.Conflict`): only the municipal window can reset it;
* :class:`CardError` for any other refusal, with the status word.

Each operation is self-contained (select the application, verify, act), as the real clients do; since a
reselect clears the card's security status, a verified PIN never outlives the operation that needed it.
PINs are checked for format before they are sent, so that a typing mistake of the wrong length never costs
one of the holder's tries.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date

from asn1crypto import algos
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from mynacard.chip import cardface, cardinfo, tlv
from mynacard.chip.apdu import SW, ResponseApdu, encode_command
from mynacard.chip.cardface import CardFace, Endorsement
from mynacard.chip.cardinfo import CardInfoFacts
from mynacard.chip.model import (
    TOKEN_LABEL,
    Application,
    KeyKind,
    PinKind,
    check_new_pin,
    check_pin_format,
    normalise_pin,
)
from mynacard.chip.transport import Transport
from mynacard.errors import Conflict, DomainError, InvalidInput, NotFound
from mynacard.numbers import mask_individual_number

__all__ = [
    "CardClient",
    "CardError",
    "CardInfo",
    "NotOnCard",
    "PinBlocked",
    "WrongPin",
    "digest_info",
]

_HASH_NAMES = {"sha1": "sha1", "sha224": "sha224", "sha256": "sha256", "sha384": "sha384", "sha512": "sha512"}


class CardError(DomainError):
    """The card refused a command; ``sw`` is its status word."""

    def __init__(self, message: str, sw: int = 0) -> None:
        super().__init__(message)
        self.sw = sw


class WrongPin(CardError, InvalidInput):
    """The PIN was wrong; ``tries_left`` more tries before it blocks."""

    def __init__(self, kind: PinKind, tries_left: int, sw: int) -> None:
        super().__init__(f"{kind.policy.label} is wrong; {tries_left} tries left", sw)
        self.kind = kind
        self.tries_left = tries_left


class PinBlocked(CardError, Conflict):
    """The PIN is blocked (or not yet set): the municipal window must reset it."""

    def __init__(self, kind: PinKind, sw: int) -> None:
        super().__init__(f"{kind.policy.label} is blocked; it can be reset at the municipal window", sw)
        self.kind = kind


class NotOnCard(CardError, NotFound):
    """The card does not hold this (e.g. no signing certificate for an under-15)."""


@dataclass(frozen=True)
class CardInfo:
    """What the card-info input support application gives with its PIN."""

    individual_number: str = field(repr=False)
    """個人番号 — never log or show it unmasked; use :attr:`masked_number`."""
    facts: CardInfoFacts
    signature_valid: bool
    """Whether EF 0003 vouches for these bytes under the key in EF 0004."""

    @property
    def masked_number(self) -> str:
        return mask_individual_number(self.individual_number)


def digest_info(algorithm: hashes.HashAlgorithm, digest: bytes) -> bytes:
    """The DER DigestInfo (RFC 8017 §9.2) the card signs: algorithm identifier and hash value."""
    name = _HASH_NAMES.get(algorithm.name)
    if name is None:
        raise InvalidInput(f"hash algorithm {algorithm.name} is not supported for card signatures")
    if len(digest) != algorithm.digest_size:
        raise InvalidInput(f"a {algorithm.name} digest has {algorithm.digest_size} bytes")
    return bytes(algos.DigestInfo({"digest_algorithm": {"algorithm": name}, "digest": digest}).dump())


class CardClient:
    """High-level access to a My Number Card (or the emulator) over a transport."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    # --- exchange -----------------------------------------------------------------------------------------

    def exchange(self, cla: int, ins: int, p1: int, p2: int, data: bytes = b"", le: int | None = None, *,
                 extended: bool = False) -> ResponseApdu:
        """One command; ``61 xx`` is followed by GET RESPONSE and ``6C xx`` re-sent with the right Le."""
        response = ResponseApdu.decode(self.transport.transmit(
            encode_command(cla, ins, p1, p2, data, le, extended=extended)))
        if response.sw1 == 0x6C:
            response = ResponseApdu.decode(self.transport.transmit(
                encode_command(cla, ins, p1, p2, data, response.sw2 or 256)))
        collected = response.data
        while response.sw1 == 0x61:
            response = ResponseApdu.decode(self.transport.transmit(
                encode_command(0x00, 0xC0, 0x00, 0x00, b"", response.sw2 or 256)))
            collected += response.data
        return ResponseApdu(collected, response.sw)

    def expect_ok(self, response: ResponseApdu, what: str) -> bytes:
        """The data of a ``90 00`` response; any other status word becomes the matching error."""
        if response.sw == SW.OK:
            return response.data
        if response.sw == SW.SECURITY_STATUS_NOT_SATISFIED:
            raise CardError(f"{what}: the card needs a PIN first (SW 6982)", response.sw)
        if response.sw in (SW.FILE_NOT_FOUND, SW.REFERENCED_DATA_NOT_FOUND):
            raise NotOnCard(f"{what}: not on this card (SW {response.sw:04X})", response.sw)
        raise CardError(f"{what}: the card answered SW {response.sw:04X}", response.sw)

    def select(self, app: Application) -> None:
        """SELECT the application by its AID (clears the card's security status)."""
        response = self.exchange(0x00, 0xA4, 0x04, 0x0C, app.aid)
        if response.sw == SW.FILE_NOT_FOUND:
            raise NotOnCard(f"this card has no {app.label}", response.sw)
        self.expect_ok(response, f"SELECT {app.label}")

    def select_ef(self, fid: int) -> None:
        self.expect_ok(self.exchange(0x00, 0xA4, 0x02, 0x0C, fid.to_bytes(2, "big")), f"SELECT EF {fid:04X}")

    def read_binary(self, offset: int, length: int) -> bytes:
        """READ BINARY of up to ``length`` bytes from ``offset`` of the current EF (extended when needed)."""
        if not 0 <= offset <= 0x7FFF:
            raise InvalidInput("READ BINARY offsets are 0–32767")
        response = self.exchange(0x00, 0xB0, offset >> 8, offset & 0xFF, le=length)
        if response.sw == SW.END_OF_FILE:
            return response.data
        return self.expect_ok(response, f"READ BINARY at {offset}")

    def read_ef(self, fid: int, *, sized: bool = True) -> bytes:
        """The whole content of EF ``fid`` in the selected application; ``b""`` for an empty EF.

        A TLV/DER file (``sized``) is sized from its first bytes, as OpenSC sizes certificates; other files
        are read to their end. Extended-length reads are used when the transport carries them.
        """
        self.select_ef(fid)
        if not sized:
            return self._read_from(b"", None, fid)
        head = self.exchange(0x00, 0xB0, 0x00, 0x00, le=8)
        if head.sw == SW.OFFSET_OUTSIDE_EF:
            return b""
        if head.sw == SW.END_OF_FILE:
            return head.data
        self.expect_ok(head, f"READ BINARY of EF {fid:04X}")
        try:
            size: int | None = tlv.total_length(head.data)
        except tlv.TlvError:
            size = None
        return self._read_from(head.data, size, fid)

    def _read_from(self, data: bytes, size: int | None, fid: int) -> bytes:
        step = 0x10000 if self.transport.supports_extended else 0x100
        while size is None or len(data) < size:
            if len(data) > 0x7FFF:
                raise CardError(f"EF {fid:04X} is larger than READ BINARY can address")
            want = step if size is None else min(step, size - len(data))
            response = self.exchange(0x00, 0xB0, len(data) >> 8, len(data) & 0xFF, le=want)
            if response.sw == SW.OFFSET_OUTSIDE_EF:
                break
            if response.sw != SW.END_OF_FILE:
                self.expect_ok(response, f"READ BINARY of EF {fid:04X}")
            data += response.data
            if response.sw == SW.END_OF_FILE or len(response.data) < want:
                break
        return data if size is None else data[:size]

    # --- discovery ----------------------------------------------------------------------------------------

    def is_my_number_card(self) -> bool:
        """True when the JPKI application answers and its token file says My Number Card."""
        try:
            return self.token_label() == TOKEN_LABEL
        except CardError:
            return False

    def token_label(self) -> str:
        """The label of the JPKI token (``JPKIAPICCTOKEN2`` on a My Number Card)."""
        self.select(Application.JPKI)
        return self.read_ef(0x0006, sized=False)[:32].decode("ascii", "replace").strip()

    def manufacture_number(self) -> str:
        """製造番号, from record 1 of SFI 1 in the common DF."""
        self.select(Application.COMMON)
        record = self.expect_ok(self.exchange(0x00, 0xB2, 0x01, 0x0C, le=256), "READ RECORD")
        _, value, _ = tlv.read_element(record)
        return value[2:15].decode("ascii", "replace")  # jpki/myna: characters 2–14 of the value

    # --- certificates -------------------------------------------------------------------------------------

    def _certificate(self, fid: int, what: str) -> x509.Certificate:
        der = self.read_ef(fid)
        if not der:
            raise NotOnCard(f"this card holds no {what}")
        return x509.load_der_x509_certificate(der)

    def read_auth_certificate(self) -> x509.Certificate:
        """利用者証明用電子証明書 (no PIN needed)."""
        self.select(Application.JPKI)
        return self._certificate(0x000A, "authentication certificate")

    def read_auth_ca_certificate(self) -> x509.Certificate:
        self.select(Application.JPKI)
        return self._certificate(0x000B, "authentication CA certificate")

    def read_sign_ca_certificate(self) -> x509.Certificate:
        self.select(Application.JPKI)
        return self._certificate(0x0002, "signing CA certificate")

    def has_sign_certificate(self) -> bool:
        """Whether the card carries a signing certificate (EF 0008's first byte is ``8F``; under-15s and
        those who declined it have none). A card without a readable EF 0008 is assumed to have one."""
        self.select(Application.JPKI)
        try:
            flags = self.read_ef(0x0008, sized=False)
        except CardError:
            return True
        return len(flags) != 3 or flags[0] == 0x8F

    def _require_sign_certificate(self) -> None:
        if not self.has_sign_certificate():
            raise NotOnCard("this card has no signing certificate (署名用電子証明書)")

    def read_sign_certificate(self, password: str) -> x509.Certificate:
        """署名用電子証明書 (needs the signing password: it carries the basic four facts)."""
        self._require_sign_certificate()
        self.select(Application.JPKI)
        self._verify_selected(PinKind.SIGN, password)
        return self._certificate(0x0001, "signing certificate")

    # --- PINs ---------------------------------------------------------------------------------------------

    def tries_left(self, kind: PinKind) -> int:
        """Tries left for ``kind`` without using one (an empty VERIFY); 0 when blocked or not set."""
        policy = kind.policy
        self.select(policy.application)
        self.select_ef(policy.fid)
        response = self.exchange(0x00, 0x20, 0x00, 0x80)
        if response.sw1 == 0x63 and response.sw2 & 0xF0 == 0xC0:
            return response.sw2 & 0x0F
        if response.sw == SW.OK:
            return policy.max_tries
        if response.sw == SW.REFERENCE_DATA_NOT_USABLE:
            return 0
        self.expect_ok(response, f"{policy.label}: tries left")
        return 0  # pragma: no cover - _ok raised

    def pin_status(self) -> dict[PinKind, int]:
        """Tries left of every PIN the holder sets (left out: the signing password of a card without a
        signing certificate, and PINs of applications the card lacks)."""
        out = {}
        for kind in PinKind:
            if kind is PinKind.SIGN and not self.has_sign_certificate():
                continue
            if kind.policy.holder_sets:
                try:
                    out[kind] = self.tries_left(kind)
                except NotOnCard:
                    continue
        return out

    def _verify_selected(self, kind: PinKind, value: str) -> None:
        """VERIFY ``kind`` in its (already selected) application."""
        pin = normalise_pin(kind, value)
        check_pin_format(kind, pin)
        self.select_ef(kind.policy.fid)
        response = self.exchange(0x00, 0x20, 0x00, 0x80, pin.encode("ascii"))
        if response.sw == SW.OK:
            return
        if response.sw1 == 0x63 and response.sw2 & 0xF0 == 0xC0:
            left = response.sw2 & 0x0F
            if left == 0:
                raise PinBlocked(kind, response.sw)
            raise WrongPin(kind, left, response.sw)
        if response.sw in (SW.REFERENCE_DATA_NOT_USABLE, 0x6983):
            raise PinBlocked(kind, response.sw)
        self.expect_ok(response, f"VERIFY {kind.policy.label}")

    def verify(self, kind: PinKind, value: str) -> None:
        """Check a PIN (uses a try when wrong); raises :class:`WrongPin` or :class:`PinBlocked`."""
        self.select(kind.policy.application)
        self._verify_selected(kind, value)

    def change_pin(self, kind: PinKind, current: str, new: str) -> None:
        """The holder changes their own PIN (needs the current one)."""
        new_value = normalise_pin(kind, new)
        check_new_pin(kind, new_value)
        self.verify(kind, current)
        self.expect_ok(self.exchange(0x00, 0x24, 0x01, 0x80, new_value.encode("ascii")),
                 f"CHANGE REFERENCE DATA {kind.policy.label}")

    # --- signatures ---------------------------------------------------------------------------------------

    def sign(self, key: KeyKind, pin: str, data: bytes) -> bytes:
        """Sign ``data`` (a DER DigestInfo, at most 245 bytes) with ``key``: the card pads it (PKCS#1 v1.5
        type 1) and applies its private key. Returns the 256-byte signature."""
        if not 1 <= len(data) <= 245:
            raise InvalidInput("the card signs 1–245 bytes (a DigestInfo)")
        if key is KeyKind.SIGN:
            self._require_sign_certificate()
        self.select(Application.JPKI)
        self._verify_selected(key.pin, pin)
        self.select_ef(key.key_fid)
        return self.expect_ok(self.exchange(0x80, 0x2A, 0x00, 0x80, data, 256), "COMPUTE DIGITAL SIGNATURE")

    def sign_digest(self, key: KeyKind, pin: str, digest: bytes,
                    algorithm: hashes.HashAlgorithm | None = None) -> bytes:
        """Sign a hash already computed (SHA-256 unless ``algorithm`` says otherwise)."""
        return self.sign(key, pin, digest_info(algorithm or hashes.SHA256(), digest))

    def sign_message(self, key: KeyKind, pin: str, message: bytes) -> bytes:
        """RSASSA-PKCS1-v1_5 with SHA-256 over ``message``; verifies with the key's certificate."""
        return self.sign_digest(key, pin, hashlib.sha256(message).digest(), hashes.SHA256())

    def public_key_template(self, key: KeyKind) -> bytes:
        """The public key as the card exports it (``7F49`` template; GENERATE ASYMMETRIC KEY PAIR P1=81)."""
        self.select(Application.JPKI)
        self.select_ef(key.key_fid)
        return self.expect_ok(self.exchange(0x00, 0x47, 0x81, 0x00, le=256), "read public key")

    # --- card-info applications --------------------------------------------------------------------------

    def read_card_info(self, pin: str) -> CardInfo:
        """Individual number and basic four facts (券面事項入力補助AP), the issuer's signature checked."""
        self.select(Application.CARD_INFO)
        self._verify_selected(PinKind.CARD_INFO, pin)
        number_file = self.read_ef(0x0001)
        facts_file = self.read_ef(0x0002)
        valid = cardinfo.verify_card_info(number_file, facts_file, self.read_ef(0x0003), self.read_ef(0x0004))
        return CardInfo(cardinfo.decode_number_file(number_file), cardinfo.decode_facts_file(facts_file),
                        valid)

    def read_facts_with_number(self, individual_number: str) -> CardInfoFacts:
        """The basic four facts after 照合番号A (the holder's individual number) instead of the PIN."""
        self.select(Application.CARD_INFO)
        self._verify_selected(PinKind.CARD_INFO_NUMBER, individual_number)
        return cardinfo.decode_facts_file(self.read_ef(0x0002))

    def read_card_face(self, *, individual_number: str | None = None,
                       face_code: str | None = None) -> CardFace:
        """The card front (券面事項確認AP) after 照合番号A (the number) or 照合番号B (birth date, expiry year
        and security code)."""
        self.select(Application.CARD_FACE)
        if individual_number is not None:
            self._verify_selected(PinKind.FACE_NUMBER, individual_number)
        elif face_code is not None:
            self._verify_selected(PinKind.FACE_CODE, face_code)
        else:
            raise InvalidInput("the card face needs 照合番号A or 照合番号B")
        return cardface.decode_front(self.read_ef(0x0002))

    def read_endorsements(self, *, individual_number: str) -> list[Endorsement]:
        """The 追記欄 entries mirrored in the card-face AP."""
        self.select(Application.CARD_FACE)
        self._verify_selected(PinKind.FACE_NUMBER, individual_number)
        return cardface.decode_endorsements(self.read_ef(0x0006))

    def read_resident_code(self, pin: str) -> str:
        """住民票コード from the residence application (its PIN)."""
        self.select(Application.RESIDENCE)
        self._verify_selected(PinKind.RESIDENCE, pin)
        return cardinfo.decode_resident_code_file(self.read_ef(0x0001))

    # --- convenience ------------------------------------------------------------------------------------

    def certificate_valid_on(self, cert: x509.Certificate, day: date) -> bool:
        return cert.not_valid_before_utc.date() <= day <= cert.not_valid_after_utc.date()
