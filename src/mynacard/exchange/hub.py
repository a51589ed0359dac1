"""The hub (情報提供ネットワークシステム, コアシステム) and the agencies' hosted interface systems, working
inside one transaction of the caller.

Every hop is an envelope (:mod:`mynacard.exchange.envelope`): signed by its sender, encrypted to its
recipient.
The hub reads routing (codes, procedure, item) but never the provided data, which the provider encrypts to the
requester end to end; the requester never sees the provider's code, the provider never sees the requester's.
The individual number never travels in any of these messages. Each exchange appends one entry to the
hash-chained log, and the whole round trip — log entry, both agencies' own records — commits or rolls back
as one, so a retried request can never act twice.

Services (:mod:`mynacard.exchange.service`) open the transaction and call a :class:`Network` bound to it.
This module is the façade of the hub's parts: the wire (:mod:`~mynacard.exchange.hub_wire`), codes and links
(:mod:`~mynacard.exchange.hub_codes`), the log (:mod:`~mynacard.exchange.hub_log`), query and provide
(:mod:`~mynacard.exchange.hub_queries`) and Mynaportal's traffic (:mod:`~mynacard.exchange.hub_portal`).
"""

from __future__ import annotations

from mynacard.exchange.hub_codes import Link, resident_codes
from mynacard.exchange.hub_log import checkpoint_message, head_message
from mynacard.exchange.hub_portal import Delivery, PortalTraffic, SelfInformationPart
from mynacard.exchange.hub_queries import Queries, QueryOutcome
from mynacard.exchange.hub_wire import agencies_where, agency_from_row, check_message_id, new_message_id, wiretap

__all__ = [
    "Delivery",
    "Link",
    "Network",
    "QueryOutcome",
    "SelfInformationPart",
    "agencies_where",
    "agency_from_row",
    "check_message_id",
    "checkpoint_message",
    "head_message",
    "new_message_id",
    "resident_codes",
    "wiretap",
]


class Network(Queries, PortalTraffic):
    """The hub and every hosted interface system, inside the caller's transaction ``tx`` at time ``now``."""
