"""Tables of Mynaportal. Other parts use :mod:`mynacard.portal.service`, never these.

Sessions are stored by a keyed hash of their token (the token itself is only in the person's cookie); the
person's folder of own information and their applications are sealed at rest.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
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

portal_sessions = Table(
    "portal_sessions",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("resident_id", ForeignKey("residents.id"), nullable=False, index=True),
    Column("auth_cert_serial", String(64), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("last_seen_at", UtcDateTime(), nullable=False),
    Column("closed_at", UtcDateTime(), nullable=True),
    Column("close_reason", String(16), nullable=True),
)

portal_self_information = Table(
    "portal_self_information",
    metadata,
    # The person's folder (自己情報): what each agency answered to the last request, sealed.
    Column("resident_id", ForeignKey("residents.id"), primary_key=True),
    Column("agency_id", String(40), primary_key=True),
    Column("item", String(40), primary_key=True),
    Column("sealed_data", LargeBinary, nullable=False),
    Column("source_updated_at", UtcDateTime(), nullable=True),
    Column("fetched_at", UtcDateTime(), nullable=False),
    Column("message_id", String(64), nullable=False),
)

portal_applications = Table(
    "portal_applications",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("resident_id", ForeignKey("residents.id"), nullable=False),
    # The form's one-time key: a resubmitted form (double click, retry) finds this application.
    Column("idempotency_key", String(64), nullable=False),
    Column("message_id", String(64), nullable=False, unique=True),
    Column("procedures", Text, nullable=False),
    Column("sealed_forms", LargeBinary, nullable=False),
    Column("submitted_at", UtcDateTime(), nullable=False),
    UniqueConstraint("resident_id", "idempotency_key"),
    Index("ix_portal_applications_resident", "resident_id", "submitted_at"),
)

portal_deliveries = Table(
    "portal_deliveries",
    metadata,
    Column("application_id", ForeignKey("portal_applications.id"), primary_key=True),
    Column("procedure", String(40), primary_key=True),
    Column("agency_id", String(40), nullable=False),
    Column("log_seq", BigInteger, nullable=False),
)
