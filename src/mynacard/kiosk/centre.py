"""The certificate issuance centre (証明書交付センター): between the kiosks and the municipalities.

One request, one row (``kiosk_sessions``), keyed by the request's ID that the kiosk made when the card went on
the reader. Every step is a compare-and-set on that row inside a short transaction, so two requests never
share anything and a step happens once however often it is retried:

``open_session`` (a single-use challenge) → ``authenticate`` (the card's signature, the certificate's validity
through OCSP, serial → resident, the menu from the home municipality) → ``order`` (fee paid; the municipality
prepares the signed PDF; **the release check**: the PDF's signed facts name this request and this holder, and
its subjects are the holder or the holder's household — logged either way; the request's deadline; only then
RELEASED and the document made valid) → ``printed`` (closed). ``abort`` at any point before the print voids
whatever was made; a timeout aborts the whole request, never half of it (the 2023 Yokohama failure).

No locks are held while the card is checked or the document is rendered; no state lives in memory.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import secrets
import time as monotonic_time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Connection, bindparam, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from mynacard.clock import local_date
from mynacard.context import Context
from mynacard.errors import Conflict, DomainError, InvalidInput, NotFound
from mynacard.kiosk import audit, municipal, pdf
from mynacard.kiosk.auth import CardAuthenticator, HolderDirectory, authenticate_card
from mynacard.kiosk.model import (
    SESSION_TTL,
    DocumentKind,
    DocumentOptions,
    DocumentState,
    OrderDecision,
    Quote,
    RefusalReason,
    Refused,
    RequestId,
    SessionState,
    check_service_hours,
    check_session_transition,
    decide_order,
)
from mynacard.kiosk.municipal import DocumentOrder, Menu, PreparedDocument
from mynacard.kiosk.tables import kiosk_closures, kiosk_sessions
from mynacard.principal import Principal, Role
from mynacard.registry import service as registry
from mynacard.sealing import Sealer

__all__ = [
    "CENTRE",
    "Centre",
    "HttpGateway",
    "LocalGateway",
    "MunicipalGateway",
    "Released",
    "SessionOpened",
    "SessionView",
]

CENTRE = Principal(Role.OPERATOR, "issuance-centre")
"""How the centre (J-LIS) appears to the municipalities' servers."""
CHALLENGE_TTL = timedelta(minutes=2)
MAX_TIMEOUT_MS = 120_000


class MunicipalGateway(Protocol):
    """How the centre reaches the municipalities' certificate issuing servers (LGWAN in production)."""

    def menu(self, holder_id: int, now: datetime) -> Menu: ...

    def prepare(self, order: DocumentOrder, now: datetime, deadline: float | None) -> PreparedDocument: ...

    def confirm(self, document_id: str, request_id: str, now: datetime) -> None: ...

    def mark_printed(self, document_id: str, request_id: str, now: datetime) -> None: ...

    def void(self, document_id: str, request_id: str, reason: str, now: datetime) -> None: ...

    def fetch(self, document_id: str, request_id: str) -> PreparedDocument: ...

    def register_family_register_use(self, resident_id: int, municipality_code: str, now: datetime,
                                     request_id: str) -> None: ...


@dataclass(frozen=True)
class LocalGateway:
    """The municipalities' servers in this installation, called in process."""

    ctx: Context

    def menu(self, holder_id: int, now: datetime) -> Menu:
        return municipal.menu(self.ctx, CENTRE, holder_id, now)

    def prepare(self, order: DocumentOrder, now: datetime, deadline: float | None) -> PreparedDocument:
        return municipal.prepare(self.ctx, CENTRE, order, now, deadline=deadline)

    def confirm(self, document_id: str, request_id: str, now: datetime) -> None:
        municipal.confirm(self.ctx, CENTRE, document_id, request_id, now)

    def mark_printed(self, document_id: str, request_id: str, now: datetime) -> None:
        municipal.mark_printed(self.ctx, CENTRE, document_id, request_id, now)

    def void(self, document_id: str, request_id: str, reason: str, now: datetime) -> None:
        municipal.void(self.ctx, CENTRE, document_id, request_id, reason, now)

    def fetch(self, document_id: str, request_id: str) -> PreparedDocument:
        return municipal.fetch(self.ctx, CENTRE, document_id, request_id)

    def register_family_register_use(self, resident_id: int, municipality_code: str, now: datetime,
                                     request_id: str) -> None:
        municipal.register_family_register_use(self.ctx, CENTRE, resident_id, municipality_code, now, request_id)


@dataclass(frozen=True)
class SessionOpened:
    request_id: str
    challenge: bytes
    expires_at: datetime


@dataclass(frozen=True)
class Released:
    """A document handed to the kiosk for printing."""

    request_id: str
    document_id: str
    pdf: bytes
    pdf_sha256: str
    copies: int
    fee_yen: int
    change_yen: int


@dataclass(frozen=True)
class SessionView:
    request_id: str
    kiosk_id: str
    state: SessionState
    refusal: str | None
    document_id: str | None
    fee_yen: int | None
    paid_yen: int | None


def _stream(kiosk_id: str) -> str:
    return f"kiosk:{kiosk_id}"


# Statements run in every session are built once: building one costs SQLAlchemy more than running it.
_SESSION = select(kiosk_sessions).where(kiosk_sessions.c.request_id == bindparam("request_id"))
_SESSION_LOCKED = _SESSION.with_for_update()  # FOR UPDATE on PostgreSQL; SQLite's writer is alone anyway
_NATIONAL_CLOSURES = select(kiosk_closures.c.day).where(
    kiosk_closures.c.municipality_code.is_(None), kiosk_closures.c.kind.is_(None),
    kiosk_closures.c.day == bindparam("day"))
# Writes take their values as parameters: an UPDATE's SET clause is the parameters' keys that name columns (the
# WHERE clause's are prefixed ``where_``), so SQLAlchemy compiles one statement per set of columns, once.
_SESSION_MOVE = update(kiosk_sessions).where(kiosk_sessions.c.request_id == bindparam("where_request_id"),
                                             kiosk_sessions.c.state == bindparam("where_state"))
_PRINTED = update(kiosk_sessions).where(
    kiosk_sessions.c.request_id == bindparam("where_request_id"),
    kiosk_sessions.c.kiosk_id == bindparam("where_kiosk_id"),
    kiosk_sessions.c.state == SessionState.RELEASED.value,
    kiosk_sessions.c.document_id == bindparam("where_document_id"),
    kiosk_sessions.c.pdf_sha256 == bindparam("where_pdf_sha256")).returning(kiosk_sessions.c.kiosk_id)
_OPENING = ("request_id", "kiosk_id", "state", "challenge", "challenge_expires_at", "created_at", "expires_at")
_NEW_SESSION = {name: make(kiosk_sessions).from_select(
    _OPENING, select(*(bindparam(c, type_=kiosk_sessions.c[c].type) for c in _OPENING))
    .where(~_NATIONAL_CLOSURES.exists())).on_conflict_do_nothing(index_elements=["request_id"])
    .returning(kiosk_sessions.c.request_id)
    for name, make in (("postgresql", pg_insert), ("sqlite", sqlite_insert))}
"""A new session, unless the whole service is closed today (a nationwide maintenance day) or the request ID is
taken: both rare, and told apart only then."""


def _load(conn: Connection, request_id: str, principal: Principal, *, lock: bool = True) -> Any:
    row = conn.execute(_SESSION_LOCKED if lock else _SESSION, {"request_id": request_id}).first()
    if row is None or (principal.role is Role.KIOSK and row.kiosk_id != principal.subject):
        raise NotFound("no such request")
    return row


def _move(conn: Connection, request_id: str, source: SessionState, target: SessionState, **values: Any) -> bool:
    """Move the request from ``source`` to ``target`` if it is still in ``source``; whether it was."""
    check_session_transition(source, target)
    return bool(conn.execute(_SESSION_MOVE, {"where_request_id": request_id, "where_state": source.value,
                                             "state": target.value, **values}).rowcount == 1)


def _set(conn: Connection, row: Any, target: SessionState, **values: Any) -> None:
    """Move a request read (and locked) in this transaction."""
    if not _move(conn, row.request_id, SessionState(row.state), target, **values):
        raise Conflict("the request changed meanwhile")  # pragma: no cover - the row is locked or SQLite's alone


@dataclass(frozen=True)
class Centre:
    """The centre's use cases, with what it depends on: JPKI (card authentication and the holder directory)
    and the way to the municipalities. Immutable: nothing about a request is kept here."""

    ctx: Context
    authenticator: CardAuthenticator
    directory: HolderDirectory
    gateway: MunicipalGateway
    verify_base_url: str

    # --- opening ----------------------------------------------------------------------------------------

    def _national_closures(self, conn: Connection, now: datetime) -> list[Any]:
        return list(conn.execute(_NATIONAL_CLOSURES, {"day": local_date(now)}).scalars())

    def open_session(self, principal: Principal, request_id: str, now: datetime) -> SessionOpened:
        """A card was placed on the reader: a single-use challenge for it to sign."""
        principal.require(Role.KIOSK)
        rid = RequestId(request_id)
        challenge = secrets.token_bytes(32)
        with self.ctx.transaction() as tx:
            try:
                check_service_hours(now)  # a nationwide maintenance day is checked by the insert below
            except Refused:
                check_service_hours(now, self._national_closures(tx.conn, now))  # the first reason, as always
                raise
            # the usual case in one statement: a new request ID on an open day; a retried or taken one is read
            # back, and a closed day refused
            values = {"request_id": rid, "kiosk_id": principal.subject, "state": SessionState.CHALLENGED.value,
                      "challenge": challenge, "challenge_expires_at": now + CHALLENGE_TTL, "created_at": now,
                      "expires_at": now + SESSION_TTL, "day": local_date(now)}
            created = tx.conn.execute(_NEW_SESSION[tx.conn.dialect.name], values).first()
            if created is None:
                check_service_hours(now, self._national_closures(tx.conn, now))
                existing = tx.conn.execute(select(kiosk_sessions).where(kiosk_sessions.c.request_id == rid)).one()
                if existing.kiosk_id != principal.subject:
                    raise Conflict("this request ID is taken")
                if existing.state != SessionState.CHALLENGED.value or existing.challenge is None:
                    raise Conflict(f"the request is already {existing.state}")
                return SessionOpened(rid, bytes(existing.challenge), existing.challenge_expires_at)
            audit.append(tx.conn, _stream(principal.subject), "session_opened", principal.subject, now,
                         request_id=rid)
        return SessionOpened(rid, challenge, now + CHALLENGE_TTL)

    # --- authentication ---------------------------------------------------------------------------------

    def authenticate(self, principal: Principal, request_id: str, certificate: bytes, signature: bytes,
                     now: datetime) -> Menu:
        """The card's answer: check it, find the holder, and return what they may order."""
        principal.require(Role.KIOSK)
        rid = RequestId(request_id)
        cert_sha = hashlib.sha256(certificate).hexdigest()
        # Read without a lock: the challenge is spent in the transaction that records the answer (below), where
        # only an answer to the challenge still on the row counts; a wrong answer aborts the request.
        with self.ctx.db.connect() as conn:
            row = _load(conn, rid, principal, lock=False)
        state = SessionState(row.state)
        if state is SessionState.AUTHENTICATED and row.certificate_sha256 == cert_sha:
            return self.gateway.menu(row.resident_id, now)  # a retry of the answer that was accepted
        self._live(row, now)
        if state is not SessionState.CHALLENGED or row.challenge is None:
            raise Conflict(f"the request is {state.value}")
        if now > row.challenge_expires_at:
            self.abort(principal, rid, RefusalReason.SESSION_EXPIRED.value, now)
            raise Refused(RefusalReason.SESSION_EXPIRED)
        challenge = bytes(row.challenge)
        try:
            card = authenticate_card(self.authenticator, certificate, challenge, signature, now)
            holder = self.directory.resident_for(card.serial, now)
            if holder is None:
                raise Refused(RefusalReason.NO_HOLDER)
            menu = self.gateway.menu(holder, now)  # refuses a holder the registry does not know
        except Refused as exc:
            self.abort(principal, rid, exc.reason.value, now)
            raise
        offer = {item.kind.value: [item.fee_yen, item.issuing_municipality] for item in menu.items
                 if item.refusal is None}
        with self.ctx.transaction() as tx:
            row = _load(tx.conn, rid, principal)
            if row.state == SessionState.AUTHENTICATED.value and row.certificate_sha256 == cert_sha:
                return menu  # the same answer, accepted a moment ago through a concurrent retry
            if row.state != SessionState.CHALLENGED.value or row.challenge is None or \
                    bytes(row.challenge) != challenge:
                raise Refused(RefusalReason.ABORTED)  # aborted meanwhile
            # the centre's own record of the holder (the municipality answered the menu from its own)
            home = registry.municipality_of(tx.conn, holder)
            if home is None:
                self._abort_in(tx.conn, row, RefusalReason.NO_HOLDER, principal, now)
            else:
                _set(tx.conn, row, SessionState.AUTHENTICATED, challenge=None, certificate_sha256=cert_sha,
                     certificate_serial=f"{card.serial:X}", resident_id=holder, home_municipality=home,
                     offer=json.dumps(offer), authenticated_at=now)
                audit.append(tx.conn, _stream(row.kiosk_id), "authenticated", principal.subject, now,
                             request_id=rid, details={"certificate_serial": f"{card.serial:X}", "resident_id": holder,
                                                      "home_municipality": home, "offered": sorted(offer)})
        if home is None:
            raise Refused(RefusalReason.NO_HOLDER)
        return menu

    def _live(self, row: Any, now: datetime) -> None:
        if now > row.expires_at and row.state not in (SessionState.COMPLETED.value, SessionState.ABORTED.value):
            raise Refused(RefusalReason.SESSION_EXPIRED)

    # --- ordering and release ------------------------------------------------------------------------------

    def quote(self, principal: Principal, request_id: str, options: DocumentOptions) -> Quote:
        principal.require(Role.KIOSK)
        with self.ctx.db.connect() as conn:
            row = _load(conn, RequestId(request_id), principal, lock=False)
        offer = json.loads(row.offer or "{}")
        if options.kind.value not in offer:
            raise Refused(RefusalReason.NOT_OFFERED)
        return Quote(offer[options.kind.value][0], options.copies)

    def order(self, principal: Principal, request_id: str, options: DocumentOptions, paid_yen: int,
              now: datetime, *, timeout_ms: int = 30_000) -> Released:
        """Paid: have the municipality make the document, check it against the holder, release it."""
        principal.require(Role.KIOSK)
        if not 1 <= timeout_ms <= MAX_TIMEOUT_MS:
            raise InvalidInput(f"timeout_ms is 1–{MAX_TIMEOUT_MS}")
        deadline = monotonic_time.monotonic() + timeout_ms / 1000
        rid = RequestId(request_id)
        row, decision = self._take_order(principal, rid, options, paid_yen, now)
        if decision.redeliver:
            return self._redeliver(principal, row, now)
        if decision.refusal is not None:
            if decision.refusal is RefusalReason.NOT_OFFERED:
                self.abort(principal, rid, decision.refusal.value, now)
            raise Refused(decision.refusal)
        order = DocumentOrder(rid, int(row.resident_id), decision.issuing_municipality, options,
                              self.verify_base_url)
        try:
            prepared = self.gateway.prepare(order, now, deadline)
        except Refused as exc:
            self.abort(principal, rid, exc.reason.value, now)
            raise
        except Exception:
            self.abort(principal, rid, "municipal_error", now)
            raise
        self._release(principal, rid, row, prepared, options, now, deadline)
        try:
            self.gateway.confirm(prepared.document_id, rid, now)
        except DomainError:
            self.abort(principal, rid, "confirm_failed", now)
            raise Refused(RefusalReason.ABORTED) from None
        return Released(rid, prepared.document_id, prepared.pdf, prepared.pdf_sha256, prepared.copies,
                        decision.fee_yen, paid_yen - decision.fee_yen)

    def _take_order(self, principal: Principal, rid: RequestId, options: DocumentOptions, paid_yen: int,
                    now: datetime) -> tuple[Any, OrderDecision]:
        """Decide the order (:func:`~mynacard.kiosk.model.decide_order`) on the locked request and record an
        accepted one; a refusal that can be answered at once is raised here, inside the transaction."""
        options_json = json.dumps(options.to_dict(), sort_keys=True)
        with self.ctx.transaction() as tx:
            row = _load(tx.conn, rid, principal)
            decision = decide_order(SessionState(row.state), row.options == options_json, row.refusal,
                                    now > row.expires_at, json.loads(row.offer or "{}"), options.kind,
                                    options.copies, paid_yen)
            if decision.busy is not None:
                raise Conflict(decision.busy)
            if decision.refusal is not None and not decision.ends_request:
                raise Refused(decision.refusal, decision.detail)
            if decision.refusal is RefusalReason.SESSION_EXPIRED:
                self._abort_in(tx.conn, row, RefusalReason.SESSION_EXPIRED, principal, now)
            if decision.accept:
                total, issuing = decision.fee_yen, decision.issuing_municipality
                _set(tx.conn, row, SessionState.RENDERING, options=options_json, fee_yen=total,
                     paid_yen=paid_yen, issuing_municipality=issuing, ordered_at=now)
                audit.append(tx.conn, _stream(row.kiosk_id), "order_accepted", principal.subject, now,
                             request_id=rid, details={"kind": options.kind.value, "copies": options.copies,
                                                      "fee_yen": total, "paid_yen": paid_yen,
                                                      "issuing_municipality": issuing,
                                                      "individual_number": options.include_individual_number})
        return row, decision

    def _release(self, principal: Principal, rid: RequestId, row: Any, prepared: PreparedDocument,
                 options: DocumentOptions, now: datetime, deadline: float) -> None:
        """Check the document against the holder and, in time, release it; otherwise abort the request, void
        the document and raise the reason."""
        try:  # the PDF is parsed before the row is locked; the holder is read inside the transaction
            facts: pdf.PdfFacts | str = pdf.read_facts(prepared.pdf)
        except ValueError as exc:
            facts = str(exc)
        with self.ctx.transaction() as tx:
            problems = self._release_problems(tx.conn, prepared, facts, rid, int(row.resident_id), options)
            timed_out = monotonic_time.monotonic() > deadline
            check = audit.Entry("release_check", principal.subject, rid, {
                "document_id": prepared.document_id, "holder_resident_id": int(row.resident_id),
                "document_holder_resident_id": prepared.holder_resident_id,
                "subject_resident_ids": list(prepared.subject_resident_ids),
                "matched": not problems, "problems": problems})
            # the usual case in one statement: checked, in time, and the request still rendering
            released = not problems and not timed_out and _move(
                tx.conn, rid, SessionState.RENDERING, SessionState.RELEASED, document_id=prepared.document_id,
                pdf_sha256=prepared.pdf_sha256, released_at=now)
            if released:
                audit.append_many(tx.conn, _stream(row.kiosk_id), now, [check, audit.Entry(
                    "released", principal.subject, rid,
                    {"document_id": prepared.document_id, "pdf_sha256": prepared.pdf_sha256})])
                return
            current = _load(tx.conn, rid, principal)
            if current.state != SessionState.RENDERING.value:  # aborted meanwhile (the kiosk, a timeout)
                reason = RefusalReason(current.refusal) if current.refusal in RefusalReason._value2member_map_ \
                    else RefusalReason.ABORTED
                audit.append_many(tx.conn, _stream(current.kiosk_id), now, [check])
            elif problems:
                reason = RefusalReason.ABORTED
                self._abort_in(tx.conn, current, "release_check_failed", principal, now,
                               document_id=prepared.document_id, preceded_by=check)
            elif timed_out:
                reason = RefusalReason.TIMEOUT
                self._abort_in(tx.conn, current, RefusalReason.TIMEOUT, principal, now,
                               document_id=prepared.document_id, preceded_by=check)
            else:  # pragma: no cover - still rendering, yet the move above found it not
                raise Conflict("the request changed meanwhile")
        self._void(rid, prepared.document_id, reason.value, now)
        raise Refused(reason)

    def _redeliver(self, principal: Principal, row: Any, now: datetime) -> Released:
        prepared = self.gateway.fetch(row.document_id, row.request_id)
        if prepared.state is DocumentState.VOID:
            raise Refused(RefusalReason.ABORTED)
        self.gateway.confirm(row.document_id, row.request_id, now)
        return Released(row.request_id, row.document_id, prepared.pdf, prepared.pdf_sha256, prepared.copies,
                        int(row.fee_yen), int(row.paid_yen) - int(row.fee_yen))

    def _release_problems(self, conn: Connection, prepared: PreparedDocument, facts: pdf.PdfFacts | str,
                          request_id: str, holder_id: int, options: DocumentOptions) -> list[str]:
        """Everything that must hold before a document leaves the centre (empty: release). ``facts`` are
        the PDF's signed facts, or why they could not be read."""
        problems = []
        if prepared.request_id != request_id:
            problems.append("the document was made for another request")
        if prepared.holder_resident_id != holder_id:
            problems.append("the document names another holder")
        if hashlib.sha256(prepared.pdf).hexdigest() != prepared.pdf_sha256:
            problems.append("the PDF is not the one the municipality recorded")
        if isinstance(facts, str):
            return [*problems, facts]
        holder, household = registry.household_of(conn, holder_id)
        expected_ref = municipal.holder_ref(Sealer(self.ctx.settings.data_key), holder.resident_code) \
            if holder else None
        if facts.request_id != request_id:
            problems.append("the PDF carries another request's ID")
        if facts.document_id != prepared.document_id:
            problems.append("the PDF carries another document's ID")
        if expected_ref is None or facts.holder_ref != expected_ref:
            problems.append("the PDF's holder is not the authenticated card holder")
        allowed = {holder_id}
        if options.kind is DocumentKind.RESIDENT_RECORD:
            allowed |= {r.id for r in household}
        if not set(prepared.subject_resident_ids) <= allowed or not prepared.subject_resident_ids:
            problems.append("the document is about someone outside the holder's household")
        if options.kind is not DocumentKind.RESIDENT_RECORD and not options.kind.from_family_register and \
                set(prepared.subject_resident_ids) != {holder_id}:
            problems.append("the document is not about the holder")
        return problems

    # --- closing ------------------------------------------------------------------------------------------

    def printed(self, principal: Principal, request_id: str, document_id: str, pdf_sha256: str,
                now: datetime) -> None:
        """The kiosk printed the document: the transaction is closed."""
        principal.require(Role.KIOSK)
        rid = RequestId(request_id)
        with self.ctx.transaction() as tx:
            # the usual case in one statement: this kiosk's released request, this document
            closed = tx.conn.execute(_PRINTED, {
                "where_request_id": rid, "where_kiosk_id": principal.subject, "where_document_id": document_id,
                "where_pdf_sha256": pdf_sha256, "state": SessionState.COMPLETED.value, "closed_at": now}).first()
            if closed is not None:
                audit.append(tx.conn, _stream(closed.kiosk_id), "printed", principal.subject, now, request_id=rid,
                             details={"document_id": document_id})
        if closed is not None:
            self.gateway.mark_printed(document_id, rid, now)
            return
        with self.ctx.transaction() as tx:  # a retry, or something wrong: say what
            row = _load(tx.conn, rid, principal)
            if row.state == SessionState.COMPLETED.value:
                return
            if row.state != SessionState.RELEASED.value:
                raise Conflict(f"the request is {row.state}")
            if row.document_id != document_id or row.pdf_sha256 != pdf_sha256:
                raise Conflict("that is not the document released for this request")
            _set(tx.conn, row, SessionState.COMPLETED, closed_at=now)
            audit.append(tx.conn, _stream(row.kiosk_id), "printed", principal.subject, now, request_id=rid,
                         details={"document_id": document_id})
        self.gateway.mark_printed(document_id, rid, now)

    def abort(self, principal: Principal, request_id: str, reason: str, now: datetime) -> SessionView:
        """Cancel the request: nothing is delivered, the fee is returned, any document made is voided."""
        principal.require(Role.KIOSK, Role.OPERATOR, Role.SYSTEM)
        rid = RequestId(request_id)
        reason = (reason or "aborted")[:40]
        with self.ctx.transaction() as tx:
            row = _load(tx.conn, rid, principal)
            if row.state == SessionState.COMPLETED.value:
                raise Conflict("the document was printed; it can no longer be cancelled")
            if row.state != SessionState.ABORTED.value:
                self._abort_in(tx.conn, row, reason, principal, now)
        view = self.view(principal, rid)
        if view.document_id is not None:
            self._void(rid, view.document_id, reason, now)
        return view

    def _abort_in(self, conn: Connection, row: Any, reason: RefusalReason | str, principal: Principal,
                  now: datetime, document_id: str | None = None, preceded_by: audit.Entry | None = None) -> None:
        text = reason.value if isinstance(reason, RefusalReason) else reason
        values: dict[str, Any] = {"refusal": text, "closed_at": now, "challenge": None}
        if document_id is not None and row.document_id is None:
            values["document_id"] = document_id
        _set(conn, row, SessionState.ABORTED, **values)
        aborted = audit.Entry("aborted", principal.subject, row.request_id, {
            "from": row.state, "reason": text, "refund_yen": row.paid_yen or 0,
            "document_id": document_id or row.document_id})
        audit.append_many(conn, _stream(row.kiosk_id), now, [*([preceded_by] if preceded_by else []), aborted])

    def _void(self, request_id: str, document_id: str, reason: str, now: datetime) -> None:
        with contextlib.suppress(NotFound):  # NotFound: nothing was recorded for it
            self.gateway.void(document_id, request_id, reason, now)
        with self.ctx.transaction() as tx:
            tx.conn.execute(update(kiosk_sessions).where(kiosk_sessions.c.request_id == request_id)
                            .values(void_confirmed_at=now))

    def register_family_register_use(self, principal: Principal, request_id: str, now: datetime) -> Menu:
        """利用登録申請 at the kiosk: register for 戸籍 certificates from the domicile municipality."""
        principal.require(Role.KIOSK)
        rid = RequestId(request_id)
        with self.ctx.db.connect() as conn:
            row = _load(conn, rid, principal)
        if row.state != SessionState.AUTHENTICATED.value:
            raise Conflict(f"the request is {row.state}")
        menu = self.gateway.menu(int(row.resident_id), now)
        if menu.family_register_municipality is None:
            raise Refused(RefusalReason.NO_FAMILY_REGISTER)
        self.gateway.register_family_register_use(int(row.resident_id), menu.family_register_municipality, now, rid)
        fresh = self.gateway.menu(int(row.resident_id), now)
        offer = {item.kind.value: [item.fee_yen, item.issuing_municipality] for item in fresh.items
                 if item.refusal is None}
        with self.ctx.transaction() as tx:
            current = _load(tx.conn, rid, principal)
            tx.conn.execute(update(kiosk_sessions).where(kiosk_sessions.c.request_id == rid)
                            .values(offer=json.dumps(offer)))
            audit.append(tx.conn, _stream(current.kiosk_id), "family_register_use", principal.subject, now,
                         request_id=rid, details={"municipality": menu.family_register_municipality})
        return fresh

    # --- reading and housekeeping ------------------------------------------------------------------------

    def view(self, principal: Principal, request_id: str) -> SessionView:
        with self.ctx.db.connect() as conn:
            row = _load(conn, RequestId(request_id), principal)
        return SessionView(row.request_id, row.kiosk_id, SessionState(row.state), row.refusal, row.document_id,
                           row.fee_yen, row.paid_yen)

    def reconcile(self, principal: Principal, now: datetime) -> dict[str, int]:
        """Abort requests left open past their time, and void documents of aborted requests whose voiding
        was not confirmed (a crash between the two). Safe to run at any time, from any process."""
        principal.require(Role.OPERATOR, Role.SYSTEM)
        with self.ctx.db.connect() as conn:
            stale = list(conn.execute(select(kiosk_sessions.c.request_id).where(
                kiosk_sessions.c.state.in_([SessionState.CHALLENGED.value, SessionState.AUTHENTICATED.value,
                                            SessionState.RENDERING.value]),
                kiosk_sessions.c.expires_at < now)).scalars())
            unvoided = list(conn.execute(select(kiosk_sessions.c.request_id, kiosk_sessions.c.document_id).where(
                kiosk_sessions.c.state == SessionState.ABORTED.value, kiosk_sessions.c.document_id.is_not(None),
                kiosk_sessions.c.void_confirmed_at.is_(None))))
            unconfirmed = conn.execute(select(kiosk_sessions.c.request_id).where(
                kiosk_sessions.c.state == SessionState.RELEASED.value,
                kiosk_sessions.c.expires_at < now)).scalars().all()
        for rid in stale:
            try:
                self.abort(principal, rid, RefusalReason.SESSION_EXPIRED.value, now)
            except Conflict:
                continue
        for rid, document_id in unvoided:
            self._void(rid, document_id, "reconciled", now)
        return {"expired": len(stale), "voided": len(unvoided), "released_unconfirmed": len(unconfirmed)}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (ValueError, TypeError):
        raise InvalidInput(f"{what} is not base64") from None


class HttpGateway:
    """The municipalities' servers over HTTP (LGWAN), authenticated as the centre with an operator API key."""

    def __init__(self, base_url: str, api_key: str, *, timeout: float = 60.0) -> None:
        import httpx

        self.base = base_url.rstrip("/") + "/api/kiosk/municipal"
        self.client = httpx.Client(timeout=timeout, headers={"authorization": f"Bearer {api_key}",
                                                             "accept": "application/json"})

    def _check(self, response: Any) -> Any:
        if response.status_code == 403:
            body = response.json()
            if body.get("error") == "Refused":
                raise Refused(RefusalReason(body["reason"]), body.get("refusal_detail"))
        if response.status_code == 404:
            raise NotFound(response.json().get("detail", "not found"))
        if response.status_code == 409:
            raise Conflict(response.json().get("detail", "conflict"))
        if response.status_code >= 400:
            raise DomainError(f"municipal server answered HTTP {response.status_code}")
        return response

    @staticmethod
    def _document(response: Any) -> PreparedDocument:
        h = response.headers
        # x-kiosk-request-id, not X-Request-Id: that header is the web app's own per-HTTP-request id
        return PreparedDocument(h["x-document-id"], h["x-kiosk-request-id"], h["x-municipality"],
                                DocumentKind(h["x-kind"]), DocumentState(h["x-state"]), response.content,
                                h["x-pdf-sha256"], h["x-holder-ref"],
                                int(h["x-holder-resident-id"]), tuple(json.loads(h["x-subject-resident-ids"])),
                                int(h["x-copies"]))

    def menu(self, holder_id: int, now: datetime) -> Menu:
        return Menu.from_dict(self._check(self.client.post(self.base + "/menu", json={"holder_id": holder_id}))
                              .json())

    def prepare(self, order: DocumentOrder, now: datetime, deadline: float | None) -> PreparedDocument:
        remaining = None if deadline is None else max(1, int((deadline - monotonic_time.monotonic()) * 1000))
        body = {"request_id": order.request_id, "holder_resident_id": order.holder_resident_id,
                "issuing_municipality": order.issuing_municipality, "options": order.options.to_dict(),
                "verify_base_url": order.verify_base_url, "timeout_ms": remaining}
        return self._document(self._check(self.client.post(self.base + "/documents", json=body)))

    def _step(self, document_id: str, step: str, request_id: str, reason: str = "aborted") -> None:
        self._check(self.client.post(f"{self.base}/documents/{document_id}/{step}",
                                     json={"request_id": request_id, "reason": reason}))

    def confirm(self, document_id: str, request_id: str, now: datetime) -> None:
        self._step(document_id, "confirm", request_id)

    def mark_printed(self, document_id: str, request_id: str, now: datetime) -> None:
        self._step(document_id, "printed", request_id)

    def void(self, document_id: str, request_id: str, reason: str, now: datetime) -> None:
        self._step(document_id, "void", request_id, reason)

    def fetch(self, document_id: str, request_id: str) -> PreparedDocument:
        return self._document(self._check(self.client.get(f"{self.base}/documents/{document_id}",
                                                          params={"request_id": request_id})))

    def register_family_register_use(self, resident_id: int, municipality_code: str, now: datetime,
                                     request_id: str) -> None:
        self._check(self.client.post(self.base + "/family-register-use", json={
            "resident_id": resident_id, "municipality_code": municipality_code, "request_id": request_id}))
