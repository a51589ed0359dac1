"""The municipality's certificate issuing server (証明発行サーバ): its records, and the certificates it makes.

Two kinds of callers:

* the municipality's clerks (and system jobs) keep the records the resident registry does not have —
  which documents the town offers and at what fee, maintenance days, seal registrations (印鑑登録), tax
  records, family registers (戸籍), support measures (支援措置), filed move-outs;
* the certificate issuance centre (J-LIS, role ``operator``) asks for a menu, then for a document for one
  request: :func:`prepare` renders and signs it (nothing is valid yet), :func:`confirm` makes it valid when the
  centre has checked it against the card holder and released it, :func:`void` makes it invalid for ever when
  the request is aborted, :func:`mark_printed` records the print.

Every certificate is keyed by the request's ID (unique): a retried request gets the same document, never a
second one. Nothing about a request is held in memory between calls; the only process-wide state is caches
of immutable things (fonts, seal images, loaded signing keys).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import threading
import time as monotonic_time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import (
    Connection,
    Date,
    Integer,
    and_,
    bindparam,
    delete,
    false,
    func,
    insert,
    literal_column,
    null,
    or_,
    select,
    true,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from mynacard.clock import local_date
from mynacard.context import Context
from mynacard.db import bulk_insert
from mynacard.errors import Conflict, InvalidInput, NotFound
from mynacard.kiosk import audit, documents, pdf, seal, signing
from mynacard.kiosk.demo_guard import require_demo
from mynacard.kiosk.documents import (
    AddressEntry,
    FamilyRegister,
    Issuer,
    RegisterMember,
    SealRegistration,
    TaxRecord,
)
from mynacard.kiosk.model import (
    DEFAULT_FEES,
    DocumentContent,
    DocumentId,
    DocumentKind,
    DocumentOptions,
    DocumentState,
    Offering,
    PersonRecord,
    RefusalReason,
    Refused,
    RequestId,
    check_document,
    check_holder,
    fiscal_year_available,
)
from mynacard.kiosk.tables import (
    kiosk_address_history,
    kiosk_closures,
    kiosk_documents,
    kiosk_family_register_members,
    kiosk_family_register_use,
    kiosk_family_registers,
    kiosk_municipal_settings,
    kiosk_offerings,
    kiosk_resident_notes,
    kiosk_seal_registrations,
    kiosk_signing_authorities,
    kiosk_signing_keys,
    kiosk_support_measures,
    kiosk_tax_records,
)
from mynacard.principal import Principal, Role
from mynacard.registry import service as registry
from mynacard.registry.model import Resident, ResidentStatus, add_years
from mynacard.sealing import Sealer

__all__ = [
    "DocumentOrder",
    "HouseholdMember",
    "Menu",
    "MenuItem",
    "MunicipalSettings",
    "PreparedDocument",
    "VerificationView",
    "add_closure",
    "add_support_measure",
    "configure",
    "confirm",
    "create_family_register",
    "fetch",
    "file_transfer_out",
    "holder_ref",
    "mark_printed",
    "menu",
    "prepare",
    "record_tax",
    "register_family_register_use",
    "register_seal",
    "seed_records",
    "set_family_register_pending",
    "settings_of",
    "trust_roots_der",
    "verification",
    "void",
]

_KEEPERS = (Role.CLERK, Role.SUPERVISOR, Role.OPERATOR, Role.SYSTEM)
_CENTRE = (Role.OPERATOR, Role.SYSTEM)
VERIFIABLE_FOR = timedelta(days=92)
"""The verification page shows a certificate's content for three months after issuance."""


def _stream(code: str, request_id: str | None = None) -> str:
    """The audit chain of a municipality's server: record keeping in one chain, certificates in sixteen
    (by the request ID's first hex digit) so that concurrent requests do not queue on one chain head."""
    return f"municipal:{code}" + (f":{request_id[0]}" if request_id else "")


def server_principal(code: str) -> Principal:
    """The issuing server itself, reading the registry: scoped to its own municipality like a clerk."""
    return Principal(Role.CLERK, f"certificate-server-{code}", code)


def holder_ref(sealer: Sealer, resident_code: str) -> str:
    """The opaque reference to the holder that a certificate carries in its signed metadata (a keyed hash
    of the resident record code, so the PDF reveals nothing new and cannot be matched without the key)."""
    return sealer.lookup_hash("kiosk-holder:" + resident_code)[:32]


_TOWNS: dict[str, dict[str, registry.Municipality]] = {}


def _towns(ctx: Context) -> dict[str, registry.Municipality]:
    """Every municipality's names: reference data loaded by the first migration, read once per process.
    Call it before opening a connection, so that a request never asks the pool for a second connection while
    it holds one (under load, threads doing that starve the pool)."""
    key = str(ctx.db.url)
    found = _TOWNS.get(key)
    if found is None:
        found = _TOWNS.setdefault(key, {m.code: m for m in registry.list_municipalities(ctx)})
    return found


def _town(ctx: Context, code: str) -> registry.Municipality:
    town = _towns(ctx).get(code)
    if town is None:
        raise NotFound(f"unknown municipality {code!r}")
    return town


def _require_scope(principal: Principal, code: str) -> None:
    principal.require(*_KEEPERS)
    if not principal.can_see_municipality(code):
        raise NotFound("no such municipality in your scope")


# --- settings, offerings, closures -------------------------------------------------------------------------

@dataclass(frozen=True)
class MunicipalSettings:
    """A municipality's kiosk service: whether it takes part, and what it offers at what fee."""

    code: str
    name: str
    """e.g. 千代田区 (the seal reads 千代田区長之印)."""
    full_name: str
    """e.g. 東京都千代田区."""
    participating: bool
    mayor_name: str | None
    offerings: dict[DocumentKind, Offering] = field(default_factory=dict)

    @property
    def issuer(self) -> Issuer:
        return Issuer(self.code, self.full_name, self.mayor_name)


def _hhmm(t: time) -> str:
    return t.strftime("%H:%M")


def _time(text: str) -> time:
    return time.fromisoformat(text)


def configure(ctx: Context, principal: Principal, code: str, now: datetime, *, participating: bool = True,
              offerings: Sequence[Offering] | None = None, mayor_name: str | None = None) -> MunicipalSettings:
    """Join (or change) the kiosk service: the documents offered and their fees (default: every document at
    :data:`~mynacard.kiosk.model.DEFAULT_FEES`), and make sure a document-signing key exists."""
    _require_scope(principal, code)
    town = _town(ctx, code)
    chosen = list(offerings) if offerings is not None else [
        Offering(kind, DEFAULT_FEES[kind.value]) for kind in DocumentKind]
    kinds = [o.kind for o in chosen]
    if len(set(kinds)) != len(kinds):
        raise InvalidInput("a document is offered twice")
    if mayor_name is not None and not 1 <= len(mayor_name) <= 40:
        raise InvalidInput("a mayor's name has 1–40 characters")
    with ctx.transaction() as tx:
        conn = tx.conn
        conn.execute(delete(kiosk_offerings).where(kiosk_offerings.c.municipality_code == code))
        conn.execute(delete(kiosk_municipal_settings).where(kiosk_municipal_settings.c.municipality_code == code))
        conn.execute(insert(kiosk_municipal_settings).values(
            municipality_code=code, participating=participating, mayor_name=mayor_name, updated_at=now))
        if chosen:
            conn.execute(insert(kiosk_offerings), [
                {"municipality_code": code, "kind": o.kind.value, "fee_yen": o.fee_yen,
                 "weekdays_only": o.weekdays_only, "opens": _hhmm(o.opens), "closes": _hhmm(o.closes)}
                for o in chosen])
        audit.append(conn, _stream(code), "configured", principal.subject, now, details={
            "participating": participating, "offerings": {o.kind.value: o.fee_yen for o in chosen}})
    _ensure_signing_key(ctx, code, town.full_name, now)
    settings = settings_of(ctx, code)
    assert settings is not None
    return settings


# Statements run in every kiosk session are built once: building one costs SQLAlchemy more than running it.
_SETTINGS = (select(kiosk_municipal_settings.c.participating, kiosk_municipal_settings.c.mayor_name,
                    kiosk_offerings.c.kind, kiosk_offerings.c.fee_yen, kiosk_offerings.c.weekdays_only,
                    kiosk_offerings.c.opens, kiosk_offerings.c.closes)
             .select_from(kiosk_municipal_settings.outerjoin(
                 kiosk_offerings, kiosk_offerings.c.municipality_code == kiosk_municipal_settings.c.municipality_code))
             .where(kiosk_municipal_settings.c.municipality_code == bindparam("code")))
"""A municipality's settings with its offerings, in one read (none: one row of NULLs from the outer join)."""
_ON_THE_DAY = (kiosk_closures.c.day == bindparam("day"), or_(kiosk_closures.c.municipality_code.is_(None),
                                                              kiosk_closures.c.municipality_code == bindparam("code")))
"""A closure of the whole service or of the municipality ``code`` on ``day``."""
_CLOSURES = select(kiosk_closures.c.municipality_code, kiosk_closures.c.kind).where(*_ON_THE_DAY)
_SETTINGS_AND_CLOSURES = union_all(
    _SETTINGS.add_columns(literal_column("'offer'").label("source")),
    # _SETTINGS's columns in order, NULL but for ``kind``
    select(null(), null(), kiosk_closures.c.kind, null(), null(), null(), null(), literal_column("'closure'"))
    .where(*_ON_THE_DAY))
"""Both, in one read, for the municipality a certificate comes from: offerings (``source`` 'offer') and the
day's closures (``source`` 'closure', ``kind`` None for the whole service or municipality)."""


def settings_of(ctx: Context, code: str, conn: Connection | None = None) -> MunicipalSettings | None:
    """The kiosk settings of a municipality (public information), or None if it never joined."""
    if conn is None:
        _towns(ctx)
        with ctx.db.connect() as c:
            return settings_of(ctx, code, c)
    return _settings_from(ctx, code, conn.execute(_SETTINGS, {"code": code}).all())


def settings_and_closures(ctx: Context, conn: Connection, code: str,
                          day: date) -> tuple[MunicipalSettings | None, tuple[bool, set[DocumentKind]]]:
    """:func:`settings_of` and :func:`closed_days` for one municipality, in one read."""
    rows = conn.execute(_SETTINGS_AND_CLOSURES, {"code": code, "day": day}).all()
    return (_settings_from(ctx, code, [r for r in rows if r.source == "offer"]),
            _closures_from([r for r in rows if r.source == "closure"]))


def _settings_from(ctx: Context, code: str, rows: Sequence[Any]) -> MunicipalSettings | None:
    if not rows:
        return None
    town = _town(ctx, code)
    offers = {DocumentKind(r.kind): Offering(DocumentKind(r.kind), r.fee_yen, r.weekdays_only, _time(r.opens),
                                             _time(r.closes))
              for r in rows if r.kind is not None}
    return MunicipalSettings(code, town.name, town.full_name, rows[0].participating, rows[0].mayor_name, offers)


def add_closure(ctx: Context, principal: Principal, day: date, reason: str, now: datetime, *,
                municipality_code: str | None = None, kind: DocumentKind | None = None) -> None:
    """A maintenance day: of the whole service (the operator, ``municipality_code`` None), of one
    municipality, or of one document there (e.g. while tax data switch over to the new year)."""
    if municipality_code is None:
        principal.require(Role.OPERATOR, Role.SYSTEM)
    else:
        _require_scope(principal, municipality_code)
    if not reason.strip():
        raise InvalidInput("say why the service is closed")
    with ctx.transaction() as tx:
        exists = tx.conn.execute(select(kiosk_closures.c.id).where(
            kiosk_closures.c.day == day,
            kiosk_closures.c.municipality_code.is_(None) if municipality_code is None
            else kiosk_closures.c.municipality_code == municipality_code,
            kiosk_closures.c.kind.is_(None) if kind is None else kiosk_closures.c.kind == kind.value)).first()
        if exists:
            return
        tx.conn.execute(insert(kiosk_closures).values(municipality_code=municipality_code, day=day,
                                                      kind=kind.value if kind else None, reason=reason))
        audit.append(tx.conn, _stream(municipality_code or "all"), "closure_added", principal.subject, now,
                     details={"day": day.isoformat(), "kind": kind.value if kind else None, "reason": reason})


def closed_days(conn: Connection, code: str | None, day: date) -> tuple[bool, set[DocumentKind]]:
    """Whether the service is closed on ``day`` (nationwide or for ``code``), and which kinds are suspended."""
    return _closures_from(conn.execute(_CLOSURES, {"day": day, "code": code}).all())


def _closures_from(rows: Sequence[Any]) -> tuple[bool, set[DocumentKind]]:
    return any(r.kind is None for r in rows), {DocumentKind(r.kind) for r in rows if r.kind is not None}


# --- the municipality's own records ---------------------------------------------------------------------

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
    principal.require(*_KEEPERS)
    with ctx.transaction() as tx:
        r = _resident_in_scope(ctx, principal, resident_id, tx.conn)
        _upsert_note(tx.conn, resident_id, now, transfer_out_filed_on=on)
        audit.append(tx.conn, _stream(r.municipality_code), "transfer_out_filed" if on else "transfer_out_cleared",
                     principal.subject, now, details={"resident_id": resident_id})


def add_support_measure(ctx: Context, principal: Principal, resident_id: int, starts_on: date,
                        ends_on: date | None, now: datetime) -> None:
    """支援措置 (DV, stalking, abuse): from ``starts_on`` nothing about the person is issued at kiosks."""
    principal.require(*_KEEPERS)
    if ends_on is not None and ends_on < starts_on:
        raise InvalidInput("a support measure ends after it starts")
    with ctx.transaction() as tx:
        r = _resident_in_scope(ctx, principal, resident_id, tx.conn)
        tx.conn.execute(insert(kiosk_support_measures).values(
            resident_id=resident_id, municipality_code=r.municipality_code, starts_on=starts_on, ends_on=ends_on,
            recorded_at=now))
        audit.append(tx.conn, _stream(r.municipality_code), "support_measure", principal.subject, now,
                     details={"resident_id": resident_id})


def register_seal(ctx: Context, principal: Principal, resident_id: int, now: datetime) -> SealRegistration:
    """印鑑登録: register the resident's seal (its impression is made from the family name here)."""
    principal.require(*_KEEPERS)
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
        audit.append(tx.conn, _stream(r.municipality_code), "seal_registered", principal.subject, now,
                     details={"resident_id": resident_id, "registration_number": number})
    return SealRegistration(resident_id, number, local_date(now), impression)


def record_tax(ctx: Context, principal: Principal, record: TaxRecord, now: datetime) -> None:
    """A fiscal year's income and tax for a resident (replaces the year's earlier record)."""
    principal.require(*_KEEPERS)
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
        audit.append(tx.conn, _stream(r.municipality_code), "tax_recorded", principal.subject, now,
                     details={"resident_id": record.resident_id, "fiscal_year": record.fiscal_year})


def create_family_register(ctx: Context, principal: Principal, municipality_code: str, domicile: str,
                           head_name: str, members: Sequence[RegisterMember], now: datetime) -> int:
    """A family register (戸籍) whose registered domicile (本籍) is in ``municipality_code``."""
    _require_scope(principal, municipality_code)
    if not members:
        raise InvalidInput("a family register has at least one person")
    if not domicile.strip() or not head_name.strip():
        raise InvalidInput("a family register has a domicile and a head")
    with ctx.transaction() as tx:
        register_id = tx.conn.execute(insert(kiosk_family_registers).values(
            municipality_code=municipality_code, domicile=domicile, head_name=head_name, pending_filing=False,
            updated_at=now).returning(kiosk_family_registers.c.id)).scalar_one()
        _insert_members(tx.conn, register_id, members)
        audit.append(tx.conn, _stream(municipality_code), "family_register_created", principal.subject, now,
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
    principal.require(*_KEEPERS)
    with ctx.transaction() as tx:
        row = tx.conn.execute(select(kiosk_family_registers.c.municipality_code).where(
            kiosk_family_registers.c.id == register_id)).first()
        if row is None or not principal.can_see_municipality(row.municipality_code):
            raise NotFound("no such family register")
        tx.conn.execute(update(kiosk_family_registers).where(kiosk_family_registers.c.id == register_id)
                        .values(pending_filing=pending, updated_at=now))
        audit.append(tx.conn, _stream(row.municipality_code), "family_register_pending", principal.subject, now,
                     details={"register_id": register_id, "pending": pending})


def register_family_register_use(ctx: Context, principal: Principal, resident_id: int, municipality_code: str,
                                 now: datetime, request_id: str | None = None) -> None:
    """利用登録申請: a resident whose registered domicile is in another municipality registers once for kiosk
    issuance of their 戸籍 there. The domicile municipality checks that the person is in one of its registers."""
    principal.require(*_KEEPERS)
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
        audit.append(tx.conn, _stream(municipality_code), "family_register_use_registered", principal.subject,
                     now, request_id=request_id, details={"resident_id": resident_id})


def record_address(conn: Connection, resident_id: int, address: str, since: date) -> None:
    """One line of the address history behind the family register attachment (戸籍の附票)."""
    conn.execute(insert(kiosk_address_history).values(resident_id=resident_id, address=address, since=since))


def note_move(conn: Connection, resident: Resident, within: bool, at: datetime) -> None:
    """React to a move in the registry: the new address joins the history; a move into another municipality
    is a 転入 today (no kiosk issuance on that day) and settles any filed move-out."""
    record_address(conn, resident.id, resident.facts.address, local_date(at))
    if not within:
        _upsert_note(conn, resident.id, at, moved_in_on=local_date(at), transfer_out_filed_on=None)


# --- signing keys ------------------------------------------------------------------------------------------

_RENDER_SLOTS = threading.BoundedSemaphore(max(1, int(os.environ.get("MYNACARD_KIOSK_RENDER_SLOTS", "2"))))
"""Certificates rendered and signed at once in this process. Rendering is pure Python (one core per process
at most, because of the GIL); letting every request thread render at once only makes the threads that hold a
database connection wait for the interpreter, so requests queue here instead — holding no connection."""

_SIGNERS: dict[tuple[str, str], signing.DocumentSigner] = {}
_SIGNERS_LOCK = threading.Lock()


def _sealer(ctx: Context) -> Sealer:
    return Sealer(ctx.settings.data_key)


def _ensure_signing_key(ctx: Context, code: str, full_name: str, now: datetime) -> None:
    sealer = _sealer(ctx)
    with ctx.transaction() as tx:
        conn = tx.conn
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7001)")
        current = conn.execute(select(kiosk_signing_keys.c.id).where(
            kiosk_signing_keys.c.municipality_code == code,
            kiosk_signing_keys.c.not_after > now + timedelta(days=30))).first()
        if current is not None:
            return
        auth_row = conn.execute(select(kiosk_signing_authorities).order_by(
            kiosk_signing_authorities.c.id.desc()).limit(1)).first()
        if auth_row is None:
            ca_cert, ca_key = signing.new_authority(now)
            auth_id = conn.execute(insert(kiosk_signing_authorities).values(
                name=signing.AUTHORITY_NAME, certificate=ca_cert.public_bytes(serialization.Encoding.DER),
                sealed_key=sealer.seal(_pkcs8(ca_key), b"kiosk_signing_authorities"), created_at=now)
                .returning(kiosk_signing_authorities.c.id)).scalar_one()
        else:
            auth_id = auth_row.id
            ca_cert = x509.load_der_x509_certificate(auth_row.certificate)
            ca_key = _load_key(sealer.open(auth_row.sealed_key, b"kiosk_signing_authorities"))
        cert, key = signing.new_signing_certificate(ca_cert, ca_key, full_name, code, now)
        conn.execute(insert(kiosk_signing_keys).values(
            municipality_code=code, authority_id=auth_id, certificate=cert.public_bytes(serialization.Encoding.DER),
            sealed_key=sealer.seal(_pkcs8(key), b"kiosk_signing_keys:" + code.encode()),
            not_before=cert.not_valid_before_utc, not_after=cert.not_valid_after_utc, created_at=now))
        audit.append(conn, _stream(code), "signing_key_created", "system", now,
                     details={"serial": f"{cert.serial_number:X}"})


def _pkcs8(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _load_key(der: bytes) -> rsa.RSAPrivateKey:
    key = serialization.load_der_private_key(der, None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("document-signing keys are RSA")
    return key


_CURRENT_KEY = (select(kiosk_signing_keys.c.id, kiosk_signing_keys.c.certificate)
                .where(kiosk_signing_keys.c.municipality_code == bindparam("code"),
                       kiosk_signing_keys.c.not_before <= bindparam("now"),
                       kiosk_signing_keys.c.not_after > bindparam("now"))
                .order_by(kiosk_signing_keys.c.id.desc()).limit(1))


def _signer(ctx: Context, conn: Connection, code: str, now: datetime) -> signing.DocumentSigner:
    row = conn.execute(_CURRENT_KEY, {"code": code, "now": now}).first()
    if row is None:
        raise Conflict(f"municipality {code} has no document-signing key: configure it first")
    # keyed by the certificate itself: a row id can come back in another database with another key
    cache_key = (str(ctx.db.url), hashlib.sha256(bytes(row.certificate)).hexdigest())
    with _SIGNERS_LOCK:
        cached = _SIGNERS.get(cache_key)
    if cached is not None:
        return cached
    full = conn.execute(select(kiosk_signing_keys, kiosk_signing_authorities.c.certificate.label("ca")).join(
        kiosk_signing_authorities).where(kiosk_signing_keys.c.id == row.id)).one()
    key = _load_key(_sealer(ctx).open(full.sealed_key, b"kiosk_signing_keys:" + code.encode()))
    made = signing.DocumentSigner(key, x509.load_der_x509_certificate(full.certificate),
                                  [x509.load_der_x509_certificate(full.ca)])
    if made.certificate.public_key().public_numbers() != key.public_key().public_numbers():
        raise Conflict(f"the signing key of {code} does not match its certificate")
    with _SIGNERS_LOCK:
        _SIGNERS[cache_key] = made
    return made


def trust_roots_der(ctx: Context) -> list[bytes]:
    """The document-signing roots a verifier trusts (public)."""
    with ctx.db.connect() as conn:
        return [bytes(r) for r in conn.execute(select(kiosk_signing_authorities.c.certificate)).scalars()]


# --- what the centre asks: menu, prepare, confirm, void -----------------------------------------------------

@dataclass(frozen=True)
class MenuItem:
    kind: DocumentKind
    fee_yen: int
    issuing_municipality: str
    refusal: RefusalReason | None
    """Why it cannot be issued now (shown greyed out), or None."""


@dataclass(frozen=True)
class HouseholdMember:
    resident_id: int
    name: str
    relationship: str
    selectable: bool


@dataclass(frozen=True)
class Menu:
    """What the kiosk screen offers the authenticated holder."""

    holder_name: str
    home_municipality: str
    home_municipality_name: str
    items: tuple[MenuItem, ...]
    household: tuple[HouseholdMember, ...]
    family_register_municipality: str | None
    family_register_usable: bool

    def item(self, kind: DocumentKind) -> MenuItem | None:
        return next((i for i in self.items if i.kind is kind), None)

    def to_dict(self) -> dict[str, Any]:
        return {"holder_name": self.holder_name, "home_municipality": self.home_municipality,
                "home_municipality_name": self.home_municipality_name,
                "items": [{"kind": i.kind.value, "label_ja": i.kind.label_ja, "label_en": i.kind.label_en,
                           "fee_yen": i.fee_yen, "issuing_municipality": i.issuing_municipality,
                           "refusal": i.refusal.value if i.refusal else None,
                           "refusal_ja": i.refusal.message_ja if i.refusal else None,
                           "refusal_en": i.refusal.message_en if i.refusal else None} for i in self.items],
                "household": [{"resident_id": m.resident_id, "name": m.name, "relationship": m.relationship,
                               "selectable": m.selectable} for m in self.household],
                "family_register_municipality": self.family_register_municipality,
                "family_register_usable": self.family_register_usable}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Menu:
        return cls(data["holder_name"], data["home_municipality"], data["home_municipality_name"],
                   tuple(MenuItem(DocumentKind(i["kind"]), int(i["fee_yen"]), i["issuing_municipality"],
                                  RefusalReason(i["refusal"]) if i["refusal"] else None) for i in data["items"]),
                   tuple(HouseholdMember(int(m["resident_id"]), m["name"], m["relationship"], bool(m["selectable"]))
                         for m in data["household"]),
                   data["family_register_municipality"], bool(data["family_register_usable"]))


@dataclass(frozen=True)
class DocumentOrder:
    """The centre's request to a municipality for one document."""

    request_id: str
    holder_resident_id: int
    issuing_municipality: str
    options: DocumentOptions
    verify_base_url: str


@dataclass(frozen=True)
class PreparedDocument:
    """A rendered, signed certificate and what the centre checks before releasing it."""

    document_id: str
    request_id: str
    municipality_code: str
    kind: DocumentKind
    state: DocumentState
    pdf: bytes = field(repr=False)
    pdf_sha256: str
    holder_ref: str
    holder_resident_id: int
    subject_resident_ids: tuple[int, ...]
    copies: int


@dataclass
class _Facts:
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


def _load_facts(conn: Connection, holder_id: int, today: date) -> _Facts:
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
    return _Facts(me, people, register, usable, domiciles, seal_reg, tax)


def _issuing_municipality(kind: DocumentKind, holder: Resident, facts: _Facts) -> str:
    if kind.from_family_register and facts.register is not None:
        return facts.register.municipality_code
    return holder.municipality_code


def _check(kind: DocumentKind, options: DocumentOptions, facts: _Facts, settings: MunicipalSettings | None,
           conn: Connection, now: datetime,
           closures: dict[str, tuple[bool, set[DocumentKind]]] | None = None) -> list[PersonRecord]:
    """The document's checks; ``closures`` memoises :func:`closed_days` by municipality within one call."""
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


def menu(ctx: Context, principal: Principal, holder_id: int, now: datetime) -> Menu:
    """The documents the holder may get now, with fees; raises :class:`Refused` if the holder may get none
    (under 15, moved out, support measure, deceased, the home municipality closed or not taking part)."""
    principal.require(*_CENTRE)
    today = local_date(now)
    _towns(ctx)
    with ctx.db.connect() as conn:
        facts = _load_facts(conn, holder_id, today)
        holder = facts.holder.resident
        check_holder(facts.holder, now)
        home, closed = settings_and_closures(ctx, conn, holder.municipality_code, today)
        if home is None or not home.participating:
            raise Refused(RefusalReason.NOT_PARTICIPATING)
        closures = {home.code: closed}
        if closures[home.code][0]:
            raise Refused(RefusalReason.MAINTENANCE)
        items = []
        others: dict[str, MunicipalSettings | None] = {}
        for kind in DocumentKind:
            code = _issuing_municipality(kind, holder, facts)
            settings: MunicipalSettings | None
            if code == home.code:
                settings = home
            else:
                if code not in others:
                    others[code] = settings_of(ctx, code, conn)
                settings = others[code]
            offering = settings.offerings.get(kind) if settings is not None else None
            if offering is None:
                continue
            refusal = None
            try:
                _check(kind, DocumentOptions(kind), facts, settings, conn, now, closures)
            except Refused as exc:
                refusal = exc.reason
            items.append(MenuItem(kind, offering.fee_yen, code, refusal))
        household = tuple(HouseholdMember(
            p.id, f"{p.resident.facts.family_name}　{p.resident.facts.given_name}", p.resident.relationship,
            p.resident.status is ResidentStatus.ACTIVE and not p.support_measure) for p in facts.household)
    return Menu(holder.facts.name, home.code, home.full_name, tuple(items), household,
                facts.register.municipality_code if facts.register else None, facts.register_usable)


def _expired(deadline: float | None) -> bool:
    return deadline is not None and monotonic_time.monotonic() > deadline


def _document(row: Any, sealer: Sealer) -> PreparedDocument:
    pdf_bytes = sealer.open(row.sealed_pdf, b"kiosk_documents.pdf:" + row.document_id.encode())
    return PreparedDocument(row.document_id, row.request_id, row.municipality_code, DocumentKind(row.kind),
                            DocumentState(row.state), pdf_bytes, row.pdf_sha256, row.holder_ref,
                            row.holder_resident_id, tuple(json.loads(row.subject_resident_ids)), row.copies)


_DOCUMENT_OF_REQUEST = select(kiosk_documents).where(kiosk_documents.c.request_id == bindparam("request_id"))


def _existing(conn: Connection, request_id: str) -> Any:
    return conn.execute(_DOCUMENT_OF_REQUEST, {"request_id": request_id}).first()


def prepare(ctx: Context, principal: Principal, order: DocumentOrder, now: datetime, *,
            deadline: float | None = None) -> PreparedDocument:
    """Build, render and sign the document for one request (PREPARED: not valid until :func:`confirm`).

    Idempotent by request ID: a retry returns the document already made. ``deadline`` (``time.monotonic()``)
    is checked before the work and before the document is recorded; past it nothing is recorded and
    :class:`Refused` (TIMEOUT) is raised.
    """
    principal.require(*_CENTRE)
    request_id = RequestId(order.request_id)
    sealer = _sealer(ctx)
    today = local_date(now)
    _towns(ctx)
    with ctx.db.connect() as conn:
        existing = _existing(conn, request_id)
        if existing is not None:
            if existing.state == DocumentState.VOID.value or existing.holder_resident_id != order.holder_resident_id:
                raise Refused(RefusalReason.ABORTED)
            return _document(existing, sealer)
        if _expired(deadline):
            raise Refused(RefusalReason.TIMEOUT)
        facts = _load_facts(conn, order.holder_resident_id, today)
        holder = facts.holder.resident
        kind = order.options.kind
        code = _issuing_municipality(kind, holder, facts)
        if code != order.issuing_municipality:
            raise Refused(RefusalReason.NOT_OFFERED, "routed to the wrong municipality")
        settings, closed = settings_and_closures(ctx, conn, code, today)
        subjects = _check(kind, order.options, facts, settings, conn, now, {code: closed})
        assert settings is not None
        history: dict[int, list[AddressEntry]] = {}
        if kind is DocumentKind.FAMILY_REGISTER_ATTACHMENT and facts.register is not None:
            ids = [m.resident_id for m in facts.register.members if m.resident_id is not None]
            for h in conn.execute(select(kiosk_address_history).where(
                    kiosk_address_history.c.resident_id.in_(ids)).order_by(kiosk_address_history.c.since,
                                                                         kiosk_address_history.c.id)):
                history.setdefault(h.resident_id, []).append(AddressEntry(h.resident_id, h.address, h.since))
            for rid, current in registry.get_residents(conn, ids).items():
                entries = history.setdefault(rid, [])
                if not entries or entries[-1].address != current.facts.address:
                    entries.append(AddressEntry(rid, current.facts.address, entries[-1].since if entries else today))
        signer = _signer(ctx, conn, code, now)
    numbers: dict[int, str] = {}
    if order.options.include_individual_number:
        for p in subjects:
            numbers[p.id] = registry.individual_number_of(
                ctx, server_principal(code), p.id, f"コンビニ交付 住民票の写し（本人の請求） {request_id}", now)
    content = _content(kind, settings, today, order.options, facts, subjects, numbers, history)
    document_id = DocumentId.new()
    verify_url = f"{order.verify_base_url.rstrip('/')}/kiosk/verify/{document_id}"
    ref = holder_ref(sealer, holder.resident_code)
    impression = seal.on_paper_jpeg(facts.seal.impression_png) if (
        kind is DocumentKind.SEAL_REGISTRATION and facts.seal) else None
    with _RENDER_SLOTS:
        if _expired(deadline):
            raise Refused(RefusalReason.TIMEOUT)
        unsigned = pdf.render(content, document_id=document_id, request_id=request_id, holder_ref=ref,
                              verify_url=verify_url, seal_jpeg=_seal_jpeg(settings.name),
                              signature=signing.SignatureSlot("証明書の交付（コンビニ交付）", settings.full_name, now),
                              impression_jpeg=impression)
        signed = signer.sign(unsigned)
    if _expired(deadline):
        raise Refused(RefusalReason.TIMEOUT)
    digest = hashlib.sha256(signed).hexdigest()
    content_json = json.dumps(content.to_dict(reveal=True), ensure_ascii=False, sort_keys=True).encode()
    row = {
        "document_id": document_id, "request_id": request_id, "municipality_code": code, "kind": kind.value,
        "state": DocumentState.PREPARED.value, "holder_resident_id": holder.id,
        "subject_resident_ids": json.dumps([p.id for p in subjects]), "holder_ref": ref,
        "copies": order.options.copies,
        "sealed_content": sealer.seal(content_json, b"kiosk_documents.content:" + document_id.encode()),
        "content_digest": content.public_digest(),
        "sealed_pdf": sealer.seal(signed, b"kiosk_documents.pdf:" + document_id.encode()),
        "pdf_sha256": digest, "prepared_at": now, "verifiable_until": now + VERIFIABLE_FOR,
    }
    with ctx.transaction() as tx:
        if tx.conn.execute(_NEW_DOCUMENT[tx.conn.dialect.name], row).first() is None:
            # a concurrent retry recorded its document first
            winner = _existing(tx.conn, request_id)
            if winner is None or winner.state == DocumentState.VOID.value:
                raise Refused(RefusalReason.ABORTED)
            return _document(winner, sealer)
        audit.append(tx.conn, _stream(code, request_id), "document_prepared", principal.subject, now,
                     request_id=request_id,
                     details={"document_id": document_id, "kind": kind.value, "holder_resident_id": holder.id,
                              "subject_resident_ids": [p.id for p in subjects], "copies": order.options.copies,
                              "pdf_sha256": digest, "content_digest": content.public_digest(),
                              "individual_number_shown": bool(numbers)})
    return PreparedDocument(document_id, request_id, code, kind, DocumentState.PREPARED, signed, digest, ref,
                            holder.id, tuple(p.id for p in subjects), order.options.copies)


_NEW_DOCUMENT = {name: make(kiosk_documents).on_conflict_do_nothing(index_elements=["request_id"])
                 .returning(kiosk_documents.c.document_id)
                 for name, make in (("postgresql", pg_insert), ("sqlite", sqlite_insert))}
"""Built once, its values given as parameters (SQLAlchemy then compiles it once)."""


def _seal_jpeg(name: str) -> bytes:
    return _SEAL_JPEGS.get(name) or _SEAL_JPEGS.setdefault(name, seal.on_paper_jpeg(seal.municipal_seal_png(name)))


_SEAL_JPEGS: dict[str, bytes] = {}


def _content(kind: DocumentKind, settings: MunicipalSettings, today: date, options: DocumentOptions,
             facts: _Facts, subjects: Sequence[PersonRecord], numbers: dict[int, str],
             history: dict[int, list[AddressEntry]]) -> DocumentContent:
    issuer = settings.issuer
    holder = facts.holder.resident
    if kind is DocumentKind.RESIDENT_RECORD:
        head = next((p.resident for p in facts.household if p.resident.relationship == "世帯主"), None)
        active = [p for p in facts.household if p.resident.status is ResidentStatus.ACTIVE]
        return documents.resident_record(issuer, today, options, [p.resident for p in subjects], head,
                                         facts.domiciles, numbers, len(active))
    if kind is DocumentKind.RESIDENT_RECORD_ENTRY:
        return documents.resident_record_entry(issuer, today, holder)
    if kind is DocumentKind.SEAL_REGISTRATION:
        assert facts.seal is not None
        return documents.seal_registration(issuer, today, holder, facts.seal)
    if kind is DocumentKind.INCOME_TAX:
        assert facts.tax is not None
        return documents.income_tax(issuer, today, holder, facts.tax)
    assert facts.register is not None
    if kind is DocumentKind.FAMILY_REGISTER_ALL:
        return documents.family_register_all(issuer, today, facts.register)
    if kind is DocumentKind.FAMILY_REGISTER_INDIVIDUAL:
        return documents.family_register_individual(issuer, today, facts.register, holder.id)
    return documents.family_register_attachment(issuer, today, facts.register, history)


_DOCUMENT_MOVE = update(kiosk_documents).where(
    kiosk_documents.c.document_id == bindparam("where_document_id"),
    kiosk_documents.c.request_id == bindparam("where_request_id"),
    kiosk_documents.c.state == bindparam("where_state")).returning(kiosk_documents.c.municipality_code)
"""A document's usual step; the SET clause is the parameters' keys that name columns."""


def _move(ctx: Context, principal: Principal, document_id: str, request_id: str, now: datetime,
          allowed: set[DocumentState], target: DocumentState, action: str, *,
          details: dict[str, Any] | None = None, column: str | None = None) -> DocumentState:
    principal.require(*_CENTRE)
    values: dict[str, Any] = {"state": target.value}
    if column:
        values[column] = now
    if details and "reason" in details:
        values["void_reason"] = str(details["reason"])[:40]
    with ctx.transaction() as tx:
        if len(allowed) == 1:
            # the usual step (prepared → issued, issued → printed) in one statement; anything else (a retry,
            # a wrong state, an unknown document) is sorted out below
            (source,) = allowed
            moved = tx.conn.execute(_DOCUMENT_MOVE, {"where_document_id": document_id,
                                                     "where_request_id": request_id, "where_state": source.value,
                                                     **values}).first()
            if moved is not None:
                audit.append(tx.conn, _stream(moved.municipality_code, request_id), action, principal.subject, now,
                             request_id=request_id,
                             details={"document_id": document_id, "from": source.value, "to": target.value,
                                      **(details or {})})
                return target
        query = select(kiosk_documents.c.state, kiosk_documents.c.municipality_code).where(
            kiosk_documents.c.document_id == document_id, kiosk_documents.c.request_id == request_id)
        if tx.conn.dialect.name == "postgresql":
            query = query.with_for_update()
        row = tx.conn.execute(query).first()
        if row is None:
            raise NotFound("no such document for this request")
        state = DocumentState(row.state)
        if state is target:
            return state
        if state not in allowed:
            raise Conflict(f"a {state.value} document cannot become {target.value}")
        tx.conn.execute(update(kiosk_documents).where(kiosk_documents.c.document_id == document_id).values(**values))
        audit.append(tx.conn, _stream(row.municipality_code, request_id), action, principal.subject, now,
                     request_id=request_id,
                     details={"document_id": document_id, "from": state.value, "to": target.value,
                              **(details or {})})
    return target


def confirm(ctx: Context, principal: Principal, document_id: str, request_id: str, now: datetime) -> None:
    """The centre released the document to the kiosk: from now on it is valid."""
    _move(ctx, principal, document_id, request_id, now, {DocumentState.PREPARED}, DocumentState.ISSUED,
          "document_issued", column="issued_at")


def mark_printed(ctx: Context, principal: Principal, document_id: str, request_id: str, now: datetime) -> None:
    _move(ctx, principal, document_id, request_id, now, {DocumentState.ISSUED}, DocumentState.PRINTED,
          "document_printed", column="printed_at")


def void(ctx: Context, principal: Principal, document_id: str, request_id: str, reason: str,
         now: datetime) -> None:
    """The request was aborted: the document is never valid (the verification page says so)."""
    _move(ctx, principal, document_id, request_id, now,
          {DocumentState.PREPARED, DocumentState.ISSUED, DocumentState.PRINTED}, DocumentState.VOID,
          "document_voided", details={"reason": reason}, column="voided_at")


def fetch(ctx: Context, principal: Principal, document_id: str, request_id: str) -> PreparedDocument:
    """A document already made for this request (for a retried release)."""
    principal.require(*_CENTRE)
    with ctx.db.connect() as conn:
        row = conn.execute(select(kiosk_documents).where(kiosk_documents.c.document_id == document_id,
                                                         kiosk_documents.c.request_id == request_id)).first()
    if row is None:
        raise NotFound("no such document for this request")
    return _document(row, _sealer(ctx))


# --- public verification ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class VerificationView:
    """What anyone holding a certificate (paper or PDF) sees on the verification page."""

    document_id: str
    state: DocumentState
    title: str
    municipality_name: str
    issued_at: datetime | None
    prepared_at: datetime
    content: DocumentContent | None
    """None once the verification period is over (the content is no longer shown)."""
    request_id: str
    pdf_sha256: str
    content_digest: str
    verifiable_until: datetime
    copies: int

    @property
    def valid(self) -> bool:
        return self.state.valid

    @property
    def expired(self) -> bool:
        return self.content is None


def verification(ctx: Context, document_id: str, now: datetime) -> VerificationView:
    """The verification page's view of a certificate: its state and original content (the individual
    number masked). Unknown IDs and IDs that are not well formed are both :class:`NotFound`."""
    try:
        DocumentId(document_id)
    except InvalidInput:
        raise NotFound("no such certificate") from None
    with ctx.db.connect() as conn:
        row = conn.execute(select(kiosk_documents).where(kiosk_documents.c.document_id == document_id)).first()
    if row is None:
        raise NotFound("no such certificate")
    content = None
    if now <= row.verifiable_until:
        raw = _sealer(ctx).open(row.sealed_content, b"kiosk_documents.content:" + document_id.encode())
        content = DocumentContent.from_dict(json.loads(raw))
    title = DocumentKind(row.kind).label_ja if content is None else content.title
    town = _town(ctx, row.municipality_code)
    return VerificationView(document_id, DocumentState(row.state), title, town.full_name, row.issued_at,
                            row.prepared_at, content, row.request_id, row.pdf_sha256, row.content_digest,
                            row.verifiable_until, row.copies)


# --- synthetic records for the demo, the simulation and the tests -------------------------------------------

_EVENTS_BIRTH = "【出生日】{d}　【出生地】{place}"
_EVENTS_MARRIAGE = "【婚姻日】{d}　【配偶者氏名】{spouse}"


def seed_records(ctx: Context, principal: Principal, code: str, now: datetime, *, seed: int = 2016,
                 seal_share: float = 0.6, support_share: float = 0.005) -> dict[str, int]:
    """Plausible municipal records for the municipality's active residents: one family register per
    household (本籍 in the town, head = 筆頭者), seal registrations for about ``seal_share`` of adults, this and
    last year's tax records for adults, support measures for a few, and the address history. Idempotent:
    residents who already have a register are skipped.

    DEMONSTRATION ONLY: these records are invented for real residents, so a database that is not a demo
    installation (:mod:`mynacard.installation`) refuses (:class:`~mynacard.kiosk.demo_guard.DemoOnly`)."""
    _require_scope(principal, code)
    require_demo(ctx, "seeding synthetic municipal records (family registers, seals, tax records)")
    rng = random.Random(f"{seed}:{code}:records")
    today = local_date(now)
    fy = fiscal_year_available(today)
    town = _town(ctx, code)
    counts = {"registers": 0, "seals": 0, "tax_records": 0, "support_measures": 0}
    seal_rows: list[dict[str, Any]] = []
    address_rows: list[dict[str, Any]] = []
    tax_rows: list[dict[str, Any]] = []
    with ctx.transaction() as tx:
        conn = tx.conn
        residents_all = list(registry.get_residents(conn, registry.resident_ids_in(conn, code)).values())
        linked = set(conn.execute(select(kiosk_family_register_members.c.resident_id).where(
            kiosk_family_register_members.c.resident_id.in_([r.id for r in residents_all]))).scalars()) \
            if residents_all else set()
        households: dict[int | None, list[Resident]] = {}
        for r in residents_all:
            if r.status is ResidentStatus.ACTIVE and r.id not in linked:
                households.setdefault(r.household_id if r.household_id is not None else -r.id, []).append(r)
        seal_count = conn.execute(select(func.count()).select_from(kiosk_seal_registrations).where(
            kiosk_seal_registrations.c.municipality_code == code)).scalar_one()
        for members in households.values():
            members.sort(key=lambda r: (r.relationship != "世帯主", r.relationship not in ("妻", "夫"), r.id))
            head = members[0]
            domicile = head.facts.address.split("丁目")[0] + "丁目" if "丁目" in head.facts.address \
                else head.facts.address
            head_name = f"{head.facts.family_name}　{head.facts.given_name}"
            register_id = conn.execute(insert(kiosk_family_registers).values(
                municipality_code=code, domicile=domicile, head_name=head_name,
                pending_filing=False, updated_at=now).returning(kiosk_family_registers.c.id)).scalar_one()
            entries = []
            spouse = next((m for m in members if m.relationship in ("妻", "夫")), None)
            children = 0
            for pos, m in enumerate(members, 1):
                events = [_EVENTS_BIRTH.format(d=documents.wareki(m.facts.birth_date), place=town.full_name)]
                if m.relationship == "世帯主":
                    relationship = "長男" if m.facts.sex.value == "1" else "長女"
                    if spouse is not None:
                        married = min(today, add_years(max(m.facts.birth_date, spouse.facts.birth_date), 28))
                        events.append(_EVENTS_MARRIAGE.format(
                            d=documents.wareki(married),
                            spouse=f"{spouse.facts.family_name}　{spouse.facts.given_name}"))
                elif m.relationship in ("妻", "夫"):
                    relationship = m.relationship
                    events.append(_EVENTS_MARRIAGE.format(d="（省略）", spouse=f"{head.facts.family_name}　"
                                                                               f"{head.facts.given_name}"))
                else:
                    children += 1
                    relationship = ("長" if children == 1 else "二" if children == 2 else "三") + (
                        "男" if m.facts.sex.value == "1" else "女")
                father = mother = None
                if m.relationship == "子":
                    parents = [head, spouse] if spouse else [head]
                    father = next((f"{p.facts.given_name}" for p in parents if p.facts.sex.value == "1"), None)
                    mother = next((f"{p.facts.given_name}" for p in parents if p.facts.sex.value == "2"), None)
                entries.append({"register_id": register_id, "resident_id": m.id, "position": pos,
                                "family_name": m.facts.family_name, "given_name": m.facts.given_name,
                                "birth_date": m.facts.birth_date, "sex": m.facts.sex.value,
                                "relationship": relationship, "father": father, "mother": mother,
                                "events": json.dumps(events, ensure_ascii=False), "removed": False})
                address_rows.append({"resident_id": m.id, "address": m.facts.address, "since": min(
                    today, m.facts.birth_date + timedelta(days=1)) if m.relationship == "子"
                    else today - timedelta(days=rng.randint(200, 4000))})
                adult = m.age_on(today) >= 18
                if adult and rng.random() < seal_share:
                    seal_count += 1
                    number = f"{code[:5]}{seal_count:07d}"
                    seal_rows.append({"resident_id": m.id, "municipality_code": code,
                                        "registration_number": number,
                                        "impression": seal.resident_seal_png(m.facts.family_name),
                                        "registered_on": today - timedelta(days=rng.randint(30, 3000))})
                if adult:
                    for year in (fy, fy - 1):
                        income = rng.choice([0, 0, 1_200_000, 2_400_000, 3_600_000, 5_000_000, 8_000_000])
                        deductions = 430_000 + rng.randint(0, 800_000)
                        taxable = max(0, income - deductions)
                        tax_rows.append({
                            "resident_id": m.id, "fiscal_year": year, "municipality_code": code,
                            "total_income": income, "employment_income": income, "deductions": deductions,
                            "taxable_income": taxable, "municipal_tax": taxable * 6 // 100,
                            "prefectural_tax": taxable * 4 // 100, "recorded_at": now})
                        counts["tax_records"] += 1
                if rng.random() < support_share:
                    conn.execute(insert(kiosk_support_measures).values(
                        resident_id=m.id, municipality_code=code, starts_on=today - timedelta(days=30), ends_on=None,
                        recorded_at=now))
                    counts["support_measures"] += 1
            bulk_insert(conn, kiosk_family_register_members, entries)
            counts["registers"] += 1
        bulk_insert(conn, kiosk_seal_registrations, seal_rows)
        bulk_insert(conn, kiosk_address_history, address_rows)
        bulk_insert(conn, kiosk_tax_records, tax_rows)
        counts["seals"] = len(seal_rows)
        audit.append(conn, _stream(code), "records_seeded", principal.subject, now, details=counts)
    return counts

