"""Receipt checks (到着時の券面・IC チップ確認): every card the municipality received is checked against the
registry (the printed face) and, where a reader is given, its chip, before the pre-issuance setup may touch it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import insert, select

from mynacard.cards import ledger
from mynacard.cards import service as cards
from mynacard.cards.model import CardState
from mynacard.clock import local_date
from mynacard.context import Context
from mynacard.office.access import scope
from mynacard.office.tables import office_receipt_checks
from mynacard.principal import Principal
from mynacard.registry import service as registry
from mynacard.registry.model import ResidentStatus

__all__ = ["ChipInspector", "ReceiptCheckResult", "check_received_cards"]

S = CardState

ChipInspector = Callable[[cards.OfficeCard, date], "list[str] | None"]
"""Reads a card's chip and returns what is wrong with it ([] = fine), or None when there is no chip to read
(a card made without a chip file). :func:`mynacard.office.chipcheck.chip_file_inspector` reads card files."""


@dataclass(frozen=True)
class ReceiptCheckResult:
    passed: list[int]
    defective: dict[int, str]
    chips_read: int


def check_received_cards(ctx: Context, principal: Principal, municipality_code: str, now: datetime,
                         chip: ChipInspector | None = None, limit: int = 500) -> ReceiptCheckResult:
    """Check received cards not yet checked: the printed face against the registry, then the chip. A failing
    card becomes ``defective`` with the reason (back to the manufacturer; the next print order reprints it)."""
    scope(principal, municipality_code)
    today = local_date(now)
    checked = select(office_receipt_checks.c.card_id).where(office_receipt_checks.c.outcome == "passed")
    with ctx.transaction() as tx:
        conn = tx.conn
        # cards that passed before wait for setup: leave them to it, unlocked
        ids = cards.claim_in_municipality(conn, [S.RECEIVED], municipality_code, limit, excluding=checked,
                                          changed_before=now)
        found = cards.office_cards(conn, ids)
        people = registry.get_residents(conn, {c.resident_id for c in found.values()})
        passed: list[int] = []
        defective: dict[int, str] = {}
        chip_read: set[int] = set()
        for card_id in ids:
            card = found[card_id]
            resident = people[card.resident_id]
            problems: list[str] = []
            if resident.status is not ResidentStatus.ACTIVE:
                problems.append(f"resident record is {resident.status.value}")
            mismatches = card.facts.mismatches(resident.facts)
            if mismatches:
                problems.append("printed face differs from the registry: " + ", ".join(mismatches))
            if chip is not None and not problems:
                chip_problems = chip(card, today)
                if chip_problems is not None:
                    chip_read.add(card_id)
                    problems.extend(chip_problems)
            if problems:
                defective[card_id] = "; ".join(problems)
            else:
                passed.append(card_id)
        rows = [{"card_id": c, "municipality_code": municipality_code, "outcome": "defective" if why else "passed",
                 "problems": why, "chip_checked": int(c in chip_read), "checked_at": now,
                 "checked_by": principal.subject}
                for c, why in [*((c, None) for c in passed), *defective.items()]]
        if rows:
            conn.execute(insert(office_receipt_checks), rows)
        ledger.advance(conn, list(defective), [S.RECEIVED], S.DEFECTIVE, actor=principal.subject, now=now,
                       reasons=[f"receipt check: {why}" for why in defective.values()])
    return ReceiptCheckResult(passed, defective, len(chip_read))
