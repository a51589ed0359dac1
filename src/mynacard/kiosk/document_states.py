"""A prepared certificate's later steps, asked by the centre: :func:`confirm` makes it valid once the centre
has checked it against the card holder and released it, :func:`mark_printed` records the print, :func:`void`
makes it invalid for ever when the request is aborted; :func:`fetch` hands it out again for a retried release.

Each step is one transaction with its audit record; repeating a step that already happened does nothing."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, select, update

from mynacard.context import Context
from mynacard.errors import Conflict, NotFound
from mynacard.kiosk import audit
from mynacard.kiosk.model import DocumentState
from mynacard.kiosk.municipal_scope import CENTRE_ROLES, audit_stream, sealer
from mynacard.kiosk.preparation import PreparedDocument, document_of_row
from mynacard.kiosk.tables import kiosk_documents
from mynacard.principal import Principal

__all__ = ["confirm", "fetch", "mark_printed", "void"]


_DOCUMENT_MOVE = update(kiosk_documents).where(
    kiosk_documents.c.document_id == bindparam("where_document_id"),
    kiosk_documents.c.request_id == bindparam("where_request_id"),
    kiosk_documents.c.state == bindparam("where_state")).returning(kiosk_documents.c.municipality_code)
"""A document's usual step; the SET clause is the parameters' keys that name columns."""


def _move(ctx: Context, principal: Principal, document_id: str, request_id: str, now: datetime,
          allowed: set[DocumentState], target: DocumentState, action: str, *,
          details: dict[str, Any] | None = None, column: str | None = None) -> DocumentState:
    """Move the request's document from one of ``allowed`` to ``target`` (setting ``column`` to ``now``), audited
    as ``action``; already at ``target``: nothing happens. :class:`NotFound` for no such document of the
    request, :class:`Conflict` from any other state."""
    principal.require(*CENTRE_ROLES)
    values: dict[str, Any] = {"state": target.value}
    if column:
        values[column] = now
    if details and "reason" in details:
        values["void_reason"] = str(details["reason"])[:40]
    with ctx.transaction() as tx:
        if len(allowed) == 1:
            # the usual step (prepared → issued, issued → printed) in one statement; anything else (a retry,
            # a wrong state, an unknown document) is sorted out below
            (source,) = allowed
            moved = tx.conn.execute(_DOCUMENT_MOVE, {"where_document_id": document_id,
                                                     "where_request_id": request_id, "where_state": source.value,
                                                     **values}).first()
            if moved is not None:
                _audit(tx.conn, principal, now, moved.municipality_code, document_id, request_id, action,
                       (source, target), details)
                return target
        query = select(kiosk_documents.c.state, kiosk_documents.c.municipality_code).where(
            kiosk_documents.c.document_id == document_id, kiosk_documents.c.request_id == request_id)
        if tx.conn.dialect.name == "postgresql":
            query = query.with_for_update()
        row = tx.conn.execute(query).first()
        if row is None:
            raise NotFound("no such document for this request")
        state = DocumentState(row.state)
        if state is target:
            return state
        if state not in allowed:
            raise Conflict(f"a {state.value} document cannot become {target.value}")
        tx.conn.execute(update(kiosk_documents).where(kiosk_documents.c.document_id == document_id).values(**values))
        _audit(tx.conn, principal, now, row.municipality_code, document_id, request_id, action, (state, target),
               details)
    return target


def _audit(conn: Connection, principal: Principal, now: datetime, code: str, document_id: str, request_id: str,
           action: str, step: tuple[DocumentState, DocumentState], details: dict[str, Any] | None) -> None:
    """The audit record of one step (``step``: from, to) in the request's chain of the municipality."""
    source, target = step
    audit.append(conn, audit_stream(code, request_id), action, principal.subject, now, request_id=request_id,
                 details={"document_id": document_id, "from": source.value, "to": target.value, **(details or {})})


def confirm(ctx: Context, principal: Principal, document_id: str, request_id: str, now: datetime) -> None:
    """The centre released the document to the kiosk: from now on it is valid."""
    _move(ctx, principal, document_id, request_id, now, {DocumentState.PREPARED}, DocumentState.ISSUED,
          "document_issued", column="issued_at")


def mark_printed(ctx: Context, principal: Principal, document_id: str, request_id: str, now: datetime) -> None:
    """The kiosk printed the released document."""
    _move(ctx, principal, document_id, request_id, now, {DocumentState.ISSUED}, DocumentState.PRINTED,
          "document_printed", column="printed_at")


def void(ctx: Context, principal: Principal, document_id: str, request_id: str, reason: str,
         now: datetime) -> None:
    """The request was aborted: the document is never valid (the verification page says so)."""
    _move(ctx, principal, document_id, request_id, now,
          {DocumentState.PREPARED, DocumentState.ISSUED, DocumentState.PRINTED}, DocumentState.VOID,
          "document_voided", details={"reason": reason}, column="voided_at")


def fetch(ctx: Context, principal: Principal, document_id: str, request_id: str) -> PreparedDocument:
    """A document already made for this request (for a retried release)."""
    principal.require(*CENTRE_ROLES)
    with ctx.db.connect() as conn:
        row = conn.execute(select(kiosk_documents).where(kiosk_documents.c.document_id == document_id,
                                                         kiosk_documents.c.request_id == request_id)).first()
    if row is None:
        raise NotFound("no such document for this request")
    return document_of_row(row, sealer(ctx))
