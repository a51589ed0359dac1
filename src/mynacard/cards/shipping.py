"""Shipping (発送) and municipal receipt (到着確認), deck p.5 ③ → ④: the manufacturer packs made cards into boxes
per municipality with a manifest; the municipality scans what arrived, reports what is missing or damaged
(those go back for a reprint), and the rest move on to the window."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from mynacard.cards import ledger
from mynacard.cards.model import MUNICIPAL_ROLES, PIPELINE_ROLES, CardState, manufacturer_for
from mynacard.cards.tables import box_discrepancies, boxes, card_events, cards
from mynacard.context import Context
from mynacard.errors import InvalidInput, NotFound
from mynacard.principal import Principal, Role

__all__ = ["ReceiptResult", "box_manifest", "manifest_digest", "receive_box", "ship_cards", "unreceived_boxes"]

S = CardState


# --- shipping (発送) and receipt (到着確認) ----------------------------------------------------------------------

def ship_cards(ctx: Context, principal: Principal, now: datetime, box_capacity: int = 200,
               limit: int = 20000) -> list[int]:
    """Pack manufactured cards into boxes per municipality, each with a manifest digest; returns box ids."""
    principal.require(Role.MANUFACTURER, *PIPELINE_ROLES)
    if not 1 <= box_capacity <= 10000:
        raise InvalidInput("box capacity must be 1–10,000 cards")
    with ctx.transaction() as tx:
        conn = tx.conn
        ids = ledger.claim(conn, S.MANUFACTURED, limit, order_by=[cards.c.municipality_code])
        if not ids:
            return []
        by_muni: dict[str, list[tuple[int, str]]] = defaultdict(list)
        for r in ledger.rows_by_id(conn, ids, cards.c.id, cards.c.municipality_code, cards.c.card_serial):
            by_muni[r.municipality_code].append((r.id, r.card_serial))
        packed = [(muni, members[j:j + box_capacity]) for muni, members in sorted(by_muni.items())
                  for j in range(0, len(members), box_capacity)]
        # All boxes in one INSERT and all their cards in one move: a stage of 20,000 cards for 1,741
        # towns is a few statements, not two per box.
        box_ids = list(conn.execute(insert(boxes).returning(boxes.c.id, sort_by_parameter_order=True), [
            {"municipality_code": muni, "manufacturer": manufacturer_for(muni), "card_count": len(box),
             "manifest_sha256": manifest_digest(s for _, s in box), "shipped_at": now}
            for muni, box in packed]).scalars())
        card_ids = [cid for _, box in packed for cid, _ in box]
        card_boxes = [box_id for box_id, (_, box) in zip(box_ids, packed, strict=True) for _ in box]
        ledger.advance(conn, card_ids, [S.MANUFACTURED], S.SHIPPED, actor=principal.subject, now=now,
                       per_card={"box_id": card_boxes}, reasons=[f"box {b}" for b in card_boxes])
    return box_ids


def manifest_digest(serials: Any) -> str:
    """SHA-256 of a box's sorted card serials, one per line: what the shipping manifest vouches for."""
    return hashlib.sha256("\n".join(sorted(serials)).encode()).hexdigest()


def box_manifest(ctx: Context, principal: Principal, box_id: int) -> dict[str, Any]:
    """The shipping manifest of a box (発送明細): municipality, serials and digest."""
    with ctx.db.connect() as conn:
        box = conn.execute(select(boxes).where(boxes.c.id == box_id)).first()
        if box is None or not principal.can_see_municipality(box.municipality_code):
            raise NotFound("no such box")
        serials = sorted(conn.execute(select(cards.c.card_serial).where(cards.c.box_id == box_id)).scalars())
    return {"box_id": box_id, "municipality_code": box.municipality_code, "manufacturer": box.manufacturer,
            "card_count": box.card_count, "serials": serials, "sha256": box.manifest_sha256,
            "shipped_at": box.shipped_at.isoformat()}


def unreceived_boxes(ctx: Context, principal: Principal, municipality_code: str | None = None) -> list[int]:
    """Boxes shipped to the caller's municipality (or all, for national roles; or ``municipality_code``'s) not
    yet checked in."""
    query = select(boxes.c.id).where(boxes.c.received_at.is_(None)).order_by(boxes.c.id)
    for code in {principal.municipality_scope(), municipality_code} - {None}:
        query = query.where(boxes.c.municipality_code == code)
    with ctx.db.connect() as conn:
        return list(conn.execute(query).scalars())


@dataclass(frozen=True)
class ReceiptResult:
    """How a box reconciled against its manifest."""

    box_id: int
    received: int
    damaged: list[str]
    missing: list[str]
    unexpected: list[str]


def receive_box(ctx: Context, principal: Principal, box_id: int, scanned: Sequence[str],
                damaged: dict[str, str], now: datetime) -> ReceiptResult:
    """Check a box in against its manifest (カード到着確認).

    Scanned cards are received; damaged ones go back as defective (and are reprinted by the next print
    order); cards on the manifest but not in the box are recorded as missing and stay shipped; serials in
    the box but not on the manifest are recorded as unexpected. Checking the same box in again returns the
    first result and changes nothing.
    """
    principal.require(*MUNICIPAL_ROLES)
    for serial in [*scanned, *damaged]:
        if not (isinstance(serial, str) and len(serial) == 13 and serial[0].isalpha() and serial[1:].isdigit()):
            raise InvalidInput(f"not a card serial: {serial!r}")
    for serial, reason in damaged.items():
        if not reason.strip():
            raise InvalidInput(f"damaged card {serial} needs a reason")
    with ctx.transaction() as tx:
        conn = tx.conn
        query = select(boxes).where(boxes.c.id == box_id)
        if conn.dialect.name == "postgresql":
            query = query.with_for_update()
        box = conn.execute(query).first()
        if box is None or not principal.can_see_municipality(box.municipality_code):
            raise NotFound("no such box")
        if box.received_at is not None:
            return _stored_receipt(conn, box_id)
        manifest = dict(conn.execute(select(cards.c.card_serial, cards.c.id).where(cards.c.box_id == box_id)).all())
        scanned_set, damaged_set = set(scanned), set(damaged)
        ok = [manifest[s] for s in scanned_set - damaged_set if s in manifest]
        broken = sorted(damaged_set & set(manifest))
        missing = sorted(set(manifest) - scanned_set - damaged_set)
        unexpected = sorted((scanned_set | damaged_set) - set(manifest))
        ledger.advance(conn, ok, [S.SHIPPED], S.RECEIVED, actor=principal.subject, now=now,
                       reason=f"box {box_id}")
        for serial in broken:
            ledger.advance(conn, [manifest[serial]], [S.SHIPPED], S.DEFECTIVE, actor=principal.subject,
                           now=now, reason=damaged[serial])
        rows = ([{"box_id": box_id, "card_serial": s, "kind": "damaged", "reason": damaged[s], "at": now}
                 for s in broken]
                + [{"box_id": box_id, "card_serial": s, "kind": "missing", "reason": None, "at": now}
                   for s in missing]
                + [{"box_id": box_id, "card_serial": s, "kind": "unexpected", "reason": None, "at": now}
                   for s in unexpected])
        if rows:
            conn.execute(insert(box_discrepancies), rows)
        conn.execute(update(boxes).where(boxes.c.id == box_id).values(received_at=now,
                                                                      received_by=principal.subject))
    return ReceiptResult(box_id, len(ok), broken, missing, unexpected)


def _stored_receipt(conn: Connection, box_id: int) -> ReceiptResult:
    kinds: dict[str, list[str]] = defaultdict(list)
    for serial, kind in conn.execute(select(box_discrepancies.c.card_serial, box_discrepancies.c.kind)
                                     .where(box_discrepancies.c.box_id == box_id)):
        kinds[kind].append(serial)
    received = conn.execute(select(func.count()).select_from(card_events).where(
        card_events.c.reason == f"box {box_id}", card_events.c.to_state == S.RECEIVED.value)).scalar_one()
    return ReceiptResult(box_id, received, sorted(kinds["damaged"]), sorted(kinds["missing"]),
                         sorted(kinds["unexpected"]))
