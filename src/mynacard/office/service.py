"""Use cases of the municipal issuance office, and the part's façade: other parts and the office's own API, CLI
and demo call them here. Each concept has its module, all re-exported here:

- :mod:`~mynacard.office.slots`: sites, counters, shifts and slots (予約枠), and which slots are bookable;
- :mod:`~mynacard.office.receipt`: receipt checks of arriving cards (券面・IC チップ確認);
- :mod:`~mynacard.office.pre_issuance`: the off-peak pre-issuance setup batch (交付前設定);
- :mod:`~mynacard.office.notices`: issuance notices — staged mailing, re-notice, destruction of uncollected cards;
- :mod:`~mynacard.office.handover`: what the window needs (:func:`card_for_notice`, :func:`mark_notice_collected`);
- :mod:`~mynacard.office.booking`: booking by the resident (予約) with the notice number and date of birth;
- :mod:`~mynacard.office.views`: the clerk's and supervisor's views and the public congestion forecast.

Who may act is :mod:`~mynacard.office.access`; the rules without I/O (notice numbers, deadlines, slot plans,
the bookable-slot rule) are :mod:`~mynacard.office.model`.

Card states move only through :mod:`mynacard.cards.ledger` (one ``card_events`` row per move), inside the same
transaction as the office's own rows, so a card's state, its notice and its booking never disagree.
"""

from __future__ import annotations

from mynacard.office.booking import MAX_BIRTH_DATE_FAILURES, Booking, book, cancel_booking, find_notice, rebook
from mynacard.office.handover import card_for_notice, mark_notice_collected
from mynacard.office.notices import destroy_uncollected, renotice, send_notices
from mynacard.office.pre_issuance import OFF_PEAK, SETUP_CARDS_PER_TERMINAL, is_off_peak, run_pre_issuance_setup
from mynacard.office.receipt import ChipInspector, ReceiptCheckResult, check_received_cards
from mynacard.office.slots import SiteView, SlotView, add_shift, add_site, generate_slots, open_slots, sites
from mynacard.office.views import (
    Backlog,
    CongestionHour,
    DayBooking,
    NoticePrint,
    backlog,
    bookings_on,
    congestion,
    notice_for_print,
    notices_of,
)

__all__ = [
    "MAX_BIRTH_DATE_FAILURES",
    "OFF_PEAK",
    "SETUP_CARDS_PER_TERMINAL",
    "Backlog",
    "Booking",
    "ChipInspector",
    "CongestionHour",
    "DayBooking",
    "NoticePrint",
    "ReceiptCheckResult",
    "SiteView",
    "SlotView",
    "add_shift",
    "add_site",
    "backlog",
    "book",
    "bookings_on",
    "cancel_booking",
    "card_for_notice",
    "check_received_cards",
    "congestion",
    "destroy_uncollected",
    "find_notice",
    "generate_slots",
    "is_off_peak",
    "mark_notice_collected",
    "notice_for_print",
    "notices_of",
    "open_slots",
    "rebook",
    "renotice",
    "run_pre_issuance_setup",
    "send_notices",
    "sites",
]
