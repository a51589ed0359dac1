"""Public verification of a certificate (the page its QR code opens): its state, and for three months its
original content with the individual number masked."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from mynacard.context import Context
from mynacard.errors import InvalidInput, NotFound
from mynacard.kiosk.model import DocumentContent, DocumentId, DocumentKind, DocumentState
from mynacard.kiosk.municipal_scope import sealer, town
from mynacard.kiosk.tables import kiosk_documents

__all__ = ["VERIFIABLE_FOR", "VerificationView", "verification"]

VERIFIABLE_FOR = timedelta(days=92)
"""The verification page shows a certificate's content for three months after issuance."""


@dataclass(frozen=True)
class VerificationView:
    """What anyone holding a certificate (paper or PDF) sees on the verification page."""

    document_id: str
    state: DocumentState
    title: str
    municipality_name: str
    issued_at: datetime | None
    prepared_at: datetime
    content: DocumentContent | None
    """None once the verification period is over (the content is no longer shown)."""
    request_id: str
    pdf_sha256: str
    content_digest: str
    verifiable_until: datetime
    copies: int

    @property
    def valid(self) -> bool:
        return self.state.valid

    @property
    def expired(self) -> bool:
        return self.content is None


def verification(ctx: Context, document_id: str, now: datetime) -> VerificationView:
    """The verification page's view of a certificate: its state and original content (the individual
    number masked). Unknown IDs and IDs that are not well formed are both :class:`NotFound`."""
    try:
        DocumentId(document_id)
    except InvalidInput:
        raise NotFound("no such certificate") from None
    with ctx.db.connect() as conn:
        row = conn.execute(select(kiosk_documents).where(kiosk_documents.c.document_id == document_id)).first()
    if row is None:
        raise NotFound("no such certificate")
    content = None
    if now <= row.verifiable_until:
        raw = sealer(ctx).open(row.sealed_content, b"kiosk_documents.content:" + document_id.encode())
        content = DocumentContent.from_dict(json.loads(raw))
    title = DocumentKind(row.kind).label_ja if content is None else content.title
    issuer = town(ctx, row.municipality_code)
    return VerificationView(document_id, DocumentState(row.state), title, issuer.full_name, row.issued_at,
                            row.prepared_at, content, row.request_id, row.pdf_sha256, row.content_digest,
                            row.verifiable_until, row.copies)
