"""Tables of the card pipeline. Other parts use :mod:`mynacard.cards.service`, never these."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
)

from mynacard.db import UtcDateTime, metadata

_ID = BigInteger().with_variant(Integer, "sqlite")

application_forms = Table(
    "application_forms",
    metadata,
    Column("application_id", String(23), primary_key=True),
    Column("resident_id", ForeignKey("residents.id"), nullable=False, index=True),
    Column("municipality_code", String(6), nullable=False),
    # Digest of the basic four facts printed on the form: a form printed before a move or a change of name
    # no longer matches and the application goes to review (a stale 申請書ID).
    Column("facts_digest", String(64), nullable=False),
    Column("issued_at", UtcDateTime(), nullable=False),
)

print_batches = Table(
    "print_batches",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("manufacturer", String(32), nullable=False),
    Column("business_date", Date, nullable=False),
    Column("file_name", String(128), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("card_count", Integer, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("acknowledged_at", UtcDateTime(), nullable=True),
    Column("manufactured_at", UtcDateTime(), nullable=True),
)

boxes = Table(
    "boxes",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("municipality_code", String(6), nullable=False),
    Column("manufacturer", String(32), nullable=False),
    Column("card_count", Integer, nullable=False),
    Column("manifest_sha256", String(64), nullable=False),
    Column("shipped_at", UtcDateTime(), nullable=False),
    Column("received_at", UtcDateTime(), nullable=True),
    Column("received_by", String(64), nullable=True),
    Index("ix_boxes_municipality_received", "municipality_code", "received_at"),
)

box_discrepancies = Table(
    "box_discrepancies",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("box_id", ForeignKey("boxes.id"), nullable=False, index=True),
    Column("card_serial", String(16), nullable=False),
    Column("kind", String(16), nullable=False),  # missing | damaged | unexpected
    Column("reason", Text, nullable=True),
    Column("at", UtcDateTime(), nullable=False),
)

cards = Table(
    "cards",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("application_id", String(23), nullable=False, unique=True),
    Column("resident_id", ForeignKey("residents.id"), nullable=False, index=True),
    Column("municipality_code", String(6), nullable=False),
    Column("state", String(24), nullable=False),
    Column("channel", String(16), nullable=False),
    # The facts as written on the application, normalised like the registry's.
    Column("family_name", String(60), nullable=False),
    Column("given_name", String(60), nullable=False),
    Column("birth_date", Date, nullable=False),
    Column("sex", String(1), nullable=False),
    Column("address", Text, nullable=False),
    Column("maiden_name", String(60), nullable=True),
    Column("photo_sha256", String(64), nullable=False),
    Column("wants_sign_cert", Boolean, nullable=False),
    Column("wants_auth_cert", Boolean, nullable=False),
    Column("applied_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("review_reason", Text, nullable=True),
    Column("print_batch_id", ForeignKey("print_batches.id"), nullable=True),
    Column("box_id", ForeignKey("boxes.id"), nullable=True, index=True),
    Column("card_serial", String(16), nullable=True, unique=True),
    Column("print_count", Integer, nullable=False, default=0),
    Column("issued_on", Date, nullable=True),
    Column("card_valid_until", Date, nullable=True),
    Column("cert_valid_until", Date, nullable=True),
    Column("abolition_reason", String(32), nullable=True),
    Column("version", Integer, nullable=False, default=1),
    Index("ix_cards_state_id", "state", "id"),
    Index("ix_cards_municipality_state", "municipality_code", "state"),
    Index("ix_cards_print_batch", "print_batch_id", "state"),
)

card_events = Table(
    "card_events",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("card_id", ForeignKey("cards.id"), nullable=False, index=True),
    Column("from_state", String(24), nullable=True),
    Column("to_state", String(24), nullable=False),
    Column("actor", String(64), nullable=False),
    Column("at", UtcDateTime(), nullable=False),
    Column("reason", Text, nullable=True),
)

ledger_checks = Table(
    "ledger_checks",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("checked_at", UtcDateTime(), nullable=False),
    Column("ok", Boolean, nullable=False),
    Column("cards", BigInteger, nullable=False),
    Column("events", BigInteger, nullable=False),
    Column("problems", Text, nullable=False),
    # JSON: each kind of damage → a sample of the card (or box) ids, as ledger.LedgerReport lists them.
    Column("actor", String(64), nullable=False),
)
"""The results of the ledger check (:func:`mynacard.cards.service.check_ledger`, run by ``mynacard status``): a
job, because it reads every card event; the public first page shows the last one and when it ran. Only the most
recent few are kept."""
