"""Tables of the issuance window: the saga record of each window issuance and the window's other acts."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, ForeignKey, Integer, LargeBinary, String, Table, Text

from mynacard.db import UtcDateTime, metadata

_ID = BigInteger().with_variant(Integer, "sqlite")

window_issuances = Table(
    "window_issuances", metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("idempotency_key", String(64), nullable=False, unique=True),
    # The notice number (交付通知書番号), or ``card-<id>`` when the clerk keyed the card in.
    Column("card_id", ForeignKey("cards.id"), nullable=False, unique=True),
    # One issuance record per card: a retry or a second terminal finds the same record.
    Column("card_serial", String(16), nullable=False),
    Column("municipality_code", String(6), nullable=False, index=True),
    Column("status", String(16), nullable=False),
    Column("identity", Text, nullable=False),
    # JSON: who came and which kinds of documents were seen (never document numbers).
    Column("notification_card", String(16), nullable=False),
    Column("snapshot", LargeBinary, nullable=False),
    # The chip's pre-issuance image, sealed with the data key, for a rollback.
    Column("auth_certificate_serial", String(48), nullable=True),
    Column("sign_certificate_serial", String(48), nullable=True),
    Column("clerk", String(64), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("started_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("finished_at", UtcDateTime(), nullable=True),
)

window_acts = Table(
    "window_acts", metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("card_id", ForeignKey("cards.id"), nullable=False, index=True),
    Column("municipality_code", String(6), nullable=False, index=True),
    Column("kind", String(24), nullable=False),
    # suspended | suspension_lifted | lost | pin_reset | endorsed | sign_reissued.
    Column("request_key", String(64), nullable=True, unique=True),
    # An idempotency key from the caller (the call centre's ticket number).
    Column("actor", String(64), nullable=False),
    Column("detail", Text, nullable=True),
    Column("at", UtcDateTime(), nullable=False),
)
