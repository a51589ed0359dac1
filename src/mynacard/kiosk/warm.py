"""Warming a server process before its first customer (起動時の準備).

A process's first certificate costs some 0.35 s of CPU more than the next ones: ReportLab parses the two IPAex
fonts (0.15 s), the parts every certificate shares are built (the copy-void tile, the page furniture), and
pyHanko and asn1crypto set up their classes the first time they sign. :func:`warm_up` pays that once as the
process starts, before it accepts a connection, by rendering and signing a specimen that belongs to nobody
(its key is made for the occasion and thrown away), so that the first resident at 06:30 does not wait for it.
What depends on a municipality (its signing key, its fixed text) is still made by its first certificate.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime
from functools import cache

from mynacard.fonts import FontMissing
from mynacard.kiosk import pdf, seal, signing
from mynacard.kiosk.model import DocumentContent, DocumentId, DocumentKind, Field, RequestId, Section

__all__ = ["warm_up"]

log = logging.getLogger(__name__)

_SPECIMEN = DocumentContent(
    kind=DocumentKind.RESIDENT_RECORD_ENTRY, title="見本", municipality_code="000000", municipality_name="見本",
    issuer="見本", issued_on=date(2026, 4, 1), certification="この書類は見本です。",
    sections=(Section("見本", (Field("氏名", "見本"), Field("住所", "見本 1-2-3"))),))


@cache
def warm_up() -> bool:
    """Render and sign a specimen certificate, once per process; False (and a warning) when the fonts are
    missing, which is no reason to keep the rest of the web app from starting."""
    try:
        unsigned = pdf.render(_SPECIMEN, document_id=DocumentId.new(), request_id=RequestId.new(),
                              holder_ref="0" * 32, verify_url=f"http://localhost/kiosk/verify/{DocumentId.new()}",
                              seal_jpeg=seal.on_paper_jpeg(seal.municipal_seal_png("見本")),
                              signature=signing.SignatureSlot("見本", "見本", datetime.now(UTC)))
    except FontMissing as exc:
        log.warning("kiosk certificates cannot be rendered: %s", exc)
        return False
    certificate, key = signing.new_authority(datetime.now(UTC), "mynacard specimen")
    signing.DocumentSigner(key, certificate, [certificate]).sign(unsigned)
    return True
