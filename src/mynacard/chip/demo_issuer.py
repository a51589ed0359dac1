"""A stand-in certificate issuer for demos and the chip's own tests — **not** the JPKI profile.

:class:`DemoCertificateIssuer` implements :class:`~mynacard.cards.personalisation.CertificateIssuer` with
two self-signed RSA-2048 test roots generated at run time (``O=JPKI-TEST (mynacard demo)``) and simple
end-entity certificates: the authentication certificate with an opaque subject and ``digitalSignature``,
the signing certificate with the basic four facts as JPKI-style ``otherName`` entries and
``digitalSignature, nonRepudiation``. The JPKI part provides the real CAs and the full profile (CRL
distribution points, policies, issuerAltName) that every command and page uses.
"""

from __future__ import annotations

import secrets
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from asn1crypto import core
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from mynacard.cards.personalisation import CardHolder, IssuedCertificates

__all__ = ["DemoCertificateIssuer"]

_JST = ZoneInfo("Asia/Tokyo")
_OID_NAME = x509.ObjectIdentifier("1.2.392.200149.8.5.5.1")
_OID_SEX = x509.ObjectIdentifier("1.2.392.200149.8.5.5.3")
_OID_BIRTH = x509.ObjectIdentifier("1.2.392.200149.8.5.5.4")
_OID_ADDRESS = x509.ObjectIdentifier("1.2.392.200149.8.5.5.5")
_ERA_STARTS = ((date(2019, 5, 1), 5), (date(1989, 1, 8), 4), (date(1926, 12, 25), 3), (date(1912, 7, 30), 2),
               (date(1868, 1, 25), 1))


def _era_code(d: date) -> int:
    return next((code for start, code in _ERA_STARTS if d >= start), 0)


def _utf8(text: str) -> bytes:
    return bytes(core.UTF8String(text).dump())


def _end_of_day_jst(d: date) -> datetime:
    return datetime.combine(d, time(23, 59, 59), _JST).astimezone(UTC)


def _ca(key: rsa.RSAPrivateKey, purpose: str, now: datetime) -> x509.Certificate:
    name = x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "JPKI-TEST (mynacard demo)"),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, purpose),
    ])
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=3653))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                           critical=True)
            .add_extension(ski, critical=False)
            .sign(key, hashes.SHA256()))


class DemoCertificateIssuer:
    """Two runtime test roots that issue a card's certificates from its public keys."""

    def __init__(self, auth_key: rsa.RSAPrivateKey, auth_ca: x509.Certificate, sign_key: rsa.RSAPrivateKey,
                 sign_ca: x509.Certificate) -> None:
        self._auth_key, self.auth_ca = auth_key, auth_ca
        self._sign_key, self.sign_ca = sign_key, sign_ca

    @classmethod
    def generate(cls, now: datetime) -> DemoCertificateIssuer:
        auth_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        sign_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return cls(auth_key, _ca(auth_key, "JPKI for user authentication (demo)", now),
                   sign_key, _ca(sign_key, "JPKI for digital signature (demo)", now))

    def _builder(self, ca: x509.Certificate, ca_key: rsa.RSAPrivateKey, public_der: bytes, subject: x509.Name,
                 holder: CardHolder, now: datetime) -> x509.CertificateBuilder:
        public = serialization.load_der_public_key(public_der)
        if not isinstance(public, rsa.RSAPublicKey) or public.key_size != 2048:
            raise ValueError("a card key is RSA-2048")
        until = min(_end_of_day_jst(holder.cert_valid_until), ca.not_valid_after_utc)
        return (x509.CertificateBuilder().subject_name(subject).issuer_name(ca.subject).public_key(public)
                .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(until)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                               critical=False)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False))

    def issue(self, holder: CardHolder, auth_public_key: bytes | None, sign_public_key: bytes | None,
              now: datetime) -> IssuedCertificates:
        auth = sign = None
        if auth_public_key is not None:
            opaque = f"{holder.card_serial}{secrets.token_hex(4).upper()}"
            subject = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
                                 x509.NameAttribute(NameOID.COMMON_NAME, opaque)])
            auth = (self._builder(self.auth_ca, self._auth_key, auth_public_key, subject, holder, now)
                    .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False,
                                                 False), critical=True)
                    .sign(self._auth_key, hashes.SHA256()).public_bytes(serialization.Encoding.DER))
        if sign_public_key is not None:
            facts = holder.facts
            stamp = now.astimezone(_JST).strftime("%Y%m%d%H%M%S")
            common = f"{stamp}{secrets.randbelow(10**5):05d}DEMO"
            subject = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
                                 x509.NameAttribute(NameOID.LOCALITY_NAME, holder.municipality_code),
                                 x509.NameAttribute(NameOID.COMMON_NAME, common)])
            birth = f"{_era_code(facts.birth_date)}{facts.birth_date:%Y%m%d}"
            san = x509.SubjectAlternativeName([
                x509.OtherName(_OID_NAME, _utf8(facts.name)),
                x509.OtherName(_OID_BIRTH, _utf8(birth)),
                x509.OtherName(_OID_SEX, _utf8(facts.sex.jpki_code)),
                x509.OtherName(_OID_ADDRESS, _utf8(facts.address)),
            ])
            sign = (self._builder(self.sign_ca, self._sign_key, sign_public_key, subject, holder, now)
                    .add_extension(x509.KeyUsage(True, True, False, False, False, False, False, False, False),
                                   critical=True)
                    .add_extension(san, critical=False)
                    .sign(self._sign_key, hashes.SHA256()).public_bytes(serialization.Encoding.DER))
        return IssuedCertificates(auth, self.auth_ca.public_bytes(serialization.Encoding.DER), sign,
                                  self.sign_ca.public_bytes(serialization.Encoding.DER))
