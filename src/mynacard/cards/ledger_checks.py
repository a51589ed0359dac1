"""The stored ledger check (台帳の整合性確認): :func:`check_ledger` reads every card event — a job (``mynacard
status``, the demo), never a page — and keeps its outcome with the time it ran; :func:`last_ledger_check` is one
row by primary key, what the public first page shows whatever the number of cards."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select

from mynacard.cards import ledger
from mynacard.cards.tables import ledger_checks
from mynacard.context import Context
from mynacard.principal import Principal, Role

__all__ = ["LEDGER_CHECKS_KEPT", "LedgerCheck", "check_ledger", "last_ledger_check"]

LEDGER_CHECKS_KEPT = 30
"""How many ledger check results are kept (the newest)."""


@dataclass(frozen=True)
class LedgerCheck:
    """One stored run of the ledger check (:func:`check_ledger`): its outcome and when it ran."""

    checked_at: datetime
    ok: bool
    cards: int
    events: int
    problems: dict[str, list[int]]
    """Each kind of damage found → a sample of the card (or box) ids; empty when ``ok``."""
    actor: str


def _problems(report: ledger.LedgerReport) -> dict[str, list[int]]:
    found = {
        "cards_whose_state_differs_from_last_event": report.cards_whose_state_differs_from_last_event,
        "cards_with_broken_chains": report.cards_with_broken_chains,
        "cards_with_duplicate_print_orders": report.cards_with_duplicate_print_orders,
        "boxes_whose_manifest_differs_from_shipments": report.boxes_whose_manifest_differs_from_shipments,
    }
    out = {k: [int(i) for i in v] for k, v in found.items() if v}
    if report.state_counts != report.last_event_counts:
        out["state_counts_differ_from_last_events"] = []
    return out


def check_ledger(ctx: Context, principal: Principal, now: datetime) -> tuple[ledger.LedgerReport, LedgerCheck]:
    """Run the ledger check (:func:`verify_ledger`, which reads every card event: a job — ``mynacard status`` —
    never a page) and keep its result with the time it ran, for :func:`last_ledger_check`."""
    principal.require(Role.OPERATOR, Role.SYSTEM)
    with ctx.db.connect() as conn:
        report = ledger.verify_ledger(conn)
    check = LedgerCheck(now, report.ok, report.cards, report.events, _problems(report), principal.subject)
    with ctx.transaction() as tx:
        conn = tx.conn
        conn.execute(insert(ledger_checks).values(
            checked_at=now, ok=check.ok, cards=check.cards, events=check.events,
            problems=json.dumps(check.problems), actor=check.actor[:64]))
        keep = select(ledger_checks.c.id).order_by(ledger_checks.c.id.desc()).limit(LEDGER_CHECKS_KEPT)
        conn.execute(ledger_checks.delete().where(ledger_checks.c.id.not_in(keep.scalar_subquery())))
    return report, check


def last_ledger_check(ctx: Context) -> LedgerCheck | None:
    """The newest stored ledger check, or None when it never ran. One row by primary key, whatever the number of
    cards: what the public first page shows. Aggregates only (counts, and ids only when the ledger is broken)."""
    with ctx.db.connect() as conn:
        row = conn.execute(select(ledger_checks).order_by(ledger_checks.c.id.desc()).limit(1)).first()
    if row is None:
        return None
    return LedgerCheck(row.checked_at, bool(row.ok), int(row.cards), int(row.events), json.loads(row.problems),
                       row.actor)
