"""Key material of the hub and of the agencies' interface systems, sealed at rest and cached once opened.

The hub's keys (its signing and encryption pair, and the secret root of the agency-code derivation) are
generated on first use into ``exchange_hub_keys``; an agency's pair is generated when it registers, into its
own store. Private parts are sealed with :class:`mynacard.sealing.Sealer` (AES-GCM under the data key) and
bound to their row, so that a sealed key copied to another row does not open.

Opened keys are cached per database and keyed by the public key they belong to, so a cache can never serve a
key that a rolled-back registration or a rotation replaced: the public key is read in the transaction.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from datetime import datetime
from weakref import WeakKeyDictionary

from sqlalchemy import Connection, insert, select
from sqlalchemy.dialects import postgresql, sqlite

from mynacard.context import Context
from mynacard.db import Database
from mynacard.exchange.envelope import PartyKeys
from mynacard.exchange.store import AgencyStore
from mynacard.exchange.tables import exchange_hub_keys
from mynacard.sealing import Sealer

__all__ = ["HUB_ID", "HubKeys", "agency_keys", "hub_keys", "new_agency_keys"]

HUB_ID = "hub"
"""The hub's name in envelopes (情報提供ネットワークシステム コアシステム)."""

_lock = threading.Lock()
_hub_cache: WeakKeyDictionary[Database, HubKeys] = WeakKeyDictionary()
_agency_cache: WeakKeyDictionary[Database, dict[tuple[str, bytes], PartyKeys]] = WeakKeyDictionary()


@dataclass(frozen=True)
class HubKeys:
    """The hub's party keys and the root of the agency-code derivation."""

    party: PartyKeys
    code_root: bytes


def _insert_ignore(conn: Connection, row: dict[str, object]) -> None:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    conn.execute(dialect.insert(exchange_hub_keys).values(**row).on_conflict_do_nothing())


def hub_keys(ctx: Context, now: datetime) -> HubKeys:
    """The hub's keys, generated on first use. Call outside any open transaction (it may write)."""
    cached = _hub_cache.get(ctx.db)
    if cached is not None:
        return cached
    sealer = Sealer(ctx.settings.data_key)
    with _lock:
        cached = _hub_cache.get(ctx.db)
        if cached is not None:
            return cached
        with ctx.transaction() as tx:
            conn = tx.conn
            rows = {r.purpose: r for r in conn.execute(select(exchange_hub_keys))}
            if "party" not in rows:
                fresh = PartyKeys.generate()
                sign, enc = fresh.raw_private()
                _insert_ignore(conn, {"purpose": "party", "public_sign": fresh.sign_public,
                                      "public_enc": fresh.enc_public, "created_at": now,
                                      "sealed_private": sealer.seal(sign + enc, b"exchange_hub_keys:party")})
            if "codes" not in rows:
                root = sealer.seal(os.urandom(32), b"exchange_hub_keys:codes")
                _insert_ignore(conn, {"purpose": "codes", "created_at": now, "sealed_private": root})
            rows = {r.purpose: r for r in conn.execute(select(exchange_hub_keys))}
        raw = sealer.open(rows["party"].sealed_private, b"exchange_hub_keys:party")
        keys = HubKeys(PartyKeys.from_raw(raw[:32], raw[32:]),
                       sealer.open(rows["codes"].sealed_private, b"exchange_hub_keys:codes"))
        if keys.party.sign_public != rows["party"].public_sign:
            raise RuntimeError("the hub's sealed key does not match its public key")
        _hub_cache[ctx.db] = keys
        return keys


def hub_public_keys(conn: Connection) -> tuple[bytes, bytes]:
    """The hub's (signing, encryption) public keys as stored."""
    row = conn.execute(select(exchange_hub_keys.c.public_sign, exchange_hub_keys.c.public_enc)
                       .where(exchange_hub_keys.c.purpose == "party")).one()
    return row.public_sign, row.public_enc


def _context(agency_id: str, version: int) -> bytes:
    return f"exchange:agency:{agency_id}:keys:{version}".encode()


def new_agency_keys(ctx: Context, conn: Connection, store: AgencyStore, version: int,
                    now: datetime) -> PartyKeys:
    """Generate an agency's key pair into its own store (sealed); returns it."""
    keys = PartyKeys.generate()
    sign, enc = keys.raw_private()
    conn.execute(insert(store.keys).values(
        version=version, created_at=now,
        sealed_private=Sealer(ctx.settings.data_key).seal(sign + enc, _context(store.agency_id, version))))
    return keys


def agency_keys(ctx: Context, conn: Connection, store: AgencyStore, version: int,
                sign_public: bytes) -> PartyKeys:
    """An agency's private keys (version ``version``), checked against its registered public key."""
    key = (str(store.agency_id), sign_public)
    with _lock:
        cache = _agency_cache.setdefault(ctx.db, {})
        found = cache.get(key)
    if found is not None:
        return found
    sealed = conn.execute(select(store.keys.c.sealed_private).where(store.keys.c.version == version)).scalar()
    if sealed is None:
        raise LookupError(f"agency {store.agency_id} has no key version {version}")
    raw = Sealer(ctx.settings.data_key).open(sealed, _context(store.agency_id, version))
    keys = PartyKeys.from_raw(raw[:32], raw[32:])
    if keys.sign_public != sign_public:
        raise RuntimeError(f"agency {store.agency_id}: sealed key does not match its registered public key")
    with _lock:
        _agency_cache.setdefault(ctx.db, {})[key] = keys
    return keys
