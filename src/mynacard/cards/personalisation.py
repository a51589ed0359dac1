"""The contract between card manufacture, the chip and the certificate authority (pure, no I/O).

At manufacture (発行) the chip generates its two RSA-2048 key pairs inside the card and exports only the
public keys; a :class:`CertificateIssuer` (the JPKI CAs) issues the certificates from them; the issuer writes
them and the face data to the chip. The chip part provides the card, the JPKI part the issuer; neither
imports the other, both import this.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Protocol

from mynacard.registry.model import BasicFacts

__all__ = ["CardHolder", "CertificateIssuer", "IssuedCertificates"]


@dataclass(frozen=True)
class CardHolder:
    """What a card carries about its holder (券面事項) and its validity."""

    card_serial: str
    """製造番号."""
    municipality_code: str
    """The municipality that hands the card over."""
    facts: BasicFacts
    """基本4情報 as printed on the face and written to the card-info applications."""
    card_valid_until: date
    cert_valid_until: date
    """Both certificates expire on this day (5th birthday, never past the card)."""
    wants_sign_cert: bool
    """False for under-15s and for applicants who declined it (署名用電子証明書 不要)."""
    wants_auth_cert: bool
    maiden_name: str | None = None
    """旧姓, printed beside the name when asked for."""
    individual_number: str | None = field(default=None, repr=False)
    """個人番号 for the card-info input support application; never logged, never in a certificate."""
    photo: bytes | None = field(default=None, repr=False)
    """The face photo (JPEG) for the card-face application."""
    card_id: int | None = None
    """The card row in the pipeline, when there is one."""
    resident_id: int | None = None
    """The holder's resident record, when the caller has it at hand (the JPKI issuer looks it up from
    ``card_id`` otherwise); certificates are recorded against it so that life events can revoke them."""


@dataclass(frozen=True)
class IssuedCertificates:
    """DER certificates to write into the JPKI application (EFs 000A/000B and 0001/0002)."""

    auth_certificate: bytes | None
    """利用者証明用電子証明書."""
    auth_ca_certificate: bytes
    sign_certificate: bytes | None
    """署名用電子証明書 — None when the holder has none."""
    sign_ca_certificate: bytes


class CertificateIssuer(Protocol):
    """Issues a card's certificates from the public keys its chip generated (SubjectPublicKeyInfo DER)."""

    def issue(self, holder: CardHolder, auth_public_key: bytes | None, sign_public_key: bytes | None,
              now: datetime) -> IssuedCertificates: ...
