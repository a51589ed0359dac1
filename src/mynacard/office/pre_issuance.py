"""The pre-issuance setup (交付前設定): off peak, the integrated terminals set up the received cards that passed
their check, at most so many per terminal and run."""

from __future__ import annotations

from datetime import datetime, time

from sqlalchemy import insert, select

from mynacard.calendar import is_government_business_day
from mynacard.cards import ledger
from mynacard.cards import service as cards
from mynacard.cards.model import CardState
from mynacard.clock import JST
from mynacard.context import Context
from mynacard.errors import Conflict, InvalidInput
from mynacard.office.access import scope
from mynacard.office.slots import site_views
from mynacard.office.tables import office_receipt_checks, office_setup_runs
from mynacard.principal import Principal

__all__ = ["OFF_PEAK", "SETUP_CARDS_PER_TERMINAL", "is_off_peak", "run_pre_issuance_setup"]

S = CardState

SETUP_CARDS_PER_TERMINAL = 100
"""Cards one integrated terminal sets up in one off-peak run (交付前設定)."""
OFF_PEAK = (time(8, 30), time(17, 15))
"""Opening hours of the windows on business days: the setup batch runs outside them (or on closed days)."""


def is_off_peak(moment: datetime) -> bool:
    """Outside the windows' opening hours: evenings, nights, weekends and holidays (JST)."""
    local = moment.astimezone(JST)
    if not is_government_business_day(local.date()):
        return True
    return not OFF_PEAK[0] <= local.time() < OFF_PEAK[1]


def run_pre_issuance_setup(ctx: Context, principal: Principal, municipality_code: str, now: datetime,
                           per_terminal: int = SETUP_CARDS_PER_TERMINAL) -> int:
    """One off-peak run of the setup batch: received cards that passed their check become ``pre_issuance_set``,
    at most ``per_terminal`` per integrated terminal of the municipality. Refused during opening hours (the
    terminals serve the windows then). Returns cards set up."""
    scope(principal, municipality_code)
    if not is_off_peak(now):
        raise Conflict("the pre-issuance setup runs off peak (before 08:30, after 17:15, or on closed days)")
    if not 1 <= per_terminal <= 10000:
        raise InvalidInput("1–10,000 cards per terminal and run")
    passed = select(office_receipt_checks.c.card_id).where(
        office_receipt_checks.c.outcome == "passed", office_receipt_checks.c.municipality_code == municipality_code)
    with ctx.transaction() as tx:
        conn = tx.conn
        terminals = sum(s.terminals for s in site_views(conn, municipality_code))
        if terminals == 0:
            raise Conflict("the municipality has no integrated terminals registered (add a site with counters)")
        limit = terminals * per_terminal
        ids = cards.claim_in_municipality(conn, [S.RECEIVED], municipality_code, limit, among=passed,
                                         changed_before=now)
        moved = ledger.advance(conn, ids, [S.RECEIVED], S.PRE_ISSUANCE_SET, actor=principal.subject, now=now,
                               reason="pre-issuance setup")
        conn.execute(insert(office_setup_runs).values(
            municipality_code=municipality_code, started_at=now, terminals=terminals, limit_cards=limit,
            cards=len(moved), run_by=principal.subject))
    return len(moved)
