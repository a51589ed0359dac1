"""Tables of the JPKI part. Other parts use :mod:`mynacard.jpki.service`, never these."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from mynacard.db import UtcDateTime, metadata

_ID = BigInteger().with_variant(Integer, "sqlite")

jpki_authorities = Table(
    "jpki_authorities",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("kind", String(8), nullable=False),  # sign | auth
    Column("generation", Integer, nullable=False),
    Column("certificate", LargeBinary, nullable=False),
    Column("subject_key_id", String(64), nullable=False),
    # CertID look-up: hashes of the (shared) name and of this generation's key, hex.
    Column("name_sha1", String(40), nullable=False),
    Column("name_sha256", String(64), nullable=False),
    Column("key_sha1", String(40), nullable=False, unique=True),
    Column("key_sha256", String(64), nullable=False, unique=True),
    Column("not_before", UtcDateTime(), nullable=False),
    Column("not_after", UtcDateTime(), nullable=False),
    Column("key_store", String(8), nullable=False),  # sealed | pkcs11
    Column("key_label", String(64), nullable=False),
    Column("sealed_key", LargeBinary, nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("retired_at", UtcDateTime(), nullable=True),  # a newer generation issues since then
    # Both counters are changed only while this row is locked, so their order is the commit order.
    Column("last_crl_number", BigInteger, nullable=False, default=0),
    Column("last_full_crl_number", BigInteger, nullable=False, default=0),
    Column("revocation_counter", BigInteger, nullable=False, default=0),
    UniqueConstraint("kind", "generation"),
)

jpki_link_certificates = Table(
    "jpki_link_certificates",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("kind", String(8), nullable=False),
    Column("subject_generation", Integer, nullable=False),
    Column("issuer_generation", Integer, nullable=False),
    Column("certificate", LargeBinary, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    UniqueConstraint("kind", "subject_generation", "issuer_generation"),
)

jpki_ocsp_signers = Table(
    "jpki_ocsp_signers",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("authority_id", ForeignKey("jpki_authorities.id"), nullable=False, index=True),
    Column("certificate", LargeBinary, nullable=False),
    Column("key_sha1", String(40), nullable=False),
    Column("sealed_key", LargeBinary, nullable=False),
    Column("not_before", UtcDateTime(), nullable=False),
    Column("not_after", UtcDateTime(), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
)

jpki_certificates = Table(
    "jpki_certificates",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("authority_id", ForeignKey("jpki_authorities.id"), nullable=False),
    Column("kind", String(8), nullable=False),
    Column("serial", BigInteger, nullable=False, unique=True),
    Column("card_id", BigInteger, nullable=True, index=True),
    Column("card_serial", String(16), nullable=True, index=True),
    Column("resident_id", BigInteger, nullable=False),
    Column("municipality_code", String(6), nullable=False),
    Column("subject_cn", String(64), nullable=False),
    Column("spki_sha256", String(64), nullable=False),
    Column("facts_digest", String(64), nullable=True),  # signing certificates: what facts they carry
    Column("der", LargeBinary, nullable=False),
    Column("not_before", UtcDateTime(), nullable=False),
    Column("not_after", UtcDateTime(), nullable=False),
    Column("issued_at", UtcDateTime(), nullable=False),
    Column("issued_by", String(64), nullable=False),
    Column("status", String(8), nullable=False),  # good | revoked
    Column("revoked_at", UtcDateTime(), nullable=True),
    Column("revocation_reason", String(32), nullable=True),
    Column("revocation_no", BigInteger, nullable=True),  # the authority's revocation_counter at revocation
    Column("crl_after", BigInteger, nullable=True),  # the authority's last_crl_number at revocation
    Column("crl_entry", LargeBinary, nullable=True),  # pre-encoded revokedCertificates entry
    Column("replaces_id", ForeignKey("jpki_certificates.id"), nullable=True),  # lineage: old → new
    Index("ix_jpki_certificates_resident", "resident_id", "kind", "status"),
    Index("ix_jpki_certificates_crl", "authority_id", "status", "crl_after"),
    Index("ix_jpki_certificates_revocation", "authority_id", "revocation_no"),
    Index("ix_jpki_certificates_replaces", "replaces_id"),
)

jpki_certificate_events = Table(
    "jpki_certificate_events",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("certificate_id", ForeignKey("jpki_certificates.id"), nullable=False, index=True),
    Column("from_status", String(8), nullable=True),
    Column("to_status", String(8), nullable=False),
    Column("reason", String(32), nullable=True),
    Column("actor", String(64), nullable=False),
    Column("at", UtcDateTime(), nullable=False),
    Column("detail", Text, nullable=True),
)

jpki_crls = Table(
    "jpki_crls",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("authority_id", ForeignKey("jpki_authorities.id"), nullable=False),
    Column("number", BigInteger, nullable=False),
    Column("is_delta", Boolean, nullable=False),
    Column("base_number", BigInteger, nullable=True),
    Column("this_update", UtcDateTime(), nullable=False),
    Column("next_update", UtcDateTime(), nullable=False),
    Column("entry_count", Integer, nullable=False),
    Column("der", LargeBinary, nullable=False),
    UniqueConstraint("authority_id", "number"),
    Index("ix_jpki_crls_latest", "authority_id", "is_delta", "number"),
)

jpki_ocsp_responses = Table(
    "jpki_ocsp_responses",
    metadata,
    Column("certificate_id", ForeignKey("jpki_certificates.id"), primary_key=True),
    Column("hash_algorithm", String(8), primary_key=True),
    Column("status", String(8), nullable=False),
    Column("der", LargeBinary, nullable=False),  # a complete OCSPResponse
    Column("this_update", UtcDateTime(), nullable=False),
    Column("next_update", UtcDateTime(), nullable=False),
)

jpki_verifiers = Table(
    "jpki_verifiers",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("kind", String(24), nullable=False),
    Column("verifies_signatures", Boolean, nullable=False),
    Column("verifies_authentication", Boolean, nullable=False),
    Column("username", String(64), nullable=False, unique=True),  # its API account (role verifier)
    Column("client_cert_sha256", String(64), nullable=True, unique=True),  # mutual TLS, when used
    Column("registered_at", UtcDateTime(), nullable=False),
    Column("registered_by", String(64), nullable=False),
    Column("suspended_at", UtcDateTime(), nullable=True),
)

jpki_verifier_queries = Table(
    "jpki_verifier_queries",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("verifier_id", ForeignKey("jpki_verifiers.id"), nullable=True),  # None: not a registered verifier
    Column("caller", String(128), nullable=False),
    Column("action", String(24), nullable=False),
    Column("certificate_serial", String(48), nullable=True),
    Column("outcome", String(16), nullable=False),
    Column("detail", Text, nullable=True),
    Column("at", UtcDateTime(), nullable=False),  # the first of the queries this row counts
    Column("last_at", UtcDateTime(), nullable=False),
    Column("count", Integer, nullable=False),
    Index("ix_jpki_verifier_queries_verifier", "verifier_id", "at"),
)

jpki_subscriptions = Table(
    "jpki_subscriptions",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("verifier_id", ForeignKey("jpki_verifiers.id"), nullable=False),
    Column("certificate_id", ForeignKey("jpki_certificates.id"), nullable=False, index=True),
    Column("created_at", UtcDateTime(), nullable=False),
    UniqueConstraint("verifier_id", "certificate_id"),
)

jpki_notifications = Table(
    "jpki_notifications",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("verifier_id", ForeignKey("jpki_verifiers.id"), nullable=False),
    Column("certificate_id", ForeignKey("jpki_certificates.id"), nullable=False),
    Column("event", String(16), nullable=False),  # revoked | reissued
    Column("reason", String(32), nullable=True),
    Column("new_certificate_id", ForeignKey("jpki_certificates.id"), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("acknowledged_at", UtcDateTime(), nullable=True),
    Index("ix_jpki_notifications_pending", "verifier_id", "acknowledged_at"),
)

jpki_challenges = Table(
    "jpki_challenges",
    metadata,
    Column("id", String(48), primary_key=True),
    Column("issued_to", String(128), nullable=False),
    Column("nonce", LargeBinary, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
    Column("used_at", UtcDateTime(), nullable=True),
    Column("outcome", String(16), nullable=True),
)
