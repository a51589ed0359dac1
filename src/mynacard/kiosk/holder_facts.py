"""What the issuing server knows about a card holder on one day — their household, family register, seal
registration, tax record and the notes and support measures that stop issuance — loaded in a few reads, and the
checks a document must pass before it is offered or made (:func:`check_issuable`)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, Date, Integer, and_, bindparam, false, null, or_, select, true, union_all

from mynacard.clock import local_date
from mynacard.kiosk.documents import FamilyRegister, RegisterMember, SealRegistration, TaxRecord
from mynacard.kiosk.model import (
    DocumentKind,
    DocumentOptions,
    PersonRecord,
    RefusalReason,
    Refused,
    check_document,
    fiscal_year_available,
)
from mynacard.kiosk.offerings import MunicipalSettings, closed_days
from mynacard.kiosk.tables import (
    kiosk_family_register_members,
    kiosk_family_register_use,
    kiosk_family_registers,
    kiosk_resident_notes,
    kiosk_seal_registrations,
    kiosk_support_measures,
    kiosk_tax_records,
)
from mynacard.registry import service as registry
from mynacard.registry.model import Resident

__all__ = ["HolderFacts", "check_issuable", "issuing_municipality", "load_facts"]


@dataclass
class HolderFacts:
    """Everything the server knows about a holder on one day (loaded in one read)."""

    holder: PersonRecord
    household: list[PersonRecord]
    register: FamilyRegister | None
    register_usable: bool
    domiciles: dict[int, FamilyRegister]
    seal: SealRegistration | None
    tax: TaxRecord | None


def _notes_and_support() -> Any:
    """The notes and the support measures in force for residents ``ids`` on ``today``, in one round trip (a
    support row carries no dates)."""
    notes, support = kiosk_resident_notes, kiosk_support_measures
    ids: Any = bindparam("ids", expanding=True)
    today, no_date = bindparam("today", type_=Date()), null().cast(Date)
    return union_all(
        select(notes.c.resident_id, notes.c.transfer_out_filed_on, notes.c.moved_in_on,
               false().label("protected")).where(notes.c.resident_id.in_(ids)),
        select(support.c.resident_id, no_date, no_date, true()).where(
            support.c.resident_id.in_(ids), support.c.starts_on <= today,
            or_(support.c.ends_on.is_(None), support.c.ends_on >= today)))


_NOTES_AND_SUPPORT = _notes_and_support()


def _people(conn: Connection, residents: Sequence[Resident], today: date) -> list[PersonRecord]:
    ids = [r.id for r in residents]
    if not ids:
        return []
    rows = conn.execute(_NOTES_AND_SUPPORT, {"ids": ids, "today": today}).all()
    note_rows = {r.resident_id: r for r in rows if not r.protected}
    protected = {r.resident_id for r in rows if r.protected}
    out = []
    for r in residents:
        note = note_rows.get(r.id)
        out.append(PersonRecord(r, r.id in protected,
                                note is not None and note.transfer_out_filed_on is not None,
                                note.moved_in_on if note is not None else None))
    return out


def _registers_of_query() -> Any:
    reg, mem = kiosk_family_registers, kiosk_family_register_members
    theirs = select(mem.c.register_id).where(mem.c.resident_id.in_(bindparam("ids", expanding=True)),
                                             mem.c.removed.is_(False))
    return (select(reg.c.id.label("reg_id"), reg.c.municipality_code, reg.c.domicile, reg.c.head_name,
                   reg.c.pending_filing, *(c for c in mem.c if c.name not in ("id", "register_id")))
            .join_from(reg, mem, mem.c.register_id == reg.c.id)
            .where(reg.c.id.in_(theirs)).order_by(reg.c.id, mem.c.position))


_REGISTERS_OF = _registers_of_query()
"""Every member of every family register one of residents ``ids`` is a current member of."""


def _registers_of(conn: Connection, resident_ids: Sequence[int]) -> dict[int, FamilyRegister]:
    """The family register each resident is a (current) member of, read in one query: every member of
    every register one of the residents is in."""
    if not resident_ids:
        return {}
    rows = conn.execute(_REGISTERS_OF, {"ids": list(resident_ids)}).all()
    by_register: dict[int, list[Any]] = {}
    for row in rows:
        by_register.setdefault(row.reg_id, []).append(row)
    loaded = {reg_id: _register(members) for reg_id, members in by_register.items()}
    wanted = set(resident_ids)
    return {row.resident_id: loaded[row.reg_id] for row in rows
            if row.resident_id in wanted and not row.removed}


def _register(rows: list[Any]) -> FamilyRegister:
    first = rows[0]
    members = tuple(RegisterMember(
        position=m.position, family_name=m.family_name, given_name=m.given_name, birth_date=m.birth_date,
        sex=m.sex, relationship=m.relationship, father=m.father, mother=m.mother,
        events=tuple(json.loads(m.events)), removed=m.removed, resident_id=m.resident_id) for m in rows)
    return FamilyRegister(first.reg_id, first.municipality_code, first.domicile, first.head_name, members,
                          first.pending_filing)


def _seal_and_tax_query() -> Any:
    seal_, tax = kiosk_seal_registrations, kiosk_tax_records
    holder = select(bindparam("resident_id", type_=Integer).label("resident_id")).subquery()
    return (select(seal_.c.registration_number, seal_.c.registered_on, seal_.c.impression,
                   *(c for c in tax.c if c.name not in ("resident_id", "municipality_code", "recorded_at")))
            .select_from(holder.outerjoin(seal_, and_(seal_.c.resident_id == holder.c.resident_id,
                                                      seal_.c.abolished_on.is_(None)))
                         .outerjoin(tax, and_(tax.c.resident_id == holder.c.resident_id,
                                              tax.c.fiscal_year == bindparam("year"),
                                              tax.c.municipality_code == bindparam("code")))))


_SEAL_AND_TAX = _seal_and_tax_query()
"""The holder's current seal registration and tax record of the year, each or both absent, in one query."""


def load_facts(conn: Connection, holder_id: int, today: date) -> HolderFacts:
    """Everything the checks and the documents need about the holder (refused if the registry does not know
    them)."""
    holder, household_residents = registry.household_of(conn, holder_id)
    if holder is None:
        raise Refused(RefusalReason.NO_HOLDER)
    people = _people(conn, household_residents, today)
    me = next(p for p in people if p.id == holder.id)
    domiciles = _registers_of(conn, [p.id for p in people])
    register = domiciles.get(holder.id)
    usable = register is not None and (register.municipality_code == holder.municipality_code or conn.execute(
        select(kiosk_family_register_use.c.resident_id).where(
            kiosk_family_register_use.c.resident_id == holder.id,
            kiosk_family_register_use.c.municipality_code == register.municipality_code)).first() is not None)
    row = conn.execute(_SEAL_AND_TAX, {"resident_id": holder.id, "year": fiscal_year_available(today),
                                       "code": holder.municipality_code}).first()
    assert row is not None  # always a row: the holder's, joined outward (first(), as before, should two seals exist)
    seal_reg = (SealRegistration(holder.id, row.registration_number, row.registered_on, bytes(row.impression))
                if row.registration_number is not None else None)
    tax = (TaxRecord(holder.id, row.fiscal_year, row.total_income, row.employment_income, row.deductions,
                     row.taxable_income, row.municipal_tax, row.prefectural_tax)
           if row.fiscal_year is not None else None)
    return HolderFacts(me, people, register, usable, domiciles, seal_reg, tax)


def issuing_municipality(kind: DocumentKind, holder: Resident, facts: HolderFacts) -> str:
    """The municipality that issues ``kind`` for the holder: their 本籍's for a family register document (when
    they have one), else their home municipality."""
    if kind.from_family_register and facts.register is not None:
        return facts.register.municipality_code
    return holder.municipality_code


def check_issuable(kind: DocumentKind, options: DocumentOptions, facts: HolderFacts,
                   settings: MunicipalSettings | None, conn: Connection, now: datetime,
                   closures: dict[str, tuple[bool, set[DocumentKind]]] | None = None) -> list[PersonRecord]:
    """The document's checks (:class:`Refused` if it may not be issued now); returns the people it is about.
    ``closures`` memoises :func:`~mynacard.kiosk.offerings.closed_days` by municipality within one call."""
    today = local_date(now)
    if settings is None or not settings.participating:
        raise Refused(RefusalReason.NOT_PARTICIPATING)
    if closures is None:
        closures = {}
    if settings.code not in closures:
        closures[settings.code] = closed_days(conn, settings.code, today)
    closed, suspended = closures[settings.code]
    if closed:
        raise Refused(RefusalReason.MAINTENANCE)
    return check_document(
        options, facts.holder, facts.household, settings.offerings.get(kind), now,
        suspended=kind in suspended, has_domicile={i: True for i in facts.domiciles},
        has_seal=facts.seal is not None, has_tax_record=facts.tax is not None,
        family_register=None if facts.register is None else facts.register.municipality_code,
        family_register_pending=facts.register is not None and facts.register.pending_filing,
        family_register_usable=facts.register_usable)
