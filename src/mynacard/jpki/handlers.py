"""How JPKI reacts to life events in the registry (subscribed in :mod:`mynacard.bootstrap`).

- any change of the basic four facts (move, name change) → the signing certificate is revoked;
- death → both certificates;
- move abroad → the signing certificate; the authentication certificate too unless the holder did the
  continued-use procedure (継続利用).

Reason codes as in :func:`mynacard.jpki.model.revocations_for_life_event` (reference §4).
"""

from __future__ import annotations

from mynacard.bus import DomainEvent, Transaction
from mynacard.jpki.service import revoke_for_life_event

__all__ = ["on_life_event"]


def on_life_event(tx: Transaction, event: DomainEvent) -> None:
    revoke_for_life_event(tx.conn, event.kind, event.payload, event.occurred_at)
