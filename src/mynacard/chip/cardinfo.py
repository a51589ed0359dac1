"""The contents of the card-info applications: encoders for the issuer, decoders for clients.

券面事項入力補助AP (text AP, reference/jpki-technical.md §5):

* EF 0001 個人番号: ``FF 10 0C`` + 12 ASCII digits + ``FF FF`` (17 bytes);
* EF 0002 基本4情報: ``FF 20 { DF21 header, DF22 氏名, DF23 住所, DF24 生年月日, DF25 性別 }``; the header is
  four 16-bit offsets (jsapdu's reading) — we write the offsets of DF22–DF25 in the file;
* EF 0003 signature: ``FF 30 { DF31 SHA-256 of EF 0001, DF32 SHA-256 of EF 0002, DF33 RSA signature }``
  (336 bytes). The exact hashed ranges are **[uncertain]**: we hash the TLV element of each EF (without
  its ``FF`` padding) and sign ``DF31 || DF32`` with RSASSA-PKCS1-v1_5/SHA-256;
* EF 0004 the signer's card-verifiable certificate ``7F21 { 5F4E body, 5F37 signature }`` (568 bytes);
* EF 0005 AP basic info ``FF 40 { DF41 AP info, DF42 key ID }``.

The signature is made by the card-info signer of the issuer (J-LIS), :class:`CardInfoSigner`; clients check
it against the key in EF 0004 (:func:`verify_card_info`). Encoders raise ``ValueError`` on bad input.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from mynacard.chip import tlv
from mynacard.numbers import is_valid_individual_number, is_valid_resident_record_code
from mynacard.registry.model import Sex

__all__ = [
    "CardInfoFacts",
    "CardInfoSigner",
    "CvCertificate",
    "decode_cv_certificate",
    "decode_facts_file",
    "decode_number_file",
    "decode_resident_code_file",
    "decode_signature_file",
    "encode_basic_info_file",
    "encode_facts_file",
    "encode_number_file",
    "encode_resident_code_file",
    "encode_signature_file",
    "verify_card_info",
]

NUMBER_FILE_SIZE = 17
SIGNATURE_FILE_SIZE = 336
CV_CERTIFICATE_SIZE = 568
_FULLWIDTH_SPACE = "\u3000"


@dataclass(frozen=True)
class CardInfoFacts:
    """基本4情報 as the text AP carries them."""

    name: str
    """氏名: family and given name separated by a full-width space."""
    address: str
    """住所."""
    birth_date: date
    """生年月日."""
    sex: Sex
    """性別 (ISO 5218 codes 1, 2, 9)."""

    @property
    def family_name(self) -> str:
        return self.name.split(_FULLWIDTH_SPACE, 1)[0]

    @property
    def given_name(self) -> str:
        parts = self.name.split(_FULLWIDTH_SPACE, 1)
        return parts[1] if len(parts) == 2 else ""


# --- EF 0001: the individual number (and the 住基AP's resident record code, in the same shape) ------------

def _digits_file(digits: str) -> bytes:
    """``FF 10 len`` + ASCII digits + ``FF FF`` padding, as the individual-number EF is laid out."""
    return b"\xff\x10" + bytes((len(digits),)) + digits.encode("ascii") + b"\xff\xff"


def _file_digits(data: bytes, valid: Callable[[str], bool], what: str) -> str:
    tag, value, _ = tlv.read_element(data)
    digits = value.decode("ascii", "replace")
    if tag != 0xFF10 or not valid(digits):
        raise ValueError(f"EF 0001 does not hold {what}")
    return digits


def encode_number_file(number: str) -> bytes:
    if not is_valid_individual_number(number):
        raise ValueError("not a valid individual number")
    return _digits_file(number)


def decode_number_file(data: bytes) -> str:
    return _file_digits(data, is_valid_individual_number, "an individual number")


def encode_resident_code_file(code: str) -> bytes:
    """EF 0001 of the 住基AP (**ours**: the real file is not described): the 11-digit 住民票コード in the
    shape of the individual-number file."""
    if not is_valid_resident_record_code(code):
        raise ValueError("not a valid resident record code")
    return _digits_file(code)


def decode_resident_code_file(data: bytes) -> str:
    return _file_digits(data, is_valid_resident_record_code, "a resident record code")


# --- EF 0002: the basic four facts -------------------------------------------------------------------------

def encode_facts_file(facts: CardInfoFacts) -> bytes:
    elements = [
        tlv.encode(0xDF22, facts.name.encode("utf-8")),
        tlv.encode(0xDF23, facts.address.encode("utf-8")),
        tlv.encode(0xDF24, facts.birth_date.strftime("%Y%m%d").encode("ascii")),
        tlv.encode(0xDF25, facts.sex.value.encode("ascii")),
    ]
    header_size = len(tlv.encode(0xDF21, bytes(8)))
    content_size = header_size + sum(len(e) for e in elements)
    position = 2 + len(tlv.encode_length(content_size)) + header_size
    offsets = b""
    for element in elements:
        offsets += position.to_bytes(2, "big")
        position += len(element)
    return tlv.encode(0xFF20, tlv.encode(0xDF21, offsets) + b"".join(elements))


def decode_facts_file(data: bytes) -> CardInfoFacts:
    try:
        tag, content, _ = tlv.read_element(data)
        if tag != 0xFF20:
            raise ValueError("EF 0002 is not a basic-four-facts record")
        fields = dict(tlv.iter_tlv(content))
        birth = fields[0xDF24].decode("ascii")
        return CardInfoFacts(
            name=fields[0xDF22].decode("utf-8"),
            address=fields[0xDF23].decode("utf-8"),
            birth_date=date(int(birth[:4]), int(birth[4:6]), int(birth[6:8])),
            sex=Sex(fields[0xDF25].decode("ascii")),
        )
    except (KeyError, UnicodeDecodeError, IndexError, tlv.TlvError) as exc:
        raise ValueError(f"EF 0002 is malformed ({type(exc).__name__})") from None


# --- EF 0003 / 0004: the issuer's signature and its CV certificate ------------------------------------

@dataclass(frozen=True)
class CvCertificate:
    """A card-verifiable certificate (ISO/IEC 7816-8 style) of the card-info signing key."""

    authority: bytes
    """CAR, 16 bytes."""
    holder: bytes
    """CHR, 16 bytes."""
    public_key: rsa.RSAPublicKey
    body: bytes
    """The ``5F4E`` element, which the signature covers."""
    signature: bytes


def _rsa_public(n: bytes, e: bytes) -> rsa.RSAPublicKey:
    return rsa.RSAPublicNumbers(int.from_bytes(e, "big"), int.from_bytes(n, "big")).public_key()


def decode_cv_certificate(data: bytes) -> CvCertificate:
    try:
        tag, content, _ = tlv.read_element(data)
        if tag != 0x7F21:
            raise ValueError("not a CV certificate")
        body_tag, body, after = tlv.read_element(content)
        sig_tag, signature, _ = tlv.read_element(content, after)
        if body_tag != 0x5F4E or sig_tag != 0x5F37 or len(body) < 32:
            raise ValueError("not a CV certificate")
        fields = dict(tlv.iter_tlv(body[32:]))
        key = _rsa_public(fields[0x91], fields[0x90])
        return CvCertificate(body[:16], body[16:32], key, content[:after], signature)
    except (KeyError, tlv.TlvError) as exc:
        raise ValueError(f"malformed CV certificate ({type(exc).__name__})") from None


def _element_hash(data: bytes) -> bytes:
    """SHA-256 of the TLV element at the start of an EF (without the ``FF`` padding after it)."""
    return hashlib.sha256(data[:tlv.total_length(data)]).digest()


def encode_signature_file(number_file: bytes, facts_file: bytes, sign: CardInfoSigner) -> bytes:
    signed = tlv.encode(0xDF31, _element_hash(number_file)) + tlv.encode(0xDF32, _element_hash(facts_file))
    out = tlv.encode(0xFF30, signed + tlv.encode(0xDF33, sign.sign(signed)))
    if len(out) != SIGNATURE_FILE_SIZE:
        raise ValueError("the card-info signer must use an RSA-2048 key")
    return out


def decode_signature_file(data: bytes) -> tuple[bytes, bytes, bytes]:
    """``(hash of EF 0001, hash of EF 0002, signature)``."""
    tag, content, _ = tlv.read_element(data)
    if tag != 0xFF30:
        raise ValueError("EF 0003 is not a signature record")
    fields = dict(tlv.iter_tlv(content))
    try:
        return fields[0xDF31], fields[0xDF32], fields[0xDF33]
    except KeyError:
        raise ValueError("EF 0003 lacks an element") from None


def verify_card_info(number_file: bytes, facts_file: bytes, signature_file: bytes,
                     certificate_file: bytes) -> bool:
    """True when EF 0003 vouches for these EF 0001/0002 bytes under the key of EF 0004.

    Whether EF 0004 itself chains to a trusted card-info CA is the caller's policy; we return its key in
    :func:`decode_cv_certificate`.
    """
    try:
        number_hash, facts_hash, signature = decode_signature_file(signature_file)
        cert = decode_cv_certificate(certificate_file)
    except ValueError:
        return False
    try:
        if number_hash != _element_hash(number_file) or facts_hash != _element_hash(facts_file):
            return False
    except tlv.TlvError:
        return False
    signed = tlv.encode(0xDF31, number_hash) + tlv.encode(0xDF32, facts_hash)
    try:
        cert.public_key.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


def encode_basic_info_file(signer: CardInfoSigner) -> bytes:
    """EF 0005: AP info (4 bytes, meaning **[uncertain]**; we write 1.0.0.0) and the signer's key ID."""
    return tlv.encode(0xFF40, tlv.encode(0xDF41, bytes((1, 0, 0, 0))) + tlv.encode(0xDF42, signer.key_id))


class CardInfoSigner:
    """The issuer's key that signs the card-info and card-face data (J-LIS side), with its CV certificate.

    ``generate`` makes a self-certified demo signer at run time; production loads the issuer's key.
    """

    def __init__(self, key: rsa.RSAPrivateKey, authority: bytes = b"JPKI-TEST CVCA01",
                 holder: bytes = b"JPKI-TEST CI0001") -> None:
        if key.key_size != 2048:
            raise ValueError("the card-info signer uses an RSA-2048 key")
        if len(authority) != 16 or len(holder) != 16:
            raise ValueError("CAR and CHR are 16 bytes each")
        self._key = key
        numbers = key.public_key().public_numbers()
        exponent = numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")
        body = (authority + holder + tlv.encode(0x90, exponent)
                + tlv.encode(0x91, numbers.n.to_bytes(256, "big")))
        body_element = tlv.encode(0x5F4E, body)
        self.certificate = tlv.encode(0x7F21, body_element + tlv.encode(0x5F37, self.sign(body_element)))
        """EF 0004 (self-certified: the demo signer is its own authority)."""
        if len(self.certificate) != CV_CERTIFICATE_SIZE:
            raise ValueError("unexpected CV certificate size")

    @classmethod
    def generate(cls) -> CardInfoSigner:
        return cls(rsa.generate_private_key(public_exponent=65537, key_size=2048))

    @property
    def public_key(self) -> rsa.RSAPublicKey:
        return self._key.public_key()

    @property
    def key_id(self) -> bytes:
        """16 bytes identifying the key (first half of the SHA-256 of the modulus)."""
        n = self._key.public_key().public_numbers().n
        return hashlib.sha256(n.to_bytes(256, "big")).digest()[:16]

    def sign(self, data: bytes) -> bytes:
        """RSASSA-PKCS1-v1_5 with SHA-256."""
        return self._key.sign(data, padding.PKCS1v15(), hashes.SHA256())

    def __repr__(self) -> str:
        return f"CardInfoSigner(key_id={self.key_id.hex()})"
