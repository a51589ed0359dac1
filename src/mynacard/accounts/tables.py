"""Tables of accounts: staff who log in with a password, and API clients that present a key."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Integer, String, Table

from mynacard.db import UtcDateTime, metadata

accounts = Table(
    "accounts",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("role", String(16), nullable=False),
    Column("municipality_code", String(6), nullable=True),
    Column("password_hash", String(256), nullable=True),
    Column("api_key_hash", String(64), nullable=True, unique=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("disabled_at", UtcDateTime(), nullable=True),
)
