"""Reactions of the certificate issuing servers to the resident registry's events (wired in bootstrap.py).

A move adds the new address to the history behind the family register attachment (戸籍の附票); a move into
another municipality is that day's 転入 (no kiosk issuance until the next day) and settles a filed move-out.
"""

from __future__ import annotations

from mynacard.bus import DomainEvent, Transaction
from mynacard.kiosk import municipal
from mynacard.registry import service as registry

__all__ = ["on_resident_moved"]


def on_resident_moved(tx: Transaction, event: DomainEvent) -> None:
    conn = tx.conn
    resident_id = int(event.payload["resident_id"])
    resident = registry.get_residents(conn, [resident_id]).get(resident_id)
    if resident is None:
        return
    municipal.note_move(conn, resident, bool(event.payload.get("within_municipality")), event.occurred_at)
