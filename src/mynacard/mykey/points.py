"""Local government points (自治体ポイント): one double-entry ledger for every municipality's programme.

Every posting is a :class:`~mynacard.mykey.model.Posting` whose legs sum to zero, stored as one
``point_transactions`` row and its ``point_entries``; each account keeps its balance beside its entries, so
that a holder's balance is one row to lock. Concurrency:

* a debit of a holder (resident, shop) is a conditional update ``balance = balance - n WHERE balance >= n``;
  on PostgreSQL it takes the row lock and re-checks after any wait, on SQLite ``BEGIN IMMEDIATE`` serialises
  writers — either way two redemptions of the same points cannot both succeed (no double spend); the
  ``no_overdraft`` check constraint backs it up;
* accounts are updated in id order, so postings never deadlock one another;
* every posting carries an idempotency key (unique): a retry returns the first outcome and posts nothing;
  the same key with different content is refused.
"""

from __future__ import annotations

import re
import weakref
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from mynacard.context import Context
from mynacard.errors import Conflict, Forbidden, InvalidInput, NotFound
from mynacard.mykey import platform
from mynacard.mykey.model import AccountKind, InsufficientPoints, Posting, PostingKind, Rate, check_mykey_id
from mynacard.mykey.tables import (
    mykey_ids,
    point_accounts,
    point_entries,
    point_partners,
    point_shops,
    point_transactions,
)
from mynacard.principal import Principal, Role

__all__ = [
    "Account",
    "Holding",
    "LedgerCheck",
    "PostingResult",
    "StatementLine",
    "balance",
    "convert",
    "earn",
    "my_points",
    "post",
    "redeem",
    "redeem_with_card",
    "register_partner",
    "register_shop",
    "statement",
    "verify_ledger",
]

_KEY = re.compile(r"[A-Za-z0-9._:-]{8,64}")
_NATIONAL = (Role.OPERATOR, Role.SYSTEM)
_MUNICIPAL = (Role.CLERK, Role.SUPERVISOR, Role.OPERATOR, Role.SYSTEM)


@dataclass(frozen=True)
class Account:
    id: int
    kind: AccountKind
    owner: str
    municipality_code: str
    balance: int


@dataclass(frozen=True)
class PostingResult:
    transaction_id: int
    replayed: bool
    """True when this idempotency key had already been posted: nothing new happened."""


@dataclass(frozen=True)
class StatementLine:
    transaction_id: int
    at: datetime
    kind: PostingKind
    memo: str
    amount: int
    balance_after: int


@dataclass(frozen=True)
class LedgerCheck:
    """The result of :func:`verify_ledger`; ``ok`` when every figure agrees."""

    transactions: int
    entries: int
    unbalanced_transactions: tuple[int, ...]
    accounts_out_of_step: tuple[int, ...]
    overdrawn_accounts: tuple[int, ...]
    total: int

    @property
    def ok(self) -> bool:
        return not (self.unbalanced_transactions or self.accounts_out_of_step or self.overdrawn_accounts
                    or self.total)


# --- partners and shops -------------------------------------------------------------------------------------

def register_partner(ctx: Context, principal: Principal, code: str, name: str, rate: Rate = Rate()) -> None:
    """A partner programme (credit card, airline, …) and its one-way rate (1 point = 1 yen by default)."""
    principal.require(*_NATIONAL)
    _check_code(code)
    with ctx.transaction() as tx:
        row = tx.conn.execute(select(point_partners).where(point_partners.c.code == code)).first()
        if row is None:
            tx.conn.execute(insert(point_partners).values(code=code, name=name[:128], rate_numerator=rate.numerator,
                                                          rate_denominator=rate.denominator))
        elif (row.rate_numerator, row.rate_denominator) != (rate.numerator, rate.denominator):
            tx.conn.execute(update(point_partners).where(point_partners.c.code == code).values(
                name=name[:128], rate_numerator=rate.numerator, rate_denominator=rate.denominator))


def register_shop(ctx: Context, principal: Principal, code: str, name: str, municipality_code: str,
                  online: bool = False) -> None:
    """A local shop (or an online shop) that takes one municipality's points."""
    principal.require(*_MUNICIPAL)
    if not principal.can_see_municipality(municipality_code):
        raise Forbidden("a municipality registers only its own shops")
    _check_code(code)
    with ctx.transaction() as tx:
        row = tx.conn.execute(select(point_shops).where(point_shops.c.code == code)).first()
        if row is None:
            tx.conn.execute(insert(point_shops).values(code=code, name=name[:128],
                                                       municipality_code=municipality_code, online=online))
        elif row.municipality_code != municipality_code:
            raise Conflict(f"shop {code} belongs to another municipality")


def _check_code(code: str) -> None:
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,32}", code or ""):
        raise InvalidInput("a code is 1–32 letters, digits, '-' or '_'")


# --- posting -----------------------------------------------------------------------------------------------

def _account_ids(conn: Connection, posting: Posting) -> dict[tuple[str, str], int]:
    owners = {(leg.kind.value, leg.owner) for leg in posting.legs}
    rows = conn.execute(select(point_accounts.c.id, point_accounts.c.kind, point_accounts.c.owner).where(
        point_accounts.c.municipality_code == posting.municipality_code,
        point_accounts.c.owner.in_(sorted({owner for _, owner in owners})))).all()
    return {(r.kind, r.owner): int(r.id) for r in rows if (r.kind, r.owner) in owners}


_KNOWN: weakref.WeakKeyDictionary[Any, dict[tuple[str, str, str], int]] = weakref.WeakKeyDictionary()
"""Account ids this process has seen, per database: an account is never deleted or renumbered."""


def _open_accounts(ctx: Context, posting: Posting) -> dict[tuple[str, str], int]:
    """The posting's accounts, opened first in a short transaction of their own when new: a posting then only
    updates existing rows (in id order), so two postings can never wait on each other's new account."""
    known = _KNOWN.setdefault(ctx.db, {})
    wanted = {(leg.kind.value, leg.owner) for leg in posting.legs}
    found = {k: known[(posting.municipality_code, *k)] for k in wanted if (posting.municipality_code, *k) in known}
    if len(found) < len(wanted):
        with ctx.db.connect() as conn:
            found = _account_ids(conn, posting)
    if len(found) == len(wanted):
        known.update(((posting.municipality_code, *k), v) for k, v in found.items())
        return found  # an account exists only once its owner was checked for this programme
    with ctx.transaction() as tx:
        conn = tx.conn
        _check_legs(conn, posting)
        maker: Any = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
        for leg in posting.legs:
            conn.execute(maker(point_accounts).values(
                kind=leg.kind.value, owner=leg.owner, municipality_code=posting.municipality_code, balance=0,
                may_go_negative=leg.kind.may_go_negative).on_conflict_do_nothing())
        return _account_ids(conn, posting)


def _replay(ctx: Context, key: str, posting: Posting) -> PostingResult | None:
    with ctx.db.connect() as conn:
        row = conn.execute(select(point_transactions.c.id, point_transactions.c.fingerprint)
                           .where(point_transactions.c.idempotency_key == key)).first()
    if row is None:
        return None
    if row.fingerprint != posting.fingerprint:
        raise Conflict("this idempotency key was used for a different posting")
    return PostingResult(int(row.id), True)


def _check_legs(conn: Connection, posting: Posting) -> None:
    for leg in posting.legs:
        if leg.kind is AccountKind.RESIDENT:
            if conn.execute(select(mykey_ids.c.mykey_id).where(mykey_ids.c.mykey_id == leg.owner)).first() is None:
                raise NotFound("no such MyKey ID")
        elif leg.kind is AccountKind.SHOP:
            shop = conn.execute(select(point_shops.c.municipality_code)
                                .where(point_shops.c.code == leg.owner)).scalar()
            if shop is None:
                raise NotFound(f"no shop {leg.owner}")
            if shop != posting.municipality_code:
                raise InvalidInput(f"shop {leg.owner} does not take this municipality's points")
        elif leg.kind is AccountKind.PARTNER:
            if conn.execute(select(point_partners.c.code).where(point_partners.c.code == leg.owner)).first() is None:
                raise NotFound(f"no partner {leg.owner}")
        elif leg.owner != posting.municipality_code:
            raise InvalidInput("a programme account belongs to its own municipality")


def post(ctx: Context, principal: Principal, posting: Posting, idempotency_key: str, now: datetime) -> PostingResult:
    """Post a balanced set of legs, all or nothing. Raises :class:`InsufficientPoints` when a holder would go
    below zero; a repeated ``idempotency_key`` returns the first result."""
    if not isinstance(idempotency_key, str) or not _KEY.fullmatch(idempotency_key):
        raise InvalidInput("an idempotency key is 8–64 letters, digits or . _ : -")
    accounts = _open_accounts(ctx, posting)
    legs = [(accounts[(leg.kind.value, leg.owner)], leg) for leg in posting.legs]
    try:
        with ctx.transaction() as tx:
            conn = tx.conn
            tid = conn.execute(insert(point_transactions).values(
                idempotency_key=idempotency_key, kind=posting.kind.value,
                municipality_code=posting.municipality_code, fingerprint=posting.fingerprint,
                memo=posting.memo[:128], actor=f"{principal.role.value}:{principal.subject}"[:64], at=now)
                .returning(point_transactions.c.id)).scalar_one()
            for account_id, leg in sorted(legs, key=lambda pair: pair[0]):
                stmt = update(point_accounts).where(point_accounts.c.id == account_id)
                if leg.amount < 0 and not leg.kind.may_go_negative:
                    stmt = stmt.where(point_accounts.c.balance >= -leg.amount)
                if conn.execute(stmt.values(balance=point_accounts.c.balance + leg.amount)).rowcount != 1:
                    raise InsufficientPoints(f"not enough points ({-leg.amount} needed)")
            conn.execute(insert(point_entries), [{"transaction_id": tid, "account_id": account_id,
                                                  "amount": leg.amount} for account_id, leg in legs])
    except IntegrityError:
        replay = _replay(ctx, idempotency_key, posting)  # the key was posted before (or just now)
        if replay is None:
            raise
        return replay
    return PostingResult(int(tid), False)


def _partner_rate(ctx: Context, partner: str) -> Rate:
    with ctx.db.connect() as conn:
        row = conn.execute(select(point_partners).where(point_partners.c.code == partner)).first()
    if row is None:
        raise NotFound(f"no partner {partner}")
    return Rate(row.rate_numerator, row.rate_denominator)


def _acting_for(principal: Principal, what: str, code: str) -> None:
    if principal.role in _NATIONAL:
        return
    if principal.role is Role.AGENCY and principal.subject == f"{what}-{code}":
        return
    raise Forbidden(f"only {what} {code} (or the point platform) may do this")


def convert(ctx: Context, principal: Principal, partner: str, mykey_id: str, municipality_code: str,
            partner_points: int, idempotency_key: str, now: datetime) -> PostingResult:
    """地域経済応援ポイント: the partner converts ``partner_points`` of the holder's points into this
    municipality's points at its configured rate. One way: nothing converts back."""
    _acting_for(principal, "partner", partner)
    posting = Posting.conversion(municipality_code, partner, check_mykey_id(mykey_id), partner_points,
                                 _partner_rate(ctx, partner))
    return post(ctx, principal, posting, idempotency_key, now)


def earn(ctx: Context, principal: Principal, municipality_code: str, mykey_id: str, points: int, reason: str,
         idempotency_key: str, now: datetime) -> PostingResult:
    """行政ポイント: the municipality grants points (volunteering, a health check-up, an event)."""
    principal.require(*_MUNICIPAL)
    if not principal.can_see_municipality(municipality_code):
        raise Forbidden("a municipality grants only its own points")
    posting = Posting.earning(municipality_code, check_mykey_id(mykey_id), points, reason)
    return post(ctx, principal, posting, idempotency_key, now)


def redeem(ctx: Context, principal: Principal, shop: str, mykey_id: str, municipality_code: str, points: int,
           idempotency_key: str, now: datetime) -> PostingResult:
    """The holder spends points at a registered shop (at the till with the card, or online)."""
    _acting_for(principal, "shop", shop)
    posting = Posting.redemption(municipality_code, check_mykey_id(mykey_id), shop, points)
    return post(ctx, principal, posting, idempotency_key, now)


def redeem_with_card(ctx: Context, principal: Principal, shop: str, proof: platform.CardProof, municipality_code: str,
                     points: int, idempotency_key: str, now: datetime) -> PostingResult:
    """At the shop's till: the holder touches the card and enters the PIN (the card signs the platform's
    challenge); the points are taken from the MyKey ID the card stands for."""
    _acting_for(principal, "shop", shop)
    serial = platform.verify_card(ctx, proof, now)
    mykey_id = platform.mykey_id_of_certificate(ctx, serial, now)
    if mykey_id is None:
        raise NotFound("this card has no MyKey ID")
    return redeem(ctx, principal, shop, mykey_id, municipality_code, points, idempotency_key, now)


# --- reading ------------------------------------------------------------------------------------------------

def _may_read(conn: Connection, principal: Principal, kind: AccountKind, owner: str, municipality_code: str) -> bool:
    if principal.role in _NATIONAL:
        return True
    if principal.role in (Role.CLERK, Role.SUPERVISOR):
        return principal.can_see_municipality(municipality_code)
    if principal.role is Role.RESIDENT:
        mine = conn.execute(select(mykey_ids.c.mykey_id).where(
            mykey_ids.c.resident_id == int(principal.subject))).scalar() if principal.subject.isdigit() else None
        return kind is AccountKind.RESIDENT and owner == mine
    if principal.role is Role.AGENCY:
        return principal.subject == f"{kind.value}-{owner}"
    return False


def balance(ctx: Context, principal: Principal, kind: AccountKind | str, owner: str, municipality_code: str) -> int:
    return statement(ctx, principal, kind, owner, municipality_code, limit=0)[0]


def statement(ctx: Context, principal: Principal, kind: AccountKind | str, owner: str, municipality_code: str,
              limit: int = 100) -> tuple[int, list[StatementLine]]:
    """An account's balance and its latest ``limit`` lines, newest first, each with the balance after it —
    for the resident (their own), the municipality (its programme and everyone in it), a shop or a partner
    (their own). Anyone else finds nothing."""
    kind = AccountKind(kind)
    with ctx.db.connect() as conn:
        if not _may_read(conn, principal, kind, owner, municipality_code):
            raise NotFound("no such account")
        account = conn.execute(select(point_accounts).where(
            point_accounts.c.kind == kind.value, point_accounts.c.owner == owner,
            point_accounts.c.municipality_code == municipality_code)).first()
        if account is None:
            return 0, []
        rows = conn.execute(select(point_entries.c.transaction_id, point_entries.c.amount, point_transactions.c.at,
                                   point_transactions.c.kind, point_transactions.c.memo)
                            .join(point_transactions, point_transactions.c.id == point_entries.c.transaction_id)
                            .where(point_entries.c.account_id == account.id)
                            .order_by(point_entries.c.id.desc()).limit(max(limit, 0))).all()
    lines = []
    running = int(account.balance)
    for r in rows:
        lines.append(StatementLine(r.transaction_id, r.at, PostingKind(r.kind), r.memo, int(r.amount), running))
        running -= int(r.amount)
    return int(account.balance), lines


@dataclass(frozen=True)
class Holding:
    """A resident's points in one municipality's programme, with the latest lines."""

    municipality_code: str
    balance: int
    lines: list[StatementLine]


def my_points(ctx: Context, principal: Principal, limit: int = 20) -> tuple[str | None, list[Holding]]:
    """The logged-in resident's MyKey ID and their points in every programme (Mynaportal's page)."""
    if principal.role is not Role.RESIDENT or not principal.subject.isdigit():
        raise Forbidden("only a resident sees their own points")
    with ctx.db.connect() as conn:
        mykey_id = conn.execute(select(mykey_ids.c.mykey_id).where(
            mykey_ids.c.resident_id == int(principal.subject))).scalar()
        if mykey_id is None:
            return None, []
        towns = conn.execute(select(point_accounts.c.municipality_code).where(
            point_accounts.c.kind == AccountKind.RESIDENT.value, point_accounts.c.owner == mykey_id)
            .order_by(point_accounts.c.municipality_code)).scalars().all()
    out = []
    for town in towns:
        balance_now, lines = statement(ctx, principal, AccountKind.RESIDENT, mykey_id, town, limit)
        out.append(Holding(town, balance_now, lines))
    return str(mykey_id), out


def accounts_of_municipality(ctx: Context, principal: Principal, municipality_code: str) -> list[Account]:
    """Every account in one municipality's programme (its statement page)."""
    principal.require(*_MUNICIPAL)
    if not principal.can_see_municipality(municipality_code):
        raise NotFound("no such programme")
    with ctx.db.connect() as conn:
        rows = conn.execute(select(point_accounts).where(point_accounts.c.municipality_code == municipality_code)
                            .order_by(point_accounts.c.kind, point_accounts.c.owner)).all()
    return [Account(r.id, AccountKind(r.kind), r.owner, r.municipality_code, int(r.balance)) for r in rows]


def verify_ledger(ctx: Context) -> LedgerCheck:
    """Check the whole ledger: every transaction balances, every balance is the sum of its entries, no holder
    is below zero, and everything together sums to zero."""
    with ctx.db.connect() as conn:
        sums = select(point_entries.c.transaction_id, func.sum(point_entries.c.amount).label("total")).group_by(
            point_entries.c.transaction_id).subquery()
        unbalanced = conn.execute(select(sums.c.transaction_id).where(sums.c.total != 0)).scalars().all()
        with_entries = conn.execute(select(func.count()).select_from(sums)).scalar_one()
        transactions = conn.execute(select(func.count()).select_from(point_transactions)).scalar_one()
        empty = conn.execute(select(point_transactions.c.id).where(~point_transactions.c.id.in_(
            select(point_entries.c.transaction_id)))).scalars().all() if with_entries != transactions else []
        per_account = select(point_entries.c.account_id, func.sum(point_entries.c.amount).label("total")).group_by(
            point_entries.c.account_id).subquery()
        out_of_step = conn.execute(select(point_accounts.c.id).outerjoin(
            per_account, per_account.c.account_id == point_accounts.c.id).where(
            point_accounts.c.balance != func.coalesce(per_account.c.total, 0))).scalars().all()
        overdrawn = conn.execute(select(point_accounts.c.id).where(
            point_accounts.c.balance < 0, point_accounts.c.may_go_negative.is_(False))).scalars().all()
        total = conn.execute(select(func.coalesce(func.sum(point_accounts.c.balance), 0))).scalar_one()
        entries = conn.execute(select(func.count()).select_from(point_entries)).scalar_one()
    return LedgerCheck(int(transactions), int(entries), tuple(int(t) for t in [*unbalanced, *empty]),
                       tuple(int(a) for a in out_of_step), tuple(int(a) for a in overdrawn), int(total))
