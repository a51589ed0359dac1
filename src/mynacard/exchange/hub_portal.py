"""Mynaportal's traffic through the hub: own information (自己情報提供) from every agency holding the
person, notices (お知らせ) from agencies into the portal, and applications (電子申請) from the portal to
agencies' inboxes."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select

from mynacard.errors import Conflict, Forbidden, InvalidInput
from mynacard.exchange import keys as keyring
from mynacard.exchange.envelope import EnvelopeError
from mynacard.exchange.hub_codes import Codes
from mynacard.exchange.hub_log import LogAppend
from mynacard.exchange.hub_wire import b64, check_message_id, insert_ignore, unb64
from mynacard.exchange.model import PORTAL_AGENCY_ID, Agency, AgencyKind, ExchangeKind, ExchangeStatus, LinkStatus
from mynacard.exchange.tables import exchange_links, exchange_reply_handles

__all__ = ["Delivery", "PortalTraffic", "SelfInformationPart"]


@dataclass(frozen=True)
class SelfInformationPart:
    """One agency's answer to a person's own-information request."""

    agency_id: str
    seq: int
    status: ExchangeStatus
    items: dict[str, dict[str, Any]]
    """item → {"data": …, "updated_at": …}."""


@dataclass(frozen=True)
class Delivery:
    """A notice or an application delivered through the hub."""

    message_id: str
    recipient: str
    seq: int
    inbox_id: int | None


class PortalTraffic(Codes, LogAppend):
    """The part of :class:`~mynacard.exchange.hub.Network` that carries Mynaportal's messages."""

    # --- own information (自己情報提供) for Mynaportal ------------------------------------------------------

    def self_information(self, resident_id: int, message_id: str) -> list[SelfInformationPart]:
        """Mynaportal asks every agency holding the person for the person's own records."""
        portal = self.agency(PORTAL_AGENCY_ID)
        code = self.portal_code(resident_id)
        envelope = self.send(portal.id, self.keys_of(portal), keyring.HUB_ID, {
            "type": "self_information", "message_id": message_id, "sent_at": self.now.isoformat(),
            "code": code})
        reply = self.party_open(portal, self.hub_handle_self_information(envelope), keyring.HUB_ID,
                                "self_information_reply").body
        parts = []
        for part in reply["parts"]:
            items: dict[str, dict[str, Any]] = {}
            if part.get("inner"):
                inner = self.party_open(portal, unb64(part["inner"]), part["agency"], "disclosure").body
                if inner.get("message_id") != message_id:
                    raise EnvelopeError("the disclosure does not answer this request")
                items = inner["items"]
            parts.append(SelfInformationPart(part["agency"], int(part["seq"]), ExchangeStatus(part["status"]),
                                             items))
        return parts

    def hub_handle_self_information(self, envelope: bytes) -> bytes:
        opened = self.hub_open(envelope, "self_information", PORTAL_AGENCY_ID)
        message_id = check_message_id(opened.body.get("message_id"))
        link = self.link_by_code(str(opened.body.get("code")))
        if link is None or link.agency_id != PORTAL_AGENCY_ID or link.status is not LinkStatus.ACTIVE:
            raise InvalidInput("unknown Mynaportal code")
        if self._logged(PORTAL_AGENCY_ID, message_id):
            raise Conflict(f"message ID {message_id!r} was already used")
        holders = self.conn.execute(select(exchange_links.c.agency_id, exchange_links.c.code).where(
            exchange_links.c.resident_id == link.resident_id,
            exchange_links.c.status == LinkStatus.ACTIVE.value,
            exchange_links.c.agency_id != PORTAL_AGENCY_ID).order_by(exchange_links.c.agency_id)).all()
        parts = []
        for agency_id, provider_code in holders:
            provider = self.agency(agency_id)
            if not provider.active:
                continue
            request = self.hub_send(provider.id, {"type": "disclose", "message_id": message_id,
                                                  "code": provider_code})
            answer = self.provider_disclose(provider, request)
            reply = self.hub_open(answer, "disclose_reply", provider.id).body
            status = ExchangeStatus(reply["status"])
            seq = self.append_log(ExchangeKind.SELF_INFORMATION, message_id, PORTAL_AGENCY_ID, provider.id,
                                  None, None, link.code, status, "自己情報提供")
            parts.append({"agency": provider.id, "seq": seq, "status": status.value,
                          "inner": reply.get("inner")})
        return self.hub_send(PORTAL_AGENCY_ID, {"type": "self_information_reply", "message_id": message_id,
                                                "parts": parts})

    def provider_disclose(self, provider: Agency, envelope: bytes) -> bytes:
        body = self.party_open(provider, envelope, keyring.HUB_ID, "disclose").body
        store = self.store(provider.id)
        local_ref = self.conn.execute(select(store.persons.c.local_ref).where(
            store.persons.c.code == body["code"],
            store.persons.c.link_status == LinkStatus.ACTIVE.value)).scalar()
        items: dict[str, dict[str, Any]] = {}
        if local_ref is not None:
            for r in self.conn.execute(select(store.records).where(store.records.c.local_ref == local_ref)
                                       .order_by(store.records.c.item)):
                items[r.item] = {"data": json.loads(r.data), "updated_at": r.updated_at.isoformat()}
        status = (ExchangeStatus.NOT_ENROLLED if local_ref is None
                  else ExchangeStatus.PROVIDED if items else ExchangeStatus.NO_RECORD)
        inner = self.send(provider.id, self.keys_of(provider), PORTAL_AGENCY_ID, {
            "type": "disclosure", "message_id": body["message_id"], "items": items})
        self._own_record(provider, body["message_id"], "provider", PORTAL_AGENCY_ID,
                         ExchangeKind.SELF_INFORMATION, None, None, local_ref, status, None)
        return self.send(provider.id, self.keys_of(provider), keyring.HUB_ID, {
            "type": "disclose_reply", "message_id": body["message_id"], "sent_at": self.now.isoformat(),
            "status": status.value, "inner": b64(inner)})

    # --- notices (お知らせ) ---------------------------------------------------------------------------------

    def notice(self, sender: Agency, message_id: str, title: str, body_text: str, *,
               local_ref: str | None = None, reply_handle: str | None = None,
               about: dict[str, Any] | None = None) -> Delivery:
        """An agency sends a notice to a person's Mynaportal, by its own code or an application's reply
        handle."""
        if not sender.active:
            raise Forbidden(f"agency {sender.id} is suspended")
        route: dict[str, Any] = {"reply_handle": reply_handle} if reply_handle else {
            "code": self._requester_code(sender, local_ref or "")}
        keys = self.keys_of(sender)
        inner = self.send(sender.id, keys, PORTAL_AGENCY_ID, {
            "type": "notice", "message_id": message_id, "title": title, "body": body_text, "about": about})
        envelope = self.send(sender.id, keys, keyring.HUB_ID, {
            "type": "notice", "message_id": message_id, "sent_at": self.now.isoformat(), **route,
            "inner": b64(inner)})
        answer = self.hub_handle_notice(envelope)
        reply = self.party_open(sender, answer, keyring.HUB_ID, "delivery_receipt").body
        self._own_record(sender, message_id, "sender", PORTAL_AGENCY_ID, ExchangeKind.NOTICE, None, None,
                         local_ref, ExchangeStatus(reply["status"]), int(reply["seq"]))
        return Delivery(message_id, PORTAL_AGENCY_ID, int(reply["seq"]), None)

    def hub_handle_notice(self, envelope: bytes) -> bytes:
        opened = self.hub_open(envelope, "notice")
        sender = self.agency(opened.sender)
        message_id = check_message_id(opened.body.get("message_id"))
        earlier = self._logged(sender.id, message_id)
        if earlier:
            return self.hub_send(sender.id, {"type": "delivery_receipt", "message_id": message_id,
                                             "seq": earlier[0].seq, "status": earlier[0].status})
        if opened.body.get("reply_handle"):
            handle = self.conn.execute(select(exchange_reply_handles).where(
                exchange_reply_handles.c.handle == opened.body["reply_handle"],
                exchange_reply_handles.c.agency_id == sender.id)).first()
            if handle is None:
                raise InvalidInput("unknown reply handle")
            subject = str(handle.subject_code)
        else:
            link = self.link_by_code(str(opened.body.get("code")))
            if link is None or link.agency_id != sender.id or link.status is not LinkStatus.ACTIVE:
                raise InvalidInput("the code is not an active code of the sender")
            subject = self.portal_code(link.resident_id)
        delivery = self.hub_send(PORTAL_AGENCY_ID, {"type": "notice_delivery", "message_id": message_id,
                                                    "sender": sender.id, "code": subject,
                                                    "inner": opened.body["inner"]})
        self.inbox_receive(self.agency(PORTAL_AGENCY_ID), delivery, "notice_delivery")
        seq = self.append_log(ExchangeKind.NOTICE, message_id, sender.id, PORTAL_AGENCY_ID, None, None,
                              subject, ExchangeStatus.DELIVERED, None)
        return self.hub_send(sender.id, {"type": "delivery_receipt", "message_id": message_id, "seq": seq,
                                         "status": ExchangeStatus.DELIVERED.value})

    def inbox_receive(self, recipient: Agency, envelope: bytes, expected_type: str) -> int:
        """A recipient's interface system opens a delivery and files it in its inbox; returns the inbox id."""
        outer = self.party_open(recipient, envelope, keyring.HUB_ID, expected_type).body
        sender = str(outer["sender"])
        kind = "notice" if expected_type == "notice_delivery" else "application"
        inner = self.party_open(recipient, unb64(outer["inner"]), sender, kind).body
        if inner.get("message_id") != outer["message_id"]:
            raise EnvelopeError("the inner message does not belong to this delivery")
        inbox = self.store(recipient.id).inbox
        local_ref = None
        if outer.get("code") and recipient.kind is not AgencyKind.PORTAL:
            persons = self.store(recipient.id).persons
            local_ref = self.conn.execute(select(persons.c.local_ref)
                                          .where(persons.c.code == outer["code"])).scalar()
        insert_ignore(self.conn, inbox, {
            "message_id": outer["message_id"], "sender": sender, "kind": kind, "code": outer.get("code"),
            "reply_handle": outer.get("reply_handle"), "local_ref": local_ref,
            "title": str(inner.get("title") or inner.get("procedure") or "")[:200],
            "payload": json.dumps(inner, ensure_ascii=False, sort_keys=True), "status": "received",
            "received_at": self.now, "updated_at": self.now})
        return int(self.conn.execute(select(inbox.c.id).where(
            inbox.c.sender == sender, inbox.c.message_id == outer["message_id"])).scalar_one())

    # --- applications (電子申請) from Mynaportal ------------------------------------------------------------

    def application(self, resident_id: int, message_id: str, target: Agency, procedure: str,
                    form: dict[str, Any], applicant: dict[str, Any]) -> Delivery:
        """Mynaportal delivers a person's application to one agency, end-to-end encrypted to it."""
        portal = self.agency(PORTAL_AGENCY_ID)
        keys = self.keys_of(portal)
        inner = self.send(portal.id, keys, target.id, {
            "type": "application", "message_id": message_id, "procedure": procedure, "form": form,
            "applicant": applicant, "title": procedure})
        envelope = self.send(portal.id, keys, keyring.HUB_ID, {
            "type": "application", "message_id": message_id, "sent_at": self.now.isoformat(),
            "code": self.portal_code(resident_id), "agency": target.id, "procedure": procedure,
            "inner": b64(inner)})
        reply = self.party_open(portal, self.hub_handle_application(envelope), keyring.HUB_ID,
                                "delivery_receipt").body
        return Delivery(message_id, target.id, int(reply["seq"]), reply.get("inbox_id"))

    def hub_handle_application(self, envelope: bytes) -> bytes:
        opened = self.hub_open(envelope, "application", PORTAL_AGENCY_ID)
        body = opened.body
        message_id = check_message_id(body.get("message_id"))
        link = self.link_by_code(str(body.get("code")))
        if link is None or link.agency_id != PORTAL_AGENCY_ID or link.status is not LinkStatus.ACTIVE:
            raise InvalidInput("unknown Mynaportal code")
        target = self.agency(str(body.get("agency")))
        if not target.active:
            raise Conflict(f"agency {target.id} does not accept applications now")
        earlier = [r for r in self._logged(PORTAL_AGENCY_ID, message_id) if r.provider == target.id]
        if earlier:
            return self.hub_send(PORTAL_AGENCY_ID, {"type": "delivery_receipt", "message_id": message_id,
                                                    "seq": earlier[0].seq, "inbox_id": None})
        target_link = self.live_link(target.id, resident_id=link.resident_id)
        handle = secrets.token_hex(16)
        self.conn.execute(insert(exchange_reply_handles).values(
            handle=handle, agency_id=target.id, subject_code=link.code, created_at=self.now))
        delivery = self.hub_send(target.id, {
            "type": "application_delivery", "message_id": message_id, "sender": PORTAL_AGENCY_ID,
            "code": target_link.code if target_link and target_link.status is LinkStatus.ACTIVE else None,
            "reply_handle": handle, "inner": body["inner"]})
        inbox_id = self.inbox_receive(target, delivery, "application_delivery")
        seq = self.append_log(ExchangeKind.APPLICATION, message_id, PORTAL_AGENCY_ID, target.id,
                              str(body.get("procedure")), None, link.code, ExchangeStatus.DELIVERED, None)
        return self.hub_send(PORTAL_AGENCY_ID, {"type": "delivery_receipt", "message_id": message_id,
                                                "seq": seq, "inbox_id": inbox_id})
