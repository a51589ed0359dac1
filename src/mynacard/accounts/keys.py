"""API keys of machine accounts (kiosks, agencies, manufacturers, verifiers…): several per account, so that a key
is rotated without downtime (issue the new one, move the machine over, revoke the old one); each with a label,
its creation and last use, and an optional expiry. A key is shown once; only its keyed hash is kept."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from sqlalchemy import Connection, insert, or_, select, update

from mynacard.accounts.model import KeyView
from mynacard.accounts.tables import accounts, api_keys
from mynacard.context import Context
from mynacard.principal import Principal, Role
from mynacard.sealing import Sealer

__all__ = ["PREFIX", "authenticate_api_key", "insert_key", "key_views", "revoke_all_keys"]

PREFIX = "myna_"
_TOUCH_EVERY = timedelta(minutes=1)
"""``last_used_at`` is written at most this often per key, so that a busy kiosk's requests stay read-only."""


def _hash(ctx: Context, key: str) -> str:
    return Sealer(ctx.settings.data_key).lookup_hash(key)


def insert_key(ctx: Context, conn: Connection, account_id: int, label: str, now: datetime,
               expires_at: datetime | None) -> tuple[int, str]:
    """A new key for the account, in the caller's transaction; returns its id and the key (to show once)."""
    key = PREFIX + secrets.token_urlsafe(32)
    key_id = conn.execute(insert(api_keys).values(
        account_id=account_id, label=label, key_hash=_hash(ctx, key), prefix=key[:12], created_at=now,
        expires_at=expires_at).returning(api_keys.c.id)).scalar_one()
    return int(key_id), key


def revoke_all_keys(conn: Connection, account_id: int, now: datetime) -> int:
    return conn.execute(update(api_keys).where(api_keys.c.account_id == account_id,
                                               api_keys.c.revoked_at.is_(None)).values(revoked_at=now)).rowcount


def key_views(conn: Connection, account_id: int) -> tuple[KeyView, ...]:
    rows = conn.execute(select(api_keys).where(api_keys.c.account_id == account_id).order_by(api_keys.c.id))
    return tuple(KeyView(r.id, r.label, r.prefix, r.created_at, r.last_used_at, r.expires_at, r.revoked_at)
                 for r in rows)


def authenticate_api_key(ctx: Context, key: str, now: datetime | None = None) -> Principal | None:
    """The account a key belongs to, if the key is neither revoked nor expired and the account not disabled."""
    if not key.startswith(PREFIX) or len(key) > 128:
        return None
    from mynacard.accounts.sessions import utcnow

    now = now or utcnow()
    with ctx.db.connect() as conn:
        row = conn.execute(
            select(api_keys.c.id, api_keys.c.last_used_at, accounts.c.role, accounts.c.username,
                   accounts.c.municipality_code)
            .join(accounts, accounts.c.id == api_keys.c.account_id)
            .where(api_keys.c.key_hash == _hash(ctx, key), api_keys.c.revoked_at.is_(None),
                   accounts.c.disabled_at.is_(None),
                   or_(api_keys.c.expires_at.is_(None), api_keys.c.expires_at > now))).first()
    if row is None:
        return None
    if row.last_used_at is None or now - row.last_used_at >= _TOUCH_EVERY:
        with ctx.transaction() as tx:
            conn = tx.conn
            conn.execute(update(api_keys).where(api_keys.c.id == row.id).values(last_used_at=now))
    return Principal(Role(row.role), row.username, row.municipality_code)
