"""Use cases of the resident registry: registering residents, assigning numbers, life events.

Life events record domain events other parts react to (``registry.resident_moved``,
``registry.name_changed``, ``registry.resident_died``, ``registry.moved_abroad``); each carries
``basic_facts_changed`` so that JPKI can revoke signing certificates without knowing every kind.
"""

from __future__ import annotations

import csv
import json
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from importlib.resources import files
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from mynacard import numbers
from mynacard.context import Context, Transaction
from mynacard.db import any_of, bulk_insert, bulk_insert_ignore
from mynacard.errors import Forbidden, InvalidInput, NotFound
from mynacard.principal import Principal, Role
from mynacard.registry.model import (
    BasicFacts,
    MunicipalityCode,
    Resident,
    ResidentStatus,
    Sex,
    normalize_kana,
    normalize_name_part,
)
from mynacard.registry.tables import (
    households,
    individual_numbers,
    municipalities,
    registry_events,
    residents,
)
from mynacard.sealing import Sealer

__all__ = [
    "Municipality",
    "NewResident",
    "change_name",
    "count_residents",
    "get_municipality",
    "get_resident",
    "get_residents",
    "household_members",
    "individual_number_of",
    "list_municipalities",
    "load_municipalities",
    "move_resident",
    "record_death",
    "record_move_abroad",
    "register_residents",
    "resident_id_for_number",
    "resident_ids_in",
    "residents_by_id",
]

_CLERKS = (Role.CLERK, Role.SUPERVISOR, Role.OPERATOR, Role.SYSTEM)


@dataclass(frozen=True)
class Municipality:
    """A municipality (市区町村) with its local government code."""

    code: str
    prefecture_code: str
    prefecture: str
    name: str
    kana: str

    @property
    def full_name(self) -> str:
        return f"{self.prefecture}{self.name}"


@dataclass(frozen=True)
class NewResident:
    """Input for registering a resident (出生届, 転入 from abroad, or the initial load)."""

    municipality_code: str
    facts: BasicFacts
    family_kana: str
    given_kana: str
    maiden_name: str | None = None
    household_key: str | None = None
    """Residents sharing a key in one call form one household; the first is its head."""
    relationship: str = "世帯主"


# --- municipalities -------------------------------------------------------------------------------------

def _municipality_rows() -> list[dict[str, Any]]:
    text = (files("mynacard.registry") / "data" / "municipalities.csv").read_text(encoding="utf-8")
    return [
        {**row, "lat": float(row["lat"]), "lng": float(row["lng"])}
        for row in csv.DictReader(text.splitlines())
    ]


def load_municipalities(conn: Connection) -> int:
    """Insert the 1,741 municipalities that are missing (idempotent); used by the first migration."""
    have = set(conn.execute(select(municipalities.c.code)).scalars())
    rows = [r for r in _municipality_rows() if r["code"] not in have]
    if rows:
        conn.execute(insert(municipalities), rows)
    return len(rows)


def list_municipalities(ctx: Context, prefecture_code: str | None = None) -> list[Municipality]:
    query = select(municipalities).order_by(municipalities.c.code)
    if prefecture_code:
        query = query.where(municipalities.c.prefecture_code == prefecture_code)
    with ctx.db.connect() as conn:
        return [Municipality(r.code, r.prefecture_code, r.prefecture, r.name, r.kana)
                for r in conn.execute(query)]


def get_municipality(ctx: Context, code: str) -> Municipality:
    with ctx.db.connect() as conn:
        r = conn.execute(select(municipalities).where(municipalities.c.code == code)).first()
    if r is None:
        raise NotFound(f"unknown municipality {code!r}")
    return Municipality(r.code, r.prefecture_code, r.prefecture, r.name, r.kana)


def _require_municipality(conn: Connection, code: str) -> MunicipalityCode:
    try:
        valid = MunicipalityCode(code)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    if conn.execute(select(municipalities.c.code).where(municipalities.c.code == valid)).first() is None:
        raise InvalidInput(f"unknown municipality {code!r}")
    return valid


# --- reading residents -------------------------------------------------------------------------------------

def _to_resident(row: Any) -> Resident:
    return Resident(
        id=row.id,
        resident_code=row.resident_code,
        municipality_code=row.municipality_code,
        household_id=row.household_id,
        facts=BasicFacts(row.family_name, row.given_name, row.birth_date, Sex(row.sex), row.address),
        family_kana=row.family_kana,
        given_kana=row.given_kana,
        maiden_name=row.maiden_name,
        status=ResidentStatus(row.status),
        relationship=row.relationship,
    )


def _scoped(principal: Principal, query: Any) -> Any:
    if principal.role is Role.RESIDENT:
        return query.where(residents.c.id == int(principal.subject))
    scope = principal.municipality_scope()
    return query if scope is None else query.where(residents.c.municipality_code == scope)


def get_resident(ctx: Context, principal: Principal, resident_id: int, conn: Connection | None = None) -> Resident:
    """One resident, if the caller may see them; otherwise :class:`NotFound`."""
    query = _scoped(principal, select(residents).where(residents.c.id == resident_id))
    if conn is not None:
        row = conn.execute(query).first()
    else:
        with ctx.db.connect() as c:
            row = c.execute(query).first()
    if row is None:
        raise NotFound("no such resident")
    return _to_resident(row)


def get_residents(conn: Connection, resident_ids: Iterable[int]) -> dict[int, Resident]:
    """Residents by id for another part's service, inside its transaction (it has already scoped the ids)."""
    ids = list(set(resident_ids))
    out: dict[int, Resident] = {}
    for i in range(0, len(ids), 5000):
        for row in conn.execute(select(residents).where(any_of(residents.c.id, ids[i:i + 5000]))):
            out[row.id] = _to_resident(row)
    return out


def household_members(conn: Connection, household_id: int) -> list[Resident]:
    """Everyone recorded in one household, the head (世帯主) first, for another part's service inside its
    transaction (it has already scoped the household, e.g. to the authenticated card holder's)."""
    rows = conn.execute(select(residents).where(residents.c.household_id == household_id)
                        .order_by(residents.c.id)).all()
    people = [_to_resident(r) for r in rows]
    return sorted(people, key=lambda r: (r.relationship != "世帯主", r.id))


_MUNICIPALITY_OF = select(residents.c.municipality_code).where(residents.c.id == bindparam("resident_id"))


def municipality_of(conn: Connection, resident_id: int) -> str | None:
    """The municipality a resident is recorded in (None if the registry does not know them), for another part's
    service inside its transaction (it has already scoped the resident). One column of a statement built once:
    the kiosk centre asks it for every card it authenticates."""
    code: str | None = conn.execute(_MUNICIPALITY_OF, {"resident_id": resident_id}).scalar()
    return code


_HOUSEHOLD_OF = select(residents).where(or_(
    residents.c.id == bindparam("resident_id"),
    residents.c.household_id == select(residents.c.household_id)
    .where(residents.c.id == bindparam("resident_id")).scalar_subquery()))
"""Built once: it is read for every certificate a kiosk prints (twice)."""


def household_of(conn: Connection, resident_id: int) -> tuple[Resident | None, list[Resident]]:
    """One resident and everyone recorded in their household (the head first; just the resident when they
    have none), in one query, for another part's service inside its transaction (it has already scoped the
    resident, e.g. to the authenticated card holder)."""
    rows = conn.execute(_HOUSEHOLD_OF, {"resident_id": resident_id}).all()
    people = {r.id: _to_resident(r) for r in rows}
    found = people.get(resident_id)
    if found is None:
        return None, []
    members = [r for r in people.values() if found.household_id is not None and r.household_id == found.household_id]
    return found, sorted(members or [found], key=lambda r: (r.relationship != "世帯主", r.id))


def resident_ids_in(conn: Connection, municipality_code: str) -> list[int]:
    """Ids of everyone recorded in one municipality (any status), for another part's batch job inside its
    transaction (the caller has scoped the municipality)."""
    return list(conn.execute(select(residents.c.id).where(residents.c.municipality_code == municipality_code)
                             .order_by(residents.c.id)).scalars())


def residents_by_id(ctx: Context, principal: Principal, resident_ids: Iterable[int]) -> dict[int, Resident]:
    """Residents by id within the caller's scope (ids out of scope are simply absent)."""
    ids = list(set(resident_ids))
    out: dict[int, Resident] = {}
    with ctx.db.connect() as conn:
        for i in range(0, len(ids), 5000):
            query = _scoped(principal, select(residents).where(any_of(residents.c.id, ids[i:i + 5000])))
            for row in conn.execute(query):
                out[row.id] = _to_resident(row)
    return out


def count_residents(ctx: Context, principal: Principal) -> int:
    with ctx.db.connect() as conn:
        return int(conn.execute(_scoped(principal, select(func.count()).select_from(residents))).scalar_one())


# --- registering residents and assigning numbers -------------------------------------------------------

def _new_resident_codes(conn: Connection, count: int) -> list[str]:
    """Fresh 11-digit resident record codes (10 random digits + check digit), unused so far."""
    codes: set[str] = set()
    while len(codes) < count:
        batch: set[str] = set()
        while len(batch) < count - len(codes):
            base = f"{secrets.randbelow(10**10):010d}"
            batch.add(base + str(numbers.resident_record_code_check_digit(base)))
        batch -= codes
        taken: set[str] = set()
        listed = list(batch)
        for i in range(0, len(listed), 5000):
            taken.update(conn.execute(select(residents.c.resident_code)
                                      .where(any_of(residents.c.resident_code, listed[i:i + 5000]))).scalars())
        codes |= batch - taken
    return list(codes)


def assign_individual_numbers(conn: Connection, secret: bytes, sealer: Sealer, codes: Sequence[str],
                              now: datetime) -> dict[str, str]:
    """Assign a never-used individual number to each resident record code; returns code → number hash.

    Each code starts at attempt 0. When two codes of one call derive the same number, the smaller code
    keeps it; when the unique index already holds it (from any earlier assignment, retired or not), the
    code moves to its next attempt. The outcome depends only on the codes and what is stored: deterministic.
    """
    attempt = dict.fromkeys(codes, 0)
    pending = sorted(attempt)
    assigned: dict[str, str] = {}
    while pending:
        by_hash: dict[str, tuple[str, str]] = {}
        retry: list[str] = []
        for code in pending:
            number = numbers.derive_individual_number(secret, code, attempt[code])
            digest = sealer.lookup_hash(number)
            if digest in by_hash:
                retry.append(code)
            else:
                by_hash[digest] = (code, number)
        rows = [{"number_hash": h, "resident_code": c, "attempt": attempt[c],
                 "sealed_number": sealer.seal(n.encode(), b"individual_numbers:" + c.encode()),
                 "assigned_at": now} for h, (c, n) in by_hash.items()]
        inserted = bulk_insert_ignore(conn, individual_numbers, rows, "number_hash")
        for digest, (code, _) in by_hash.items():
            if digest in inserted:
                assigned[code] = digest
            else:
                retry.append(code)
        for code in retry:
            attempt[code] += 1
        pending = sorted(retry)
    return assigned


def register_residents(ctx: Context, principal: Principal, people: Sequence[NewResident],
                       now: datetime) -> list[int]:
    """Register residents with new resident record codes and individual numbers; all or nothing."""
    principal.require(*_CLERKS)
    if not people:
        return []
    scope = principal.municipality_scope()
    problems = [f"#{i}: {p.municipality_code} is outside your municipality"
                for i, p in enumerate(people) if scope is not None and p.municipality_code != scope]
    if problems:
        raise Forbidden("; ".join(problems[:5]))
    sealer = Sealer(ctx.settings.data_key)
    for attempt in range(1, _CODE_ATTEMPTS + 1):
        try:
            return _register(ctx, principal, people, now, sealer)
        except IntegrityError as exc:
            # Another transaction, still uncommitted when our codes were checked, took one of them (10^10
            # codes: a million registrations hold ~50 such pairs). Nothing was kept; draw new codes.
            if "resident_code" not in str(exc.orig) or attempt == _CODE_ATTEMPTS:
                raise
    raise AssertionError("unreachable")


_CODE_ATTEMPTS = 5


def _register(ctx: Context, principal: Principal, people: Sequence[NewResident], now: datetime,
              sealer: Sealer) -> list[int]:
    with ctx.transaction() as tx:
        conn = tx.conn
        for code in {p.municipality_code for p in people}:
            _require_municipality(conn, code)
        try:
            kana = [(normalize_kana(p.family_kana), normalize_kana(p.given_kana)) for p in people]
            maiden = [normalize_name_part(p.maiden_name) if p.maiden_name else None for p in people]
        except ValueError as exc:
            raise InvalidInput(str(exc)) from None
        keys: dict[tuple[str, str], str] = {}
        for p in people:
            if p.household_key is not None:
                keys.setdefault((p.municipality_code, p.household_key), p.facts.address)
        household_ids: dict[tuple[str, str], int] = {}
        if keys:
            made = bulk_insert(conn, households, [{"municipality_code": m, "address": a}
                                                  for (m, _), a in keys.items()], return_ids=True)
            household_ids = dict(zip(keys, made, strict=True))
        codes = _new_resident_codes(conn, len(people))
        hashes = assign_individual_numbers(conn, ctx.settings.number_secret, sealer, codes, now)
        rows = [{
            "resident_code": code,
            "municipality_code": p.municipality_code,
            "household_id": household_ids.get((p.municipality_code, p.household_key or "")),
            "relationship": p.relationship,
            "family_name": p.facts.family_name,
            "given_name": p.facts.given_name,
            "family_kana": fk,
            "given_kana": gk,
            "maiden_name": m,
            "birth_date": p.facts.birth_date,
            "sex": p.facts.sex.value,
            "address": p.facts.address,
            "status": ResidentStatus.ACTIVE.value,
            "number_hash": hashes[code],
            "version": 1,
            "updated_at": now,
        } for p, code, (fk, gk), m in zip(people, codes, kana, maiden, strict=True)]
        ids = bulk_insert(conn, residents, rows, return_ids=True)
        bulk_insert(conn, registry_events, [
            {"resident_id": rid, "kind": "registered", "actor": principal.subject, "at": now,
             "details": json.dumps({"municipality_code": r["municipality_code"]})}
            for rid, r in zip(ids, rows, strict=True)])
    return ids


def individual_number_of(ctx: Context, principal: Principal, resident_id: int, purpose: str,
                         now: datetime) -> str:
    """The individual number, unsealed, for a use the law allows (social security, tax, disaster, the card).

    Only clerks of the resident's municipality, the operator and system jobs may ask; the purpose is
    recorded in the registry's event log so that every disclosure can be audited.
    """
    principal.require(*_CLERKS)
    if not purpose.strip():
        raise InvalidInput("a legal purpose is required to see an individual number")
    resident = get_resident(ctx, principal, resident_id)
    sealer = Sealer(ctx.settings.data_key)
    with ctx.transaction() as tx:
        conn = tx.conn
        row = conn.execute(
            select(individual_numbers.c.sealed_number).join(
                residents, residents.c.number_hash == individual_numbers.c.number_hash)
            .where(residents.c.id == resident_id)).first()
        if row is None:
            raise NotFound("no individual number assigned")
        conn.execute(insert(registry_events).values(
            resident_id=resident_id, kind="number_disclosed", actor=principal.subject,
            at=now, details=json.dumps({"purpose": purpose}, ensure_ascii=False)))
    return sealer.open(row.sealed_number, b"individual_numbers:" + resident.resident_code.encode()).decode()


def resident_id_for_number(conn: Connection, sealer: Sealer, number: str) -> int | None:
    """The resident holding an individual number (look-up by keyed hash, never by the plain number)."""
    if not numbers.is_valid_individual_number(number):
        raise InvalidInput("not a valid individual number (12 digits with a correct check digit)")
    return conn.execute(select(residents.c.id).where(
        residents.c.number_hash == sealer.lookup_hash(number))).scalar()


# --- life events -----------------------------------------------------------------------------------------

def _load_for_update(tx: Transaction, principal: Principal, resident_id: int) -> Resident:
    query = _scoped(principal, select(residents).where(residents.c.id == resident_id))
    if tx.conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = tx.conn.execute(query).first()
    if row is None:
        raise NotFound("no such resident")
    return _to_resident(row)


def _save(tx: Transaction, before: Resident, after: Resident, now: datetime) -> None:
    tx.conn.execute(update(residents).where(residents.c.id == before.id).values(
        municipality_code=after.municipality_code, family_name=after.facts.family_name,
        given_name=after.facts.given_name, family_kana=after.family_kana, given_kana=after.given_kana,
        maiden_name=after.maiden_name, address=after.facts.address, status=after.status.value,
        household_id=after.household_id, version=residents.c.version + 1, updated_at=now))


def _life_event(tx: Transaction, principal: Principal, before: Resident, after: Resident, kind: str,
                now: datetime, extra: dict[str, Any] | None = None) -> None:
    details = {
        "resident_id": before.id,
        "from_municipality": before.municipality_code,
        "to_municipality": after.municipality_code,
        "basic_facts_changed": before.facts != after.facts or kind in ("resident_died", "moved_abroad"),
        **(extra or {}),
    }
    tx.conn.execute(insert(registry_events).values(resident_id=before.id, kind=kind, actor=principal.subject,
                                                   at=now, details=json.dumps(details, ensure_ascii=False)))
    tx.record(f"registry.{kind}", details, now)


def move_resident(ctx: Context, principal: Principal, resident_id: int, new_address: str,
                  new_municipality_code: str | None, now: datetime) -> Resident:
    """転居 (within the municipality) or 転出・転入 (to another one). The address is one of the four facts."""
    principal.require(*_CLERKS)
    with ctx.transaction() as tx:
        before = _load_for_update(tx, principal, resident_id)
        try:
            before.require_active()
        except ValueError as exc:
            raise InvalidInput(str(exc)) from None
        target = _require_municipality(tx.conn, new_municipality_code or before.municipality_code)
        try:
            after = before.moved(new_address, target)
        except ValueError as exc:
            raise InvalidInput(str(exc)) from None
        if target != before.municipality_code:
            after = replace(after, household_id=None)
        _save(tx, before, after, now)
        _life_event(tx, principal, before, after, "resident_moved", now,
                    {"within_municipality": target == before.municipality_code})
    return after


def change_name(ctx: Context, principal: Principal, resident_id: int, family_name: str, given_name: str,
                family_kana: str, given_kana: str, now: datetime, keep_maiden_name: bool = False) -> Resident:
    """氏名の変更 (marriage, divorce, adoption …); optionally records the previous surname as 旧姓."""
    principal.require(*_CLERKS)
    with ctx.transaction() as tx:
        before = _load_for_update(tx, principal, resident_id)
        try:
            before.require_active()
            after = before.renamed(family_name, given_name, family_kana, given_kana, keep_maiden_name)
        except ValueError as exc:
            raise InvalidInput(str(exc)) from None
        _save(tx, before, after, now)
        _life_event(tx, principal, before, after, "name_changed", now)
    return after


def _close(ctx: Context, principal: Principal, resident_id: int, status: ResidentStatus, kind: str,
           now: datetime, extra: dict[str, Any] | None = None) -> Resident:
    principal.require(*_CLERKS)
    with ctx.transaction() as tx:
        before = _load_for_update(tx, principal, resident_id)
        try:
            before.require_active()
        except ValueError as exc:
            raise InvalidInput(str(exc)) from None
        after = replace(before, status=status)
        _save(tx, before, after, now)
        _life_event(tx, principal, before, after, kind, now, extra)
    return after


def record_death(ctx: Context, principal: Principal, resident_id: int, now: datetime) -> Resident:
    """死亡による住民票の消除."""
    return _close(ctx, principal, resident_id, ResidentStatus.DECEASED, "resident_died", now)


def record_move_abroad(ctx: Context, principal: Principal, resident_id: int, now: datetime,
                       continued_use: bool = False) -> Resident:
    """国外転出. With ``continued_use`` (継続利用, done before departure, since 2024-05-27) the card and the
    authentication certificate stay valid; the signing certificate is revoked either way."""
    return _close(ctx, principal, resident_id, ResidentStatus.ABROAD, "moved_abroad", now,
                  {"continued_use": continued_use})
