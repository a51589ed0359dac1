"""The municipality's own records, which the resident registry does not have: filed move-outs (転出届) and
moves in (転入), support measures (支援措置), seal registrations (印鑑登録), tax records, family registers (戸籍)
and their use by residents domiciled elsewhere (利用登録), and the address history behind 戸籍の附票.

Kept by the municipality's clerks and system jobs (:data:`~mynacard.kiosk.municipal_scope.KEEPER_ROLES`), each
change in the municipality's audit stream."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update

from mynacard.clock import local_date
from mynacard.context import Context
from mynacard.db import bulk_insert
from mynacard.errors import Conflict, InvalidInput, NotFound
from mynacard.kiosk import audit, seal
from mynacard.kiosk.documents import RegisterMember, SealRegistration, TaxRecord
from mynacard.kiosk.model import RefusalReason, Refused
from mynacard.kiosk.municipal_scope import KEEPER_ROLES, audit_stream, require_scope
from mynacard.kiosk.tables import (
    kiosk_address_history,
    kiosk_family_register_members,
    kiosk_family_register_use,
    kiosk_family_registers,
    kiosk_resident_notes,
    kiosk_seal_registrations,
    kiosk_support_measures,
    kiosk_tax_records,
)
from mynacard.principal import Principal, Role
from mynacard.registry import service as registry
from mynacard.registry.model import Resident, ResidentStatus

__all__ = [
    "add_support_measure",
    "create_family_register",
    "file_transfer_out",
    "note_move",
    "record_tax",
    "register_family_register_use",
    "register_seal",
    "set_family_register_pending",
]


def _resident_in_scope(ctx: Context, principal: Principal, resident_id: int, conn: Connection) -> Resident:
    if principal.role in (Role.OPERATOR, Role.SYSTEM):
        found = registry.get_residents(conn, [resident_id]).get(resident_id)
        if found is None:
            raise NotFound("no such resident")
        return found
    return registry.get_resident(ctx, principal, resident_id, conn)


def _upsert_note(conn: Connection, resident_id: int, now: datetime, **values: Any) -> None:
    done = conn.execute(update(kiosk_resident_notes).where(kiosk_resident_notes.c.resident_id == resident_id)
                        .values(updated_at=now, **values)).rowcount
    if not done:
        conn.execute(insert(kiosk_resident_notes).values(resident_id=resident_id, updated_at=now, **values))


def file_transfer_out(ctx: Context, principal: Principal, resident_id: int, on: date | None,
                      now: datetime) -> None:
    """Record a filed move-out (転出届) — or clear it with ``on`` None (withdrawn)."""
    principal.require(*KEEPER_ROLES)
    with ctx.transaction() as tx:
        r = _resident_in_scope(ctx, principal, resident_id, tx.conn)
        _upsert_note(tx.conn, resident_id, now, transfer_out_filed_on=on)
        audit.append(tx.conn, audit_stream(r.municipality_code), "transfer_out_filed" if on else "transfer_out_cleared",
                     principal.subject, now, details={"resident_id": resident_id})


def add_support_measure(ctx: Context, principal: Principal, resident_id: int, starts_on: date,
                        ends_on: date | None, now: datetime) -> None:
    """支援措置 (DV, stalking, abuse): from ``starts_on`` nothing about the person is issued at kiosks."""
    principal.require(*KEEPER_ROLES)
    if ends_on is not None and ends_on < starts_on:
        raise InvalidInput("a support measure ends after it starts")
    with ctx.transaction() as tx:
        r = _resident_in_scope(ctx, principal, resident_id, tx.conn)
        tx.conn.execute(insert(kiosk_support_measures).values(
            resident_id=resident_id, municipality_code=r.municipality_code, starts_on=starts_on, ends_on=ends_on,
            recorded_at=now))
        audit.append(tx.conn, audit_stream(r.municipality_code), "support_measure", principal.subject, now,
                     details={"resident_id": resident_id})


def register_seal(ctx: Context, principal: Principal, resident_id: int, now: datetime) -> SealRegistration:
    """印鑑登録: register the resident's seal (its impression is made from the family name here)."""
    principal.require(*KEEPER_ROLES)
    with ctx.transaction() as tx:
        r = _resident_in_scope(ctx, principal, resident_id, tx.conn)
        if r.status is not ResidentStatus.ACTIVE:
            raise InvalidInput("only active residents register a seal")
        if tx.conn.execute(select(kiosk_seal_registrations.c.id).where(
                kiosk_seal_registrations.c.resident_id == resident_id,
                kiosk_seal_registrations.c.abolished_on.is_(None))).first():
            raise Conflict("the resident already has a registered seal")
        count = tx.conn.execute(select(func.count()).select_from(kiosk_seal_registrations).where(
            kiosk_seal_registrations.c.municipality_code == r.municipality_code)).scalar_one()
        number = f"{r.municipality_code[:5]}{count + 1:07d}"
        impression = seal.resident_seal_png(r.facts.family_name)
        tx.conn.execute(insert(kiosk_seal_registrations).values(
            resident_id=resident_id, municipality_code=r.municipality_code, registration_number=number,
            impression=impression, registered_on=local_date(now)))
        audit.append(tx.conn, audit_stream(r.municipality_code), "seal_registered", principal.subject, now,
                     details={"resident_id": resident_id, "registration_number": number})
    return SealRegistration(resident_id, number, local_date(now), impression)


def record_tax(ctx: Context, principal: Principal, record: TaxRecord, now: datetime) -> None:
    """A fiscal year's income and tax for a resident (replaces the year's earlier record)."""
    principal.require(*KEEPER_ROLES)
    if min(record.total_income, record.deductions, record.taxable_income, record.municipal_tax,
           record.prefectural_tax, record.employment_income) < 0:
        raise InvalidInput("amounts are never negative")
    with ctx.transaction() as tx:
        r = _resident_in_scope(ctx, principal, record.resident_id, tx.conn)
        tx.conn.execute(delete(kiosk_tax_records).where(kiosk_tax_records.c.resident_id == record.resident_id,
                                                        kiosk_tax_records.c.fiscal_year == record.fiscal_year))
        tx.conn.execute(insert(kiosk_tax_records).values(
            resident_id=record.resident_id, fiscal_year=record.fiscal_year, municipality_code=r.municipality_code,
            total_income=record.total_income, employment_income=record.employment_income,
            deductions=record.deductions, taxable_income=record.taxable_income,
            municipal_tax=record.municipal_tax, prefectural_tax=record.prefectural_tax, recorded_at=now))
        audit.append(tx.conn, audit_stream(r.municipality_code), "tax_recorded", principal.subject, now,
                     details={"resident_id": record.resident_id, "fiscal_year": record.fiscal_year})


def create_family_register(ctx: Context, principal: Principal, municipality_code: str, domicile: str,
                           head_name: str, members: Sequence[RegisterMember], now: datetime) -> int:
    """A family register (戸籍) whose registered domicile (本籍) is in ``municipality_code``."""
    require_scope(principal, municipality_code)
    if not members:
        raise InvalidInput("a family register has at least one person")
    if not domicile.strip() or not head_name.strip():
        raise InvalidInput("a family register has a domicile and a head")
    with ctx.transaction() as tx:
        register_id = tx.conn.execute(insert(kiosk_family_registers).values(
            municipality_code=municipality_code, domicile=domicile, head_name=head_name, pending_filing=False,
            updated_at=now).returning(kiosk_family_registers.c.id)).scalar_one()
        _insert_members(tx.conn, register_id, members)
        audit.append(tx.conn, audit_stream(municipality_code), "family_register_created", principal.subject, now,
                     details={"register_id": register_id, "members": len(members)})
    return int(register_id)


def _insert_members(conn: Connection, register_id: int, members: Sequence[RegisterMember]) -> None:
    bulk_insert(conn, kiosk_family_register_members, [{
        "register_id": register_id, "resident_id": m.resident_id, "position": m.position,
        "family_name": m.family_name, "given_name": m.given_name, "birth_date": m.birth_date, "sex": m.sex,
        "relationship": m.relationship, "father": m.father, "mother": m.mother,
        "events": json.dumps(list(m.events), ensure_ascii=False), "removed": m.removed} for m in members])


def set_family_register_pending(ctx: Context, principal: Principal, register_id: int, pending: bool,
                                now: datetime) -> None:
    """A filing (marriage, birth …) received but not yet entered: no kiosk certificate meanwhile."""
    principal.require(*KEEPER_ROLES)
    with ctx.transaction() as tx:
        row = tx.conn.execute(select(kiosk_family_registers.c.municipality_code).where(
            kiosk_family_registers.c.id == register_id)).first()
        if row is None or not principal.can_see_municipality(row.municipality_code):
            raise NotFound("no such family register")
        tx.conn.execute(update(kiosk_family_registers).where(kiosk_family_registers.c.id == register_id)
                        .values(pending_filing=pending, updated_at=now))
        audit.append(tx.conn, audit_stream(row.municipality_code), "family_register_pending", principal.subject, now,
                     details={"register_id": register_id, "pending": pending})


def register_family_register_use(ctx: Context, principal: Principal, resident_id: int, municipality_code: str,
                                 now: datetime, request_id: str | None = None) -> None:
    """利用登録申請: a resident whose registered domicile is in another municipality registers once for kiosk
    issuance of their 戸籍 there. The domicile municipality checks that the person is in one of its registers."""
    principal.require(*KEEPER_ROLES)
    with ctx.transaction() as tx:
        in_register = tx.conn.execute(
            select(kiosk_family_register_members.c.id).join(kiosk_family_registers).where(
                kiosk_family_register_members.c.resident_id == resident_id,
                kiosk_family_register_members.c.removed.is_(False),
                kiosk_family_registers.c.municipality_code == municipality_code)).first()
        if in_register is None:
            raise Refused(RefusalReason.NO_FAMILY_REGISTER)
        if tx.conn.execute(select(kiosk_family_register_use.c.resident_id).where(
                kiosk_family_register_use.c.resident_id == resident_id,
                kiosk_family_register_use.c.municipality_code == municipality_code)).first():
            return
        tx.conn.execute(insert(kiosk_family_register_use).values(
            resident_id=resident_id, municipality_code=municipality_code, registered_at=now, request_id=request_id))
        audit.append(tx.conn, audit_stream(municipality_code), "family_register_use_registered", principal.subject,
                     now, request_id=request_id, details={"resident_id": resident_id})


def _record_address(conn: Connection, resident_id: int, address: str, since: date) -> None:
    """One line of the address history behind the family register attachment (戸籍の附票)."""
    conn.execute(insert(kiosk_address_history).values(resident_id=resident_id, address=address, since=since))


def note_move(conn: Connection, resident: Resident, within: bool, at: datetime) -> None:
    """React to a move in the registry: the new address joins the history; a move into another municipality
    is a 転入 today (no kiosk issuance on that day) and settles any filed move-out."""
    _record_address(conn, resident.id, resident.facts.address, local_date(at))
    if not within:
        _upsert_note(conn, resident.id, at, moved_in_on=local_date(at), transfer_out_filed_on=None)
