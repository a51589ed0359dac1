"""The relying-party SDK: check a signature or a login made with a My Number Card.

For the kiosk, Mynaportal and private services alike:

- :meth:`RelyingParty.verify_signature` — a raw RSASSA-PKCS1-v1_5 signature (what the card's
  ``COMPUTE DIGITAL SIGNATURE`` returns over a DigestInfo) with the signer's certificate;
- :meth:`RelyingParty.verify_cms_detached` — a CMS/PKCS#7 detached ``SignedData`` (RFC 5652);
- :meth:`RelyingParty.issue_challenge` / :meth:`RelyingParty.verify_login` — challenge-response login with
  the authentication certificate: the challenge is random, single-use and expires.

Each check walks the one-tier chain to a JPKI root (any generation, selected by signature, not by name),
the validity period, key usage and policy for the purpose, and the revocation status from a
:class:`StatusSource`: the OCSP responder over HTTP (:class:`OcspStatusSource`, for remote services), CRLs
(:class:`CrlStatusSource`), or the CA database in-process (:meth:`RelyingParty.for_service`). The result says
who signed; the basic four facts only when the relying party is a signature verifier.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

import httpx
from asn1crypto import cms
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.x509 import ocsp as x509_ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

from mynacard.jpki.model import CHALLENGE_BYTES, CHALLENGE_TTL, CaKind, Purpose, SigningFacts
from mynacard.jpki.profiles import AUTH_POLICY, SIGN_POLICY, ca_name, read_signing_facts

if TYPE_CHECKING:
    from mynacard.context import Context
    from mynacard.principal import Principal

__all__ = [
    "Challenge",
    "ChallengeStore",
    "CrlStatusSource",
    "MemoryChallengeStore",
    "OcspStatusSource",
    "RelyingParty",
    "RevocationInfo",
    "ServiceRelyingParty",
    "SignerIdentity",
    "StatusSource",
    "TrustStore",
    "Verification",
]

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1, "sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512}
_CLOCK_SKEW = timedelta(minutes=5)


def _load_certificate(value: bytes | x509.Certificate) -> x509.Certificate:
    if isinstance(value, x509.Certificate):
        return value
    try:
        if value.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(value)
        return x509.load_der_x509_certificate(value)
    except ValueError:
        raise ValueError("not an X.509 certificate") from None


class TrustStore:
    """The JPKI roots a relying party trusts: every generation of the signing and authentication CAs."""

    def __init__(self, roots: Iterable[bytes | x509.Certificate]) -> None:
        self.roots: list[tuple[CaKind, x509.Certificate]] = []
        names = {kind: ca_name(kind) for kind in CaKind}
        for value in roots:
            cert = _load_certificate(value)
            kind = next((k for k, n in names.items() if cert.subject == n), None)
            if kind is None:
                continue  # not a JPKI root (a link certificate or something else): ignored
            try:
                if cert.issuer != cert.subject:
                    continue
                cert.verify_directly_issued_by(cert)
                constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
            except (ValueError, TypeError, InvalidSignature, x509.ExtensionNotFound):
                continue
            if constraints.ca:
                self.roots.append((kind, cert))
        if not self.roots:
            raise ValueError("no JPKI root certificate among the trust anchors")

    @classmethod
    def from_pem(cls, data: bytes | str) -> TrustStore:
        raw = data.encode() if isinstance(data, str) else data
        return cls(x509.load_pem_x509_certificates(raw))

    def issuer_of(self, cert: x509.Certificate) -> tuple[CaKind, x509.Certificate] | None:
        """The root whose key signed ``cert`` (roots of several generations share one name)."""
        for kind, root in self.roots:
            if root.subject != cert.issuer:
                continue
            try:
                cert.verify_directly_issued_by(root)
            except (ValueError, TypeError, InvalidSignature):
                continue
            return kind, root
        return None


@dataclass(frozen=True)
class RevocationInfo:
    """A certificate's revocation status as a :class:`StatusSource` found it."""

    status: str
    """``good``, ``revoked`` or ``unknown`` (no answer could be had: treated as not valid)."""
    revoked_at: datetime | None = None
    reason: str | None = None
    source: str = ""
    detail: str | None = None


class StatusSource(Protocol):
    """Where revocation information comes from."""

    def status(self, cert: x509.Certificate, issuer: x509.Certificate, now: datetime) -> RevocationInfo: ...


@dataclass(frozen=True)
class SignerIdentity:
    """Who signed, or who logged in."""

    kind: CaKind
    serial: int
    subject_cn: str
    not_before: datetime
    not_after: datetime
    issuer_fingerprint: str
    """SHA-256 of the root (the CA generation) that issued the certificate."""
    facts: SigningFacts | None = None
    """The basic four facts — only for signature verifiers, only from a signing certificate."""

    @property
    def serial_hex(self) -> str:
        return f"{self.serial:X}"


@dataclass(frozen=True)
class Verification:
    """The outcome of a check. ``valid`` is true only when there are no problems."""

    valid: bool
    problems: tuple[str, ...]
    signer: SignerIdentity | None = None
    revocation: RevocationInfo | None = None
    signing_time: datetime | None = None
    """From a CMS signature's signed attributes, when present (claimed by the signer, not proven)."""


@dataclass(frozen=True)
class Challenge:
    id: str
    nonce: bytes
    expires_at: datetime


class ChallengeStore(Protocol):
    def issue(self, now: datetime) -> Challenge: ...

    def consume(self, challenge_id: str, now: datetime) -> bytes:
        """The challenge's bytes, once; raises ``ValueError`` when unknown, used or expired."""
        ...


class MemoryChallengeStore:
    """Challenges kept in this process (for a single-process service; use a shared store otherwise)."""

    def __init__(self, ttl: timedelta = CHALLENGE_TTL, limit: int = 100000) -> None:
        self._ttl = ttl
        self._limit = limit
        self._items: dict[str, tuple[bytes, datetime]] = {}
        self._lock = threading.Lock()

    def issue(self, now: datetime) -> Challenge:
        challenge = Challenge(secrets.token_urlsafe(24), secrets.token_bytes(CHALLENGE_BYTES), now + self._ttl)
        with self._lock:
            if len(self._items) >= self._limit:
                for key in [k for k, (_, until) in self._items.items() if until <= now]:
                    del self._items[key]
                if len(self._items) >= self._limit:
                    raise ValueError("too many open challenges")
            self._items[challenge.id] = (challenge.nonce, challenge.expires_at)
        return challenge

    def consume(self, challenge_id: str, now: datetime) -> bytes:
        with self._lock:
            item = self._items.pop(challenge_id, None)
        if item is None or item[1] <= now:
            raise ValueError("unknown, used or expired challenge")
        return item[0]


class OcspStatusSource:
    """Revocation status from the JPKI OCSP responder, with a nonce; the response's signature, its
    delegation (a responder certificate issued by the same CA key for OCSP signing) and its times are
    checked before it is believed."""

    def __init__(self, url: str, api_key: str | None = None, *, client: httpx.Client | None = None,
                 timeout: float = 5.0) -> None:
        self.url = url
        self._headers = {"Content-Type": "application/ocsp-request"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._client = client or httpx.Client(timeout=timeout)

    def status(self, cert: x509.Certificate, issuer: x509.Certificate, now: datetime) -> RevocationInfo:
        nonce = secrets.token_bytes(16)
        request = (x509_ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1())
                   .add_extension(x509.OCSPNonce(nonce), critical=False).build())
        try:
            reply = self._client.post(self.url, content=request.public_bytes(serialization.Encoding.DER),
                                      headers=self._headers)
        except httpx.HTTPError as exc:
            return RevocationInfo("unknown", source="ocsp", detail=f"responder unreachable ({type(exc).__name__})")
        if reply.status_code != 200:
            return RevocationInfo("unknown", source="ocsp", detail=f"responder answered HTTP {reply.status_code}")
        try:
            response = x509_ocsp.load_der_ocsp_response(reply.content)
        except ValueError:
            return RevocationInfo("unknown", source="ocsp", detail="not an OCSP response")
        if response.response_status is not x509_ocsp.OCSPResponseStatus.SUCCESSFUL:
            return RevocationInfo("unknown", source="ocsp",
                                  detail=f"responder refused: {response.response_status.name}")
        problem = _check_ocsp_response(response, cert, issuer, nonce, now)
        if problem:
            return RevocationInfo("unknown", source="ocsp", detail=problem)
        if response.certificate_status is x509_ocsp.OCSPCertStatus.GOOD:
            return RevocationInfo("good", source="ocsp")
        if response.certificate_status is x509_ocsp.OCSPCertStatus.REVOKED:
            reason = response.revocation_reason
            return RevocationInfo("revoked", response.revocation_time_utc,
                                  _reason_name(reason.name) if reason else None, source="ocsp")
        return RevocationInfo("unknown", source="ocsp", detail="the responder does not know this certificate")


def _reason_name(snake: str) -> str:
    head, *rest = snake.split("_")
    name = head + "".join(p.capitalize() for p in rest)
    return {"cACompromise": "cACompromise", "caCompromise": "cACompromise"}.get(name, name)


def _check_ocsp_response(response: x509_ocsp.OCSPResponse, cert: x509.Certificate, issuer: x509.Certificate,
                         nonce: bytes, now: datetime) -> str | None:
    if response.serial_number != cert.serial_number:
        return "the response is about another certificate"
    try:
        sent = response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
    except x509.ExtensionNotFound:
        return "the response carries no nonce"
    if sent != nonce:
        return "the response's nonce is not ours (a replay?)"
    signer = _ocsp_signer(response, issuer, now)
    if signer is None:
        return "the response is not signed by this CA or its delegated responder"
    algorithm = response.signature_hash_algorithm
    if algorithm is None:
        return "unsupported response signature"
    try:
        key = signer.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            return "unsupported responder key"
        key.verify(response.signature, response.tbs_response_bytes, padding.PKCS1v15(), algorithm)
    except InvalidSignature:
        return "the response's signature does not verify"
    if response.this_update_utc > now + _CLOCK_SKEW:
        return "the response is from the future"
    if response.next_update_utc is not None and response.next_update_utc < now - _CLOCK_SKEW:
        return "the response is stale"
    return None


def _ocsp_signer(response: x509_ocsp.OCSPResponse, issuer: x509.Certificate,
                 now: datetime) -> x509.Certificate | None:
    candidates = [issuer, *response.certificates]
    for candidate in candidates:
        if response.responder_key_hash is not None:
            ski = x509.SubjectKeyIdentifier.from_public_key(candidate.public_key())
            if ski.digest != response.responder_key_hash:
                continue
        elif response.responder_name != candidate.subject:
            continue
        if candidate is issuer:
            return issuer
        try:
            candidate.verify_directly_issued_by(issuer)
            eku = candidate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except (ValueError, TypeError, InvalidSignature, x509.ExtensionNotFound):
            continue
        if ExtendedKeyUsageOID.OCSP_SIGNING in eku and \
                candidate.not_valid_before_utc <= now <= candidate.not_valid_after_utc:
            return candidate
    return None


class CrlStatusSource:
    """Revocation status from CRLs (full, plus deltas on it) a relying party fetched itself."""

    def __init__(self, crls: Sequence[bytes]) -> None:
        self.crls = []
        for data in crls:
            try:
                self.crls.append(x509.load_der_x509_crl(data) if not data.lstrip().startswith(b"-----")
                                 else x509.load_pem_x509_crl(data))
            except ValueError:
                continue

    def status(self, cert: x509.Certificate, issuer: x509.Certificate, now: datetime) -> RevocationInfo:
        key = issuer.public_key()
        usable = []
        for crl in self.crls:
            if crl.issuer != issuer.subject or not crl.is_signature_valid(key):  # type: ignore[arg-type]
                continue
            if crl.next_update_utc is not None and crl.next_update_utc < now - _CLOCK_SKEW:
                continue
            usable.append(crl)
        fulls = [c for c in usable if not _is_delta(c)]
        if not fulls:
            return RevocationInfo("unknown", source="crl", detail="no current CRL of this CA")
        full = max(fulls, key=_crl_number)
        deltas = [c for c in usable if _is_delta(c) and _delta_base(c) <= _crl_number(full) < _crl_number(c)]
        for crl in [*sorted(deltas, key=_crl_number, reverse=True), full]:
            entry = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
            if entry is not None:
                try:
                    reason = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason.name
                except x509.ExtensionNotFound:
                    reason = "unspecified"
                return RevocationInfo("revoked", entry.revocation_date_utc, _reason_name(reason), source="crl")
        return RevocationInfo("good", source="crl")


def _crl_number(crl: x509.CertificateRevocationList) -> int:
    try:
        return int(crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number)
    except x509.ExtensionNotFound:
        return 0


def _is_delta(crl: x509.CertificateRevocationList) -> bool:
    try:
        crl.extensions.get_extension_for_class(x509.DeltaCRLIndicator)
        return True
    except x509.ExtensionNotFound:
        return False


def _delta_base(crl: x509.CertificateRevocationList) -> int:
    return int(crl.extensions.get_extension_for_class(x509.DeltaCRLIndicator).value.crl_number)


@dataclass
class RelyingParty:
    """Checks signatures and logins made with a card, for one relying party."""

    trust: TrustStore
    status_source: StatusSource
    reveal_facts: bool = False
    """Whether this relying party is a signature verifier (署名検証者): only then are facts returned."""
    challenges: ChallengeStore = field(default_factory=MemoryChallengeStore)

    # --- construction -----------------------------------------------------------------------------

    @classmethod
    def remote(cls, base_url: str, api_key: str, trust_pem: bytes | str, *, reveal_facts: bool = True,
               client: httpx.Client | None = None) -> RelyingParty:
        """A private service's relying party: roots it pinned (from ``/jpki/ca/sign-all.pem`` and
        ``auth-all.pem``, checked against published fingerprints), status from the OCSP responder with its
        API key. The responder answers only what the registration allows, so a party registered for
        authentication only gets no status — hence no facts — for signing certificates."""
        source = OcspStatusSource(base_url.rstrip("/") + "/jpki/ocsp", api_key, client=client)
        return cls(TrustStore.from_pem(trust_pem), source, reveal_facts)

    @classmethod
    def for_service(cls, ctx: Context, principal: Principal, now: datetime | None = None) -> RelyingParty:
        """In-process use by the kiosk, Mynaportal or a registered verifier's request: roots and status from
        the CA database, every query logged against the caller, facts only for signature verifiers. Before the
        operator has created the CAs (``mynacard jpki init``) it raises
        :class:`~mynacard.jpki.service.AuthoritiesMissing`: a relying party never creates them."""
        from mynacard.jpki.verifiers import ServiceChallengeStore, ServiceStatusSource, service_trust

        source = ServiceStatusSource(ctx, principal)
        return cls(service_trust(ctx, now), source, source.may_receive_facts, ServiceChallengeStore(ctx, principal))

    # --- certificates -----------------------------------------------------------------------------

    def check_certificate(self, certificate: bytes | x509.Certificate, purpose: Purpose,
                          now: datetime) -> Verification:
        """Chain to a JPKI root of the right CA, validity, key usage, policy, revocation."""
        try:
            cert = _load_certificate(certificate)
        except ValueError as exc:
            return Verification(False, (str(exc),))
        problems: list[str] = []
        found = self.trust.issuer_of(cert)
        if found is None:
            return Verification(False, ("not issued by a trusted JPKI certificate authority",))
        kind, root = found
        if kind is not purpose.ca_kind:
            problems.append(f"a {kind.value} certificate cannot be used for {purpose.value}")
        if not root.not_valid_before_utc <= now <= root.not_valid_after_utc:
            problems.append("the issuing CA's certificate is not valid now")
        if now < cert.not_valid_before_utc:
            problems.append("the certificate is not yet valid")
        if now > cert.not_valid_after_utc:
            problems.append("the certificate has expired")
        problems += _usage_problems(cert, kind)
        revocation = self.status_source.status(cert, root, now)
        if revocation.status == "revoked":
            problems.append(f"the certificate was revoked ({revocation.reason or 'unspecified'}) "
                            f"at {revocation.revoked_at:%Y-%m-%d %H:%M:%S}Z" if revocation.revoked_at else
                            "the certificate was revoked")
        elif revocation.status != "good":
            problems.append(f"revocation status unavailable: {revocation.detail or 'unknown'}")
        facts = read_signing_facts(cert) if (kind is CaKind.SIGN and self.reveal_facts
                                              and revocation.status != "unknown") else None
        identity = SignerIdentity(kind, cert.serial_number, _common_name(cert), cert.not_valid_before_utc,
                                  cert.not_valid_after_utc,
                                  hashlib.sha256(root.public_bytes(serialization.Encoding.DER)).hexdigest(), facts)
        return Verification(not problems, tuple(problems), identity, revocation)

    def verify_signature(self, data: bytes, signature: bytes, certificate: bytes | x509.Certificate,
                         now: datetime, hash_algorithm: str = "sha256", prehashed: bool = False,
                         purpose: Purpose = Purpose.SIGNATURE) -> Verification:
        """A raw PKCS#1 v1.5 signature over ``data`` (or over a digest of it when ``prehashed``)."""
        algorithm = _HASHES.get(hash_algorithm)
        if algorithm is None:
            return Verification(False, (f"unsupported hash algorithm {hash_algorithm!r}",))
        checked = self.check_certificate(certificate, purpose, now)
        if checked.signer is None:
            return checked
        problems = list(checked.problems)
        cert = _load_certificate(certificate)
        key = cert.public_key()
        try:
            if not isinstance(key, rsa.RSAPublicKey):
                raise InvalidSignature
            key.verify(signature, data, padding.PKCS1v15(), Prehashed(algorithm()) if prehashed else algorithm())
        except (InvalidSignature, ValueError):
            problems.insert(0, "the signature does not verify with the certificate's key")
        return Verification(not problems, tuple(problems), checked.signer, checked.revocation)

    def verify_cms_detached(self, data: bytes, signature: bytes, now: datetime,
                            certificate: bytes | x509.Certificate | None = None) -> Verification:
        """A CMS/PKCS#7 ``SignedData`` over ``data`` kept apart (RFC 5652 §5), one signer, RSA PKCS#1 v1.5."""
        try:
            parsed = _parse_cms(data, signature, certificate)
        except (ValueError, TypeError, KeyError) as exc:
            return Verification(False, (f"not a usable CMS signature: {exc}",))
        cert, signed_bytes, sig, algorithm, signing_time = parsed
        checked = self.check_certificate(cert, Purpose.SIGNATURE, now)
        if checked.signer is None:
            return checked
        problems = list(checked.problems)
        key = cert.public_key()
        try:
            if not isinstance(key, rsa.RSAPublicKey):
                raise InvalidSignature
            key.verify(sig, signed_bytes, padding.PKCS1v15(), algorithm())
        except (InvalidSignature, ValueError):
            problems.insert(0, "the CMS signature does not verify with the certificate's key")
        return Verification(not problems, tuple(problems), checked.signer, checked.revocation, signing_time)

    # --- login ---------------------------------------------------------------------------------------

    def issue_challenge(self, now: datetime) -> Challenge:
        return self.challenges.issue(now)

    def verify_login(self, challenge_id: str, signature: bytes, certificate: bytes | x509.Certificate,
                     now: datetime) -> Verification:
        """The card signed the challenge with its authentication key (SHA-256 DigestInfo, PKCS#1 v1.5).
        The challenge is used up whether or not the login succeeds."""
        try:
            nonce = self.challenges.consume(challenge_id, now)
        except ValueError as exc:
            return Verification(False, (str(exc),))
        return self.verify_signature(nonce, signature, certificate, now, purpose=Purpose.AUTHENTICATION)


def _common_name(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return str(names[0].value) if names else ""


def _usage_problems(cert: x509.Certificate, kind: CaKind) -> list[str]:
    problems = []
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        if not usage.digital_signature or (kind is CaKind.SIGN and not usage.content_commitment):
            problems.append("the key usage does not allow this")
    except x509.ExtensionNotFound:
        problems.append("the certificate has no key usage")
    try:
        policies = cert.extensions.get_extension_for_class(x509.CertificatePolicies).value
        wanted = SIGN_POLICY if kind is CaKind.SIGN else AUTH_POLICY
        if not any(p.policy_identifier == wanted for p in policies):
            problems.append("the certificate does not carry the JPKI policy for this purpose")
    except x509.ExtensionNotFound:
        problems.append("the certificate has no policy")
    return problems


def _parse_cms(data: bytes, signature: bytes, certificate: bytes | x509.Certificate | None) -> tuple[
        x509.Certificate, bytes, bytes, type[hashes.HashAlgorithm], datetime | None]:
    raw = signature
    if raw.lstrip().startswith(b"-----BEGIN"):
        body = b"".join(line for line in raw.strip().splitlines() if not line.startswith(b"-----"))
        import base64

        raw = base64.b64decode(body)
    info = cms.ContentInfo.load(raw, strict=True)
    if info["content_type"].native != "signed_data":
        raise ValueError("not SignedData")
    signed = info["content"]
    if signed["encap_content_info"]["content"].native is not None:
        raise ValueError("the content is attached; a detached signature was expected")
    signer_infos = signed["signer_infos"]
    if len(signer_infos) != 1:
        raise ValueError("exactly one signer is supported")
    si = signer_infos[0]
    digest_name = si["digest_algorithm"]["algorithm"].native
    algorithm = _HASHES.get(digest_name)
    if algorithm is None:
        raise ValueError(f"unsupported digest {digest_name}")
    cert = _load_certificate(certificate) if certificate is not None else _cms_certificate(signed, si)
    signing_time = None
    attrs = si["signed_attrs"]
    if attrs.native is not None and len(attrs):
        values = {a["type"].native: a["values"] for a in attrs}
        if values.get("content_type") is None or values["content_type"][0].native != "data":
            raise ValueError("the signed content type must be data")
        digest = values.get("message_digest")
        if digest is None:
            raise ValueError("no message digest attribute")
        h = hashes.Hash(algorithm())
        h.update(data)
        if digest[0].native != h.finalize():
            raise ValueError("the message digest does not match the data")
        if values.get("signing_time") is not None:
            signing_time = values["signing_time"][0].native
        signed_bytes = b"\x31" + attrs.dump()[1:]  # RFC 5652 §5.4: signed as an explicit SET OF
    else:
        signed_bytes = data
    signature_algorithm = si["signature_algorithm"]["algorithm"].native
    if signature_algorithm not in ("rsassa_pkcs1v15", f"{digest_name}_rsa"):
        raise ValueError(f"unsupported signature algorithm {signature_algorithm}")
    return cert, signed_bytes, si["signature"].native, algorithm, signing_time


def _cms_certificate(signed: cms.SignedData, si: cms.SignerInfo) -> x509.Certificate:
    sid = si["sid"]
    for choice in signed["certificates"] or []:
        if choice.name != "certificate":
            continue
        cert = choice.chosen
        if sid.name == "issuer_and_serial_number":
            if cert.issuer == sid.chosen["issuer"] and cert.serial_number == sid.chosen["serial_number"].native:
                return x509.load_der_x509_certificate(cert.dump())
        elif sid.name == "subject_key_identifier" and cert.key_identifier == sid.chosen.native:
            return x509.load_der_x509_certificate(cert.dump())
    raise ValueError("the signer's certificate is not in the signature; pass it separately")


class ServiceRelyingParty:
    """:meth:`RelyingParty.for_service` for a long-running part (the kiosk centre, Mynaportal), rebuilt every
    ``ttl`` seconds: the trusted roots are read from the CA table when it is built, so a new CA generation is
    seen within ``ttl``; revocation status is asked on every check, never kept here."""

    def __init__(self, ctx: Context, principal: Principal, ttl: float = 300.0) -> None:
        self.ctx, self.principal, self.ttl = ctx, principal, ttl
        self._built: tuple[float, RelyingParty] | None = None
        self._lock = threading.Lock()

    def get(self) -> RelyingParty:
        with self._lock:
            if self._built is None or time.monotonic() - self._built[0] > self.ttl:
                self._built = (time.monotonic(), RelyingParty.for_service(self.ctx, self.principal))
            return self._built[1]
