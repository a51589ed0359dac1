"""Card authentication at the certificate issuance centre, behind narrow interfaces.

The flow (operations-and-incidents.md §3.3–3.4): the kiosk asks the centre for a single-use challenge; the
resident enters the 4-digit PIN; the card (not the kiosk, not the centre) checks the PIN and counts the tries,
then signs the challenge with the key of its authentication certificate (利用者証明用電子証明書); the centre
checks the signature, the chain, the validity period and the revocation status (OCSP), and maps the
certificate to a resident.

* :class:`~mynacard.jpki.card_auth.CardAuthenticator` — certificate + challenge + signature → the certificate's
  serial, or a :class:`~mynacard.jpki.card_auth.CardRefused` (revoked, expired, bad signature, unknown). The
  protocol and its production implementation (:class:`~mynacard.jpki.card_auth.JpkiCardAuthenticator`, over
  the relying-party SDK) are JPKI's, shared with Mynaportal; :func:`authenticate_card` is how the centre asks,
  turning a refusal into the kiosk's :class:`~mynacard.kiosk.model.Refused`. :class:`X509CardAuthenticator`
  is the test stand-in's implementation: ``cryptography`` against given roots and an OCSP responder reached
  through any :data:`OcspTransport`, with P-256 keys too (the storm and the benchmark need 1,000 cards).
* :class:`HolderDirectory` — certificate serial → resident (J-LIS keeps serial ↔ 住民票コード).
* :class:`KioskCard` — what the kiosk needs from a card; :class:`WrongPin` and :class:`PinBlocked` are how a
  card refuses (the chip part's ``CardClient`` is adapted to this).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509 import ocsp

from mynacard.jpki.card_auth import AuthenticatedCard, CardAuthenticator, CardRefusal, CardRefused
from mynacard.kiosk.model import RefusalReason, Refused

__all__ = [
    "AUTH_POLICY",
    "AuthenticatedCard",
    "CardAuthenticator",
    "HolderDirectory",
    "KioskCard",
    "OcspTransport",
    "PinBlocked",
    "WrongPin",
    "X509CardAuthenticator",
    "authenticate_card",
    "verify_card_signature",
]

AUTH_POLICY = x509.ObjectIdentifier("1.2.392.200149.8.5.1.3.30")
"""JPKI authentication certificate policy (jpki-technical.md §3.4)."""
OCSP_SKEW = timedelta(minutes=5)


_REASONS = {
    CardRefusal.CERTIFICATE_REVOKED: RefusalReason.CERTIFICATE_REVOKED,
    CardRefusal.CERTIFICATE_EXPIRED: RefusalReason.CERTIFICATE_EXPIRED,
    CardRefusal.BAD_SIGNATURE: RefusalReason.BAD_SIGNATURE,
}


def authenticate_card(authenticator: CardAuthenticator, certificate: bytes, challenge: bytes, signature: bytes,
                      now: datetime) -> AuthenticatedCard:
    """``authenticator.authenticate``, its refusal as the kiosk's :class:`Refused` (CERTIFICATE_REVOKED,
    CERTIFICATE_EXPIRED, BAD_SIGNATURE, else UNKNOWN_CERTIFICATE; the detail at most 200 characters)."""
    try:
        return authenticator.authenticate(certificate, challenge, signature, now)
    except CardRefused as exc:
        detail = exc.detail[:200] if exc.detail else None
        raise Refused(_REASONS.get(exc.reason, RefusalReason.UNKNOWN_CERTIFICATE), detail) from None


class HolderDirectory(Protocol):
    """Certificate serial → resident id (None when the serial is not known)."""

    def resident_for(self, serial: int, now: datetime) -> int | None: ...


class WrongPin(Refused):
    """The card refused the PIN; it has ``tries_left`` more before it blocks."""

    def __init__(self, tries_left: int) -> None:
        super().__init__(RefusalReason.WRONG_PIN, f"{tries_left} tries left")
        self.tries_left = tries_left


class PinBlocked(Refused):
    """The PIN is blocked: only the municipal window can reset it."""

    def __init__(self) -> None:
        super().__init__(RefusalReason.PIN_BLOCKED)


class KioskCard(Protocol):
    """A My Number Card on the kiosk's reader, as the kiosk uses it."""

    def read_auth_certificate(self) -> bytes:
        """The authentication certificate (DER); readable without a PIN."""
        ...

    def sign_challenge(self, pin: str, challenge: bytes) -> bytes:
        """VERIFY the 4-digit authentication PIN, then sign SHA-256(challenge) with the authentication key.
        Raises :class:`WrongPin` (with the tries left) or :class:`PinBlocked`; the card counts the tries."""
        ...


OcspTransport = Callable[[bytes], bytes]
"""Sends a DER OCSP request to the responder and returns the DER response (raises ``OSError`` when
unreachable)."""


def verify_card_signature(cert: x509.Certificate, challenge: bytes, signature: bytes) -> bool:
    key = cert.public_key()
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, challenge, padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, challenge, ec.ECDSA(hashes.SHA256()))
        else:
            return False
    except (InvalidSignature, ValueError):
        return False
    return True


class X509CardAuthenticator:
    """Validates an authentication certificate against trusted roots (one tier, as JPKI) and its status
    with a signed, nonce-bound OCSP response; then the card's signature over the challenge."""

    def __init__(self, roots: list[x509.Certificate], ocsp_transport: OcspTransport,
                 policy: x509.ObjectIdentifier | None = AUTH_POLICY) -> None:
        if not roots:
            raise ValueError("at least one trusted root is needed")
        self.roots = roots
        self.transport = ocsp_transport
        self.policy = policy

    def _issuer(self, cert: x509.Certificate) -> x509.Certificate | None:
        for root in self.roots:
            if root.subject != cert.issuer:
                continue
            try:
                cert.verify_directly_issued_by(root)
            except (ValueError, TypeError, InvalidSignature):
                continue
            return root
        return None

    def _usable(self, cert: x509.Certificate) -> bool:
        try:
            usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
            if not usage.digital_signature:
                return False
            if self.policy is not None:
                policies = cert.extensions.get_extension_for_class(x509.CertificatePolicies).value
                if not any(p.policy_identifier == self.policy for p in policies):
                    return False
        except x509.ExtensionNotFound:
            return False
        return True

    def _status(self, cert: x509.Certificate, issuer: x509.Certificate, now: datetime) -> CardRefusal | None:
        nonce = secrets.token_bytes(16)
        request = (ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1())
                   .add_extension(x509.OCSPNonce(nonce), critical=False).build())
        try:
            raw = self.transport(request.public_bytes(serialization.Encoding.DER))
            response = ocsp.load_der_ocsp_response(raw)
        except (OSError, ValueError):
            return CardRefusal.UNKNOWN_CERTIFICATE
        if response.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
            return CardRefusal.UNKNOWN_CERTIFICATE
        try:
            signer = issuer
            if response.certificates:  # a delegated responder, issued by the CA for OCSP signing
                signer = response.certificates[0]
                signer.verify_directly_issued_by(issuer)
                eku = signer.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
                if x509.oid.ExtendedKeyUsageOID.OCSP_SIGNING not in eku:
                    return CardRefusal.UNKNOWN_CERTIFICATE
            key = signer.public_key()
            if not isinstance(key, rsa.RSAPublicKey):
                return CardRefusal.UNKNOWN_CERTIFICATE
            if response.signature_hash_algorithm is None:
                return CardRefusal.UNKNOWN_CERTIFICATE
            key.verify(response.signature, response.tbs_response_bytes, padding.PKCS1v15(),
                       response.signature_hash_algorithm)
            got = response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
        except (InvalidSignature, ValueError, TypeError, x509.ExtensionNotFound):
            return CardRefusal.UNKNOWN_CERTIFICATE
        if got != nonce or response.serial_number != cert.serial_number:
            return CardRefusal.UNKNOWN_CERTIFICATE
        if response.this_update_utc > now + OCSP_SKEW or (
                response.next_update_utc is not None and response.next_update_utc < now - OCSP_SKEW):
            return CardRefusal.UNKNOWN_CERTIFICATE
        if response.certificate_status is ocsp.OCSPCertStatus.REVOKED:
            return CardRefusal.CERTIFICATE_REVOKED
        if response.certificate_status is not ocsp.OCSPCertStatus.GOOD:
            return CardRefusal.UNKNOWN_CERTIFICATE
        return None

    def authenticate(self, certificate: bytes, challenge: bytes, signature: bytes,
                     now: datetime) -> AuthenticatedCard:
        try:
            cert = x509.load_der_x509_certificate(certificate)
        except ValueError:
            raise CardRefused(CardRefusal.UNKNOWN_CERTIFICATE, ("not a certificate",)) from None
        issuer = self._issuer(cert)
        if issuer is None or not self._usable(cert):
            raise CardRefused(CardRefusal.UNKNOWN_CERTIFICATE)
        if now > cert.not_valid_after_utc:
            raise CardRefused(CardRefusal.CERTIFICATE_EXPIRED)
        if now < cert.not_valid_before_utc:
            raise CardRefused(CardRefusal.UNKNOWN_CERTIFICATE, ("not yet valid",))
        if not verify_card_signature(cert, challenge, signature):
            raise CardRefused(CardRefusal.BAD_SIGNATURE)
        problem = self._status(cert, issuer, now)
        if problem is not None:
            raise CardRefused(problem)
        from hashlib import sha256

        return AuthenticatedCard(cert.serial_number, cert.not_valid_after_utc, sha256(certificate).hexdigest())
