"""The audit trail of kiosk issuance: append-only, hash-chained, one chain per stream.

Every step of a request (session opened, card authenticated or refused, order accepted, document prepared,
the release check, released, printed, aborted, voided) is one row written in the same transaction as the
state change it records, so the trail and the state never disagree. Rows are chained per stream — one stream
per kiosk at the centre (``kiosk:<id>``), one per municipality at the issuing servers
(``municipal:<code>``) — so that 200 kiosks do not queue on one lock, and :func:`verify_chains` recomputes
every chain against its recorded head. The individual number never appears in ``details``. The chaining itself
is :mod:`mynacard.hashchain`, shared with every other audit log.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from mynacard.db import Database
from mynacard.hashchain import GENESIS, AuditReport, Entry, HashChain, entry_hash
from mynacard.kiosk.tables import kiosk_audit, kiosk_audit_heads

__all__ = ["GENESIS", "AuditReport", "Entry", "append", "append_many", "entry_hash", "verify_chains"]

_CHAIN = HashChain(kiosk_audit, kiosk_audit_heads)


def append(conn: Connection, stream: str, action: str, actor: str, now: datetime, *,
           request_id: str | None = None, details: dict[str, Any] | None = None) -> str:
    """Append one entry to ``stream`` inside the caller's transaction; returns its hash."""
    return _CHAIN.append(conn, stream, action, actor, now, request_id=request_id, details=details)


def append_many(conn: Connection, stream: str, now: datetime, entries: list[Entry]) -> str:
    """Append entries, in order, to ``stream`` inside the caller's transaction; returns the new head's hash."""
    return _CHAIN.append_many(conn, stream, now, entries)


def verify_chains(db: Database, stream: str | None = None) -> AuditReport:
    """Recompute every chain (or one) and compare it with its recorded head."""
    return _CHAIN.verify(db, stream)
