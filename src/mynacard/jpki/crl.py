"""Certificate revocation lists (RFC 5280 §5): full and delta CRLs, assembled from pre-encoded entries.

Each revocation is encoded once, when it happens (:func:`encode_entry`), and stored beside the certificate;
a CRL is then the concatenation of the stored entries in a ``TBSCertList`` that ``asn1crypto`` encodes
around them without parsing them again, signed by the CA's :class:`~mynacard.jpki.keys.Signer`. This is
what lets a CRL with a million entries be produced in seconds. Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from functools import lru_cache

from asn1crypto import core
from asn1crypto import crl as asn1_crl
from asn1crypto import x509 as asn1_x509

from mynacard.jpki.keys import Signer
from mynacard.jpki.model import RevocationReason

__all__ = ["asn1_time", "build_crl", "encode_entry", "encode_entry_slow"]

_REASON_NAMES = {
    RevocationReason.KEY_COMPROMISE: "key_compromise",
    RevocationReason.CA_COMPROMISE: "ca_compromise",
    RevocationReason.AFFILIATION_CHANGED: "affiliation_changed",
    RevocationReason.SUPERSEDED: "superseded",
    RevocationReason.CESSATION_OF_OPERATION: "cessation_of_operation",
    RevocationReason.CERTIFICATE_HOLD: "certificate_hold",
}


def asn1_time(moment: datetime) -> asn1_x509.Time:
    """UTCTime through 2049, GeneralizedTime from 2050 (RFC 5280 §4.1.2.5), whole seconds, UTC."""
    moment = moment.astimezone(UTC).replace(microsecond=0)
    return asn1_x509.Time({"utc_time" if moment.year < 2050 else "general_time": moment})


def _extensions(reason: RevocationReason) -> list[dict[str, object]]:
    # RFC 5280 §5.3.1: the reason code "unspecified" SHOULD NOT be written; the entry then has no extension.
    if reason is RevocationReason.UNSPECIFIED:
        return []
    return [{"extn_id": "crl_reason", "critical": False, "extn_value": _REASON_NAMES[reason]}]


def encode_entry_slow(serial: int, revoked_at: datetime, reason: RevocationReason) -> bytes:
    """The reference encoding of one ``revokedCertificates`` entry, entirely by ``asn1crypto``."""
    value: dict[str, object] = {"user_certificate": serial, "revocation_date": asn1_time(revoked_at)}
    extensions = _extensions(reason)
    if extensions:
        value["crl_entry_extensions"] = extensions
    return asn1_crl.RevokedCertificate(value).dump()


@lru_cache(maxsize=8192)
def _entry_tail(revoked_at: datetime, reason: RevocationReason) -> bytes:
    tail = asn1_time(revoked_at).dump()
    extensions = _extensions(reason)
    if extensions:
        tail += asn1_crl.CRLEntryExtensions(extensions).dump()
    return tail


def encode_entry(serial: int, revoked_at: datetime, reason: RevocationReason) -> bytes:
    """One ``revokedCertificates`` entry: ``SEQUENCE { serial, revocationDate, [reasonCode] }``.

    The same bytes as :func:`encode_entry_slow` (a property test holds them equal), faster because the
    date-and-reason part repeats across entries and is encoded once.
    """
    moment = revoked_at.astimezone(UTC).replace(microsecond=0)
    body = core.Integer(serial).dump() + _entry_tail(moment, reason)
    return core.Sequence(contents=body).dump()


def build_crl(*, issuer_der: bytes, authority_key_id: bytes, number: int, this_update: datetime,
              next_update: datetime, entries: Iterable[bytes], signer: Signer,
              delta_base: int | None = None, freshest_crl_url: str | None = None) -> bytes:
    """A signed CRL (DER). ``delta_base`` makes it a delta CRL (RFC 5280 §5.2.4) on that full CRL number.

    ``entries`` are pre-encoded ``revokedCertificates`` entries (:func:`encode_entry`). CRL numbers are the
    caller's business: one monotonic sequence per CA shared by full and delta CRLs (RFC 5280 §5.2.3).
    """
    if number < 1 or (delta_base is not None and not 1 <= delta_base < number):
        raise ValueError("CRL numbers are positive and a delta's base precedes it")
    extensions: list[dict[str, object]] = [
        {"extn_id": "authority_key_identifier", "critical": False,
         "extn_value": {"key_identifier": authority_key_id}},
        {"extn_id": "crl_number", "critical": False, "extn_value": number},
    ]
    if delta_base is not None:
        extensions.append({"extn_id": "delta_crl_indicator", "critical": True, "extn_value": delta_base})
    elif freshest_crl_url:
        extensions.append({"extn_id": "freshest_crl", "critical": False, "extn_value": [{
            "distribution_point": {"full_name": [asn1_x509.GeneralName(
                name="uniform_resource_identifier", value=freshest_crl_url)]}}]})
    tbs_value: dict[str, object] = {
        "version": "v2",
        "signature": {"algorithm": "sha256_rsa"},
        "issuer": asn1_x509.Name.load(issuer_der),
        "this_update": asn1_time(this_update),
        "next_update": asn1_time(next_update),
        "crl_extensions": extensions,
    }
    body = b"".join(entries)
    if body:  # RFC 5280 §5.1.2.6: absent, not empty, when nothing is revoked
        tbs_value["revoked_certificates"] = asn1_crl.RevokedCertificates(contents=body)
    tbs = asn1_crl.TbsCertList(tbs_value)
    tbs_der = tbs.dump()
    signed = asn1_crl.CertificateList({
        "tbs_cert_list": tbs,
        "signature_algorithm": {"algorithm": "sha256_rsa"},
        "signature": signer.sign(tbs_der),
    })
    return signed.dump()
