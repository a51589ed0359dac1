"""Use cases of the information provision network, and their façade: agencies
(:mod:`~mynacard.exchange.agencies`), enrolment and codes (:mod:`~mynacard.exchange.enrolment`), the review queue
(:mod:`~mynacard.exchange.reviews`), links after enrolment (:mod:`~mynacard.exchange.links`), record copies
(:mod:`~mynacard.exchange.record_copies`), queries (:mod:`~mynacard.exchange.queries`), notices and the inbox
(:mod:`~mynacard.exchange.notices`), the log and its verification (:mod:`~mynacard.exchange.log`) — and the few
functions Mynaportal calls on a resident's behalf (:mod:`~mynacard.exchange.mynaportal`), all re-exported here.

Every function takes the caller's :class:`~mynacard.principal.Principal` and checks it
(:mod:`~mynacard.exchange.access`): an agency acts only for itself; the national operator (J-LIS) administers
agencies, reviews and the log but cannot query; a municipal supervisor decides reviews of their own
municipality's agencies; a resident reaches only their own records.
Every batch validates its whole input first and changes nothing when any item is wrong.
"""

from __future__ import annotations

from mynacard.exchange.agencies import (
    AgencyRegistration,
    get_agency,
    list_agencies,
    prepare,
    register_agencies,
    register_agency,
    set_agency_status,
)
from mynacard.exchange.enrolment import EnrolmentRequest, EnrolmentResult, enrol
from mynacard.exchange.hub import Delivery, QueryOutcome, SelfInformationPart
from mynacard.exchange.links import LinkHistory, ReconcileReport, correct_link, link_history, reconcile, unlink
from mynacard.exchange.log import ChainReport, checkpoint_log, exchange_log_entries, purge_expired_log, verify_log
from mynacard.exchange.mynaportal import (
    NoticeView,
    RecordView,
    deliver_applications,
    held_by,
    mark_notice_read,
    notices_for,
    records_about,
    request_self_information,
)
from mynacard.exchange.notices import InboxItem, NoticeInput, inbox, send_notice, update_inbox_status
from mynacard.exchange.queries import QueryRequest, query
from mynacard.exchange.record_copies import RecordInput, register_records
from mynacard.exchange.reviews import ReviewView, decide_review, list_reviews

__all__ = [
    "AgencyRegistration",
    "ChainReport",
    "Delivery",
    "EnrolmentRequest",
    "EnrolmentResult",
    "InboxItem",
    "LinkHistory",
    "NoticeInput",
    "NoticeView",
    "QueryOutcome",
    "QueryRequest",
    "ReconcileReport",
    "RecordInput",
    "RecordView",
    "ReviewView",
    "SelfInformationPart",
    "checkpoint_log",
    "correct_link",
    "decide_review",
    "deliver_applications",
    "enrol",
    "exchange_log_entries",
    "get_agency",
    "held_by",
    "inbox",
    "link_history",
    "list_agencies",
    "list_reviews",
    "mark_notice_read",
    "notices_for",
    "prepare",
    "purge_expired_log",
    "query",
    "reconcile",
    "records_about",
    "register_agencies",
    "register_agency",
    "register_records",
    "request_self_information",
    "send_notice",
    "set_agency_status",
    "unlink",
    "update_inbox_status",
    "verify_log",
]
