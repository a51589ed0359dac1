"""Tables of accounts: staff who log in with a password, machines that present API keys, staff sessions, the
per-address login throttle, and the hash-chained log of every administrative act on an account."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, ForeignKey, Index, Integer, String, Table, false

from mynacard.db import UtcDateTime, metadata
from mynacard.hashchain import chain_tables

_ID = BigInteger().with_variant(Integer, "sqlite")

accounts = Table(
    "accounts",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("role", String(16), nullable=False),
    Column("municipality_code", String(6), nullable=True),
    Column("password_hash", String(256), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("disabled_at", UtcDateTime(), nullable=True),
    # Wrong passwords since the last good one (or the last unlock).
    Column("failed_logins", Integer, nullable=False, server_default="0"),
    # Set when ``failed_logins`` reaches the limit; only an operator's unlock clears it.
    Column("locked_at", UtcDateTime(), nullable=True),
    # A one-time password (bootstrap, reset): the next login must set a new one before anything else.
    Column("must_change_password", Boolean, nullable=False, server_default=false()),
    Column("password_changed_at", UtcDateTime(), nullable=True),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("account_id", ForeignKey("accounts.id"), nullable=False),
    Column("label", String(64), nullable=False),
    # Keyed hash (HMAC) of the key; the key itself is shown once and never kept.
    Column("key_hash", String(64), nullable=False, unique=True),
    # The key's first characters, so that a person can tell keys apart in a list.
    Column("prefix", String(16), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("last_used_at", UtcDateTime(), nullable=True),
    Column("expires_at", UtcDateTime(), nullable=True),
    Column("revoked_at", UtcDateTime(), nullable=True),
    Index("ix_api_keys_account", "account_id"),
)

staff_sessions = Table(
    "staff_sessions",
    metadata,
    # Keyed hash of the cookie's token; a stolen database does not give working cookies.
    Column("token_hash", String(64), primary_key=True),
    Column("account_id", ForeignKey("accounts.id"), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("last_seen_at", UtcDateTime(), nullable=False),
    # The absolute end, however busy the session.
    Column("expires_at", UtcDateTime(), nullable=False),
    Column("revoked_at", UtcDateTime(), nullable=True),
    Column("client", String(64), nullable=False),
    Index("ix_staff_sessions_account", "account_id"),
)

login_throttle = Table(
    "login_throttle",
    metadata,
    # The client address that sent wrong passwords.
    Column("client", String(64), primary_key=True),
    Column("failures", Integer, nullable=False),
    Column("last_failure_at", UtcDateTime(), nullable=False),
)

account_audit, account_audit_heads = chain_tables("account_audit")
"""Who did what to which account, when and from where (one stream, ``accounts``)."""
