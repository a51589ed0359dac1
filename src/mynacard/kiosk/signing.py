"""PAdES signatures on certificates: the document-signing CA, each municipality's signing certificate, the
signer (a CMS signature container as pyHanko makes it, put in the slot the renderer left for it) and the
validator (pyHanko, against the municipality's chain).

In production the document-signing hierarchy is LGPKI (地方公共団体組織認証基盤) and the key is the mayor's
office certificate (職責証明書) in an HSM; here the CA is generated at first use and keys are kept sealed
(AES-GCM) in the database. Everything cryptographic is done by ``cryptography`` and pyHanko.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import io
import re
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, TypeVar

from asn1crypto import algos, cms
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import signers
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.registry import SimpleCertificateStore

T = TypeVar("T")

__all__ = [
    "AUTHORITY_NAME",
    "DocumentSigner",
    "SignatureCheck",
    "SignatureSlot",
    "new_authority",
    "new_signing_certificate",
    "validate_pdf",
]

AUTHORITY_NAME = "mynacard Document Signing CA (LGPKI stand-in)"
_AUTHORITY_YEARS = 10
_SIGNING_YEARS = 3
_RESERVED = 12288
"""Hex digits reserved in the PDF for the CMS signature: 6 kB of DER (a 2048-bit signature and two certificates
fit)."""
_BYTE_RANGE_BLANK = b"/ByteRange [0 0 0 0]" + b" " * 36
"""Room for ``[0 a b c]`` with three ten-digit offsets; what is left over stays spaces."""
_CONTENTS_BLANK = b"/Contents <" + b"0" * _RESERVED + b">"
_SLOT = re.compile(re.escape(b"\n" + _BYTE_RANGE_BLANK + b"\n" + _CONTENTS_BLANK + b"\n>>"))


def _run(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run one of pyHanko's coroutines to completion in an event loop of its own — in this thread, or, when
    this thread already runs a loop (an async web route, a Playwright session), in a helper thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        loop = asyncio.new_event_loop()
        try:
            return loop.run_until_complete(factory())
        finally:
            loop.close()
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: _run(factory)).result()


def _name(common: str, organisation: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COUNTRY_NAME, "JP")]
    if organisation:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common))
    return x509.Name(attrs)


def new_authority(now: datetime, name: str = AUTHORITY_NAME) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    """A self-signed document-signing root, valid for ten years from ``now``."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = _name(name, "mynacard")
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(hours=1)).not_valid_after(now + timedelta(days=365 * _AUTHORITY_YEARS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False, key_agreement=False,
                                         key_cert_sign=True, crl_sign=True, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(ski, critical=False)
            .sign(key, hashes.SHA256()))
    return cert, key


def new_signing_certificate(authority: x509.Certificate, authority_key: rsa.RSAPrivateKey,
                            municipality_full_name: str, municipality_code: str,
                            now: datetime) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    """The mayor's document-signing certificate (e.g. CN=東京都千代田区長, O=東京都千代田区)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, municipality_full_name),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, f"証明発行サーバ {municipality_code}"),
        x509.NameAttribute(NameOID.COMMON_NAME, f"{municipality_full_name}長"),
    ])
    not_after = min(now + timedelta(days=365 * _SIGNING_YEARS), authority.not_valid_after_utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(authority.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(hours=1)).not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=True,
                                         key_encipherment=False, data_encipherment=False, key_agreement=False,
                                         key_cert_sign=False, crl_sign=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(authority_key.public_key()),
                           critical=False)
            .sign(authority_key, hashes.SHA256()))
    return cert, key


class _LoadedKeySigner(signers.Signer):
    """A pyHanko signer over a key already loaded by ``cryptography`` (pyHanko's SimpleSigner re-parses and
    re-validates the RSA key on every signature, which costs more than the signature itself)."""

    def __init__(self, key: rsa.RSAPrivateKey, cert_der: bytes, chain_der: list[bytes]) -> None:
        # Roots are never embedded: only the chain's intermediates go in the registry, chosen by DocumentSigner.
        # The mechanism is given: pyHanko would otherwise parse the certificate's key to find it.
        super().__init__(embed_roots=True, signing_cert=asn1_x509.Certificate.load(cert_der),
                         signature_mechanism=algos.SignedDigestAlgorithm({"algorithm": "sha256_rsa"}),
                         cert_registry=SimpleCertificateStore.from_certs(
                             [asn1_x509.Certificate.load(c) for c in chain_der]))
        self._key = key

    async def async_sign_raw(self, data: bytes, digest_algorithm: str, dry_run: bool = False) -> bytes:
        if digest_algorithm != "sha256":
            raise ValueError("only SHA-256 is used for certificates")
        return self._key.sign(data, padding.PKCS1v15(), hashes.SHA256())


@dataclass(frozen=True)
class _ContainerTemplate:
    """A CMS signature container (SignedData) by pyHanko, as the template of the next ones by the same key.

    For one certificate two containers differ only in the message digest (32 bytes, inside the signed
    attributes) and the signature value over those attributes (256 bytes for RSA-2048); everything else —
    content type, ESS signing-certificate-v2, the certificates, the algorithms, every length — is the same. So
    the next container is this one's DER with the two replaced, and the signature made by ``cryptography``
    over the attributes encoded as a SET OF (RFC 5652 §5.4). PKCS #1 v1.5 is deterministic: for the same digest
    the template gives pyHanko's bytes exactly (tested), at a tenth of asn1crypto's cost of assembling them."""

    der: bytes
    attrs_at: int
    attrs: bytes
    """The signed attributes as they stand in the SignerInfo ([0] IMPLICIT)."""
    digest_at: int
    """Where the message digest is within ``attrs``."""
    signature_at: int
    signature_length: int

    @classmethod
    def of(cls, container: cms.ContentInfo, digest: bytes) -> _ContainerTemplate:
        der = container.dump()
        info = container["content"]["signer_infos"][0]
        attrs = info["signed_attrs"].dump()
        signature = info["signature"].native
        for part, whole in ((attrs, der), (digest, attrs), (signature, der)):
            if whole.count(part) != 1:
                raise ValueError("the container's variable parts are not where a template needs them")
        made = cls(der, der.index(attrs), attrs, attrs.index(digest), der.index(signature), len(signature))
        if not made.attrs_at + len(attrs) <= made.signature_at:
            raise ValueError("the signature value precedes the signed attributes")
        return made

    def fill(self, digest: bytes, key: rsa.RSAPrivateKey) -> bytes:
        if len(digest) != 32:
            raise ValueError("a SHA-256 digest is 32 bytes")
        attrs = self.attrs[:self.digest_at] + digest + self.attrs[self.digest_at + len(digest):]
        signature = key.sign(b"\x31" + attrs[1:], padding.PKCS1v15(), hashes.SHA256())
        if len(signature) != self.signature_length:
            raise ValueError("the signature's length differs from the template's")
        der, attrs_end = self.der, self.attrs_at + len(attrs)
        return b"".join((der[:self.attrs_at], attrs, der[attrs_end:self.signature_at], signature,
                         der[self.signature_at + self.signature_length:]))


_JST = timezone(timedelta(hours=9))


def _text(value: str) -> bytes:
    """A PDF text string: UTF-16BE with its byte order mark, written in hex (nothing to escape)."""
    return b"<" + (b"\xfe\xff" + value.encode("utf-16-be")).hex().encode() + b">"


@dataclass(frozen=True)
class SignatureSlot:
    """The signature dictionary (署名辞書) a certificate is rendered with: PAdES's entries, with the byte range
    and the CMS container left blank for :meth:`DocumentSigner.sign` to fill in place.

    The renderer writes it (with the invisible signature field that points at it) in the document's only
    revision; signing then changes no byte outside the two blanks. pyHanko's signer, which read the whole
    file back and wrote an incremental update after it, cost 5–8 ms a certificate against the RSA signature's
    0.8 ms."""

    reason: str
    location: str
    signed_at: datetime
    """``/M``, the signing time (PAdES keeps it out of the signed attributes)."""

    def dictionary(self) -> bytes:
        when = self.signed_at.astimezone(_JST)
        return b"\n".join([
            b"<<", b"/Type /Sig", b"/Filter /Adobe.PPKLite", b"/SubFilter /ETSI.CAdES.detached",
            b"/M " + when.strftime("(D:%Y%m%d%H%M%S+09'00')").encode(), b"/Reason " + _text(self.reason),
            b"/Location " + _text(self.location), _BYTE_RANGE_BLANK, _CONTENTS_BLANK, b">>"])


class DocumentSigner:
    """Signs certificates for one municipality (PAdES B-B, SHA-256, RSA-2048)."""

    def __init__(self, key: rsa.RSAPrivateKey, certificate: x509.Certificate,
                 chain: list[x509.Certificate]) -> None:
        self.certificate = certificate
        self.chain = chain
        self._key = key
        self._cert_der = certificate.public_bytes(serialization.Encoding.DER)
        # roots are not embedded (the verifier has them), nor the signing certificate a second time
        self._chain_der = [c.public_bytes(serialization.Encoding.DER) for c in chain
                           if c.subject != c.issuer and c != certificate]
        self._template: _ContainerTemplate | None = None
        """The first container, the template of the rest (made once; threads that race each make one)."""

    def container(self, digest: bytes) -> bytes:
        """The DER of the CMS signature container over a document's SHA-256 ``digest`` (PAdES: no signing time
        among the signed attributes)."""
        template = self._template
        if template is not None:
            return template.fill(digest, self._key)
        signer = _LoadedKeySigner(self._key, self._cert_der, self._chain_der)
        made = _run(lambda: signer.async_sign(digest, "sha256", use_pades=True))
        self._template = _ContainerTemplate.of(made, digest)
        return bytes(made.dump())

    def sign(self, pdf: bytes) -> bytes:
        """Fill the PDF's :class:`SignatureSlot`: the byte range first (it is signed too), then the CMS
        container over the SHA-256 of every byte but the container's own."""
        slots = list(_SLOT.finditer(pdf))
        if len(slots) != 1:
            raise ValueError(f"the PDF has {len(slots)} blank signature slots, not one")
        start = slots[0].start() + len(_BYTE_RANGE_BLANK) + 2 + len(b"/Contents ")  # the container's "<"
        end = start + _RESERVED + 2  # after its ">"
        signed = bytearray(pdf)
        byte_range = b"/ByteRange [0 %d %d %d]" % (start, end, len(pdf) - end)
        at = slots[0].start() + 1
        signed[at:at + len(_BYTE_RANGE_BLANK)] = byte_range.ljust(len(_BYTE_RANGE_BLANK))
        digest = hashlib.sha256(memoryview(signed)[:start])
        digest.update(memoryview(signed)[end:])
        container = self.container(digest.digest()).hex()
        if len(container) > _RESERVED:
            raise ValueError("the signature does not fit the room reserved for it")
        signed[start + 1:start + 1 + len(container)] = container.encode()
        return bytes(signed)


@dataclass(frozen=True)
class SignatureCheck:
    """What pyHanko found in a certificate PDF."""

    signed: bool
    intact: bool
    """The signed bytes are unchanged (the digest matches)."""
    valid: bool
    """The signature value verifies with the signer's key."""
    trusted: bool
    """The signer chains to one of the trusted roots."""
    whole_file: bool
    """The signature covers the entire file (nothing appended after signing)."""
    signer: str | None = None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.signed and self.intact and self.valid and self.trusted and self.whole_file


def validate_pdf(pdf: bytes, trust_roots: list[bytes], moment: datetime | None = None) -> SignatureCheck:
    """Validate the certificate's signature with pyHanko against ``trust_roots`` (DER)."""
    from pyhanko.sign.validation import async_validate_pdf_signature
    from pyhanko.sign.validation.errors import SignatureValidationError
    from pyhanko.sign.validation.status import SignatureCoverageLevel

    try:
        reader = PdfFileReader(io.BytesIO(pdf), strict=False)
        signatures = reader.embedded_signatures
    except Exception as exc:
        return SignatureCheck(False, False, False, False, False, problem=f"unreadable PDF ({type(exc).__name__})")
    if len(signatures) != 1:
        return SignatureCheck(False, False, False, False, False, problem=f"{len(signatures)} signatures")
    kwargs: dict[str, Any] = {"trust_roots": [asn1_x509.Certificate.load(r) for r in trust_roots],
                              "allow_fetching": False, "revocation_mode": "soft-fail"}
    if moment is not None:
        kwargs["moment"] = moment.astimezone(UTC)
    try:
        context = ValidationContext(**kwargs)
        status = _run(lambda: async_validate_pdf_signature(signatures[0], context))
    except (SignatureValidationError, ValueError, KeyError) as exc:
        return SignatureCheck(True, False, False, False, False, problem=f"{type(exc).__name__}: {exc}")
    signer = status.signing_cert.subject.human_friendly if status.signing_cert is not None else None
    return SignatureCheck(True, bool(status.intact), bool(status.valid), bool(status.trusted),
                          status.coverage == SignatureCoverageLevel.ENTIRE_FILE, signer)
