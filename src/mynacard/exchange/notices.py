"""Notices (お知らせ) an agency sends to a person's Mynaportal, and its inbox of applications (電子申請)
from there, whose every status change is told to the applicant as a notice."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update

from mynacard import numbers
from mynacard.context import Context
from mynacard.errors import Conflict, Forbidden, InvalidInput, NotFound
from mynacard.exchange import hub as hubmod
from mynacard.exchange.access import acting_for, check_local_ref
from mynacard.exchange.agencies import get_agency, open_network
from mynacard.exchange.hub import Delivery, new_message_id
from mynacard.exchange.model import AgencyKind
from mynacard.exchange.store import store_for
from mynacard.principal import Principal

__all__ = ["InboxItem", "NoticeInput", "inbox", "send_notice", "update_inbox_status"]


_INBOX_STATUSES = ("received", "in_progress", "accepted", "rejected", "completed")


@dataclass(frozen=True)
class NoticeInput:
    """お知らせ for one person: by the agency's own record, or by an application's reply handle."""

    title: str
    body: str
    local_ref: str | None = None
    reply_handle: str | None = None
    message_id: str | None = None
    about: dict[str, Any] | None = None


def _check_notice(notice: NoticeInput) -> None:
    problems = []
    if not isinstance(notice.title, str) or not 1 <= len(notice.title.strip()) <= 120:
        problems.append("a title has 1–120 characters")
    if not isinstance(notice.body, str) or not 1 <= len(notice.body.strip()) <= 4000:
        problems.append("a body has 1–4,000 characters")
    if (notice.local_ref is None) == (notice.reply_handle is None):
        problems.append("address the notice by local_ref or by reply_handle, not both")
    for text in (notice.title, notice.body):
        if isinstance(text, str) and any(numbers.is_valid_individual_number(m)
                                         for m in re.findall(r"(?<![0-9])[0-9]{12}(?![0-9])", text)):
            problems.append("a notice must not contain an individual number")
    if problems:
        raise InvalidInput("notice refused", problems)


def send_notice(ctx: Context, principal: Principal, agency_id: str, notice: NoticeInput,
                now: datetime) -> Delivery:
    """Push a notice to the person's Mynaportal through the hub (end-to-end encrypted to the portal)."""
    acting_for(principal, agency_id)
    _check_notice(notice)
    message_id = hubmod.check_message_id(notice.message_id or new_message_id("n"))
    with open_network(ctx, now) as net:
        sender = net.agency(agency_id)
        if sender.kind is AgencyKind.PORTAL:
            raise Forbidden("Mynaportal does not send notices to itself")
        return net.notice(sender, message_id, notice.title.strip(), notice.body.strip(),
                          local_ref=notice.local_ref and check_local_ref(notice.local_ref),
                          reply_handle=notice.reply_handle, about=notice.about)


@dataclass(frozen=True)
class InboxItem:
    """A delivery in an agency's inbox (an application from Mynaportal)."""

    id: int
    message_id: str
    sender: str
    kind: str
    local_ref: str | None
    linked: bool
    """Whether the hub could give the agency its own code for the applicant."""
    reply_handle: str | None
    title: str | None
    payload: dict[str, Any]
    status: str
    status_note: str | None
    received_at: datetime
    updated_at: datetime


def _inbox_item(r: Any) -> InboxItem:
    return InboxItem(r.id, r.message_id, r.sender, r.kind, r.local_ref, r.code is not None, r.reply_handle,
                     r.title, json.loads(r.payload), r.status, r.status_note, r.received_at, r.updated_at)


def inbox(ctx: Context, principal: Principal, agency_id: str, status: str | None = None,
          limit: int = 200) -> list[InboxItem]:
    """An agency's inbox, newest first."""
    acting_for(principal, agency_id)
    agency = get_agency(ctx, agency_id)
    box = store_for(agency.id, ctx.db.engine.dialect.name).inbox
    query = select(box).order_by(box.c.id.desc()).limit(max(1, min(limit, 1000)))
    if status:
        query = query.where(box.c.status == status)
    with ctx.db.connect() as conn:
        return [_inbox_item(r) for r in conn.execute(query)]


def update_inbox_status(ctx: Context, principal: Principal, agency_id: str, inbox_id: int, status: str,
                        note: str, now: datetime) -> InboxItem:
    """Move an application on (受付 → 審査中 → 決定) and tell the applicant in Mynaportal."""
    acting_for(principal, agency_id)
    if status not in _INBOX_STATUSES[1:]:
        raise InvalidInput(f"status is one of {', '.join(_INBOX_STATUSES[1:])}")
    if len(note) > 2000:
        raise InvalidInput("a note has at most 2,000 characters")
    with open_network(ctx, now) as net:
        agency = net.agency(agency_id)
        box = net.store(agency.id).inbox
        row = net.conn.execute(select(box).where(box.c.id == inbox_id)).first()
        if row is None or row.kind != "application":
            raise NotFound("no such application in the inbox")
        if row.status in ("accepted", "rejected", "completed") and row.status != status:
            raise Conflict(f"the application is already {row.status}")
        if row.status == status:
            return _inbox_item(row)
        net.conn.execute(update(box).where(box.c.id == inbox_id).values(
            status=status, status_note=note or None, updated_at=now))
        payload = json.loads(row.payload)
        title = _STATUS_TITLE[status].format(agency=agency.name)
        net.notice(agency, hubmod.new_message_id("s"), title, note or title, reply_handle=row.reply_handle,
                   about={"application": row.message_id, "procedure": payload.get("procedure"),
                          "status": status})
        row = net.conn.execute(select(box).where(box.c.id == inbox_id)).one()
    return _inbox_item(row)


_STATUS_TITLE = {
    "in_progress": "{agency}: 申請を審査しています",
    "accepted": "{agency}: 申請が受理されました",
    "rejected": "{agency}: 申請が受理されませんでした",
    "completed": "{agency}: 手続きが完了しました",
}
