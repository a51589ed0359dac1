"""Agencies on the network: the directory (names, kinds, public keys), registering an agency with its own
store, suspending it — and opening the network for a use case (:func:`prepare`, :func:`open_network`)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from weakref import WeakKeyDictionary

from sqlalchemy import insert, select, update

from mynacard.context import Context
from mynacard.db import Database
from mynacard.errors import Conflict, InvalidInput, NotFound
from mynacard.exchange import hub as hubmod
from mynacard.exchange import keys as keyring
from mynacard.exchange.access import ADMIN
from mynacard.exchange.hub import Network
from mynacard.exchange.model import PORTAL_AGENCY_ID, Agency, AgencyId, AgencyKind, AgencyStatus
from mynacard.exchange.store import store_for
from mynacard.exchange.tables import exchange_agencies
from mynacard.principal import Principal
from mynacard.registry import service as registry

__all__ = ["AgencyRegistration", "get_agency", "list_agencies", "open_network", "prepare", "register_agencies",
           "register_agency", "set_agency_status"]


@dataclass(frozen=True)
class AgencyRegistration:
    """An agency joining the network."""

    id: str
    name: str
    """Japanese name (e.g. 千代田区 税務課)."""
    name_en: str
    kind: str
    municipality_code: str | None = None
    """Required for municipal divisions, forbidden for national bodies; optional for health insurers
    (a municipality's National Health Insurance)."""


def register_agency(ctx: Context, principal: Principal, registration: AgencyRegistration,
                    now: datetime) -> Agency:
    """Register an agency: its directory entry with public keys, and its own store with its private keys
    (sealed). Registering the same agency again with the same facts returns it unchanged."""
    return register_agencies(ctx, principal, [registration], now)[0]


def register_agencies(ctx: Context, principal: Principal, registrations: Sequence[AgencyRegistration],
                      now: datetime) -> list[Agency]:
    """Register several agencies at once (a municipality's divisions joining together): all or none."""
    principal.require(*ADMIN)
    keyring.hub_keys(ctx, now)
    return _register(ctx, principal, registrations, now)


def _check_registration(ctx: Context, reg: AgencyRegistration, allow_portal: bool) -> list[str]:
    problems = []
    try:
        AgencyId(reg.id)
    except ValueError as exc:
        problems.append(str(exc))
    try:
        kind = AgencyKind(reg.kind)
    except ValueError:
        problems.append(f"unknown agency kind {reg.kind!r}")
        kind = AgencyKind.PORTAL
    if kind is AgencyKind.PORTAL and not allow_portal:
        problems.append("the portal kind is reserved for Mynaportal")
    for label, name in (("name", reg.name), ("name_en", reg.name_en)):
        if not isinstance(name, str) or not 1 <= len(name.strip()) <= 120:
            problems.append(f"{label} must have 1–120 characters")
    code = reg.municipality_code or None
    if kind.municipal and code is None:
        problems.append(f"a {kind.value} agency belongs to a municipality: give its code")
    if code is not None and not (kind.municipal or kind is AgencyKind.HEALTH_INSURER):
        problems.append(f"a {kind.value} agency is national: no municipality code")
    if code is not None:
        try:
            registry.get_municipality(ctx, code)
        except NotFound:
            problems.append(f"unknown municipality {code!r}")
    return [f"{reg.id}: {p}" for p in problems]


def _register(ctx: Context, principal: Principal, registrations: Sequence[AgencyRegistration], now: datetime,
              allow_portal: bool = False) -> list[Agency]:
    problems = [p for reg in registrations for p in _check_registration(ctx, reg, allow_portal)]
    ids = [reg.id for reg in registrations]
    if len(set(ids)) != len(ids):
        problems.append("the same agency appears twice in this batch")
    if problems:
        raise InvalidInput("agency not registered; nothing was changed", problems)
    out = []
    with ctx.transaction() as tx:
        conn = tx.conn
        for reg in registrations:
            agency_id, kind, code = AgencyId(reg.id), AgencyKind(reg.kind), reg.municipality_code or None
            row = conn.execute(select(exchange_agencies).where(exchange_agencies.c.id == agency_id)).first()
            if row is not None:
                existing = hubmod.agency_from_row(row)
                if (existing.name, existing.name_en, existing.kind, existing.municipality_code) != (
                        reg.name.strip(), reg.name_en.strip(), kind, code):
                    raise Conflict(f"agency {agency_id} is registered with other facts")
                out.append(existing)
                continue
            store = store_for(agency_id, conn.dialect.name)
            if store.exists(conn):
                raise Conflict(f"a store named {agency_id.store_name} already exists; remove it first")
            store.create(conn)
            keys = keyring.new_agency_keys(ctx, conn, store, 1, now)
            conn.execute(insert(exchange_agencies).values(
                id=agency_id, name=reg.name.strip(), name_en=reg.name_en.strip(), kind=kind.value,
                municipality_code=code, sign_public_key=keys.sign_public, enc_public_key=keys.enc_public,
                key_version=1, status=AgencyStatus.ACTIVE.value, registered_at=now,
                registered_by=principal.subject))
            tx.record("exchange.agency_registered", {"agency_id": agency_id, "kind": kind.value,
                                                     "municipality_code": code}, now)
            out.append(Agency(agency_id, reg.name.strip(), reg.name_en.strip(), kind, code, AgencyStatus.ACTIVE,
                              1, keys.sign_public, keys.enc_public))
    return out


def list_agencies(ctx: Context, kind: str | None = None,
                  municipality_code: str | None = None) -> list[Agency]:
    """The network's directory (names, kinds and public keys are public)."""
    conditions = []
    if kind:
        conditions.append(exchange_agencies.c.kind == kind)
    if municipality_code:
        conditions.append(exchange_agencies.c.municipality_code == municipality_code)
    with ctx.db.connect() as conn:
        return hubmod.agencies_where(conn, *conditions)


def get_agency(ctx: Context, agency_id: str) -> Agency:
    with ctx.db.connect() as conn:
        row = conn.execute(select(exchange_agencies).where(exchange_agencies.c.id == agency_id)).first()
    if row is None:
        raise NotFound(f"no agency {agency_id!r}")
    return hubmod.agency_from_row(row)


def set_agency_status(ctx: Context, principal: Principal, agency_id: str, status: str, reason: str,
                      now: datetime) -> Agency:
    """Suspend an agency (its messages are refused from then on) or reinstate it."""
    principal.require(*ADMIN)
    try:
        target = AgencyStatus(status)
    except ValueError:
        raise InvalidInput("status is 'active' or 'suspended'") from None
    if not reason.strip():
        raise InvalidInput("a reason is required")
    if agency_id == PORTAL_AGENCY_ID:
        raise InvalidInput("Mynaportal cannot be suspended from here")
    with ctx.transaction() as tx:
        done = tx.conn.execute(update(exchange_agencies).where(exchange_agencies.c.id == agency_id)
                               .values(status=target.value)).rowcount
        if not done:
            raise NotFound(f"no agency {agency_id!r}")
        tx.record("exchange.agency_status_changed", {"agency_id": agency_id, "status": target.value,
                                                     "reason": reason, "actor": principal.subject}, now)
    return get_agency(ctx, agency_id)


_ready: WeakKeyDictionary[Database, keyring.HubKeys] = WeakKeyDictionary()


def prepare(ctx: Context, now: datetime) -> keyring.HubKeys:
    """Make sure the hub's keys and Mynaportal's place on the network exist (call outside a transaction)."""
    ready = _ready.get(ctx.db)
    if ready is not None:
        return ready
    hub = keyring.hub_keys(ctx, now)
    with ctx.db.connect() as conn:
        present = conn.execute(select(exchange_agencies.c.id).where(
            exchange_agencies.c.id == PORTAL_AGENCY_ID)).first()
    if present is None:
        _register(ctx, Principal.system("hub"), [AgencyRegistration(
            PORTAL_AGENCY_ID, "マイナポータル (情報提供等記録開示システム)", "Mynaportal",
            AgencyKind.PORTAL.value)], now, allow_portal=True)
    _ready[ctx.db] = hub
    return hub


@contextmanager
def open_network(ctx: Context, now: datetime) -> Iterator[Network]:
    """The network of ``ctx`` at ``now`` inside a new transaction (after :func:`prepare`)."""
    hub = prepare(ctx, now)
    with ctx.transaction() as tx:
        yield Network(ctx, tx, hub, now)
