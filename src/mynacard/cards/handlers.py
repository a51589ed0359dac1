"""How the card pipeline reacts to life events in the registry (subscribed in :mod:`mynacard.bootstrap`).

- moved to another municipality, died, moved abroad → every card not yet handed over is voided
  (the application is tied to the old municipality; reference §1.2 "Pitfalls");
- moved to another municipality (転入) → a card in use (issued or suspended) is handed to the new municipality,
  whose window endorses the new address (追記) and which alone sees the card from then on;
- moved within the municipality or changed name → an accepted, not yet printed application is matched
  again (it goes back to review); a printed card is endorsed (追記) at the window instead;
- died, or moved abroad without continued use → an issued or suspended card is abolished.
"""

from __future__ import annotations

from sqlalchemy import Connection, select

from mynacard.bus import DomainEvent, Transaction
from mynacard.cards import ledger
from mynacard.cards.model import AbolitionReason, CardState
from mynacard.cards.service import void_pending_cards
from mynacard.cards.tables import cards

__all__ = ["on_life_event"]

S = CardState


def _abolish_held_cards(conn: Connection, resident_id: int, reason: AbolitionReason, event: DomainEvent) -> None:
    ids = list(conn.execute(select(cards.c.id).where(
        cards.c.resident_id == resident_id, cards.c.state.in_([S.ISSUED.value, S.SUSPENDED.value]))).scalars())
    ledger.advance(conn, ids, [S.ISSUED, S.SUSPENDED], S.ABOLISHED, actor="registry", now=event.occurred_at,
                   reason=reason.value, values={"abolition_reason": reason.value})


def on_life_event(tx: Transaction, event: DomainEvent) -> None:
    conn = tx.conn
    p = event.payload
    resident_id = int(p["resident_id"])
    kind = event.kind.removeprefix("registry.")
    if kind == "resident_moved" and not p.get("within_municipality"):
        void_pending_cards(conn, resident_id, "applicant moved to another municipality before pickup",
                           event.occurred_at)
        old, new = p["from_municipality"], p["to_municipality"]
        ledger.rehome(conn, resident_id, [S.ISSUED, S.SUSPENDED], new, actor="registry", now=event.occurred_at,
                      reason=f"転入 {old} → {new}")
    elif kind in ("resident_moved", "name_changed"):
        ids = list(conn.execute(select(cards.c.id).where(
            cards.c.resident_id == resident_id, cards.c.state == S.ACCEPTED.value)).scalars())
        ledger.advance(conn, ids, [S.ACCEPTED], S.IN_REVIEW, actor="registry", now=event.occurred_at,
                       reason=f"re-validation after {kind.replace('_', ' ')}",
                       values={"review_reason": "the resident's facts changed after acceptance"})
    elif kind == "resident_died":
        void_pending_cards(conn, resident_id, "applicant died before pickup", event.occurred_at)
        _abolish_held_cards(conn, resident_id, AbolitionReason.DIED, event)
    elif kind == "moved_abroad":
        void_pending_cards(conn, resident_id, "applicant moved abroad before pickup", event.occurred_at)
        if not p.get("continued_use"):
            _abolish_held_cards(conn, resident_id, AbolitionReason.MOVED_ABROAD, event)
