"""Tables of convenience-store issuance. Other parts use :mod:`mynacard.kiosk.service`, never these.

Three owners, kept apart by name:

* ``kiosk_sessions`` — the certificate issuance centre (証明書交付センター): one row per kiosk request;
* ``kiosk_documents``, ``kiosk_offerings`` … ``kiosk_family_register_*`` — the municipalities' certificate
  issuing servers (証明発行サーバ) and the records they draw on beyond the resident registry (seal
  registrations, tax records, family registers, support measures);
* ``kiosk_signing_*`` — the document-signing CA and each municipality's signing key (sealed at rest);
* ``kiosk_audit`` / ``kiosk_audit_heads`` — the hash-chained audit trail of both.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
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
from mynacard.hashchain import chain_tables

_ID = BigInteger().with_variant(Integer, "sqlite")

# --- the certificate issuance centre ----------------------------------------------------------------------

kiosk_sessions = Table(
    "kiosk_sessions",
    metadata,
    Column("request_id", String(32), primary_key=True),
    Column("kiosk_id", String(64), nullable=False, index=True),
    Column("state", String(16), nullable=False),
    Column("challenge", LargeBinary, nullable=True),
    Column("challenge_expires_at", UtcDateTime(), nullable=True),
    Column("certificate_sha256", String(64), nullable=True),
    Column("certificate_serial", String(40), nullable=True),
    Column("resident_id", ForeignKey("residents.id"), nullable=True, index=True),
    Column("home_municipality", String(6), nullable=True),
    # What the holder was offered at authentication: {kind: [fee, issuing municipality]}.
    Column("offer", Text, nullable=True),
    Column("options", Text, nullable=True),
    Column("issuing_municipality", String(6), nullable=True),
    Column("fee_yen", Integer, nullable=True),
    Column("paid_yen", Integer, nullable=True),
    Column("document_id", String(26), nullable=True, unique=True),
    Column("pdf_sha256", String(64), nullable=True),
    Column("refusal", String(40), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
    Column("authenticated_at", UtcDateTime(), nullable=True),
    Column("ordered_at", UtcDateTime(), nullable=True),
    Column("released_at", UtcDateTime(), nullable=True),
    Column("closed_at", UtcDateTime(), nullable=True),
    Column("void_confirmed_at", UtcDateTime(), nullable=True),
    Index("ix_kiosk_sessions_state_expires", "state", "expires_at"),
)

# --- the municipalities' certificate issuing servers ------------------------------------------------------

kiosk_municipal_settings = Table(
    "kiosk_municipal_settings",
    metadata,
    Column("municipality_code", ForeignKey("municipalities.code"), primary_key=True),
    Column("participating", Boolean, nullable=False),
    Column("mayor_name", String(40), nullable=True),
    Column("updated_at", UtcDateTime(), nullable=False),
)

kiosk_offerings = Table(
    "kiosk_offerings",
    metadata,
    Column("municipality_code", ForeignKey("municipalities.code"), primary_key=True),
    Column("kind", String(16), primary_key=True),
    Column("fee_yen", Integer, nullable=False),
    Column("weekdays_only", Boolean, nullable=False),
    Column("opens", String(5), nullable=False),
    Column("closes", String(5), nullable=False),
)

kiosk_closures = Table(
    "kiosk_closures",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    # NULL: every municipality (the centre's maintenance); otherwise one municipality's server.
    Column("municipality_code", String(6), nullable=True),
    Column("day", Date, nullable=False),
    # NULL: the whole service; otherwise one document kind (e.g. tax data being switched over).
    Column("kind", String(16), nullable=True),
    Column("reason", Text, nullable=False),
    UniqueConstraint("municipality_code", "day", "kind"),
    Index("ix_kiosk_closures_day", "day"),
)

kiosk_documents = Table(
    "kiosk_documents",
    metadata,
    Column("document_id", String(26), primary_key=True),
    Column("request_id", String(32), nullable=False, unique=True),
    Column("municipality_code", String(6), nullable=False, index=True),
    Column("kind", String(16), nullable=False),
    Column("state", String(16), nullable=False),
    Column("holder_resident_id", ForeignKey("residents.id"), nullable=False, index=True),
    Column("subject_resident_ids", Text, nullable=False),
    Column("holder_ref", String(64), nullable=False),
    Column("copies", Integer, nullable=False),
    Column("sealed_content", LargeBinary, nullable=False),
    Column("content_digest", String(64), nullable=False),
    Column("sealed_pdf", LargeBinary, nullable=False),
    Column("pdf_sha256", String(64), nullable=False),
    Column("prepared_at", UtcDateTime(), nullable=False),
    Column("issued_at", UtcDateTime(), nullable=True),
    Column("printed_at", UtcDateTime(), nullable=True),
    Column("voided_at", UtcDateTime(), nullable=True),
    Column("void_reason", String(40), nullable=True),
    Column("verifiable_until", UtcDateTime(), nullable=False),
)

kiosk_resident_notes = Table(
    "kiosk_resident_notes",
    metadata,
    Column("resident_id", ForeignKey("residents.id"), primary_key=True),
    Column("transfer_out_filed_on", Date, nullable=True),
    Column("moved_in_on", Date, nullable=True),
    Column("updated_at", UtcDateTime(), nullable=False),
)

kiosk_support_measures = Table(
    "kiosk_support_measures",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("resident_id", ForeignKey("residents.id"), nullable=False, index=True),
    Column("municipality_code", String(6), nullable=False),
    Column("starts_on", Date, nullable=False),
    Column("ends_on", Date, nullable=True),
    Column("recorded_at", UtcDateTime(), nullable=False),
)

kiosk_address_history = Table(
    "kiosk_address_history",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("resident_id", ForeignKey("residents.id"), nullable=False, index=True),
    Column("address", Text, nullable=False),
    Column("since", Date, nullable=False),
)

kiosk_seal_registrations = Table(
    "kiosk_seal_registrations",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("resident_id", ForeignKey("residents.id"), nullable=False, index=True),
    Column("municipality_code", String(6), nullable=False),
    Column("registration_number", String(16), nullable=False, unique=True),
    Column("impression", LargeBinary, nullable=False),
    Column("registered_on", Date, nullable=False),
    Column("abolished_on", Date, nullable=True),
)

kiosk_tax_records = Table(
    "kiosk_tax_records",
    metadata,
    Column("resident_id", ForeignKey("residents.id"), primary_key=True),
    Column("fiscal_year", Integer, primary_key=True),
    Column("municipality_code", String(6), nullable=False),
    Column("total_income", BigInteger, nullable=False),
    Column("employment_income", BigInteger, nullable=False),
    Column("deductions", BigInteger, nullable=False),
    Column("taxable_income", BigInteger, nullable=False),
    Column("municipal_tax", BigInteger, nullable=False),
    Column("prefectural_tax", BigInteger, nullable=False),
    Column("recorded_at", UtcDateTime(), nullable=False),
)

kiosk_family_registers = Table(
    "kiosk_family_registers",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("municipality_code", String(6), nullable=False, index=True),
    Column("domicile", Text, nullable=False),
    Column("head_name", String(60), nullable=False),
    Column("pending_filing", Boolean, nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)

kiosk_family_register_members = Table(
    "kiosk_family_register_members",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("register_id", ForeignKey("kiosk_family_registers.id"), nullable=False, index=True),
    Column("resident_id", ForeignKey("residents.id"), nullable=True, index=True),
    Column("position", Integer, nullable=False),
    Column("family_name", String(60), nullable=False),
    Column("given_name", String(60), nullable=False),
    Column("birth_date", Date, nullable=False),
    Column("sex", String(1), nullable=False),
    Column("relationship", String(16), nullable=False),
    Column("father", String(60), nullable=True),
    Column("mother", String(60), nullable=True),
    Column("events", Text, nullable=False),
    Column("removed", Boolean, nullable=False),
)

kiosk_family_register_use = Table(
    "kiosk_family_register_use",
    metadata,
    Column("resident_id", ForeignKey("residents.id"), primary_key=True),
    Column("municipality_code", String(6), primary_key=True),
    Column("registered_at", UtcDateTime(), nullable=False),
    Column("request_id", String(32), nullable=True),
)

# --- document signing ------------------------------------------------------------------------------------

kiosk_signing_authorities = Table(
    "kiosk_signing_authorities",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("name", String(128), nullable=False),
    Column("certificate", LargeBinary, nullable=False),
    Column("sealed_key", LargeBinary, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
)

kiosk_signing_keys = Table(
    "kiosk_signing_keys",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("municipality_code", String(6), nullable=False),
    Column("authority_id", ForeignKey("kiosk_signing_authorities.id"), nullable=False),
    Column("certificate", LargeBinary, nullable=False),
    Column("sealed_key", LargeBinary, nullable=False),
    Column("not_before", UtcDateTime(), nullable=False),
    Column("not_after", UtcDateTime(), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Index("ix_kiosk_signing_keys_municipality", "municipality_code", "not_after"),
)

# --- the audit trail ------------------------------------------------------------------------------------

kiosk_audit, kiosk_audit_heads = chain_tables("kiosk_audit")
