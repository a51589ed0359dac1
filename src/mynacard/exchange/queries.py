"""Queries (情報照会): an agency asks another, through the hub, for an item the permitted table allows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from mynacard.context import Context
from mynacard.errors import Forbidden, InvalidInput
from mynacard.exchange import hub as hubmod
from mynacard.exchange.access import acting_for, check_local_ref
from mynacard.exchange.agencies import open_network
from mynacard.exchange.envelope import EnvelopeError
from mynacard.exchange.hub import QueryOutcome, new_message_id
from mynacard.exchange.model import AgencyKind, ExchangeStatus
from mynacard.principal import Principal

__all__ = ["QueryRequest", "query"]


@dataclass(frozen=True)
class QueryRequest:
    """情報照会: ask ``provider`` for ``item`` about the agency's person ``local_ref``, for ``procedure``."""

    provider: str
    procedure: str
    item: str
    local_ref: str
    message_id: str | None = None
    """The caller's idempotency key; a retry with the same key is answered again and logged once."""


def query(ctx: Context, principal: Principal, agency_id: str, request: QueryRequest,
          now: datetime) -> QueryOutcome:
    """Ask another agency through the hub. A refused query is logged and then raises :class:`Forbidden`."""
    acting_for(principal, agency_id)
    ref = check_local_ref(request.local_ref)
    message_id = hubmod.check_message_id(request.message_id or new_message_id("q"))
    with open_network(ctx, now) as net:
        requester = net.agency(agency_id)
        if requester.kind is AgencyKind.PORTAL:
            raise Forbidden("Mynaportal does not query agencies")
        try:
            outcome = net.query(requester, request.provider, request.procedure, request.item, ref, message_id)
        except EnvelopeError as exc:
            raise InvalidInput(f"exchange failed: {exc}") from None
    if outcome.status is ExchangeStatus.REFUSED:
        raise Forbidden(f"exchange refused and logged as entry {outcome.seq}: {outcome.reason}")
    return outcome
