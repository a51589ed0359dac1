"""Read-only aggregates of the card pipeline for other parts (plans, office, the first page): counts by
month, state and transition, ids of cards in given states, and the municipal office's own view of its cards.
Scoped like every read of the cards part: a municipal principal sees its own town only."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, Date, case, cast, func, literal, select, text

from mynacard.cards import ledger
from mynacard.cards.model import CardState
from mynacard.cards.tables import card_events, cards
from mynacard.context import Context
from mynacard.principal import Principal
from mynacard.registry.model import BasicFacts, Sex

__all__ = [
    "OfficeCard",
    "TransitionCount",
    "card_ids_in_states",
    "claim_in_municipality",
    "counts_by_application_month",
    "office_cards",
    "states_of",
    "transition_counts",
]

S = CardState


# --- aggregates for other parts (read-only: issuance plans, dashboards) -------------------------------------
# Set-based, scoped by the caller like every read above; days and months are Japanese (JST) calendar days.

def _aggregate_scope(principal: Principal, municipality_code: str | None) -> tuple[bool, str | None]:
    """(anything visible, municipality filter): a clerk asking about another town sees nothing."""
    scope = principal.municipality_scope()
    if scope is not None and municipality_code is not None and municipality_code != scope:
        return False, None
    return True, scope or municipality_code


def _jst_period(ctx: Context, column: Any, grain: str) -> Any:
    """The JST day (``grain="day"``) or the first day of the JST month of a stored UTC moment, as a date."""
    if ctx.db.is_postgres:
        local = func.timezone("Asia/Tokyo", column)
        return cast(func.date_trunc("month", local) if grain == "month" else local, Date)
    # SQLite keeps UTC text; Japan has no daylight saving time, so +9 hours is exact.
    if grain == "month":
        return func.date(column, "+9 hours", "start of month", type_=Date)
    return func.date(column, "+9 hours", type_=Date)


def counts_by_application_month(ctx: Context, principal: Principal, states: Sequence[CardState],
                                municipality_code: str | None = None) -> dict[str, dict[date, int]]:
    """municipality code → first day of the JST month of application → cards now in one of ``states``.

    With ``states`` = received and pre-issuance set this is a municipality's backlog (滞留分) by application
    month; with the states before receipt, the cards still on their way.
    """
    visible, where = _aggregate_scope(principal, municipality_code)
    if not visible or not states:
        return {}
    month = _jst_period(ctx, cards.c.applied_at, "month").label("month")
    query = (select(cards.c.municipality_code, month, func.count())
             .where(cards.c.state.in_([s.value for s in states]))
             .group_by(cards.c.municipality_code, month))
    if where is not None:
        query = query.where(cards.c.municipality_code == where)
    out: dict[str, dict[date, int]] = defaultdict(dict)
    with ctx.db.connect() as conn:
        for code, first_day, n in conn.execute(query):
            out[code][first_day] = n
    return dict(out)


@dataclass(frozen=True)
class TransitionCount:
    """How many cards of one municipality entered a state during one JST day or month."""

    municipality_code: str
    state: CardState
    period: date
    """The JST day, or the first day of the JST month."""
    daily: bool
    count: int


def transition_counts(ctx: Context, principal: Principal, states: Sequence[CardState], *,
                      daily_since: date | None = None, since: date | None = None,
                      municipality_code: str | None = None) -> list[TransitionCount]:
    """Entries of cards into each of ``states`` by municipality and JST month — and, from ``daily_since``
    on, by JST day instead. An entry is a move from another state: a re-notice (notice sent → notice sent) is
    not counted again. ``since`` leaves out earlier events (a JST day)."""
    visible, where = _aggregate_scope(principal, municipality_code)
    if not visible or not states:
        return []
    day = _jst_period(ctx, card_events.c.at, "day")
    by_day = (select(cards.c.municipality_code, card_events.c.to_state, day.label("day"),
                     func.count().label("n"))
              .select_from(card_events.join(cards, cards.c.id == card_events.c.card_id))
              .where(card_events.c.to_state.in_([s.value for s in states]),
                     card_events.c.from_state.is_distinct_from(card_events.c.to_state))
              .group_by(cards.c.municipality_code, card_events.c.to_state, day))
    if where is not None:
        by_day = by_day.where(cards.c.municipality_code == where)
    if since is not None:
        by_day = by_day.where(day >= since)
    days = by_day.subquery()
    month: Any
    if ctx.db.is_postgres:
        month = cast(func.date_trunc("month", days.c.day), Date)
    else:
        month = func.date(days.c.day, "start of month", type_=Date)
    if daily_since is not None:
        is_daily = days.c.day >= daily_since
        period = case((is_daily, days.c.day), else_=month).label("period")
        daily = case((is_daily, literal(1)), else_=literal(0)).label("daily")
    else:
        period, daily = month.label("period"), literal(0).label("daily")
    query = (select(days.c.municipality_code, days.c.to_state, period, daily, func.sum(days.c.n))
             .group_by(days.c.municipality_code, days.c.to_state, period, daily))
    # a national count hashes every card: on PostgreSQL let it do so in memory, for this transaction only
    # (read connections run in autocommit, where SET LOCAL would not last to the query)
    with ctx.db.read_transaction() as conn:
        if ctx.db.is_postgres:
            conn.execute(text("SET LOCAL work_mem = '256MB'"))
        rows = conn.execute(query).all()
    return [TransitionCount(code, CardState(state), p if isinstance(p, date) else date.fromisoformat(p),
                            bool(d), int(n)) for code, state, p, d, n in rows]


def card_ids_in_states(ctx: Context, principal: Principal, municipality_code: str,
                       states: Sequence[CardState], *, changed_before: datetime | None = None,
                       limit: int = 1000) -> list[int]:
    """Ids of a municipality's cards in ``states``, longest unchanged first (first in, first out)."""
    visible, where = _aggregate_scope(principal, municipality_code)
    if not visible or not states:
        return []
    query = (select(cards.c.id).where(cards.c.municipality_code == where,
                                      cards.c.state.in_([s.value for s in states]))
             .order_by(cards.c.updated_at, cards.c.id).limit(limit))
    if changed_before is not None:
        query = query.where(cards.c.updated_at <= changed_before)
    with ctx.db.connect() as conn:
        return list(conn.execute(query).scalars())


# --- for the municipal office (office part): claims and reads inside the caller's transaction -------------

@dataclass(frozen=True)
class OfficeCard:
    """A card as the municipal office handles it: the printed face, serial and dates (no individual number)."""

    id: int
    resident_id: int
    municipality_code: str
    state: CardState
    card_serial: str | None
    facts: BasicFacts
    applied_at: datetime
    updated_at: datetime
    card_valid_until: date | None
    wants_sign_cert: bool
    wants_auth_cert: bool
    issued_on: date | None = None
    """The day the card was made (発行日), which decides whether it could carry a signing certificate."""


def claim_in_municipality(conn: Connection, states: Sequence[CardState], municipality_code: str, limit: int, *,
                          among: Any = None, excluding: Any = None,
                          changed_before: datetime | None = None) -> list[int]:
    """Lock (SKIP LOCKED on PostgreSQL) up to ``limit`` of a municipality's cards in ``states``, oldest change
    first; ``among`` / ``excluding`` are optional subqueries of card ids to choose from / to leave alone (the
    office's passed checks)."""
    where: list[Any] = [cards.c.municipality_code == municipality_code]
    if among is not None:
        where.append(cards.c.id.in_(among))
    if excluding is not None:
        where.append(cards.c.id.not_in(excluding))
    if changed_before is not None:
        where.append(cards.c.updated_at <= changed_before)
    return ledger.claim(conn, list(states), limit, where=where, order_by=[cards.c.updated_at])


def states_of(conn: Connection, ids: Sequence[int]) -> dict[int, CardState]:
    """The state of each of the cards ``ids`` that exists (only that column is read), inside the caller's
    transaction."""
    return {r.id: CardState(r.state) for r in ledger.rows_by_id(conn, list(ids), cards.c.id, cards.c.state)}


def office_cards(conn: Connection, ids: Sequence[int]) -> dict[int, OfficeCard]:
    """The cards ``ids`` (those that exist) as the office sees them, read inside the caller's transaction."""
    out: dict[int, OfficeCard] = {}
    for r in ledger.rows_by_id(conn, list(ids)):
        out[r.id] = OfficeCard(r.id, r.resident_id, r.municipality_code, CardState(r.state), r.card_serial,
                               BasicFacts(r.family_name, r.given_name, r.birth_date, Sex(r.sex), r.address),
                               r.applied_at, r.updated_at, r.card_valid_until, r.wants_sign_cert,
                               r.wants_auth_cert, r.issued_on)
    return out
