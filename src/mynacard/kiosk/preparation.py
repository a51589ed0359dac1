"""Making the certificate for one request (:func:`prepare`): the checks, the content, the PDF rendered and
signed with the municipality's key, recorded as PREPARED — not valid until the centre confirms it
(:mod:`~mynacard.kiosk.document_states`).

Idempotent by request ID: a retried request gets the same document, never a second one. Rendering takes one of
a few slots per process (``MYNACARD_KIOSK_RENDER_SLOTS``, :mod:`mynacard.kiosk.config`) and holds no database
connection meanwhile.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time as monotonic_time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, bindparam, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from mynacard.clock import local_date
from mynacard.context import Context
from mynacard.kiosk import audit, documents, pdf, seal, signing
from mynacard.kiosk.config import kiosk_settings
from mynacard.kiosk.documents import AddressEntry, FamilyRegister
from mynacard.kiosk.holder_facts import HolderFacts, check_issuable, issuing_municipality, load_facts
from mynacard.kiosk.model import (
    DocumentContent,
    DocumentId,
    DocumentKind,
    DocumentOptions,
    DocumentState,
    PersonRecord,
    RefusalReason,
    Refused,
    RequestId,
)
from mynacard.kiosk.municipal_keys import signer
from mynacard.kiosk.municipal_scope import CENTRE_ROLES, audit_stream, holder_ref, sealer, server_principal, towns
from mynacard.kiosk.offerings import MunicipalSettings, settings_and_closures
from mynacard.kiosk.tables import kiosk_address_history, kiosk_documents
from mynacard.kiosk.verification import VERIFIABLE_FOR
from mynacard.principal import Principal
from mynacard.registry import service as registry
from mynacard.registry.model import ResidentStatus
from mynacard.sealing import Sealer

__all__ = ["DocumentOrder", "PreparedDocument", "document_of_row", "prepare"]


@dataclass(frozen=True)
class DocumentOrder:
    """The centre's request to a municipality for one document."""

    request_id: str
    holder_resident_id: int
    issuing_municipality: str
    options: DocumentOptions
    verify_base_url: str


@dataclass(frozen=True)
class PreparedDocument:
    """A rendered, signed certificate and what the centre checks before releasing it."""

    document_id: str
    request_id: str
    municipality_code: str
    kind: DocumentKind
    state: DocumentState
    pdf: bytes = field(repr=False)
    pdf_sha256: str
    holder_ref: str
    holder_resident_id: int
    subject_resident_ids: tuple[int, ...]
    copies: int


def document_of_row(row: Any, box: Sealer) -> PreparedDocument:
    """A recorded document (a ``kiosk_documents`` row), its PDF unsealed."""
    pdf_bytes = box.open(row.sealed_pdf, b"kiosk_documents.pdf:" + row.document_id.encode())
    return PreparedDocument(row.document_id, row.request_id, row.municipality_code, DocumentKind(row.kind),
                            DocumentState(row.state), pdf_bytes, row.pdf_sha256, row.holder_ref,
                            row.holder_resident_id, tuple(json.loads(row.subject_resident_ids)), row.copies)


_DOCUMENT_OF_REQUEST = select(kiosk_documents).where(kiosk_documents.c.request_id == bindparam("request_id"))


def _existing_document(conn: Connection, request_id: str) -> Any:
    """The ``kiosk_documents`` row already made for the request, or None."""
    return conn.execute(_DOCUMENT_OF_REQUEST, {"request_id": request_id}).first()


_NEW_DOCUMENT = {name: make(kiosk_documents).on_conflict_do_nothing(index_elements=["request_id"])
                 .returning(kiosk_documents.c.document_id)
                 for name, make in (("postgresql", pg_insert), ("sqlite", sqlite_insert))}
"""Built once, its values given as parameters (SQLAlchemy then compiles it once)."""

_RENDER_SLOTS: dict[int, threading.BoundedSemaphore] = {}


def _render_slots() -> threading.BoundedSemaphore:
    """Certificates rendered and signed at once in this process (``MYNACARD_KIOSK_RENDER_SLOTS``, read at each
    use; one semaphore per process for each count). Rendering is pure Python (one core per process at most,
    because of the GIL); letting every request thread render at once only makes the threads that hold a
    database connection wait for the interpreter, so requests queue here instead — holding no connection."""
    count = kiosk_settings().render_slots
    return _RENDER_SLOTS.get(count) or _RENDER_SLOTS.setdefault(count, threading.BoundedSemaphore(count))


def _expired(deadline: float | None) -> bool:
    return deadline is not None and monotonic_time.monotonic() > deadline


@dataclass(frozen=True)
class _Checked:
    """An order that passed the checks, with everything the database had to say for its document."""

    facts: HolderFacts
    code: str
    """The issuing municipality."""
    settings: MunicipalSettings
    subjects: list[PersonRecord]
    history: dict[int, list[AddressEntry]]
    signer: signing.DocumentSigner


@dataclass(frozen=True)
class _Made:
    """A rendered and signed certificate, not yet recorded."""

    document_id: DocumentId
    request_id: RequestId
    holder_ref: str
    content: DocumentContent
    pdf: bytes = field(repr=False)
    individual_number_shown: bool


def prepare(ctx: Context, principal: Principal, order: DocumentOrder, now: datetime, *,
            deadline: float | None = None) -> PreparedDocument:
    """Build, render and sign the document for one request (PREPARED: not valid until :func:`confirm`).

    Idempotent by request ID: a retry returns the document already made. ``deadline`` (``time.monotonic()``)
    is checked before the work and before the document is recorded; past it nothing is recorded and
    :class:`Refused` (TIMEOUT) is raised.
    """
    principal.require(*CENTRE_ROLES)
    request_id = RequestId(order.request_id)
    box = sealer(ctx)
    towns(ctx)
    with ctx.db.connect() as conn:
        existing = _existing_document(conn, request_id)
        if existing is not None:
            return _retried(existing, order, box)
        if _expired(deadline):
            raise Refused(RefusalReason.TIMEOUT)
        checked = _check_order(ctx, conn, order, now)
    numbers = _individual_numbers(ctx, checked, order, request_id, now)
    content = _content(order.options.kind, checked.settings, local_date(now), order.options, checked.facts,
                       checked.subjects, numbers, checked.history)
    document_id = DocumentId.new()
    ref = holder_ref(box, checked.facts.holder.resident.resident_code)
    signed = _render_and_sign(checked, order, content, document_id, request_id, ref, now, deadline)
    if _expired(deadline):
        raise Refused(RefusalReason.TIMEOUT)
    return _record(ctx, principal, order, checked, _Made(document_id, request_id, ref, content, signed, bool(numbers)),
                   now, box)


def _retried(existing: Any, order: DocumentOrder, box: Sealer) -> PreparedDocument:
    """A retried request gets the document already made for it: refused (ABORTED) if that one was voided or
    was made for another holder."""
    if existing.state == DocumentState.VOID.value or existing.holder_resident_id != order.holder_resident_id:
        raise Refused(RefusalReason.ABORTED)
    return document_of_row(existing, box)


def _check_order(ctx: Context, conn: Connection, order: DocumentOrder, now: datetime) -> _Checked:
    """The holder's facts and the document's checks (:class:`Refused` if it may not be made), the address
    history an attachment (戸籍の附票) shows, and the issuing municipality's signer — all in one connection."""
    today = local_date(now)
    facts = load_facts(conn, order.holder_resident_id, today)
    kind = order.options.kind
    code = issuing_municipality(kind, facts.holder.resident, facts)
    if code != order.issuing_municipality:
        raise Refused(RefusalReason.NOT_OFFERED, "routed to the wrong municipality")
    settings, closed = settings_and_closures(ctx, conn, code, today)
    subjects = check_issuable(kind, order.options, facts, settings, conn, now, {code: closed})
    assert settings is not None
    history = (_address_history(conn, facts.register, today)
               if kind is DocumentKind.FAMILY_REGISTER_ATTACHMENT and facts.register is not None else {})
    return _Checked(facts, code, settings, subjects, history, signer(ctx, conn, code, now))


def _address_history(conn: Connection, register: FamilyRegister, today: date) -> dict[int, list[AddressEntry]]:
    """Each register member's addresses, oldest first, ending with the registry's current one."""
    history: dict[int, list[AddressEntry]] = {}
    ids = [m.resident_id for m in register.members if m.resident_id is not None]
    for h in conn.execute(select(kiosk_address_history).where(
            kiosk_address_history.c.resident_id.in_(ids)).order_by(kiosk_address_history.c.since,
                                                                 kiosk_address_history.c.id)):
        history.setdefault(h.resident_id, []).append(AddressEntry(h.resident_id, h.address, h.since))
    for rid, current in registry.get_residents(conn, ids).items():
        entries = history.setdefault(rid, [])
        if not entries or entries[-1].address != current.facts.address:
            entries.append(AddressEntry(rid, current.facts.address, entries[-1].since if entries else today))
    return history


def _individual_numbers(ctx: Context, checked: _Checked, order: DocumentOrder, request_id: RequestId,
                        now: datetime) -> dict[int, str]:
    """The subjects' individual numbers when the holder asked for them (each read is logged in the registry)."""
    numbers: dict[int, str] = {}
    if order.options.include_individual_number:
        for p in checked.subjects:
            numbers[p.id] = registry.individual_number_of(
                ctx, server_principal(checked.code), p.id, f"コンビニ交付 住民票の写し（本人の請求） {request_id}",
                now)
    return numbers


def _render_and_sign(checked: _Checked, order: DocumentOrder, content: DocumentContent, document_id: DocumentId,
                     request_id: RequestId, ref: str, now: datetime, deadline: float | None) -> bytes:
    """The signed PDF, made in one of the process's render slots (:class:`Refused` TIMEOUT if the deadline
    passed while waiting for one)."""
    verify_url = f"{order.verify_base_url.rstrip('/')}/kiosk/verify/{document_id}"
    facts, settings = checked.facts, checked.settings
    impression = seal.on_paper_jpeg(facts.seal.impression_png) if (
        order.options.kind is DocumentKind.SEAL_REGISTRATION and facts.seal) else None
    with _render_slots():
        if _expired(deadline):
            raise Refused(RefusalReason.TIMEOUT)
        unsigned = pdf.render(content, document_id=document_id, request_id=request_id, holder_ref=ref,
                              verify_url=verify_url, seal_jpeg=_seal_jpeg(settings.name),
                              signature=signing.SignatureSlot("証明書の交付（コンビニ交付）", settings.full_name, now),
                              impression_jpeg=impression)
        return checked.signer.sign(unsigned)


def _record(ctx: Context, principal: Principal, order: DocumentOrder, checked: _Checked, made: _Made,
            now: datetime, box: Sealer) -> PreparedDocument:
    """Record the document, PREPARED, once per request: when a concurrent retry recorded its document first,
    that one is returned (refused, ABORTED, if it was voided meanwhile)."""
    kind, holder_id = order.options.kind, checked.facts.holder.resident.id
    subject_ids = [p.id for p in checked.subjects]
    digest = hashlib.sha256(made.pdf).hexdigest()
    content_json = json.dumps(made.content.to_dict(reveal=True), ensure_ascii=False, sort_keys=True).encode()
    row = {
        "document_id": made.document_id, "request_id": made.request_id, "municipality_code": checked.code,
        "kind": kind.value, "state": DocumentState.PREPARED.value, "holder_resident_id": holder_id,
        "subject_resident_ids": json.dumps(subject_ids), "holder_ref": made.holder_ref,
        "copies": order.options.copies,
        "sealed_content": box.seal(content_json, b"kiosk_documents.content:" + made.document_id.encode()),
        "content_digest": made.content.public_digest(),
        "sealed_pdf": box.seal(made.pdf, b"kiosk_documents.pdf:" + made.document_id.encode()),
        "pdf_sha256": digest, "prepared_at": now, "verifiable_until": now + VERIFIABLE_FOR,
    }
    with ctx.transaction() as tx:
        if tx.conn.execute(_NEW_DOCUMENT[tx.conn.dialect.name], row).first() is None:
            # a concurrent retry recorded its document first
            winner = _existing_document(tx.conn, made.request_id)
            if winner is None or winner.state == DocumentState.VOID.value:
                raise Refused(RefusalReason.ABORTED)
            return document_of_row(winner, box)
        audit.append(tx.conn, audit_stream(checked.code, made.request_id), "document_prepared", principal.subject,
                     now, request_id=made.request_id,
                     details={"document_id": made.document_id, "kind": kind.value, "holder_resident_id": holder_id,
                              "subject_resident_ids": subject_ids, "copies": order.options.copies,
                              "pdf_sha256": digest, "content_digest": made.content.public_digest(),
                              "individual_number_shown": made.individual_number_shown})
    return PreparedDocument(made.document_id, made.request_id, checked.code, kind, DocumentState.PREPARED, made.pdf,
                            digest, made.holder_ref, holder_id, tuple(subject_ids), order.options.copies)


def _seal_jpeg(name: str) -> bytes:
    return _SEAL_JPEGS.get(name) or _SEAL_JPEGS.setdefault(name, seal.on_paper_jpeg(seal.municipal_seal_png(name)))


_SEAL_JPEGS: dict[str, bytes] = {}


def _content(kind: DocumentKind, settings: MunicipalSettings, today: date, options: DocumentOptions,
             facts: HolderFacts, subjects: Sequence[PersonRecord], numbers: dict[int, str],
             history: dict[int, list[AddressEntry]]) -> DocumentContent:
    issuer = settings.issuer
    holder = facts.holder.resident
    if kind is DocumentKind.RESIDENT_RECORD:
        head = next((p.resident for p in facts.household if p.resident.relationship == "世帯主"), None)
        active = [p for p in facts.household if p.resident.status is ResidentStatus.ACTIVE]
        return documents.resident_record(issuer, today, options, [p.resident for p in subjects], head,
                                         facts.domiciles, numbers, len(active))
    if kind is DocumentKind.RESIDENT_RECORD_ENTRY:
        return documents.resident_record_entry(issuer, today, holder)
    if kind is DocumentKind.SEAL_REGISTRATION:
        assert facts.seal is not None
        return documents.seal_registration(issuer, today, holder, facts.seal)
    if kind is DocumentKind.INCOME_TAX:
        assert facts.tax is not None
        return documents.income_tax(issuer, today, holder, facts.tax)
    assert facts.register is not None
    if kind is DocumentKind.FAMILY_REGISTER_ALL:
        return documents.family_register_all(issuer, today, facts.register)
    if kind is DocumentKind.FAMILY_REGISTER_INDIVIDUAL:
        return documents.family_register_individual(issuer, today, facts.register, holder.id)
    return documents.family_register_attachment(issuer, today, facts.register, history)
