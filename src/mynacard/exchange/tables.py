"""Tables of the network itself (the hub). Other parts use :mod:`mynacard.exchange.service`, never these.

They hold agencies and their public keys, codes and links, the review queue and the log — never the contents
of any agency's records, which live in each agency's own store (:mod:`mynacard.exchange.store`).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Sequence,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from mynacard.db import UtcDateTime, metadata

_ID = BigInteger().with_variant(Integer, "sqlite")

exchange_hub_keys = Table(
    "exchange_hub_keys",
    metadata,
    # 'party' (the hub's signing and encryption keys) and 'codes' (the root of the agency-code derivation);
    # private parts sealed with the data key, never stored in clear.
    Column("purpose", String(16), primary_key=True),
    Column("public_sign", LargeBinary, nullable=True),
    Column("public_enc", LargeBinary, nullable=True),
    Column("sealed_private", LargeBinary, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
)

exchange_agencies = Table(
    "exchange_agencies",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(120), nullable=False),
    Column("name_en", String(120), nullable=False),
    Column("kind", String(32), nullable=False, index=True),
    Column("municipality_code", ForeignKey("municipalities.code"), nullable=True, index=True),
    Column("sign_public_key", LargeBinary, nullable=False),
    Column("enc_public_key", LargeBinary, nullable=False),
    Column("key_version", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("registered_at", UtcDateTime(), nullable=False),
    Column("registered_by", String(64), nullable=False),
)

exchange_links = Table(
    "exchange_links",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("agency_id", ForeignKey("exchange_agencies.id"), nullable=False),
    Column("code", String(26), nullable=False, unique=True),
    Column("resident_id", ForeignKey("residents.id"), nullable=False, index=True),
    Column("generation", Integer, nullable=False),
    Column("local_ref", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("linked_at", UtcDateTime(), nullable=False),
    Column("changed_at", UtcDateTime(), nullable=False),
    UniqueConstraint("agency_id", "resident_id", "generation"),
    # One live link per agency record and per person at an agency; withdrawn links stay as history.
    Index("ux_exchange_links_live_ref", "agency_id", "local_ref", unique=True,
          sqlite_where=text("status <> 'unlinked'"), postgresql_where=text("status <> 'unlinked'")),
    Index("ux_exchange_links_live_person", "agency_id", "resident_id", unique=True,
          sqlite_where=text("status <> 'unlinked'"), postgresql_where=text("status <> 'unlinked'")),
)

exchange_link_events = Table(
    "exchange_link_events",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("link_id", ForeignKey("exchange_links.id"), nullable=False, index=True),
    Column("kind", String(16), nullable=False),
    Column("from_status", String(16), nullable=True),
    Column("to_status", String(16), nullable=False),
    Column("actor", String(64), nullable=False),
    Column("at", UtcDateTime(), nullable=False),
    Column("reason", Text, nullable=True),
)

exchange_reviews = Table(
    "exchange_reviews",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("agency_id", ForeignKey("exchange_agencies.id"), nullable=False, index=True),
    Column("local_ref", String(64), nullable=False),
    Column("source", String(16), nullable=False),
    # Keyed digest of the request: an identical retry finds its review instead of opening a second one.
    Column("request_digest", String(64), nullable=False),
    Column("candidate_resident_id", ForeignKey("residents.id"), nullable=True),
    Column("reasons", Text, nullable=False),
    # The number and facts as submitted, sealed (AES-GCM): a reviewer may need them, nobody else.
    Column("sealed_submission", LargeBinary, nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("decided_at", UtcDateTime(), nullable=True),
    Column("decided_by", String(64), nullable=True),
    Column("decision_reason", Text, nullable=True),
    Column("link_id", ForeignKey("exchange_links.id"), nullable=True),
    Index("ix_exchange_reviews_status", "status", "agency_id"),
    Index("ix_exchange_reviews_digest", "agency_id", "request_digest"),
)

exchange_reply_handles = Table(
    "exchange_reply_handles",
    metadata,
    # How an agency answers an application from Mynaportal without holding a code for the applicant.
    Column("handle", String(32), primary_key=True),
    Column("agency_id", ForeignKey("exchange_agencies.id"), nullable=False),
    Column("subject_code", String(26), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
)

exchange_log_seq = Sequence("exchange_log_seq", metadata=metadata)
"""Entry numbers on PostgreSQL (handed out without a lock, so chains append side by side)."""

exchange_log = Table(
    "exchange_log",
    metadata,
    Column("seq", _ID, primary_key=True, autoincrement=False),
    # One of LOG_CHAINS hash chains (by the person's Mynaportal code), and the position in it.
    Column("chain", SmallInteger, nullable=False),
    Column("chain_seq", BigInteger, nullable=False),
    Column("kind", String(20), nullable=False),
    Column("message_id", String(64), nullable=False),
    Column("requester", String(40), nullable=False),
    Column("provider", String(40), nullable=True),
    Column("procedure", String(40), nullable=True),
    Column("item", String(40), nullable=True),
    Column("subject_code", String(26), nullable=True, index=True),
    Column("status", String(16), nullable=False),
    Column("reason", Text, nullable=True),
    Column("requested_at", UtcDateTime(), nullable=False),
    Column("completed_at", UtcDateTime(), nullable=False, index=True),
    Column("prev_hash", String(64), nullable=False),
    Column("row_hash", String(64), nullable=False),
    # A retried message is answered again but logged once.
    UniqueConstraint("requester", "message_id", "provider"),
    UniqueConstraint("chain", "chain_seq"),
    Index("ix_exchange_log_requester", "requester", "seq"),
    Index("ix_exchange_log_provider", "provider", "seq"),
)

exchange_log_head = Table(
    "exchange_log_head",
    metadata,
    # One row per chain: its last position and hash, signed by the hub; appenders to the chain lock it.
    Column("chain", SmallInteger, primary_key=True, autoincrement=False),
    Column("chain_seq", BigInteger, nullable=False),
    Column("row_hash", String(64), nullable=False),
    Column("signature", LargeBinary, nullable=True),
    Column("updated_at", UtcDateTime(), nullable=False),
)

exchange_log_checkpoints = Table(
    "exchange_log_checkpoints",
    metadata,
    Column("chain", SmallInteger, primary_key=True, autoincrement=False),
    Column("chain_seq", BigInteger, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=True),
    Column("kind", String(16), nullable=False),
    Column("row_hash", String(64), nullable=False),
    Column("signature", LargeBinary, nullable=False),
    Column("at", UtcDateTime(), nullable=False),
)
