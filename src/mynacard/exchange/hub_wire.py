"""The wire of the network, the base of :class:`~mynacard.exchange.hub.Network`: bound to one transaction,
it finds agencies and their keys, seals and opens every envelope (and lets :func:`wiretap` watch them),
and holds the small helpers the hub's parts share."""

from __future__ import annotations

import base64
import re
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import Connection, and_, bindparam, select
from sqlalchemy.dialects import postgresql, sqlite

from mynacard.context import Context, Transaction
from mynacard.db import Database
from mynacard.errors import InvalidInput, NotFound
from mynacard.exchange import keys as keyring
from mynacard.exchange.envelope import EnvelopeError, Opened, PartyKeys, open_envelope, seal
from mynacard.exchange.model import Agency, AgencyId, AgencyKind, AgencyStatus
from mynacard.exchange.store import AgencyStore, store_for
from mynacard.exchange.tables import exchange_agencies

__all__ = ["NetworkBase", "agencies_where", "agency_from_row", "b64", "check_message_id", "insert_ignore",
           "new_message_id", "unb64", "wiretap"]


# Statements on the hot path, built once and run with bind parameters.
_AGENCY = select(exchange_agencies).where(exchange_agencies.c.id == bindparam("id"))
_FRESHNESS = timedelta(minutes=5)
_MESSAGE_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


Tap = Callable[[str, str, bytes], None]
_taps: WeakKeyDictionary[Database, list[Tap]] = WeakKeyDictionary()


@contextmanager
def wiretap(ctx: Context) -> Iterator[list[tuple[str, str, bytes]]]:
    """Record every envelope that crosses the network of ``ctx`` while the block runs: (sender, recipient,
    bytes). For audits and tests (the scan that proves no individual number travels); observation only."""
    seen: list[tuple[str, str, bytes]] = []

    def tap(sender: str, recipient: str, envelope: bytes) -> None:
        seen.append((sender, recipient, envelope))

    _taps.setdefault(ctx.db, []).append(tap)
    try:
        yield seen
    finally:
        _taps[ctx.db].remove(tap)


def agency_from_row(row: Any) -> Agency:
    return Agency(AgencyId(row.id), row.name, row.name_en, AgencyKind(row.kind), row.municipality_code,
                  AgencyStatus(row.status), row.key_version, bytes(row.sign_public_key),
                  bytes(row.enc_public_key))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: Any) -> bytes:
    if not isinstance(text, str):
        raise EnvelopeError("missing inner envelope")
    return base64.b64decode(text, validate=True)


def insert_ignore(conn: Connection, table: Any, row: dict[str, Any]) -> bool:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return bool(conn.execute(dialect.insert(table).values(**row).on_conflict_do_nothing()).rowcount)


def check_message_id(value: Any) -> str:
    if not isinstance(value, str) or not _MESSAGE_ID.fullmatch(value):
        raise InvalidInput("a message ID has 1–64 characters A–Z a–z 0–9 . _ : -")
    return value


def new_message_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(12)}"


@dataclass
class NetworkBase:
    """The network inside the caller's transaction ``tx`` at time ``now``: the directory, the keys and
    the wire that every part of :class:`~mynacard.exchange.hub.Network` builds on."""

    ctx: Context
    tx: Transaction
    hub: keyring.HubKeys
    now: datetime
    _agencies: dict[str, Agency | None] = field(default_factory=dict)
    _portal_codes: dict[int, str] = field(default_factory=dict)

    @property
    def conn(self) -> Connection:
        return self.tx.conn

    # --- directory and keys ------------------------------------------------------------------------------

    def find_agency(self, agency_id: str) -> Agency | None:
        if agency_id not in self._agencies:
            row = self.conn.execute(_AGENCY, {"id": agency_id}).first()
            self._agencies[agency_id] = None if row is None else agency_from_row(row)
        return self._agencies[agency_id]

    def agency(self, agency_id: str) -> Agency:
        found = self.find_agency(agency_id)
        if found is None:
            raise NotFound(f"no agency {agency_id!r} on the network")
        return found

    def store(self, agency_id: str) -> AgencyStore:
        return store_for(agency_id, self.conn.dialect.name)

    def keys_of(self, agency: Agency) -> PartyKeys:
        return keyring.agency_keys(self.ctx, self.conn, self.store(agency.id), agency.key_version,
                                   agency.sign_public_key)

    def _sign_public(self, sender: str) -> bytes | None:
        if sender == keyring.HUB_ID:
            return self.hub.party.sign_public
        found = self.find_agency(sender)
        return found.sign_public_key if found is not None and found.active else None

    def _enc_public(self, recipient: str) -> bytes:
        if recipient == keyring.HUB_ID:
            return self.hub.party.enc_public
        return self.agency(recipient).enc_public_key

    # --- the wire ------------------------------------------------------------------------------------------

    def send(self, sender: str, sender_keys: PartyKeys, recipient: str, body: dict[str, Any]) -> bytes:
        envelope = seal(sender, sender_keys, recipient, self._enc_public(recipient), body)
        for tap in _taps.get(self.ctx.db, ()):
            tap(sender, recipient, envelope)
        return envelope

    def _open(self, envelope: bytes, recipient: str, keys: PartyKeys, expected_sender: str | None,
              expected_type: str) -> Opened:
        opened = open_envelope(envelope, recipient, keys, self._sign_public)
        if expected_sender is not None and opened.sender != expected_sender:
            raise EnvelopeError(f"expected a message from {expected_sender!r}, not {opened.sender!r}")
        if opened.body.get("type") != expected_type:
            raise EnvelopeError(f"expected a {expected_type!r} message")
        return opened

    def hub_open(self, envelope: bytes, expected_type: str, expected_sender: str | None = None) -> Opened:
        """The hub opens a message from an agency; anything wrong is refused as invalid input."""
        try:
            opened = self._open(envelope, keyring.HUB_ID, self.hub.party, expected_sender, expected_type)
        except EnvelopeError as exc:
            raise InvalidInput(f"message refused by the hub: {exc}") from None
        sent_at = opened.body.get("sent_at")
        try:
            moment = datetime.fromisoformat(sent_at) if isinstance(sent_at, str) else None
        except ValueError:
            moment = None
        if moment is None or moment.tzinfo is None or abs(moment - self.now) > _FRESHNESS:
            raise InvalidInput("message refused by the hub: missing or stale sent_at")
        return opened

    def party_open(self, agency: Agency, envelope: bytes, expected_sender: str, expected_type: str) -> Opened:
        """An agency's interface system opens a message addressed to it."""
        return self._open(envelope, agency.id, self.keys_of(agency), expected_sender, expected_type)

    def hub_send(self, recipient: str, body: dict[str, Any]) -> bytes:
        return self.send(keyring.HUB_ID, self.hub.party, recipient, {**body, "sent_at": self.now.isoformat()})


def agencies_where(conn: Connection, *conditions: Any) -> list[Agency]:
    return [agency_from_row(r) for r in conn.execute(
        select(exchange_agencies).where(and_(True, *conditions)).order_by(exchange_agencies.c.id))]
