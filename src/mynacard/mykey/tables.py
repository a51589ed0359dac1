"""Tables of the MyKey platform. Other parts use :mod:`mynacard.mykey.service`, never these.

No individual number anywhere: a MyKey ID is bound to authentication-certificate serials (利用者証明用電子証明書
の発行番号) and, for "one ID per person", to the resident record id the JPKI holder mapping gives.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    UniqueConstraint,
)

from mynacard.db import UtcDateTime, metadata

_ID = BigInteger().with_variant(Integer, "sqlite")

mykey_ids = Table(
    "mykey_ids",
    metadata,
    Column("mykey_id", String(8), primary_key=True),
    Column("resident_id", ForeignKey("residents.id"), nullable=False, unique=True),
    Column("created_at", UtcDateTime(), nullable=False),
)

mykey_certificates = Table(
    "mykey_certificates",
    metadata,
    Column("serial", String(48), primary_key=True),
    Column("mykey_id", ForeignKey("mykey_ids.mykey_id"), nullable=False, index=True),
    Column("bound_at", UtcDateTime(), nullable=False),
    Column("how", String(16), nullable=False),
)

mykey_facilities = Table(
    "mykey_facilities",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("code", String(32), nullable=False, unique=True),
    Column("name", String(128), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("municipality_code", String(6), nullable=False, index=True),
    Column("pin_required", Boolean, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
)

mykey_links = Table(
    "mykey_links",
    metadata,
    Column("facility_id", ForeignKey("mykey_facilities.id"), primary_key=True),
    Column("member_number", String(32), primary_key=True),
    Column("mykey_id", ForeignKey("mykey_ids.mykey_id"), nullable=False),
    Column("linked_at", UtcDateTime(), nullable=False),
    UniqueConstraint("facility_id", "mykey_id", name="uq_mykey_links_facility_member"),
    Index("ix_mykey_links_mykey", "mykey_id"),
)

# --- local government points ----------------------------------------------------------------------------

point_partners = Table(
    "point_partners",
    metadata,
    Column("code", String(32), primary_key=True),
    Column("name", String(128), nullable=False),
    Column("rate_numerator", Integer, nullable=False),
    Column("rate_denominator", Integer, nullable=False),
    CheckConstraint("rate_numerator > 0 AND rate_denominator > 0", name="rate_positive"),
)

point_shops = Table(
    "point_shops",
    metadata,
    Column("code", String(32), primary_key=True),
    Column("name", String(128), nullable=False),
    Column("municipality_code", String(6), nullable=False, index=True),
    Column("online", Boolean, nullable=False),
)

point_accounts = Table(
    "point_accounts",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),
    Column("owner", String(32), nullable=False),
    Column("municipality_code", String(6), nullable=False),
    Column("balance", BigInteger, nullable=False),
    Column("may_go_negative", Boolean, nullable=False),
    UniqueConstraint("kind", "owner", "municipality_code", name="uq_point_accounts_owner"),
    CheckConstraint("may_go_negative OR balance >= 0", name="no_overdraft"),
)

point_transactions = Table(
    "point_transactions",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("idempotency_key", String(64), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),
    Column("municipality_code", String(6), nullable=False, index=True),
    Column("fingerprint", String(64), nullable=False),
    Column("memo", String(128), nullable=False),
    Column("actor", String(64), nullable=False),
    Column("at", UtcDateTime(), nullable=False),
)

point_entries = Table(
    "point_entries",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("transaction_id", ForeignKey("point_transactions.id"), nullable=False, index=True),
    Column("account_id", ForeignKey("point_accounts.id"), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Index("ix_point_entries_account", "account_id", "id"),
)

# --- shelters -------------------------------------------------------------------------------------------

mykey_settings = Table(
    "mykey_settings",
    metadata,
    Column("municipality_code", String(6), primary_key=True),
    Column("shelter_pin_required", Boolean, nullable=False),
)

shelters = Table(
    "shelters",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("code", String(32), nullable=False, unique=True),
    Column("name", String(128), nullable=False),
    Column("municipality_code", String(6), nullable=False, index=True),
    Column("capacity", Integer, nullable=False),
)

shelter_touches = Table(
    "shelter_touches",
    metadata,
    Column("touch_id", String(36), primary_key=True),
    Column("shelter_id", ForeignKey("shelters.id"), nullable=False),
    Column("resident_id", ForeignKey("residents.id"), nullable=False),
    Column("certificate_serial", String(48), nullable=False),
    Column("direction", String(3), nullable=False),
    Column("touched_at", UtcDateTime(), nullable=False),
    Column("received_at", UtcDateTime(), nullable=False),
    Index("ix_shelter_touches_resident", "resident_id", "touched_at"),
    Index("ix_shelter_touches_shelter", "shelter_id"),
)

# --- mother-and-child health (母子保健) --------------------------------------------------------------------------

child_health_records = Table(
    "child_health_records",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("child_resident_id", ForeignKey("residents.id"), nullable=False),
    Column("municipality_code", String(6), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("code", String(32), nullable=False),
    Column("done_on", Date, nullable=False),
    Column("note", String(200), nullable=False),
    Column("recorded_by", String(64), nullable=False),
    Column("recorded_at", UtcDateTime(), nullable=False),
    UniqueConstraint("child_resident_id", "kind", "code", name="uq_child_health_records_item"),
)

# --- pension status confirmation (現況確認) -----------------------------------------------------------------------

pension_annuitants = Table(
    "pension_annuitants",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("platform", String(64), nullable=False),
    Column("insurer", String(32), nullable=False),
    Column("contract_number", String(32), nullable=False),
    Column("sign_serial", String(48), nullable=False, index=True),
    Column("auth_certificate", LargeBinary, nullable=False),
    Column("name", String(200), nullable=False),
    Column("address", String(400), nullable=False),
    Column("birth_date", String(9), nullable=False),
    Column("sex", String(1), nullable=False),
    Column("status", String(16), nullable=False),
    Column("detail", String(200), nullable=False),
    Column("enrolled_at", UtcDateTime(), nullable=False),
    Column("checked_at", UtcDateTime(), nullable=False),
    UniqueConstraint("insurer", "contract_number", name="uq_pension_annuitants_contract"),
)
