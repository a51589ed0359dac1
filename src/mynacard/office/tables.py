"""Tables of the municipal issuance office. Other parts use :mod:`mynacard.office.service`, never these."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    Time,
    UniqueConstraint,
    text,
)

from mynacard.db import UtcDateTime, metadata

_ID = BigInteger().with_variant(Integer, "sqlite")

office_sites = Table(
    "office_sites",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("municipality_code", String(6), nullable=False, index=True),
    Column("name", String(100), nullable=False),
    Column("kind", String(16), nullable=False),  # main | branch | temporary
    Column("address", Text, nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    UniqueConstraint("municipality_code", "name", name="uq_office_sites_name"),
)

office_counters = Table(
    "office_counters",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("site_id", ForeignKey("office_sites.id"), nullable=False, index=True),
    Column("kind", String(16), nullable=False),  # document_check | issuance
    Column("label", String(40), nullable=False),
    # Integrated terminals (統合端末) at this counter: an issuance counter needs one.
    Column("terminals", Integer, nullable=False),
    UniqueConstraint("site_id", "label", name="uq_office_counters_label"),
)

office_shifts = Table(
    "office_shifts",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("site_id", ForeignKey("office_sites.id"), nullable=False),
    Column("day", Date, nullable=False),
    Column("starts", Time, nullable=False),
    Column("ends", Time, nullable=False),
    Column("staff", Integer, nullable=False),
    Column("note", String(100), nullable=True),  # 土曜開庁, 夜間延長, …
    UniqueConstraint("site_id", "day", "starts", name="uq_office_shifts_start"),
)

office_slots = Table(
    "office_slots",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("site_id", ForeignKey("office_sites.id"), nullable=False),
    Column("municipality_code", String(6), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("starts_at", UtcDateTime(), nullable=False),
    Column("ends_at", UtcDateTime(), nullable=False),
    Column("capacity", Integer, nullable=False),
    # Places taken; a booking raises it with ``booked < capacity`` in the UPDATE itself, so two bookings can
    # never take the last place together.
    Column("booked", Integer, nullable=False),
    UniqueConstraint("site_id", "kind", "starts_at", name="uq_office_slots_start"),
    Index("ix_office_slots_municipality_start", "municipality_code", "kind", "starts_at"),
)

office_notices = Table(
    "office_notices",
    metadata,
    Column("notice_number", String(17), primary_key=True),
    Column("card_id", ForeignKey("cards.id"), nullable=False, index=True),
    Column("resident_id", ForeignKey("residents.id"), nullable=False),
    Column("municipality_code", String(6), nullable=False),
    Column("state", String(16), nullable=False),
    Column("sequence", Integer, nullable=False),  # 1 = first notice, 2 = first re-notice, …
    # Keyed hash of the date of birth: the booking page's second factor, without a copy of the date.
    Column("birth_hash", String(64), nullable=False),
    Column("failed_attempts", Integer, nullable=False),
    Column("sent_at", UtcDateTime(), nullable=False),
    Column("pickup_deadline", Date, nullable=False),
    Column("closed_at", UtcDateTime(), nullable=True),
    # Only one notice of a card is outstanding at a time.
    Index("uq_office_notices_open_card", "card_id", unique=True,
          postgresql_where=text("state = 'sent'"), sqlite_where=text("state = 'sent'")),
    Index("ix_office_notices_municipality_state", "municipality_code", "state"),
)

office_bookings = Table(
    "office_bookings",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("notice_number", ForeignKey("office_notices.notice_number"), nullable=False, index=True),
    Column("slot_id", ForeignKey("office_slots.id"), nullable=False, index=True),
    Column("municipality_code", String(6), nullable=False),
    Column("state", String(16), nullable=False),
    Column("idempotency_key", String(80), nullable=True, unique=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("closed_at", UtcDateTime(), nullable=True),
    # One active booking per notice, enforced by the database.
    Index("uq_office_bookings_active_notice", "notice_number", unique=True,
          postgresql_where=text("state = 'active'"), sqlite_where=text("state = 'active'")),
)

office_receipt_checks = Table(
    "office_receipt_checks",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("card_id", ForeignKey("cards.id"), nullable=False, index=True),
    Column("municipality_code", String(6), nullable=False),
    Column("outcome", String(16), nullable=False),  # passed | defective
    Column("problems", Text, nullable=True),
    Column("chip_checked", Integer, nullable=False),
    Column("checked_at", UtcDateTime(), nullable=False),
    Column("checked_by", String(64), nullable=False),
)

office_setup_runs = Table(
    "office_setup_runs",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("municipality_code", String(6), nullable=False, index=True),
    Column("started_at", UtcDateTime(), nullable=False),
    Column("terminals", Integer, nullable=False),
    Column("limit_cards", Integer, nullable=False),
    Column("cards", Integer, nullable=False),
    Column("run_by", String(64), nullable=False),
)
