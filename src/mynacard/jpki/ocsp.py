"""OCSP messages (RFC 6960): parsing requests defensively and building responses (pure: no I/O, no clock).

Anything that is not a well-formed request becomes :class:`MalformedRequest`, which the responder answers
with the ``malformedRequest`` status; parsing never lets an exception of the ASN.1 library escape.
Responses are encoded by ``asn1crypto`` and signed by the delegated responder's
:class:`~mynacard.jpki.keys.Signer`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import IntEnum
from functools import lru_cache
from typing import Any

from asn1crypto import core
from asn1crypto import ocsp as asn1_ocsp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp as x509_ocsp

from mynacard.jpki.keys import Signer
from mynacard.jpki.model import RevocationReason

__all__ = [
    "HASH_SIZES",
    "MAX_REQUEST_BYTES",
    "MAX_SINGLE_REQUESTS",
    "CertRef",
    "MalformedRequest",
    "OcspRequest",
    "ResponseStatus",
    "SingleStatus",
    "build_response",
    "cert_id",
    "error_response",
    "parse_request",
]

MAX_REQUEST_BYTES = 16 * 1024
"""A request for a handful of certificates is a few hundred bytes; anything this large is refused."""
MAX_SINGLE_REQUESTS = 20
"""How many certificates one request may ask about."""
HASH_SIZES = {"sha1": 20, "sha256": 32, "sha384": 48, "sha512": 64}
"""Hash algorithms accepted in a CertID, with their digest sizes."""
_MAX_NONCE = 32  # RFC 8954 §2.1


class ResponseStatus(IntEnum):
    """OCSPResponseStatus (RFC 6960 §4.2.1)."""

    SUCCESSFUL = 0
    MALFORMED_REQUEST = 1
    INTERNAL_ERROR = 2
    TRY_LATER = 3
    SIG_REQUIRED = 5
    UNAUTHORIZED = 6


class MalformedRequest(ValueError):
    """The bytes are not an OCSP request this responder can read (→ ``malformedRequest``)."""


@dataclass(frozen=True)
class CertRef:
    """One CertID of a request: which certificate of which issuer, hashed how."""

    hash_algorithm: str
    issuer_name_hash: bytes
    issuer_key_hash: bytes
    serial: int
    der: bytes
    """The CertID exactly as received, echoed in the response."""


@dataclass(frozen=True)
class OcspRequest:
    refs: tuple[CertRef, ...]
    nonce: bytes | None
    """The nonce extension's value (the inner octets), echoed in the response (RFC 8954)."""


_PARSE_ERRORS = (ValueError, TypeError, KeyError, IndexError, OverflowError, AttributeError, UnicodeError,
                 RecursionError, LookupError)


def parse_request(data: bytes) -> OcspRequest:
    """Read an ``OCSPRequest``; raise :class:`MalformedRequest` for anything else."""
    if not isinstance(data, bytes | bytearray) or not data:
        raise MalformedRequest("empty request")
    if len(data) > MAX_REQUEST_BYTES:
        raise MalformedRequest("request too large")
    try:
        return _parse(bytes(data))
    except MalformedRequest:
        raise
    except _PARSE_ERRORS as exc:
        raise MalformedRequest(f"not an OCSP request ({type(exc).__name__})") from None


def _parse(data: bytes) -> OcspRequest:
    request = asn1_ocsp.OCSPRequest.load(data, strict=True)
    tbs = request["tbs_request"]
    if tbs["version"].native != "v1":
        raise MalformedRequest("unsupported request version")
    items = tbs["request_list"]
    if len(items) == 0 or len(items) > MAX_SINGLE_REQUESTS:
        raise MalformedRequest(f"a request asks about 1–{MAX_SINGLE_REQUESTS} certificates")
    refs = []
    for item in items:
        cid = item["req_cert"]
        algorithm = cid["hash_algorithm"]
        name = algorithm["algorithm"].native
        if name not in HASH_SIZES:
            raise MalformedRequest(f"unsupported CertID hash algorithm {algorithm['algorithm'].dotted}")
        params = algorithm["parameters"]
        if params.native is not None:
            raise MalformedRequest("CertID hash algorithm parameters must be NULL or absent")
        name_hash = cid["issuer_name_hash"].native
        key_hash = cid["issuer_key_hash"].native
        if len(name_hash) != HASH_SIZES[name] or len(key_hash) != HASH_SIZES[name]:
            raise MalformedRequest("CertID hash length does not match its algorithm")
        serial = cid["serial_number"].native
        if not isinstance(serial, int) or serial < 0 or serial.bit_length() > 160:
            raise MalformedRequest("a serial number is a positive integer of at most 20 octets")
        _check_extensions(item["single_request_extensions"], allowed=set())
        refs.append(CertRef(name, name_hash, key_hash, serial, cid.dump()))
    nonce = _check_extensions(tbs["request_extensions"], allowed={"nonce", "acceptable_responses",
                                                                   "preferred_signature_algorithms"})
    if tbs["requestor_name"].native is not None:
        tbs["requestor_name"].native  # noqa: B018 - parse it, so that garbage there is malformed
    if request["optional_signature"].native is not None:
        request["optional_signature"].native  # noqa: B018
    return OcspRequest(tuple(refs), nonce)


def _check_extensions(extensions: core.Asn1Value, allowed: set[str]) -> bytes | None:
    """Parse request extensions; return the nonce if present. Unknown critical extensions are refused."""
    nonce = None
    if extensions.native is None:
        return None
    seen = set()
    for ext in extensions:
        name = ext["extn_id"].native
        if name in seen:
            raise MalformedRequest(f"extension {name} appears twice")
        seen.add(name)
        if name == "nonce":
            value = ext["extn_value"].parsed
            inner = value.native if value is not None else None
            if not isinstance(inner, bytes) or not 1 <= len(inner) <= _MAX_NONCE:
                raise MalformedRequest("a nonce has 1–32 octets")
            nonce = inner
        elif name not in allowed and ext["critical"].native:
            raise MalformedRequest(f"unsupported critical extension {ext['extn_id'].dotted}")
        else:
            ext["extn_value"].native  # noqa: B018 - parse it
    return nonce


def cert_id(hash_algorithm: str, issuer_name_hash: bytes, issuer_key_hash: bytes, serial: int) -> bytes:
    """A CertID (DER), as this responder writes it in pre-signed responses."""
    return asn1_ocsp.CertId({
        "hash_algorithm": {"algorithm": hash_algorithm, "parameters": core.Null()},
        "issuer_name_hash": issuer_name_hash,
        "issuer_key_hash": issuer_key_hash,
        "serial_number": serial,
    }).dump()


@dataclass(frozen=True)
class SingleStatus:
    """What the responder says about one certificate."""

    cert_id_der: bytes
    status: str
    """``good``, ``revoked`` or ``unknown``."""
    this_update: datetime
    next_update: datetime | None
    revoked_at: datetime | None = None
    reason: RevocationReason | None = None


_REASONS = {
    RevocationReason.UNSPECIFIED: "unspecified",
    RevocationReason.KEY_COMPROMISE: "key_compromise",
    RevocationReason.CA_COMPROMISE: "ca_compromise",
    RevocationReason.AFFILIATION_CHANGED: "affiliation_changed",
    RevocationReason.SUPERSEDED: "superseded",
    RevocationReason.CESSATION_OF_OPERATION: "cessation_of_operation",
    RevocationReason.CERTIFICATE_HOLD: "certificate_hold",
}


def _gt(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(microsecond=0)


def _single(item: SingleStatus) -> asn1_ocsp.SingleResponse:
    if item.status == "good":
        status = asn1_ocsp.CertStatus(name="good", value=core.Null())
    elif item.status == "revoked":
        if item.revoked_at is None:
            raise ValueError("a revoked status needs its revocation time")
        info: dict[str, object] = {"revocation_time": _gt(item.revoked_at)}
        if item.reason is not None and item.reason is not RevocationReason.UNSPECIFIED:
            info["revocation_reason"] = _REASONS[item.reason]
        status = asn1_ocsp.CertStatus(name="revoked", value=asn1_ocsp.RevokedInfo(info))
    elif item.status == "unknown":
        status = asn1_ocsp.CertStatus(name="unknown", value=core.Null())
    else:
        raise ValueError(f"unknown certificate status {item.status!r}")
    value: dict[str, object] = {
        "cert_id": asn1_ocsp.CertId.load(item.cert_id_der),
        "cert_status": status,
        "this_update": _gt(item.this_update),
    }
    if item.next_update is not None:
        value["next_update"] = _gt(item.next_update)
    return asn1_ocsp.SingleResponse(value)


def build_response(statuses: Sequence[SingleStatus], *, produced_at: datetime, responder_key_hash: bytes,
                   responder_cert_der: bytes, signer: Signer, nonce: bytes | None = None) -> bytes:
    """A successful ``OCSPResponse`` (DER) carrying a signed ``BasicOCSPResponse``.

    The responder is identified by key hash and its certificate is included, so a client holding only the
    CA certificate can check the delegation (RFC 6960 §4.2.2.2). One certificate with an in-process key —
    every answer the responder signs — is encoded by ``cryptography`` (its producedAt is then the moment of
    signing); several certificates by ``asn1crypto``.
    """
    if not statuses:
        raise ValueError("a response answers at least one CertID")
    builder_key = getattr(signer, "builder_key", None)
    if len(statuses) == 1 and builder_key is not None:
        return _build_one(statuses[0], responder_cert_der, builder_key(), nonce)
    data: dict[str, object] = {
        "responder_id": asn1_ocsp.ResponderId(name="by_key", value=responder_key_hash),
        "produced_at": _gt(produced_at),
        "responses": [_single(s) for s in statuses],
    }
    if nonce is not None:
        data["response_extensions"] = [{"extn_id": "nonce", "critical": False, "extn_value": nonce}]
    tbs = asn1_ocsp.ResponseData(data)
    basic = asn1_ocsp.BasicOCSPResponse({
        "tbs_response_data": tbs,
        "signature_algorithm": {"algorithm": "sha256_rsa"},
        "signature": signer.sign(tbs.dump()),
        "certs": [_certificate(responder_cert_der)],
    })
    return asn1_ocsp.OCSPResponse({
        "response_status": "successful",
        "response_bytes": {"response_type": "basic_ocsp_response", "response": basic},
    }).dump()


_X509_REASONS = {
    RevocationReason.UNSPECIFIED: x509.ReasonFlags.unspecified,
    RevocationReason.KEY_COMPROMISE: x509.ReasonFlags.key_compromise,
    RevocationReason.CA_COMPROMISE: x509.ReasonFlags.ca_compromise,
    RevocationReason.AFFILIATION_CHANGED: x509.ReasonFlags.affiliation_changed,
    RevocationReason.SUPERSEDED: x509.ReasonFlags.superseded,
    RevocationReason.CESSATION_OF_OPERATION: x509.ReasonFlags.cessation_of_operation,
    RevocationReason.CERTIFICATE_HOLD: x509.ReasonFlags.certificate_hold,
}
_HASHES: dict[str, hashes.HashAlgorithm] = {"sha1": hashes.SHA1(), "sha256": hashes.SHA256(),
                                             "sha384": hashes.SHA384(), "sha512": hashes.SHA512()}
_CERT_STATUS = {"good": x509_ocsp.OCSPCertStatus.GOOD, "revoked": x509_ocsp.OCSPCertStatus.REVOKED,
                "unknown": x509_ocsp.OCSPCertStatus.UNKNOWN}


@lru_cache(maxsize=64)
def _x509_certificate(der: bytes) -> x509.Certificate:
    return x509.load_der_x509_certificate(der)


def _build_one(item: SingleStatus, responder_cert_der: bytes, key: Any, nonce: bytes | None) -> bytes:
    cid = asn1_ocsp.CertId.load(item.cert_id_der)
    algorithm = _HASHES[cid["hash_algorithm"]["algorithm"].native]
    revoked = item.status == "revoked"
    reason = item.reason if revoked and item.reason is not RevocationReason.UNSPECIFIED else None
    responder = _x509_certificate(responder_cert_der)
    builder = (
        x509_ocsp.OCSPResponseBuilder()
        .add_response_by_hash(cid["issuer_name_hash"].native, cid["issuer_key_hash"].native,
                              cid["serial_number"].native, algorithm, _CERT_STATUS[item.status],
                              _gt(item.this_update), _gt(item.next_update) if item.next_update else None,
                              _gt(item.revoked_at) if revoked and item.revoked_at else None,
                              _X509_REASONS[reason] if reason is not None else None)
        .responder_id(x509_ocsp.OCSPResponderEncoding.HASH, responder)
        .certificates([responder])
    )
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


@lru_cache(maxsize=64)
def _certificate(der: bytes) -> object:
    """The responder certificate, parsed once: asn1crypto then writes its original bytes untouched."""
    from asn1crypto import x509 as asn1_x509

    cert = asn1_x509.Certificate.load(der)
    cert.dump()
    return cert


_ERRORS: dict[ResponseStatus, bytes] = {
    status: asn1_ocsp.OCSPResponse({"response_status": int(status)}).dump()
    for status in ResponseStatus if status is not ResponseStatus.SUCCESSFUL}


def error_response(status: ResponseStatus) -> bytes:
    """An unsuccessful ``OCSPResponse``: only the status, no response bytes (RFC 6960 §2.3)."""
    return _ERRORS[status]
