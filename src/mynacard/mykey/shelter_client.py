"""The shelter's own client (避難所の受付端末): works with the network down.

Every touch is written first to a local SQLite queue (``touches``) with an id the client makes (UUID4), then
sent when the network allows. A batch the municipality answers is marked from its receipt: accepted and
duplicate touches are done, refused ones are kept with the reason for the staff to see. A batch whose answer
never came (the network fell mid-request) is simply sent again: the ids make the second sending harmless.
Nothing is ever deleted from the queue, so nothing is lost.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

import httpx
from cryptography.hazmat.primitives import serialization

from mynacard.chip.client import CardClient
from mynacard.chip.model import KeyKind
from mynacard.mykey.shelter import SyncReceipt, Touch, touch_message

__all__ = ["HttpUplink", "NetworkDown", "ShelterClient", "SyncReport", "Uplink"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS touches (
    touch_id TEXT PRIMARY KEY,
    certificate BLOB NOT NULL,
    signature BLOB,
    direction TEXT NOT NULL,
    touched_at TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    detail TEXT
)
"""


class NetworkDown(Exception):
    """The municipality could not be reached; the touches stay queued."""


class Uplink(Protocol):
    def send(self, shelter_code: str, touches: list[Touch]) -> SyncReceipt: ...


class HttpUplink:
    """The municipality's API over HTTP (``POST /api/mykey/shelters/{code}/touches``) with the device's key."""

    def __init__(self, base_url: str, api_key: str, *, timeout: float = 10.0,
                 client: httpx.Client | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.client = client or httpx.Client(timeout=timeout)
        self.headers = {"Authorization": f"Bearer {api_key}"}

    def send(self, shelter_code: str, touches: list[Touch]) -> SyncReceipt:
        try:
            response = self.client.post(f"{self.base_url}/api/mykey/shelters/{shelter_code}/touches",
                                        json={"touches": [t.to_json() for t in touches]}, headers=self.headers)
        except httpx.TransportError as exc:
            raise NetworkDown(str(exc)) from exc
        if response.status_code >= 500:
            raise NetworkDown(f"the municipality answered {response.status_code}")
        response.raise_for_status()
        return SyncReceipt.from_json(response.json())


@dataclass(frozen=True)
class SyncReport:
    sent: int
    accepted: int
    duplicates: int
    refused: int
    pending: int
    network_down: bool


class ShelterClient:
    """One shelter's reception terminal with its local queue."""

    def __init__(self, path: Path, shelter_code: str, uplink: Uplink, *, pin_required: bool = True) -> None:
        self.path = path
        self.shelter_code = shelter_code
        self.uplink = uplink
        self.pin_required = pin_required
        with self._db() as db:
            db.execute(_SCHEMA)

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        """The local queue, committed (synchronous=FULL: on disk before the touch is acknowledged) and closed."""
        db = sqlite3.connect(self.path, timeout=30)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            with db:
                yield db
        finally:
            db.close()

    def touch(self, card: CardClient, now: datetime, *, direction: str = "in", pin: str | None = None) -> str:
        """A card on the reader: read the authentication certificate (and, where the PIN is required, have
        the card sign this touch), queue it locally; returns the touch id. Needs no network."""
        if direction not in ("in", "out"):
            raise ValueError("direction is in or out")
        touch_id = str(uuid.uuid4())
        certificate = card.read_auth_certificate().public_bytes(serialization.Encoding.DER)
        signature = None
        if self.pin_required:
            if pin is None:
                raise ValueError("this municipality checks in with the PIN")
            signature = card.sign_message(KeyKind.AUTH, pin,
                                          touch_message(touch_id, self.shelter_code, now, direction))
        with self._db() as db:
            db.execute("INSERT INTO touches (touch_id, certificate, signature, direction, touched_at) "
                       "VALUES (?, ?, ?, ?, ?)", (touch_id, certificate, signature, direction, now.isoformat()))
        return touch_id

    def queued(self, state: str = "pending") -> list[str]:
        with self._db() as db:
            return [r[0] for r in db.execute("SELECT touch_id FROM touches WHERE state = ? ORDER BY rowid",
                                             (state,))]

    def refused(self) -> dict[str, str]:
        with self._db() as db:
            return dict(db.execute("SELECT touch_id, detail FROM touches WHERE state = 'refused'").fetchall())

    def sync(self, batch: int = 200) -> SyncReport:
        """Send every pending touch, batch by batch; stop at the first network failure (kept for later)."""
        sent = accepted = duplicates = refused = 0
        down = False
        while True:
            with self._db() as db:
                rows = db.execute("SELECT touch_id, certificate, signature, direction, touched_at FROM touches "
                                  "WHERE state = 'pending' ORDER BY rowid LIMIT ?", (batch,)).fetchall()
            if not rows:
                break
            touches = [Touch(r[0], bytes(r[1]), r[3], datetime.fromisoformat(r[4]),
                             bytes(r[2]) if r[2] is not None else None) for r in rows]
            try:
                receipt = self.uplink.send(self.shelter_code, touches)
            except NetworkDown:
                down = True
                break
            sent += len(touches)
            with self._db() as db:
                done = [(t,) for t in (*receipt.accepted, *receipt.duplicates)]
                db.executemany("UPDATE touches SET state = 'synced' WHERE touch_id = ?", done)
                db.executemany("UPDATE touches SET state = 'refused', detail = ? WHERE touch_id = ?",
                               [(why, t) for t, why in receipt.refused.items()])
            accepted += len(receipt.accepted)
            duplicates += len(receipt.duplicates)
            refused += len(receipt.refused)
            answered = set(receipt.accepted) | set(receipt.duplicates) | set(receipt.refused)
            if not answered & {t.touch_id for t in touches}:
                break  # the server answered nothing about this batch: do not loop on it
        return SyncReport(sent, accepted, duplicates, refused, len(self.queued()), down)
