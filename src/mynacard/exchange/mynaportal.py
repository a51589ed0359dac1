"""What Mynaportal asks of the network on a resident's behalf: their exchange records, their own
information (自己情報), their notices, and one-stop applications delivered to agencies."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update

from mynacard.context import Context, Transaction
from mynacard.errors import InvalidInput, NotFound
from mynacard.exchange import hub as hubmod
from mynacard.exchange import keys as keyring
from mynacard.exchange.access import acting_resident
from mynacard.exchange.agencies import open_network
from mynacard.exchange.envelope import EnvelopeError
from mynacard.exchange.hub import Delivery, Network, SelfInformationPart, new_message_id
from mynacard.exchange.model import PORTAL_AGENCY_ID, Agency, ExchangeKind, ExchangeStatus, LinkStatus, log_cutoff
from mynacard.exchange.store import store_for
from mynacard.exchange.tables import exchange_agencies, exchange_links, exchange_log
from mynacard.principal import Principal

__all__ = ["NoticeView", "RecordView", "deliver_applications", "held_by", "mark_notice_read", "notices_for",
           "records_about", "request_self_information"]


@dataclass(frozen=True)
class RecordView:
    """One 情報提供等記録 as the person reads it in Mynaportal."""

    seq: int
    kind: ExchangeKind
    at: datetime
    requester: str
    requester_name: str
    provider: str | None
    provider_name: str | None
    procedure: str | None
    item: str | None
    status: ExchangeStatus
    basis: str | None
    """The permitted-exchange row that allowed it, or why it was refused."""


def records_about(ctx: Context, principal: Principal, now: datetime, limit: int = 50,
                  offset: int = 0) -> tuple[list[RecordView], int]:
    """The caller's own exchange records of the last seven years, newest first, and how many there are."""
    resident_id = acting_resident(principal)
    with open_network(ctx, now) as net:
        code = net.portal_code(resident_id)
    cutoff = log_cutoff(now)
    where = (exchange_log.c.subject_code == code, exchange_log.c.completed_at >= cutoff)
    with ctx.db.connect() as conn:
        total = conn.execute(select(func.count()).select_from(exchange_log).where(*where)).scalar_one()
        rows = conn.execute(select(exchange_log).where(*where).order_by(exchange_log.c.seq.desc())
                            .limit(max(1, min(limit, 1000))).offset(max(0, offset))).all()
        names = {r.id: r.name for r in conn.execute(select(exchange_agencies.c.id, exchange_agencies.c.name))}
    return [RecordView(r.seq, ExchangeKind(r.kind), r.completed_at, r.requester,
                       names.get(r.requester, r.requester), r.provider,
                       names.get(r.provider, r.provider) if r.provider else None, r.procedure, r.item,
                       ExchangeStatus(r.status), r.reason) for r in rows], int(total)


def request_self_information(ctx: Context, principal: Principal, now: datetime,
                             message_id: str | None = None) -> list[SelfInformationPart]:
    """自己情報: every agency holding the caller answers with the caller's records (each answer is logged)."""
    resident_id = acting_resident(principal)
    mid = hubmod.check_message_id(message_id or new_message_id("j"))
    with open_network(ctx, now) as net:
        try:
            return net.self_information(resident_id, mid)
        except EnvelopeError as exc:
            raise InvalidInput(f"exchange failed: {exc}") from None


@dataclass(frozen=True)
class NoticeView:
    """A notice in the person's Mynaportal."""

    id: int
    sender: str
    sender_name: str
    title: str
    body: str
    about: dict[str, Any] | None
    received_at: datetime
    read_at: datetime | None


def notices_for(ctx: Context, principal: Principal, now: datetime, limit: int = 200) -> list[NoticeView]:
    """The caller's notices, newest first."""
    resident_id = acting_resident(principal)
    with open_network(ctx, now) as net:
        code = net.portal_code(resident_id)
    box = store_for(PORTAL_AGENCY_ID, ctx.db.engine.dialect.name).inbox
    with ctx.db.connect() as conn:
        rows = conn.execute(select(box).where(box.c.code == code, box.c.kind == "notice")
                            .order_by(box.c.id.desc()).limit(max(1, min(limit, 1000)))).all()
        names = {r.id: r.name for r in conn.execute(select(exchange_agencies.c.id, exchange_agencies.c.name))}
    out = []
    for r in rows:
        payload = json.loads(r.payload)
        out.append(NoticeView(r.id, r.sender, names.get(r.sender, r.sender), payload.get("title", ""),
                              payload.get("body", ""), payload.get("about"), r.received_at, r.read_at))
    return out


def mark_notice_read(ctx: Context, principal: Principal, notice_id: int, now: datetime) -> None:
    """Mark one of the caller's notices read (someone else's notice is simply not found)."""
    resident_id = acting_resident(principal)
    with open_network(ctx, now) as net:
        code = net.portal_code(resident_id)
        box = net.store(PORTAL_AGENCY_ID).inbox
        mine = (box.c.id == notice_id, box.c.code == code, box.c.kind == "notice")
        if net.conn.execute(select(box.c.id).where(*mine)).first() is None:
            raise NotFound("no such notice")
        net.conn.execute(update(box).where(*mine, box.c.read_at.is_(None))
                         .values(read_at=now, updated_at=now))


def deliver_applications(ctx: Context, tx: Transaction, principal: Principal,
                         deliveries: Sequence[tuple[str, str, dict[str, Any]]], applicant: dict[str, Any],
                         message_id: str, now: datetime) -> list[Delivery]:
    """Mynaportal delivers one application to each (agency, procedure, form) inside the portal's own
    transaction ``tx``, so that the application and its deliveries commit or roll back together.
    Call :func:`prepare` before opening ``tx``."""
    resident_id = acting_resident(principal)
    net = Network(ctx, tx, keyring.hub_keys(ctx, now), now)
    out = []
    for agency_id, procedure, form in deliveries:
        target = net.agency(agency_id)
        try:
            out.append(net.application(resident_id, hubmod.check_message_id(message_id), target, procedure,
                                       form, applicant))
        except EnvelopeError as exc:
            raise InvalidInput(f"delivery failed: {exc}") from None
    return out


def held_by(ctx: Context, principal: Principal, now: datetime) -> list[Agency]:
    """The agencies that hold an active code for the caller (where the caller's records are)."""
    resident_id = acting_resident(principal)
    with ctx.db.connect() as conn:
        ids = list(conn.execute(select(exchange_links.c.agency_id).where(
            exchange_links.c.resident_id == resident_id, exchange_links.c.status == LinkStatus.ACTIVE.value,
            exchange_links.c.agency_id != PORTAL_AGENCY_ID)).scalars())
        return hubmod.agencies_where(conn, exchange_agencies.c.id.in_(ids)) if ids else []
