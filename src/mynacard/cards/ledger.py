"""Set-based state moves of cards, each move written as one event row in the same statement or transaction.

This is the one place that changes ``cards.state``. A batch stage claims thousands of rows at once; on
PostgreSQL the claim uses ``FOR UPDATE SKIP LOCKED`` so that several workers (or hosts) can run one stage
side by side without taking the same card twice, and the move and its events are a single statement.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, select, text, update

from mynacard.cards.model import CardState, check_transitions
from mynacard.cards.tables import card_events, cards

__all__ = ["LedgerReport", "advance", "claim", "set_manufacturing_facts", "verify_ledger"]

_CHUNK = 5000


def claim(conn: Connection, state: CardState | Sequence[CardState], limit: int, *,
          where: Iterable[Any] = (), order_by: Sequence[Any] = ()) -> list[int]:
    """Lock and return up to ``limit`` card ids in ``state`` that no other worker holds."""
    states = [state] if isinstance(state, CardState) else list(state)
    query = (select(cards.c.id).where(cards.c.state.in_([s.value for s in states]), *where)
             .order_by(*order_by, cards.c.id).limit(limit))
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return list(conn.execute(query).scalars())


def advance(conn: Connection, ids: Sequence[int], sources: Iterable[CardState], target: CardState, *,
            actor: str, now: datetime, reason: str | None = None, values: dict[str, Any] | None = None,
            bump_print_count: bool = False) -> list[int]:
    """Move the cards among ``ids`` that are in one of ``sources`` to ``target``; return the ids moved.

    Cards in another state are left alone (the caller decides whether that is an error). Each move writes
    one ``card_events`` row (from, to, actor, time, reason). ``values`` are extra columns set on every
    moved card.
    """
    source_list = list(sources)
    check_transitions(source_list, target)
    if not ids:
        return []
    values = values or {}
    if conn.dialect.name == "postgresql":
        return _advance_pg(conn, ids, source_list, target, actor, now, reason, values, bump_print_count)
    moved: list[int] = []
    for i in range(0, len(ids), _CHUNK):
        chunk = list(ids[i:i + _CHUNK])
        rows = conn.execute(select(cards.c.id, cards.c.state).where(
            cards.c.id.in_(chunk), cards.c.state.in_([s.value for s in source_list]))).all()
        if not rows:
            continue
        ids_here = [r.id for r in rows]
        extra = dict(values)
        if bump_print_count:
            extra["print_count"] = cards.c.print_count + 1
        conn.execute(update(cards).where(cards.c.id.in_(ids_here)).values(
            state=target.value, updated_at=now, version=cards.c.version + 1, **extra))
        conn.execute(insert(card_events), [
            {"card_id": r.id, "from_state": r.state, "to_state": target.value, "actor": actor, "at": now,
             "reason": reason} for r in rows])
        moved.extend(ids_here)
    return moved


def _advance_pg(conn: Connection, ids: Sequence[int], sources: list[CardState], target: CardState,
                actor: str, now: datetime, reason: str | None, values: dict[str, Any],
                bump_print_count: bool) -> list[int]:
    for column in values:
        if column not in cards.c:
            raise ValueError(f"no column {column!r} on cards")
    sets = "".join(f", {column} = :v_{column}" for column in values)
    if bump_print_count:
        sets += ", print_count = c.print_count + 1"
    stmt = text(f"""
        WITH old AS (
            SELECT id, state FROM cards
            WHERE id = ANY(CAST(:ids AS bigint[])) AND state = ANY(CAST(:sources AS text[]))
            FOR UPDATE
        ), moved AS (
            UPDATE cards c SET state = :target, updated_at = :now, version = c.version + 1{sets}
            FROM old WHERE c.id = old.id
            RETURNING c.id, old.state AS from_state
        )
        INSERT INTO card_events (card_id, from_state, to_state, actor, at, reason)
        SELECT id, from_state, :target, :actor, :now, :reason FROM moved
        RETURNING card_id""")
    params = {"ids": list(ids), "sources": [s.value for s in sources], "target": target.value, "now": now,
              "actor": actor, "reason": reason, **{f"v_{k}": v for k, v in values.items()}}
    return list(conn.execute(stmt, params).scalars())


def set_manufacturing_facts(conn: Connection, rows: Sequence[tuple[int, str, date, date, date]]) -> None:
    """Per-card serial, issuance day and validity dates: ``(card_id, serial, issued_on, card, certs)``."""
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        ids, serials, issued, card_until, cert_until = (list(col) for col in zip(*rows, strict=True))
        conn.execute(text("""
            UPDATE cards SET card_serial = v.serial, issued_on = v.issued_on,
                             card_valid_until = v.card_until, cert_valid_until = v.cert_until
            FROM unnest(CAST(:ids AS bigint[]), CAST(:serials AS text[]), CAST(:issued AS date[]),
                        CAST(:card_until AS date[]), CAST(:cert_until AS date[]))
                 AS v(id, serial, issued_on, card_until, cert_until)
            WHERE cards.id = v.id"""), {"ids": ids, "serials": serials, "issued": issued,
                                       "card_until": card_until, "cert_until": cert_until})
        return
    conn.execute(
        update(cards).where(cards.c.id == bindparam("card_id")).values(
            card_serial=bindparam("serial"), issued_on=bindparam("issued"), card_valid_until=bindparam("card"),
            cert_valid_until=bindparam("cert")),
        [{"card_id": r[0], "serial": r[1], "issued": r[2], "card": r[3], "cert": r[4]} for r in rows])


@dataclass(frozen=True)
class LedgerReport:
    """The result of :func:`verify_ledger`; ``ok`` when every list is empty."""

    cards: int
    events: int
    state_counts: dict[str, int]
    last_event_counts: dict[str, int]
    cards_whose_state_differs_from_last_event: list[int]
    cards_with_broken_chains: list[int]
    cards_with_duplicate_print_orders: list[int]
    boxes_whose_manifest_differs_from_shipments: list[int]

    @property
    def ok(self) -> bool:
        return (self.state_counts == self.last_event_counts
                and not self.cards_whose_state_differs_from_last_event
                and not self.cards_with_broken_chains
                and not self.cards_with_duplicate_print_orders
                and not self.boxes_whose_manifest_differs_from_shipments)


def verify_ledger(conn: Connection, sample_limit: int = 20) -> LedgerReport:
    """Check that state and history agree: every card in exactly one state, equal to its last event; every
    event starts where the previous one ended; one print order per print run; each box shipped exactly the
    cards its manifest counts (no card shipped twice)."""
    n_cards = conn.execute(select(func.count()).select_from(cards)).scalar_one()
    n_events = conn.execute(select(func.count()).select_from(card_events)).scalar_one()
    state_counts = {s: n for s, n in conn.execute(
        select(cards.c.state, func.count()).group_by(cards.c.state))}
    last = text("""
        SELECT e.card_id, e.to_state FROM card_events e
        JOIN (SELECT card_id, MAX(id) AS id FROM card_events GROUP BY card_id) m ON m.id = e.id""")
    last_counts: dict[str, int] = {}
    for _, to_state in conn.execute(last):
        last_counts[to_state] = last_counts.get(to_state, 0) + 1
    differs = list(conn.execute(text(f"""
        SELECT c.id FROM cards c LEFT JOIN ({last.text}) l ON l.card_id = c.id
        WHERE l.to_state IS NULL OR l.to_state <> c.state ORDER BY c.id LIMIT {int(sample_limit)}""")).scalars())
    broken = list(conn.execute(text(f"""
        SELECT DISTINCT card_id FROM (
            SELECT card_id, from_state,
                   LAG(to_state) OVER (PARTITION BY card_id ORDER BY id) AS previous
            FROM card_events) t
        WHERE (previous IS NULL AND from_state IS NOT NULL)
           OR (previous IS NOT NULL AND (from_state IS NULL OR from_state <> previous))
        ORDER BY card_id LIMIT {int(sample_limit)}""")).scalars())
    duplicate_prints = list(conn.execute(text(f"""
        SELECT c.id FROM cards c JOIN (
            SELECT card_id, COUNT(*) AS n FROM card_events WHERE to_state = 'print_ordered' GROUP BY card_id
        ) p ON p.card_id = c.id
        WHERE p.n <> c.print_count ORDER BY c.id LIMIT {int(sample_limit)}""")).scalars())
    bad_boxes = list(conn.execute(text(f"""
        SELECT b.id FROM boxes b LEFT JOIN (
            SELECT reason, COUNT(*) AS n FROM card_events WHERE to_state = 'shipped' GROUP BY reason
        ) s ON s.reason = 'box ' || CAST(b.id AS TEXT)
        WHERE COALESCE(s.n, 0) <> b.card_count ORDER BY b.id LIMIT {int(sample_limit)}""")).scalars())
    return LedgerReport(n_cards, n_events, state_counts, last_counts, differs, broken, duplicate_prints,
                        bad_boxes)
