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

This module is the server's façade: the use cases live in modules named after their concept and are
re-exported here —

* :mod:`~mynacard.kiosk.offerings`: taking part, the documents offered and their fees, maintenance days;
* :mod:`~mynacard.kiosk.records`: the municipality's own records;
* :mod:`~mynacard.kiosk.municipal_keys`: the document-signing keys and the roots a verifier trusts;
* :mod:`~mynacard.kiosk.menu`, :mod:`~mynacard.kiosk.preparation` and :mod:`~mynacard.kiosk.document_states`:
  what the centre asks (menu, prepare, confirm, mark printed, void, fetch), on the holder's facts and checks in
  :mod:`~mynacard.kiosk.holder_facts`;
* :mod:`~mynacard.kiosk.verification`: the public verification page;
* :mod:`~mynacard.kiosk.municipal_scope`: who may act, the municipality names, the audit streams.

The synthetic records of the demo, the simulation and the tests are in :mod:`mynacard.kiosk.demo`, which this
module does not import.
"""

from __future__ import annotations

from mynacard.kiosk.document_states import confirm, fetch, mark_printed, void
from mynacard.kiosk.menu import HouseholdMember, Menu, MenuItem, menu
from mynacard.kiosk.municipal_keys import trust_roots_der
from mynacard.kiosk.municipal_scope import holder_ref
from mynacard.kiosk.offerings import MunicipalSettings, add_closure, configure, settings_of
from mynacard.kiosk.preparation import DocumentOrder, PreparedDocument, prepare
from mynacard.kiosk.records import (
    add_support_measure,
    create_family_register,
    file_transfer_out,
    note_move,
    record_tax,
    register_family_register_use,
    register_seal,
    set_family_register_pending,
)
from mynacard.kiosk.verification import VerificationView, verification

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
    "note_move",
    "prepare",
    "record_tax",
    "register_family_register_use",
    "register_seal",
    "set_family_register_pending",
    "settings_of",
    "trust_roots_der",
    "verification",
    "void",
]
