"""Query and provide (情報照会・情報提供) through the hub: the requester's interface system asks, the hub
checks the permitted table and translates codes, the provider answers from its copies (副本) end to end
encrypted to the requester, and a retried message is answered again without a second log entry."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from mynacard.errors import Conflict, Forbidden, InvalidInput
from mynacard.exchange import keys as keyring
from mynacard.exchange.envelope import EnvelopeError
from mynacard.exchange.hub_codes import Codes
from mynacard.exchange.hub_log import LogAppend
from mynacard.exchange.hub_wire import b64, check_message_id, unb64
from mynacard.exchange.model import (
    PORTAL_AGENCY_ID,
    Agency,
    AgencyCode,
    AgencyId,
    ExchangeKind,
    ExchangeStatus,
    InfoItem,
    LinkStatus,
    Procedure,
    find_permission,
)

__all__ = ["Queries", "QueryOutcome"]



def _text(body: dict[str, Any], name: str) -> str:
    """A text field of a message body (a missing or non-text one is refused as malformed, like a bad value)."""
    value = body.get(name)
    if not isinstance(value, str):
        raise ValueError(f"{name} is missing or not text")
    return value


@dataclass(frozen=True)
class QueryOutcome:
    """What the requesting agency learns from one query."""

    message_id: str
    seq: int
    """The log entry of this exchange."""
    status: ExchangeStatus
    reason: str | None
    """The permitted-exchange row that allowed it, or why it was refused."""
    data: dict[str, Any] | None
    updated_at: str | None
    """When the provider last updated its copy of the item."""
    replayed: bool = False
    """True when this answers a retry of a message already logged."""


class Queries(Codes, LogAppend):
    """The part of :class:`~mynacard.exchange.hub.Network` that carries queries and provisions."""

    def query(self, requester: Agency, provider_id: str, procedure: str, item: str, local_ref: str,
              message_id: str) -> QueryOutcome:
        """The requester's interface system asks the hub; the hub relays to the provider and back."""
        if not requester.active:
            raise Forbidden(f"agency {requester.id} is suspended")
        code = self._requester_code(requester, local_ref)
        envelope = self.send(requester.id, self.keys_of(requester), keyring.HUB_ID, {
            "type": "query", "message_id": message_id, "sent_at": self.now.isoformat(),
            "provider": provider_id, "procedure": procedure, "item": item, "code": code})
        answer = self.hub_handle_query(envelope)
        reply = self.party_open(requester, answer, keyring.HUB_ID, "query_reply").body
        status = ExchangeStatus(reply["status"])
        data: dict[str, Any] | None = None
        updated_at: str | None = None
        if reply.get("inner"):
            inner = self.party_open(requester, unb64(reply["inner"]), provider_id, "provision").body
            if inner.get("message_id") != message_id or inner.get("item") != item:
                raise EnvelopeError("the provision does not answer this query")
            data, updated_at = inner.get("data"), inner.get("updated_at")
        self._own_record(requester, message_id, "requester", provider_id, ExchangeKind.QUERY, procedure, item,
                         local_ref, status, int(reply["seq"]))
        return QueryOutcome(message_id, int(reply["seq"]), status, reply.get("reason"), data, updated_at,
                            bool(reply.get("replayed")))

    def hub_handle_query(self, envelope: bytes) -> bytes:
        """Check the query against the permitted-exchange table, translate the code, relay, log, answer."""
        opened = self.hub_open(envelope, "query")
        requester = self.agency(opened.sender)
        body = opened.body
        message_id = check_message_id(body.get("message_id"))
        try:
            provider_id = AgencyId(_text(body, "provider"))
            procedure = Procedure(_text(body, "procedure"))
            item = InfoItem(_text(body, "item"))
            code = AgencyCode(_text(body, "code"))
        except ValueError as exc:
            raise InvalidInput(f"malformed query: {exc}") from None
        earlier = self._logged(requester.id, message_id)
        if earlier:
            return self._replay_query(requester, earlier[0], provider_id, procedure, item, code)
        link, person = self.links_around(code, [provider_id, PORTAL_AGENCY_ID])
        subject = None if link is None else self.portal_code(link.resident_id)
        provider = self.find_agency(provider_id)

        def answer(status: ExchangeStatus, reason: str | None, inner: str | None = None) -> bytes:
            seq = self.append_log(ExchangeKind.QUERY, message_id, requester.id, provider_id, procedure.value,
                                  item.value, subject, status, reason)
            return self.hub_send(requester.id, {"type": "query_reply", "message_id": message_id, "seq": seq,
                                                "status": status.value, "reason": reason, "inner": inner})

        if link is None or link.agency_id != requester.id or link.status is not LinkStatus.ACTIVE:
            return answer(ExchangeStatus.REFUSED, "unknown_code: not an active code of the requester")
        if provider is None or not provider.active:
            return answer(ExchangeStatus.REFUSED, "provider_unavailable: no such active agency")
        permission = find_permission(requester.kind, procedure, provider.kind, item)
        if permission is None:
            return answer(ExchangeStatus.REFUSED, "not_permitted: not in the permitted table (別表第二)")
        provider_link = person.get(provider.id)
        if provider_link is None or provider_link.status is not LinkStatus.ACTIVE:
            return answer(ExchangeStatus.NOT_ENROLLED, permission.row)
        status, inner = self._relay_to_provider(requester, provider, message_id, procedure, item,
                                                provider_link.code)
        return answer(status, permission.row, inner)

    def _relay_to_provider(self, requester: Agency, provider: Agency, message_id: str, procedure: Procedure,
                           item: InfoItem, provider_code: str) -> tuple[ExchangeStatus, str | None]:
        envelope = self.hub_send(provider.id, {
            "type": "provide", "message_id": message_id, "requester": requester.id,
            "procedure": procedure.value, "item": item.value, "code": provider_code})
        reply = self.hub_open(self.provider_handle(provider, envelope), "provide_reply", provider.id).body
        if reply.get("message_id") != message_id:
            raise InvalidInput("the provider answered another message")
        return ExchangeStatus(reply["status"]), reply.get("inner")

    def _replay_query(self, requester: Agency, row: Any, provider_id: str, procedure: Procedure,
                      item: InfoItem, code: str) -> bytes:
        """A retry of a logged message: the same answer, fetched again, and no second log entry."""
        link = self.link_by_code(code)
        same = (row.provider == provider_id and row.procedure == procedure.value and row.item == item.value
                and row.kind == ExchangeKind.QUERY.value
                and (row.subject_code is None) == (link is None)
                and (link is None or self.portal_code(link.resident_id) == row.subject_code))
        if not same:
            raise Conflict(f"message ID {row.message_id!r} was already used for a different request")
        status = ExchangeStatus(row.status)
        inner = None
        if status is ExchangeStatus.PROVIDED and link is not None:
            provider = self.find_agency(provider_id)
            provider_link = None if provider is None else self.live_link(provider.id,
                                                                          resident_id=link.resident_id)
            if provider is not None and provider_link and provider_link.status is LinkStatus.ACTIVE:
                status, inner = self._relay_to_provider(requester, provider, row.message_id, procedure, item,
                                                        provider_link.code)
        return self.hub_send(requester.id, {
            "type": "query_reply", "message_id": row.message_id, "seq": row.seq, "status": status.value,
            "reason": row.reason, "inner": inner, "replayed": True})

    def provider_handle(self, provider: Agency, envelope: bytes) -> bytes:
        """The provider's interface system answers from its copies (副本), encrypted to the requester."""
        body = self.party_open(provider, envelope, keyring.HUB_ID, "provide").body
        message_id, requester_id = body["message_id"], body["requester"]
        requester = self.agency(requester_id)
        procedure, item = Procedure(body["procedure"]), InfoItem(body["item"])
        store = self.store(provider.id)
        found = self.conn.execute(store.ref_and_record, {"code": body["code"], "item": item.value}).first()
        local_ref = None if found is None else found.local_ref
        data: dict[str, Any] | None = None
        updated_at: str | None = None
        if find_permission(requester.kind, procedure, provider.kind, item) is None:
            status = ExchangeStatus.REFUSED  # the provider checks the table too (defence in depth)
        elif local_ref is None:
            status = ExchangeStatus.NOT_ENROLLED
        else:
            if found is None or found.data is None:
                status = ExchangeStatus.NO_RECORD
            else:
                status = ExchangeStatus.PROVIDED
                data, updated_at = json.loads(found.data), found.updated_at.isoformat()
        inner = self.send(provider.id, self.keys_of(provider), requester.id, {
            "type": "provision", "message_id": message_id, "procedure": procedure.value, "item": item.value,
            "status": status.value, "data": data, "updated_at": updated_at})
        self._own_record(provider, message_id, "provider", requester.id, ExchangeKind.QUERY, procedure.value,
                         item.value, local_ref, status, None)
        return self.send(provider.id, self.keys_of(provider), keyring.HUB_ID, {
            "type": "provide_reply", "message_id": message_id, "sent_at": self.now.isoformat(),
            "status": status.value, "inner": b64(inner)})
