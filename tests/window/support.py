"""Builders for the window tests: cards driven through the real pipeline with real chips (keys born in
the chip, JPKI certificates) up to the issuance notice."""

from __future__ import annotations

from datetime import datetime, timedelta

from mynacard.cards import service as cards
from mynacard.cards.model import CardState
from mynacard.context import Context
from mynacard.principal import Principal, Role
from mynacard.sim.production import produce_pending, receive_all
from mynacard.window.production import manufacture_with_chips
from tests.helpers import CHIYODA, SAPPORO, SYSTEM, apply_all, clerk, make_residents

__all__ = ["CALL_CENTRE", "CHIYODA", "SAPPORO", "chip_cards", "clerk"]

CALL_CENTRE = Principal(Role.OPERATOR, "call-centre")


def chip_cards(ctx: Context, n: int, now: datetime, municipality: str = CHIYODA, *, seed: int = 1,
               notice: bool = True, wants_certs: bool = True, receive: bool = True) -> list[int]:
    """``n`` residents apply; their cards are made with chips, shipped, received and (with ``notice``)
    set up and noticed. Returns the card ids (in resident order)."""
    applied = now - timedelta(days=30)
    rids = make_residents(ctx, n, applied - timedelta(days=1), municipality, seed=seed)
    apply_all(ctx, rids, applied)
    if not wants_certs:
        from sqlalchemy import update

        from mynacard.cards.tables import cards as card_table
        with ctx.db.begin() as conn:
            conn.execute(update(card_table).where(card_table.c.resident_id.in_(rids))
                         .values(wants_sign_cert=False, wants_auth_cert=False))
    made = now - timedelta(days=20)
    produce_pending(ctx, made, manufacture=manufacture_with_chips)
    if receive:
        receive_all(ctx, made + timedelta(days=1), clerk)
    from sqlalchemy import select

    from mynacard.cards.tables import cards as card_table
    with ctx.db.connect() as conn:
        by_resident = dict(conn.execute(select(card_table.c.resident_id, card_table.c.id)
                                        .where(card_table.c.resident_id.in_(rids))).all())
    ids = [by_resident[r] for r in rids]
    if notice and receive:
        for card_id in ids:
            cards.transition(ctx, SYSTEM, card_id, CardState.PRE_ISSUANCE_SET, None, now - timedelta(days=5))
            cards.transition(ctx, SYSTEM, card_id, CardState.NOTICE_SENT, None, now - timedelta(days=5))
    return ids
