"""HTTP routes of convenience-store issuance: the centre's API for kiosks (role ``kiosk``, API key), the
municipal servers' API for the centre (role ``operator``), and the public verification page that a
certificate's QR code opens (``/kiosk/verify/{document_id}``). Thin: parse, call the service, render."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from fastapi import APIRouter, Depends, FastAPI, File, HTTPException, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from mynacard.context import Context
from mynacard.errors import InvalidInput, NotFound
from mynacard.jpki.service import AuthoritiesMissing
from mynacard.kiosk import municipal, pdf, service, signing
from mynacard.kiosk.centre import Centre, b64, unb64
from mynacard.kiosk.keys import KeyCache
from mynacard.kiosk.model import MAX_COPIES, DocumentKind, DocumentOptions, Refused
from mynacard.kiosk.warm import warm_up
from mynacard.principal import Principal, Role
from mynacard.webkit.deps import LoginRequired, context, now, principal, render
from mynacard.webkit.i18n import register
from mynacard.webkit.params import Id, Key, KeyPath, Municipality, TextPath

__all__ = ["centre_of", "kiosk_caller", "now_of", "router", "warm_up"]

register({
    "kiosk.verify.title": ("証明書の確認", "Verify a certificate"),
    "kiosk.verify.lead": ("コンビニ交付の証明書に印刷された証明書番号（QRコード）で、発行時の内容を確認できます。",
                          "Enter the certificate number printed on a kiosk certificate (or scan its QR code) to "
                          "see what was issued."),
    "kiosk.verify.number": ("証明書番号", "Certificate number"),
    "kiosk.verify.submit": ("確認する", "Verify"),
    "kiosk.verify.upload": ("PDFファイルで確認", "Verify a PDF file"),
    "kiosk.verify.upload_submit": ("PDFを確認する", "Check the PDF"),
    "kiosk.verify.valid": ("この証明書は有効に発行されたものです。", "This certificate was validly issued."),
    "kiosk.verify.void": ("この証明書は無効です（発行が取り消されました）。",
                          "This certificate is void (the issuance was cancelled)."),
    "kiosk.verify.not_issued": ("この証明書は交付されていません。", "This certificate was never handed out."),
    "kiosk.verify.expired": ("確認期間（発行から3か月）を過ぎたため、内容は表示できません。",
                             "The verification period (three months) is over; the content is no longer shown."),
    "kiosk.verify.compare": ("お手元の証明書と、下の内容が一致することを確かめてください。",
                             "Check that the certificate in your hands shows the same as below."),
    "kiosk.verify.issued_at": ("交付日時", "Issued at"),
    "kiosk.verify.municipality": ("発行市区町村", "Issued by"),
    "kiosk.verify.request": ("交付要求ID", "Request ID"),
    "kiosk.verify.digest": ("内容要約値（SHA-256）", "Content digest (SHA-256)"),
    "kiosk.verify.pdf_digest": ("PDFのSHA-256", "PDF SHA-256"),
    "kiosk.verify.copies": ("部数", "Copies"),
    "kiosk.verify.masked": ("個人番号は下4桁のみ表示しています。",
                            "The individual number shows its last 4 digits only."),
    "kiosk.verify.signature_ok": ("PDFの電子署名は有効で、発行された原本と一致します。",
                                  "The PDF's signature is valid and it is the issued original."),
    "kiosk.verify.signature_bad": ("PDFの電子署名を確認できません。改ざんされたか、原本ではありません。",
                                   "The PDF's signature does not verify: it was changed or is not an original."),
    "kiosk.verify.mismatch": ("署名は有効ですが、発行記録のPDFと一致しません。",
                              "The signature verifies but the file is not the issued PDF."),
    "kiosk.verify.signer": ("署名者", "Signed by"),
    "kiosk.verify.roots": ("検証用の認証局証明書", "CA certificate for validation"),
})


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Before the server accepts a connection: ``MYNACARD_KIOSK_CLOCK`` sets a demo installation's clock; on a
    real installation it stops the server from starting, with the reason (as the portal's demo reader does),
    rather than shifting its clock."""
    ctx: Context | None = getattr(app.state, "ctx", None)
    if ctx is not None and os.environ.get(service.CLOCK_ENV):
        ctx.clock = await run_in_threadpool(service.clock_from_env, ctx)  # DemoOnly: refused
        app.state.kiosk_clock_applied = True
    yield


router = APIRouter(lifespan=_lifespan)

Sha256 = Annotated[str, Field(pattern=r"^[0-9a-fA-F]{64}$")]
"""A SHA-256 in hexadecimal (a PDF's)."""


def now_of(request: Request) -> datetime:
    """The installation's clock (:func:`mynacard.webkit.deps.now`), once ``MYNACARD_KIOSK_CLOCK`` is settled: an app
    whose start-up was skipped applies it now in a demo installation, and elsewhere answers 503 with the reason
    rather than run on a clock the operator did not mean."""
    if os.environ.get(service.CLOCK_ENV) and not getattr(request.app.state, "kiosk_clock_applied", False):
        ctx = context(request)
        try:
            ctx.clock = service.clock_from_env(ctx)
        except (service.DemoOnly, InvalidInput) as exc:  # normally refused at start-up (the lifespan above)
            raise HTTPException(503, str(exc)) from None
        request.app.state.kiosk_clock_applied = True
    return now(request)


def centre_of(request: Request) -> Centre:
    """The centre of this app (built once; immutable). Tests put their own on ``app.state.kiosk_centre``. The
    verification URL in its certificates' QR codes is configuration (``MYNACARD_KIOSK_PUBLIC_URL``, else the
    JPKI base URL), never a request's Host header."""
    built: Centre | None = getattr(request.app.state, "kiosk_centre", None)
    if built is None:
        built = service.build_centre(context(request), service.public_url(context(request)))
        request.app.state.kiosk_centre = built
    return built


def _refused(exc: Refused) -> JSONResponse:
    return JSONResponse({"error": "Refused", "reason": exc.reason.value, "detail": str(exc),
                         "refusal_detail": exc.detail, "message_ja": exc.reason.message_ja,
                         "message_en": exc.reason.message_en}, status_code=403)


def _kiosk(who: Principal) -> Principal:
    who.require(Role.KIOSK)
    return who


async def kiosk_caller(request: Request) -> Principal:
    """The caller of a centre route: a kiosk's API key through the app's short-lived key memory
    (:mod:`mynacard.kiosk.keys`), anything else as every route does. Async: a key remembered is answered on the
    event loop, and only a look-up goes to a worker thread (a synchronous dependency would cost every request
    a second trip through the thread pool besides its route's)."""
    auth = request.headers.get("authorization", "")
    if not auth.lower().startswith("bearer "):
        return await run_in_threadpool(principal, request)
    cache: KeyCache | None = getattr(request.app.state, "kiosk_keys", None)
    if cache is None:
        cache = request.app.state.kiosk_keys = KeyCache()
    key = auth[7:].strip()
    who = cache.remembered(key) or await run_in_threadpool(cache.principal, context(request), key)
    if who is None:
        raise LoginRequired("login required")
    return who


# --- the centre, for kiosks ---------------------------------------------------------------------------------

class OpenIn(BaseModel):
    request_id: str = Field(min_length=32, max_length=32)


class AuthenticateIn(BaseModel):
    certificate: str = Field(min_length=1, max_length=16_384)
    """The card's authentication certificate (Base64 of DER, about 1.5 KB)."""
    signature: str = Field(min_length=1, max_length=2_048)


class OptionsIn(BaseModel):
    """What the resident chose (:class:`~mynacard.kiosk.model.DocumentOptions`)."""

    kind: DocumentKind
    member_ids: list[Id] = Field(default_factory=list, max_length=50)
    include_relationship: bool = False
    include_domicile: bool = False
    include_individual_number: bool = False
    copies: int = Field(default=1, ge=1, le=MAX_COPIES)


class OrderIn(BaseModel):
    options: OptionsIn
    paid_yen: int = Field(ge=0, le=100_000)
    timeout_ms: int = Field(default=30_000, ge=1, le=120_000)


class PrintedIn(BaseModel):
    document_id: str = Field(min_length=1, max_length=64)
    pdf_sha256: Sha256


class AbortIn(BaseModel):
    reason: str = Field(default="cancelled", max_length=40)


_SESSIONS = "/api/kiosk/centre/sessions"


@router.post(_SESSIONS, tags=["kiosk centre"])
def open_session(body: OpenIn, request: Request, who: Principal = Depends(kiosk_caller)) -> Response:
    """A card is on the reader: open the request (its ID made by the kiosk) and get a single-use challenge."""
    kiosk = _kiosk(who)  # the role first: nothing is built or read for another caller
    try:
        opened = centre_of(request).open_session(kiosk, body.request_id, now_of(request))
    except Refused as exc:
        return _refused(exc)
    return JSONResponse({"request_id": opened.request_id, "challenge": b64(opened.challenge),
                         "expires_at": opened.expires_at.isoformat()})


@router.post(_SESSIONS + "/{request_id}/authenticate", tags=["kiosk centre"])
def authenticate(request_id: KeyPath, body: AuthenticateIn, request: Request,
                 who: Principal = Depends(kiosk_caller)) -> Response:
    """The card's certificate and its signature over the challenge → the menu for the holder."""
    kiosk = _kiosk(who)
    try:
        menu = centre_of(request).authenticate(kiosk, request_id, unb64(body.certificate, "certificate"),
                                               unb64(body.signature, "signature"), now_of(request))
    except Refused as exc:
        return _refused(exc)
    except AuthoritiesMissing as exc:  # JPKI not set up yet (mynacard jpki init): the request stays open
        return JSONResponse({"error": "AuthoritiesMissing", "detail": str(exc)}, status_code=503,
                            headers={"Retry-After": "3600"})
    return JSONResponse({"request_id": request_id, "menu": menu.to_dict()})


@router.post(_SESSIONS + "/{request_id}/order", tags=["kiosk centre"],
             responses={200: {"content": {"application/pdf": {}}}})
def order(request_id: KeyPath, body: OrderIn, request: Request,
          who: Principal = Depends(kiosk_caller)) -> Response:
    """Paid: the released, signed PDF (headers name the request, the document and the PDF's SHA-256)."""
    kiosk = _kiosk(who)
    try:
        options = DocumentOptions.from_dict(body.options.model_dump(mode="json"))
        released = centre_of(request).order(kiosk, request_id, options, body.paid_yen, now_of(request),
                                            timeout_ms=body.timeout_ms)
    except Refused as exc:
        return _refused(exc)
    return Response(released.pdf, media_type="application/pdf", headers={
        "x-kiosk-request-id": released.request_id, "x-document-id": released.document_id,
        "x-pdf-sha256": released.pdf_sha256, "x-copies": str(released.copies),
        "x-change-yen": str(released.change_yen), "cache-control": "no-store"})


@router.post(_SESSIONS + "/{request_id}/printed", tags=["kiosk centre"])
def printed(request_id: KeyPath, body: PrintedIn, request: Request,
            who: Principal = Depends(kiosk_caller)) -> Response:
    kiosk = _kiosk(who)
    centre_of(request).printed(kiosk, request_id, body.document_id, body.pdf_sha256, now_of(request))
    return JSONResponse({"request_id": request_id, "state": "completed"})


@router.post(_SESSIONS + "/{request_id}/abort", tags=["kiosk centre"])
def abort(request_id: KeyPath, body: AbortIn, request: Request,
          who: Principal = Depends(kiosk_caller)) -> Response:
    kiosk = _kiosk(who)
    view = centre_of(request).abort(kiosk, request_id, body.reason, now_of(request))
    return JSONResponse({"request_id": request_id, "state": view.state.value, "refund_yen": view.paid_yen or 0})


@router.post(_SESSIONS + "/{request_id}/family-register-use", tags=["kiosk centre"])
def family_register_use(request_id: KeyPath, request: Request,
                        who: Principal = Depends(kiosk_caller)) -> Response:
    kiosk = _kiosk(who)
    try:
        menu = centre_of(request).register_family_register_use(kiosk, request_id, now_of(request))
    except Refused as exc:
        return _refused(exc)
    return JSONResponse({"request_id": request_id, "menu": menu.to_dict()})


@router.get(_SESSIONS + "/{request_id}", tags=["kiosk centre"])
def session_state(request_id: KeyPath, request: Request,
                  who: Principal = Depends(kiosk_caller)) -> dict[str, Any]:
    kiosk = _kiosk(who)
    view = centre_of(request).view(kiosk, request_id)
    return {"request_id": view.request_id, "state": view.state.value, "refusal": view.refusal,
            "document_id": view.document_id}


# --- public verification ----------------------------------------------------------------------------------

@router.get("/kiosk/verify", response_class=HTMLResponse, include_in_schema=False)
def verify_form(request: Request) -> HTMLResponse:
    return render(request, "kiosk_verify_form.html")


@router.get("/kiosk/verify/ca.pem", response_class=PlainTextResponse, tags=["kiosk verification"])
def trust_roots(ctx: Context = Depends(context)) -> PlainTextResponse:
    """The document-signing root(s) certificates chain to (PEM), for pyHanko, Acrobat, pdfsig."""
    pems = [x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM).decode()
            for der in municipal.trust_roots_der(ctx)]
    return PlainTextResponse("".join(pems), media_type="application/x-pem-file")


def _view_json(view: municipal.VerificationView) -> dict[str, Any]:
    return {"document_id": view.document_id, "state": view.state.value, "valid": view.valid,
            "title": view.title, "municipality": view.municipality_name,
            "issued_at": view.issued_at.isoformat() if view.issued_at else None, "request_id": view.request_id,
            "pdf_sha256": view.pdf_sha256, "content_digest": view.content_digest, "copies": view.copies,
            "content": view.content.to_dict(reveal=False) if view.content else None}


@router.get("/kiosk/verify/{document_id}", tags=["kiosk verification"])
def verify(document_id: TextPath, request: Request, ctx: Context = Depends(context)) -> Response:
    """The certificate's state and original content (the individual number masked). Public: the ID is a
    130-bit random value printed only on the certificate."""
    view = municipal.verification(ctx, document_id.strip().upper(), now_of(request))
    if "application/json" in request.headers.get("accept", ""):
        return JSONResponse(_view_json(view))
    return render(request, "kiosk_verify.html", view=view, check=None)


@router.post("/kiosk/verify", response_class=HTMLResponse, include_in_schema=False)
def verify_upload(request: Request, file: UploadFile = File(...),
                  ctx: Context = Depends(context)) -> HTMLResponse:
    """Check an uploaded PDF: its signature against the document-signing roots, and its bytes against the
    issued original."""
    data = file.file.read(2_000_001)  # a sync route: pyHanko runs its own event loop
    if len(data) > 2_000_000:
        raise InvalidInput("a certificate PDF is smaller than 2 MB")
    check = signing.validate_pdf(data, municipal.trust_roots_der(ctx))
    try:
        facts = pdf.read_facts(data)
    except ValueError:
        raise NotFound("this is not a kiosk certificate") from None
    view = municipal.verification(ctx, facts.document_id, now_of(request))
    same = hashlib.sha256(data).hexdigest() == view.pdf_sha256
    return render(request, "kiosk_verify.html", view=view, check={"ok": check.ok, "same": same,
                                                                  "signer": check.signer})


# --- the municipalities' issuing servers, for the centre (LGWAN) ---------------------------------------------

_MUNICIPAL = "/api/kiosk/municipal"


def _operator(who: Principal) -> Principal:
    who.require(Role.OPERATOR, Role.SYSTEM)
    return who


class MenuIn(BaseModel):
    holder_id: Id


class DocumentOrderIn(BaseModel):
    request_id: str = Field(min_length=32, max_length=32)
    holder_resident_id: Id
    issuing_municipality: Municipality
    options: OptionsIn
    verify_base_url: str = Field(min_length=8, max_length=200, pattern=r"^https?://[^\s]+$")
    timeout_ms: int | None = Field(default=None, ge=1, le=120_000)


class DocumentStepIn(BaseModel):
    request_id: Key
    reason: str = Field(default="aborted", max_length=40)


class UseIn(BaseModel):
    resident_id: Id
    municipality_code: Municipality
    request_id: Key


def _document_response(doc: municipal.PreparedDocument) -> Response:
    import json as _json

    return Response(doc.pdf, media_type="application/pdf", headers={
        "x-document-id": doc.document_id, "x-kiosk-request-id": doc.request_id,
        "x-municipality": doc.municipality_code, "x-kind": doc.kind.value, "x-state": doc.state.value,
        "x-pdf-sha256": doc.pdf_sha256, "x-holder-ref": doc.holder_ref,
        "x-holder-resident-id": str(doc.holder_resident_id),
        "x-subject-resident-ids": _json.dumps(list(doc.subject_resident_ids)), "x-copies": str(doc.copies),
        "cache-control": "no-store"})


@router.post(_MUNICIPAL + "/menu", tags=["kiosk municipal"])
def municipal_menu(body: MenuIn, request: Request, ctx: Context = Depends(context),
                   who: Principal = Depends(principal)) -> Response:
    try:
        menu = municipal.menu(ctx, _operator(who), body.holder_id, now_of(request))
    except Refused as exc:
        return _refused(exc)
    return JSONResponse(menu.to_dict())


@router.post(_MUNICIPAL + "/documents", tags=["kiosk municipal"],
             responses={200: {"content": {"application/pdf": {}}}})
def municipal_prepare(body: DocumentOrderIn, request: Request, ctx: Context = Depends(context),
                      who: Principal = Depends(principal)) -> Response:
    """Render and sign the document for one request (prepared: not valid until confirmed)."""
    import time as _time

    deadline = _time.monotonic() + body.timeout_ms / 1000 if body.timeout_ms else None
    order = municipal.DocumentOrder(body.request_id, body.holder_resident_id, body.issuing_municipality,
                                    DocumentOptions.from_dict(body.options.model_dump(mode="json")),
                                    body.verify_base_url)
    try:
        doc = municipal.prepare(ctx, _operator(who), order, now_of(request), deadline=deadline)
    except Refused as exc:
        return _refused(exc)
    return _document_response(doc)


@router.get(_MUNICIPAL + "/documents/{document_id}", tags=["kiosk municipal"])
def municipal_fetch(document_id: KeyPath, request_id: Annotated[str, Query(min_length=1, max_length=64)],
                    ctx: Context = Depends(context),
                    who: Principal = Depends(principal)) -> Response:
    return _document_response(municipal.fetch(ctx, _operator(who), document_id, request_id))


@router.post(_MUNICIPAL + "/documents/{document_id}/{step}", tags=["kiosk municipal"])
def municipal_step(document_id: KeyPath, step: TextPath, body: DocumentStepIn,
                   request: Request,
                   ctx: Context = Depends(context), who: Principal = Depends(principal)) -> dict[str, str]:
    """``confirm`` (released: valid), ``printed``, or ``void`` (aborted: never valid)."""
    moment = ctx.now()
    if step == "confirm":
        municipal.confirm(ctx, _operator(who), document_id, body.request_id, moment)
    elif step == "printed":
        municipal.mark_printed(ctx, _operator(who), document_id, body.request_id, moment)
    elif step == "void":
        municipal.void(ctx, _operator(who), document_id, body.request_id, body.reason, moment)
    else:
        raise NotFound("no such step")
    return {"document_id": document_id, "step": step}


@router.post(_MUNICIPAL + "/family-register-use", tags=["kiosk municipal"])
def municipal_use(body: UseIn, request: Request, ctx: Context = Depends(context),
                  who: Principal = Depends(principal)) -> Response:
    try:
        municipal.register_family_register_use(ctx, _operator(who), body.resident_id, body.municipality_code,
                                               now_of(request), body.request_id)
    except Refused as exc:
        return _refused(exc)
    return JSONResponse({"registered": True})
