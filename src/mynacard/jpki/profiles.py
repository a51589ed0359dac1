"""Certificate profiles: the two JPKI roots, the signing and authentication certificates, the delegated
OCSP responder and the key-rollover link certificates (pure: no I/O, no clock).

Names, extensions and their order mirror the real roots in ``reference/jpki-roots/``; the end-entity
profiles follow ``reference/jpki-technical.md`` §3.2–3.4. Where ours differ from the real ones (URLs in the
CRL distribution points, an OCSP access point) ``docs/JPKI-PROFILE.md`` says so and why.
Encoding is done by ``cryptography`` — except the card certificates' to-be-signed part, which issuance writes
as DER directly from parts encoded by ``cryptography`` once per CA and municipality (byte for byte what its
builder writes; tested); signing always goes through a :class:`~mynacard.jpki.keys.Signer`, so that the same
profile comes out whether the CA key sits sealed in the database or inside a PKCS#11 token.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

from asn1crypto import core
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from mynacard.clock import JST
from mynacard.jpki.keys import Signer
from mynacard.jpki.model import CaKind, SigningFacts

__all__ = [
    "AUTH_POLICY",
    "FACT_OIDS",
    "OCSP_NOCHECK",
    "SIGN_POLICY",
    "CaUrls",
    "EndEntityRequest",
    "auth_common_name",
    "ca_alt_name",
    "ca_name",
    "end_entity_certificate",
    "end_entity_der",
    "link_certificate",
    "ocsp_responder_certificate",
    "read_signing_facts",
    "root_certificate",
    "sign_common_name",
]

JPKI_ARC = "1.2.392.200149.8.5"
SIGN_POLICY = ObjectIdentifier(f"{JPKI_ARC}.1.1.20")
"""jpki-cp-sign-class20 — the production signing-certificate policy (critical, with a CPS qualifier)."""
AUTH_POLICY = ObjectIdentifier(f"{JPKI_ARC}.1.3.30")
"""jpki-cp-auth-class30 — the authentication-certificate policy."""

FACT_OIDS = {
    "name": ObjectIdentifier(f"{JPKI_ARC}.5.1"),
    "name_substitutions": ObjectIdentifier(f"{JPKI_ARC}.5.2"),
    "sex": ObjectIdentifier(f"{JPKI_ARC}.5.3"),
    "birth_date": ObjectIdentifier(f"{JPKI_ARC}.5.4"),
    "address": ObjectIdentifier(f"{JPKI_ARC}.5.5"),
    "address_substitutions": ObjectIdentifier(f"{JPKI_ARC}.5.6"),
}
"""The otherName type-ids of the basic four facts (personalData arc, reference §3.3)."""
_FACT_ORDER = ("name", "birth_date", "sex", "address", "name_substitutions", "address_substitutions")
"""The order observed in real certificates: .1, .4, .3, .5, .2, .6."""

OCSP_NOCHECK = ObjectIdentifier("1.3.6.1.5.5.7.48.1.5")
"""id-pkix-ocsp-nocheck (RFC 6960 §4.2.2.2.1): the responder's own certificate is not checked by OCSP."""

_AGENCY = "Japan Agency for Local Authority Information Systems"
_OU = {CaKind.SIGN: "JPKI for digital signature", CaKind.AUTH: "JPKI for user authentication"}
_OU_JA = {CaKind.SIGN: "公的個人認証サービス署名用", CaKind.AUTH: "公的個人認証サービス利用者証明用"}


def ca_name(kind: CaKind) -> x509.Name:
    """Subject and issuer of a root, as the real ones: ``C=JP, O=JPKI, OU=<purpose>, OU=<J-LIS>``."""
    return x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "JPKI"),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, _OU[kind]),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, _AGENCY),
    ])


def ca_alt_name(kind: CaKind) -> x509.Name:
    """The Japanese DirName of the roots' subjectAltName (and of the certificates' issuerAltName)."""
    return x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "公的個人認証サービス"),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, _OU_JA[kind]),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "地方公共団体情報システム機構"),
    ])


def _crl_partition_name(kind: CaKind, prefecture: str, municipality: str) -> x509.Name:
    """The DirName CDP shape of real end-entity certificates (a CRL partition per municipality)."""
    return x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "JPKI"),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, _OU[kind]),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "CRL Distribution Points"),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, prefecture),
        x509.NameAttribute(NameOID.COMMON_NAME, municipality),
    ])


_CA_KEY_USAGE = x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                              data_encipherment=False, key_agreement=False, key_cert_sign=True,
                              crl_sign=True, encipher_only=False, decipher_only=False)
_SIGN_KEY_USAGE = x509.KeyUsage(digital_signature=True, content_commitment=True, key_encipherment=False,
                                data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                crl_sign=False, encipher_only=False, decipher_only=False)
_AUTH_KEY_USAGE = x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                crl_sign=False, encipher_only=False, decipher_only=False)


def root_certificate(kind: CaKind, signer: Signer, serial: int, not_before: datetime,
                     not_after: datetime) -> x509.Certificate:
    """A self-signed root with the real roots' extensions in their order: keyUsage (critical),
    subjectAltName DirName, basicConstraints (critical), cRLDistributionPoints DirName, subjectKeyIdentifier."""
    name = ca_name(kind)
    builder = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(signer.public_key)
        .serial_number(serial).not_valid_before(not_before).not_valid_after(not_after)
        .add_extension(_CA_KEY_USAGE, critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DirectoryName(ca_alt_name(kind))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.CRLDistributionPoints([x509.DistributionPoint(
            full_name=[x509.DirectoryName(name)], relative_name=None, reasons=None, crl_issuer=None)]),
            critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(signer.public_key), critical=False)
    )
    return signer.sign_certificate(builder)


def link_certificate(kind: CaKind, subject_key: rsa.RSAPublicKey, issuer: Signer, issuer_cert: x509.Certificate,
                     serial: int, not_before: datetime, not_after: datetime) -> x509.Certificate:
    """A key-rollover link certificate (NewWithOld / OldWithNew, RFC 4210 §4.4): the CA name over one
    generation's key, signed by the other's, so that relying parties holding either root reach both."""
    name = ca_name(kind)
    builder = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(subject_key)
        .serial_number(serial).not_valid_before(not_before).not_valid_after(not_after)
        .add_extension(_CA_KEY_USAGE, critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DirectoryName(ca_alt_name(kind))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_cert.public_key()),  # type: ignore[arg-type]
                       critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(subject_key), critical=False)
    )
    return issuer.sign_certificate(builder)


@dataclass(frozen=True)
class CaUrls:
    """Where relying parties find a CA generation's CRLs, its certificate and the OCSP responder."""

    crl: str
    delta_crl: str
    ca_certificate: str
    ocsp: str
    cps: str


@dataclass(frozen=True)
class EndEntityRequest:
    """Everything a card certificate needs besides the CA."""

    kind: CaKind
    public_key: rsa.RSAPublicKey
    """The chip's public key (RSA-2048, e=65537)."""
    serial: int
    common_name: str
    not_before: datetime
    not_after: datetime
    prefecture: str
    """Romanised prefecture (``Tokyo-to``) for the subject and the CRL partition name."""
    municipality: str
    """Romanised municipality (``Chiyoda-ku``)."""
    facts: SigningFacts | None = None
    """The basic four facts; required for a signing certificate, refused for an authentication one."""


def sign_common_name(requested_at: datetime, sequence: int, window: str) -> str:
    """``YYYYMMDDhhmmss`` (JST) of the issuance request, a 5-digit sequence and the window identifier."""
    return f"{requested_at.astimezone(JST):%Y%m%d%H%M%S}{sequence % 100000:05d}{window}"


def auth_common_name(token: bytes) -> str:
    """An opaque 23-character identifier (``[A-Z2-7]``, base32 of 15 random bytes less its last character),
    carrying nothing about the holder."""
    if len(token) < 15:
        raise ValueError("an authentication common name needs 15 random bytes")
    return base64.b32encode(token[:15]).decode()[:23]


@lru_cache(maxsize=65536)
def _utf8(value: str) -> bytes:
    return core.UTF8String(value).dump()


def _der_length(n: int) -> bytes:
    """A DER length octet string (short form below 128, else long form)."""
    if n < 0x80:
        return bytes((n,))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(body),)) + body


def _tlv(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:  # the common cases without a call (a certificate takes ~25 of these)
        return bytes((tag, n)) + content
    if n < 0x100:
        return bytes((tag, 0x81, n)) + content
    return bytes((tag,)) + _der_length(n) + content


@lru_cache(maxsize=64)
def _oid_der(oid: ObjectIdentifier) -> bytes:
    """The DER ``OBJECT IDENTIFIER`` (taken from ``asn1crypto``, once per OID)."""
    return core.ObjectIdentifier(oid.dotted_string).dump()


def _facts_san_value(facts: SigningFacts) -> bytes:
    """subjectAltName of the six otherNames, DER written directly: ``GeneralNames`` of ``[0] { type-id,
    [0] EXPLICIT UTF8String }`` — the bytes ``cryptography`` would write from ``x509.OtherName`` objects
    (tested byte for byte), at a tenth of the cost, since this part differs in every certificate."""
    return _tlv(0x30, b"".join([_other_name(f, getattr(facts, f)) for f in _FACT_ORDER]))


@lru_cache(maxsize=65536)
def _other_name(field: str, value: str) -> bytes:
    """One fact's ``[0] { type-id, [0] EXPLICIT UTF8String }`` (sex, the substitution marks and many
    addresses repeat from card to card)."""
    return _tlv(0xA0, _oid_der(FACT_OIDS[field]) + _tlv(0xA0, _utf8(value)))


def _facts_san(facts: SigningFacts) -> x509.Extension[x509.ExtensionType]:
    oid = x509.SubjectAlternativeName.oid
    return x509.Extension(oid, False, x509.UnrecognizedExtension(oid, _facts_san_value(facts)))


def _ski_value(key: rsa.RSAPublicKey) -> bytes:
    """RFC 5280 §4.2.1.2 method (1), as ``SubjectKeyIdentifier.from_public_key`` computes it (SHA-1 of the
    RSAPublicKey DER), encoded as the OCTET STRING directly."""
    return _tlv(0x04, hashlib.sha1(key.public_bytes(serialization.Encoding.DER,
                                                     serialization.PublicFormat.PKCS1)).digest())


def _subject_key_identifier(key: rsa.RSAPublicKey) -> x509.Extension[x509.ExtensionType]:
    oid = x509.SubjectKeyIdentifier.oid
    return x509.Extension(oid, False, x509.UnrecognizedExtension(oid, _ski_value(key)))


def _extension_der(oid: ObjectIdentifier, critical: bool, value: bytes) -> bytes:
    """``Extension ::= SEQUENCE { extnID, critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING }`` (DER
    leaves a false ``critical`` out)."""
    return _tlv(0x30, _oid_der(oid) + (b"\x01\x01\xff" if critical else b"") + _tlv(0x04, value))


def _raw_der(extension: x509.Extension[x509.ExtensionType]) -> bytes:
    value = extension.value
    assert isinstance(value, x509.UnrecognizedExtension)
    return _extension_der(extension.oid, extension.critical, value.value)


def _content(der: bytes) -> bytes:
    """The contents of a DER TLV (its header cut off)."""
    first = der[1]
    return der[2 + (first & 0x7F if first & 0x80 else 0):]


@lru_cache(maxsize=4096)
def _time_der(moment: datetime) -> bytes:
    """RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050 (whole seconds, UTC); cached: a
    batch shares its start, and many cards their end."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    if 1950 <= moment.year < 2050:
        return _tlv(0x17, moment.strftime("%y%m%d%H%M%SZ").encode())
    return _tlv(0x18, moment.strftime("%Y%m%d%H%M%SZ").encode())


def _integer_der(n: int) -> bytes:
    """A non-negative INTEGER (a leading zero octet when the top bit is set)."""
    return _tlv(0x02, n.to_bytes(n.bit_length() // 8 + 1, "big"))


_VERSION_3 = bytes.fromhex("a003020102")
_SHA256_WITH_RSA = bytes.fromhex("300d06092a864886f70d01010b0500")
"""AlgorithmIdentifier sha256WithRSAEncryption, NULL parameters: what the CA :class:`Signer` signs with."""
_CN_OID = _oid_der(NameOID.COMMON_NAME)


@dataclass(frozen=True)
class _IssuerParts:
    """The extensions that are the same in every certificate of one CA generation (built once)."""

    issuer: x509.Name
    head: tuple[x509.Extension[x509.ExtensionType], ...]
    """keyUsage and certificatePolicies."""
    tail: tuple[x509.Extension[x509.ExtensionType], ...]
    """freshestCRL, authorityInformationAccess, authorityKeyIdentifier."""
    ian: x509.Extension[x509.ExtensionType]
    issuer_der: bytes = b""
    head_der: bytes = b""
    ian_der: bytes = b""
    tail_der: bytes = b""
    """The same, DER-encoded (issuer Name; Extension SEQUENCEs concatenated)."""


def _raw(critical: bool, value: x509.ExtensionType) -> x509.Extension[x509.ExtensionType]:
    """The extension with its value already DER-encoded: ``cryptography`` then copies the bytes instead of
    converting the Python objects again for every certificate (the result is byte-for-byte the same)."""
    return x509.Extension(value.oid, critical, x509.UnrecognizedExtension(value.oid, value.public_bytes()))


@lru_cache(maxsize=64)
def _issuer_parts(kind: CaKind, ca_der: bytes, urls: CaUrls) -> _IssuerParts:
    ca_cert = x509.load_der_x509_certificate(ca_der)
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    policy = SIGN_POLICY if kind is CaKind.SIGN else AUTH_POLICY
    ku = _SIGN_KEY_USAGE if kind is CaKind.SIGN else _AUTH_KEY_USAGE
    cp = x509.CertificatePolicies([x509.PolicyInformation(policy, [urls.cps])])
    freshest = x509.FreshestCRL([x509.DistributionPoint(
        full_name=[x509.UniformResourceIdentifier(urls.delta_crl)], relative_name=None, reasons=None,
        crl_issuer=None)])
    aia = x509.AuthorityInformationAccess([
        x509.AccessDescription(x509.AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(urls.ocsp)),
        x509.AccessDescription(x509.AuthorityInformationAccessOID.CA_ISSUERS,
                               x509.UniformResourceIdentifier(urls.ca_certificate))])
    aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski)
    ian = x509.IssuerAlternativeName([x509.DirectoryName(ca_alt_name(kind))])
    head = (_raw(True, ku), _raw(True, cp))
    tail = (_raw(False, freshest), _raw(False, aia), _raw(False, aki))
    return _IssuerParts(ca_cert.subject, head, tail, _raw(False, ian), ca_cert.subject.public_bytes(),
                        b"".join(map(_raw_der, head)), _raw_der(_raw(False, ian)), b"".join(map(_raw_der, tail)))


@lru_cache(maxsize=4096)
def _place_parts(kind: CaKind, crl_uri: str, prefecture: str, municipality: str
                 ) -> tuple[tuple[x509.RelativeDistinguishedName, ...], x509.Extension[x509.ExtensionType]]:
    """Subject prefix (one attribute per RDN) and CRL distribution points: the same for every card of one
    municipality."""
    attributes = [x509.NameAttribute(NameOID.COUNTRY_NAME, "JP")]
    if kind is CaKind.SIGN:
        attributes += [x509.NameAttribute(NameOID.LOCALITY_NAME, prefecture),
                       x509.NameAttribute(NameOID.LOCALITY_NAME, municipality)]
    prefix = tuple(x509.RelativeDistinguishedName([a]) for a in attributes)
    cdp = x509.CRLDistributionPoints([
        x509.DistributionPoint(full_name=[x509.UniformResourceIdentifier(crl_uri)], relative_name=None,
                               reasons=None, crl_issuer=None),
        x509.DistributionPoint(full_name=[x509.DirectoryName(_crl_partition_name(kind, prefecture, municipality))],
                               relative_name=None, reasons=None, crl_issuer=None)])
    return prefix, _raw(False, cdp)


@lru_cache(maxsize=4096)
def _place_der(kind: CaKind, crl_uri: str, prefecture: str, municipality: str) -> tuple[bytes, bytes]:
    """:func:`_place_parts` DER-encoded: the subject's RDNs before the common name, and the CRL
    distribution points Extension."""
    prefix, cdp = _place_parts(kind, crl_uri, prefecture, municipality)
    return _content(x509.Name(list(prefix)).public_bytes()), _raw_der(cdp)


def end_entity_der(req: EndEntityRequest, ca_cert: x509.Certificate, signer: Signer, urls: CaUrls,
                   ca_der: bytes | None = None) -> bytes:
    """The DER of :func:`end_entity_certificate`, the to-be-signed part written directly from parts encoded
    once per CA and municipality (issuance speed: byte for byte what ``cryptography``'s builder writes,
    tested against it), signed by ``signer``."""
    kind = req.kind
    if (kind is CaKind.SIGN) != (req.facts is not None):
        raise ValueError("a signing certificate carries the basic four facts; an authentication one none")
    key = req.public_key
    if key.key_size != 2048 or key.public_numbers().e != 65537:
        raise ValueError("card keys are RSA-2048 with e = 65537")
    parts = _issuer_parts(kind, ca_der or ca_cert.public_bytes(serialization.Encoding.DER), urls)
    prefix, cdp = _place_der(kind, urls.crl, req.prefecture, req.municipality)
    subject = prefix + _tlv(0x31, _tlv(0x30, _CN_OID + _tlv(0x0C, req.common_name.encode())))
    san = (_extension_der(x509.SubjectAlternativeName.oid, False, _facts_san_value(req.facts))
           if req.facts is not None else b"")
    extensions = (parts.head_der + san + parts.ian_der + cdp + parts.tail_der
                  + _extension_der(x509.SubjectKeyIdentifier.oid, False, _ski_value(key)))
    tbs = _tlv(0x30, b"".join((
        _VERSION_3, _integer_der(req.serial), _SHA256_WITH_RSA, parts.issuer_der,
        _tlv(0x30, _time_der(req.not_before) + _time_der(req.not_after)), _tlv(0x30, subject),
        key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo),
        _tlv(0xA3, _tlv(0x30, extensions)))))
    return _tlv(0x30, tbs + _SHA256_WITH_RSA + _tlv(0x03, b"\x00" + signer.sign(tbs)))


def end_entity_certificate(req: EndEntityRequest, ca_cert: x509.Certificate, signer: Signer,
                           urls: CaUrls, ca_der: bytes | None = None) -> x509.Certificate:
    """A signing (署名用) or authentication (利用者証明用) certificate from the chip's public key.

    Extensions, in order: keyUsage (critical), certificatePolicies (critical), subjectAltName (signing only),
    issuerAltName, cRLDistributionPoints, freshestCRL, authorityInformationAccess, authorityKeyIdentifier,
    subjectKeyIdentifier. Written by :func:`end_entity_der`.
    """
    return x509.load_der_x509_certificate(end_entity_der(req, ca_cert, signer, urls, ca_der))


def _end_entity_by_builder(req: EndEntityRequest, ca_cert: x509.Certificate, signer: Signer,
                           urls: CaUrls, ca_der: bytes | None = None) -> x509.Certificate:
    """The same certificate from ``cryptography``'s builder and its objects: the reference that
    :func:`end_entity_der` matches byte for byte (tests)."""
    kind = req.kind
    if (kind is CaKind.SIGN) != (req.facts is not None):
        raise ValueError("a signing certificate carries the basic four facts; an authentication one none")
    if req.public_key.key_size != 2048 or req.public_key.public_numbers().e != 65537:
        raise ValueError("card keys are RSA-2048 with e = 65537")
    parts = _issuer_parts(kind, ca_der or ca_cert.public_bytes(serialization.Encoding.DER), urls)
    prefix, cdp = _place_parts(kind, urls.crl, req.prefecture, req.municipality)
    extensions = list(parts.head)
    if req.facts is not None:
        extensions.append(_facts_san(req.facts))
    extensions += [parts.ian, cdp, *parts.tail, _subject_key_identifier(req.public_key)]
    builder = x509.CertificateBuilder(
        issuer_name=parts.issuer,
        subject_name=x509.Name([*prefix, x509.RelativeDistinguishedName(
            [x509.NameAttribute(NameOID.COMMON_NAME, req.common_name)])]),
        public_key=req.public_key, serial_number=req.serial, not_valid_before=req.not_before,
        not_valid_after=req.not_after, extensions=extensions)
    return signer.sign_certificate(builder)


def ocsp_responder_certificate(kind: CaKind, generation: int, responder_key: rsa.RSAPublicKey,
                               ca_cert: x509.Certificate, signer: Signer, serial: int, not_before: datetime,
                               not_after: datetime) -> x509.Certificate:
    """The delegated OCSP responder of one CA generation (RFC 6960 §4.2.2.2): issued by that CA, with
    id-kp-OCSPSigning and id-pkix-ocsp-nocheck."""
    name = x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "JPKI"),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, _OU[kind]),
        x509.NameAttribute(NameOID.COMMON_NAME, f"JPKI OCSP Responder {kind.value} G{generation}"),
    ])
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        x509.CertificateBuilder().subject_name(name).issuer_name(ca_cert.subject).public_key(responder_key)
        .serial_number(serial).not_valid_before(not_before).not_valid_after(not_after)
        .add_extension(_AUTH_KEY_USAGE, critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False)
        .add_extension(x509.OCSPNoCheck(), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(responder_key), critical=False)
    )
    return signer.sign_certificate(builder)


def read_signing_facts(cert: x509.Certificate) -> SigningFacts | None:
    """The basic four facts from a signing certificate's subjectAltName, or None if it carries none."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    by_oid = {oid: name for name, oid in FACT_OIDS.items()}
    values: dict[str, str] = {}
    for other in san.get_values_for_type(x509.OtherName):
        field = by_oid.get(other.type_id)
        if field is not None:
            values[field] = str(core.UTF8String.load(other.value).native)
    if set(values) != set(FACT_OIDS):
        return None
    return SigningFacts(**values)
