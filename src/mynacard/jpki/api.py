"""HTTP routes of JPKI: the CA certificates and the repository page (public), CRLs and the OCSP responder
(registered verifiers only), the verification service, and the operator's and window's JSON API.

Interface (README): ``GET /jpki/ca/sign.pem``, ``/jpki/ca/auth.pem``; ``GET /jpki/crl/sign.crl``,
``auth.crl``, ``sign-delta.crl``, ``auth-delta.crl`` (each takes ``?generation=N``; without it the issuing
generation); ``POST /jpki/ocsp`` and ``GET /jpki/ocsp/{base64 request}``. The J-LIS operator's pages are in
:mod:`mynacard.jpki.admin_pages`.
"""

from __future__ import annotations

import base64
import binascii
import logging
import threading
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from mynacard.context import Context
from mynacard.errors import Forbidden, InvalidInput, NotFound
from mynacard.jpki import ocsp, ocsp_http, responder, service, verifiers
from mynacard.jpki.config import settings_of
from mynacard.jpki.model import CaKind, Purpose, VerifierKind, parse_serial
from mynacard.jpki.ocsp import MAX_REQUEST_BYTES, ResponseStatus
from mynacard.jpki.relying_party import RelyingParty, Verification
from mynacard.jpki.responder import responder_for
from mynacard.principal import Principal, Role
from mynacard.webkit.deps import LoginRequired, context, optional_principal, principal, render
from mynacard.webkit.i18n import register
from mynacard.webkit.params import Id, IdPath, IdQuery, KeyPath, Limit, Name, ShortText, TextPath

__all__ = ["router"]

log = logging.getLogger(__name__)

register({
    "jpki.title": ("公的個人認証サービス 認証局", "JPKI certificate authorities"),
    "jpki.lead": ("署名用・利用者証明用の認証局の証明書、失効情報の配布点、OCSP応答局の案内です。",
                  "Certificates of the signing and user-authentication CAs, where revocation information is "
                  "published, and the OCSP responder."),
    "jpki.kind.sign": ("署名用認証局", "Signing CA"),
    "jpki.kind.auth": ("利用者証明用認証局", "User-authentication CA"),
    "jpki.generation": ("世代", "Generation"),
    "jpki.valid": ("有効期間", "Validity"),
    "jpki.fingerprint": ("フィンガープリント (SHA-256)", "Fingerprint (SHA-256)"),
    "jpki.current": ("発行中", "issuing"),
    "jpki.retired": ("発行終了", "retired"),
    "jpki.download": ("ダウンロード", "Download"),
    "jpki.revocation": ("失効情報", "Revocation information"),
    "jpki.revocation_note": ("CRL と OCSP は登録された署名検証者・利用者証明検証者のみが利用できます。",
                             "CRLs and OCSP are for registered signature and authentication verifiers only."),
    "jpki.issued": ("発行済み証明書", "Certificates issued"),
    "jpki.good": ("有効", "valid"),
    "jpki.revoked": ("失効", "revoked"),
    "jpki.none": ("認証局はまだ作られていません。", "The CAs have not been created yet."),
    "jpki.cps": ("認証業務運用規程", "Certification practice statement"),
    "jpki.cps_text": ("本認証局は mynacard の模擬環境です。鍵はこの環境で生成されたもので、実際の J-LIS の鍵では"
                      "ありません。プロファイルは docs/JPKI-PROFILE.md に記載しています。",
                      "This CA belongs to a mynacard installation. Its keys were generated here and are not "
                      "J-LIS keys. The profile is documented in docs/JPKI-PROFILE.md."),
})


# --- background schedule: CRLs when due, the query log, warm OCSP answers ------------------------------------

def _scheduler(ctx: Context, stop: threading.Event) -> None:
    system = Principal.system("jpki-scheduler")
    ticks = 0
    while not stop.wait(0.5):
        ticks += 1
        try:
            verifiers.flush_query_log(ctx)
            responder_for(ctx).refresh_revoked(ctx.now())  # revoked answers pre-signed as soon as seen
            if ticks % 60 == 0:  # every 30 s; the schedule never creates a CA (mynacard jpki init does)
                service.publish_crls(ctx, system, ctx.now(), create=False)
        except Exception:  # the schedule carries on; the next tick retries
            log.exception("jpki scheduler")


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    ctx: Context | None = getattr(app.state, "ctx", None)
    stop = threading.Event()
    thread = None
    if ctx is not None and settings_of(ctx).scheduler:
        responder_for(ctx)  # from now on this process sees every revocation (and signs its answer)
        thread = threading.Thread(target=_scheduler, args=(ctx, stop), name="jpki-scheduler", daemon=True)
        thread.start()
    try:
        yield
    finally:
        stop.set()
        if thread is not None:
            thread.join(timeout=10)
        if ctx is not None:
            verifiers.flush_query_log(ctx)


def _unavailable(request: Request, exc: service.AuthoritiesMissing) -> Response:
    """503 until the operator has created the CAs (``mynacard jpki init``): nothing a request does creates one."""
    headers = {"Retry-After": "3600", "Cache-Control": "no-store"}
    if request.url.path.startswith("/api/") or "application/json" in request.headers.get("accept", ""):
        return JSONResponse({"error": "AuthoritiesMissing", "detail": str(exc)}, status_code=503, headers=headers)
    return Response(f"{exc}\n", status_code=503, media_type="text/plain", headers=headers)


class _JpkiRoute(APIRoute):
    """Every JPKI route answers 503 with the reason while the CAs do not exist, and 429 to a party with too
    many login challenges outstanding (rather than the 409 a :class:`~mynacard.errors.Conflict` would get)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except service.AuthoritiesMissing as exc:
                return _unavailable(request, exc)
            except verifiers.TooManyChallenges as exc:
                return JSONResponse({"error": "TooManyChallenges", "detail": str(exc)}, status_code=429,
                                    headers={"Retry-After": str(exc.retry_after)})

        return guarded


router = APIRouter(lifespan=_lifespan, route_class=_JpkiRoute)


# --- public: the repository page and the CA certificates -------------------------------------------------------

@router.get("/jpki", response_class=HTMLResponse, include_in_schema=False)
@router.get("/jpki/cps", response_class=HTMLResponse, include_in_schema=False)
def repository(request: Request, ctx: Context = Depends(context)) -> HTMLResponse:
    """The CAs' public page (リポジトリ): every generation, its fingerprint, where CRLs and OCSP are."""
    found = service.authorities(ctx)
    settings = settings_of(ctx)
    return render(request, "jpki_repository.html", authorities=found, stats=service.statistics(ctx),
                  kinds=[k.value for k in CaKind], base=settings.base_url)


def _pem_response(text: str) -> Response:
    return Response(text, media_type="application/x-pem-file")


@router.get("/jpki/ca/{name}", include_in_schema=False)
def ca_certificate(name: TextPath, generation: IdQuery | None = None, ctx: Context = Depends(context)) -> Response:
    """``sign.pem`` / ``auth.pem`` (PEM), ``sign.cer`` / ``auth.cer`` (DER, for AIA), ``sign-all.pem`` /
    ``auth-all.pem`` (every generation plus the link certificates)."""
    stem, _, ext = name.partition(".")
    kind_text = stem.removesuffix("-all")
    if kind_text not in ("sign", "auth") or ext not in ("pem", "cer") or (stem.endswith("-all") and ext != "pem"):
        raise NotFound("no such CA certificate")
    kind = CaKind(kind_text)
    if stem.endswith("-all"):
        if not service.authorities_exist(ctx):  # a request never creates a CA (mynacard jpki init does)
            raise service.AuthoritiesMissing()
        return _pem_response(service.ca_bundle_pem(ctx, kind))
    authority = service.current_authority(ctx, kind, ctx.now(), generation)
    if ext == "cer":
        return Response(authority.der, media_type="application/pkix-cert")
    return _pem_response(authority.pem)


# --- verifiers only: CRLs and OCSP -----------------------------------------------------------------------------

def _bearer(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    return auth[7:].strip() if auth.lower().startswith("bearer ") else None


def _remote(request: Request) -> str | None:
    return request.client.host if request.client else None


def _http_caller(request: Request) -> ocsp_http.Caller:
    """Who asks: an API key, a staff session, or a client certificate fingerprint — the latter only from the
    configured TLS proxies (``MYNACARD_JPKI_MTLS_PROXIES``), since anyone can send the header."""
    settings = settings_of(context(request))
    session = optional_principal(request) if "session" in request.scope and not _bearer(request) else None
    remote = _remote(request)
    header = request.headers.get(settings.mtls_header) if settings.mtls_header else None
    return ocsp_http.Caller(_bearer(request), settings.client_certificate(header, remote), remote, session)


def _caller(ctx: Context, request: Request) -> Principal | None:
    caller = _http_caller(request)
    return verifiers.authenticate(ctx, caller.api_key, caller.client_cert_sha256) or caller.session


@router.get("/jpki/crl/{name}", include_in_schema=False)
def crl(name: TextPath, request: Request, generation: IdQuery | None = None,
        ctx: Context = Depends(context)) -> Response:
    """A CA's full or delta CRL (DER), regenerated first when it is due."""
    stem, _, ext = name.partition(".")
    kind_text = stem.removesuffix("-delta")
    if ext != "crl" or kind_text not in ("sign", "auth"):
        raise NotFound("no such CRL")
    kind = CaKind(kind_text)
    now = ctx.now()
    who = _caller(ctx, request)
    try:
        verifier = verifiers.require_verifier(ctx, who, Purpose.for_ca(kind), "crl", now, None, _remote(request))
    except Forbidden as exc:
        status = 401 if who is None else 403
        headers = {"WWW-Authenticate": 'Bearer realm="jpki"'} if status == 401 else {}
        return Response(f"{exc}\n", status_code=status, media_type="text/plain", headers=headers)
    info = service.current_crl(ctx, kind, stem.endswith("-delta"), now, generation)
    verifiers.log_query(ctx, verifier, verifiers.caller_label(who, _remote(request)), "crl", None, "answered",
                        f"{name} #{info.number}", now, immediate=True)
    return Response(info.der, media_type="application/pkix-crl", headers={
        "Cache-Control": "no-cache", "Last-Modified": info.this_update.strftime("%a, %d %b %Y %H:%M:%S GMT")})


_OCSP_HEADERS = {"Cache-Control": "no-cache"}  # a revocation must show within a second: no HTTP caching


def _ocsp_reply(der: bytes) -> Response:
    return Response(der, media_type="application/ocsp-response", headers=_OCSP_HEADERS)


async def _respond_ocsp(request: Request, data: bytes) -> Response:
    ctx = context(request)
    caller = _http_caller(request)
    fast = ocsp_http.answer_from_memory(ctx, caller, data)
    if fast is None:
        return _ocsp_reply(await run_in_threadpool(ocsp_http.answer, ctx, caller, data))
    der, log_due = fast
    response = _ocsp_reply(der)
    if log_due:
        response.background = BackgroundTask(verifiers.flush_query_log, ctx)
    return response


async def _read_body(request: Request) -> bytes:
    """The body, cut just past the largest request accepted (the parser then refuses it as too large)."""
    chunks = []
    size = 0
    async for chunk in request.stream():
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_REQUEST_BYTES:
            break
    return b"".join(chunks)[: MAX_REQUEST_BYTES + 1]


async def ocsp_post(request: Request) -> Response:
    """RFC 6960 A.1.1 POST: the DER request is the body (``application/ocsp-request``)."""
    return await _respond_ocsp(request, await _read_body(request))


async def ocsp_get(request: Request) -> Response:
    """RFC 6960 A.1.1 GET: ``/jpki/ocsp/{url-encoding of base64 of the DER request}``."""
    data = ocsp_http.decode_get_path(request.path_params.get("encoded", ""))
    if not data:
        return _ocsp_reply(ocsp.error_response(ResponseStatus.MALFORMED_REQUEST))
    return await _respond_ocsp(request, data)


router.add_route("/jpki/ocsp", ocsp_post, methods=["POST"], include_in_schema=False)
router.add_route("/jpki/ocsp/{encoded:path}", ocsp_get, methods=["GET"], include_in_schema=False)


# --- the verification service (JSON) ------------------------------------------------------------------------

def _b64(value: str, what: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(f"{what} is not base64") from None


def _verification(result: Verification) -> dict[str, Any]:
    signer = result.signer
    out: dict[str, Any] = {"valid": result.valid, "problems": list(result.problems), "signer": None,
                           "revocation": None, "signing_time": result.signing_time}
    if signer is not None:
        out["signer"] = {"kind": signer.kind.value, "serial": signer.serial_hex, "subject_cn": signer.subject_cn,
                         "not_before": signer.not_before, "not_after": signer.not_after,
                         "issuer_fingerprint": signer.issuer_fingerprint,
                         "facts": None if signer.facts is None else {
                             "name": signer.facts.name, "name_substitutions": signer.facts.name_substitutions,
                             "sex": signer.facts.sex, "birth_date": signer.facts.birth_date,
                             "address": signer.facts.address,
                             "address_substitutions": signer.facts.address_substitutions}}
    if result.revocation is not None:
        r = result.revocation
        out["revocation"] = {"status": r.status, "revoked_at": r.revoked_at, "reason": r.reason, "detail": r.detail}
    return out


CERTIFICATE_B64_MAX = 16_384
"""Base64 of one certificate (a JPKI end-entity certificate is about 1.5 KB of DER)."""
SIGNATURE_B64_MAX = 4_096
DATA_B64_MAX = 14_000_000
"""Base64 of the data a signature covers (about 10 MB)."""

Certificate64 = Annotated[str, Field(min_length=1, max_length=CERTIFICATE_B64_MAX)]
Signature64 = Annotated[str, Field(min_length=1, max_length=SIGNATURE_B64_MAX)]
Word = Annotated[str, Field(min_length=1, max_length=32)]
"""A kind, a purpose, an algorithm's name: one short word (the service says which are known)."""


class SignatureIn(BaseModel):
    certificate_b64: Certificate64
    data_b64: str = Field(max_length=DATA_B64_MAX)
    signature_b64: Signature64
    hash_algorithm: Word = "sha256"
    prehashed: bool = False


def _signature_verifier(request: Request, ctx: Context = Depends(context)) -> Principal:
    """The caller of the verification service, which returns the basic four facts: a registered signature
    verifier (or J-LIS's own services). Anyone else is refused and the refusal logged — anonymous callers
    too (401), with their address."""
    who = optional_principal(request)
    try:
        verifiers.require_verifier(ctx, who, Purpose.SIGNATURE, "verify", ctx.now(), None, _remote(request))
    except Forbidden:
        if who is None:
            raise LoginRequired("login required") from None
        raise
    assert who is not None
    return who


@router.post("/api/jpki/verify/signature")
def verify_signature(body: SignatureIn, ctx: Context = Depends(context),
                     who: Principal = Depends(_signature_verifier)) -> dict[str, Any]:
    """Check a raw PKCS#1 v1.5 signature made with a card's signing key: chain, validity, revocation."""
    now = ctx.now()
    party = RelyingParty.for_service(ctx, who)
    return _verification(party.verify_signature(
        _b64(body.data_b64, "data_b64"), _b64(body.signature_b64, "signature_b64"),
        _b64(body.certificate_b64, "certificate_b64"), now, body.hash_algorithm, body.prehashed))


class CmsIn(BaseModel):
    data_b64: str = Field(max_length=DATA_B64_MAX)
    cms_b64: str = Field(min_length=1, max_length=200_000)
    certificate_b64: Certificate64 | None = None


@router.post("/api/jpki/verify/cms")
def verify_cms(body: CmsIn, ctx: Context = Depends(context),
               who: Principal = Depends(_signature_verifier)) -> dict[str, Any]:
    """Check a CMS/PKCS#7 detached signature made with a card's signing key."""
    now = ctx.now()
    party = RelyingParty.for_service(ctx, who)
    cert = _b64(body.certificate_b64, "certificate_b64") if body.certificate_b64 else None
    return _verification(party.verify_cms_detached(_b64(body.data_b64, "data_b64"), _b64(body.cms_b64, "cms_b64"),
                                                   now, cert))


@router.post("/api/jpki/challenges")
def new_challenge(ctx: Context = Depends(context), who: Principal = Depends(principal)) -> dict[str, Any]:
    """A login challenge for the card to sign with its authentication key."""
    challenge = verifiers.issue_challenge(ctx, who, ctx.now())
    return {"id": challenge.id, "nonce_b64": base64.b64encode(challenge.nonce).decode(),
            "expires_at": challenge.expires_at}


class LoginIn(BaseModel):
    certificate_b64: Certificate64
    signature_b64: Signature64


@router.post("/api/jpki/challenges/{challenge_id}/response")
def answer_challenge(challenge_id: KeyPath, body: LoginIn, ctx: Context = Depends(context),
                     who: Principal = Depends(principal)) -> dict[str, Any]:
    """Check the card's answer to a challenge (single use: a second answer is refused)."""
    now = ctx.now()
    party = RelyingParty.for_service(ctx, who)
    result = party.verify_login(challenge_id, _b64(body.signature_b64, "signature_b64"),
                                _b64(body.certificate_b64, "certificate_b64"), now)
    verifiers.record_challenge_outcome(ctx, challenge_id, "ok" if result.valid else "refused")
    return _verification(result)


# --- platform operators ---------------------------------------------------------------------------------------

class SubscriptionIn(BaseModel):
    serial: Name


@router.post("/api/jpki/subscriptions")
def subscribe(body: SubscriptionIn, ctx: Context = Depends(context),
              who: Principal = Depends(principal)) -> dict[str, Any]:
    """A platform operator follows a signing certificate (現況確認)."""
    return {"subscription": verifiers.subscribe(ctx, who, parse_serial(body.serial), ctx.now())}


@router.get("/api/jpki/notifications")
def notifications(pending: bool = True, ctx: Context = Depends(context),
                  who: Principal = Depends(principal)) -> dict[str, Any]:
    items = verifiers.notifications(ctx, who, ctx.now(), pending_only=pending)
    return {"notifications": [{**n.__dict__, "certificate_serial": f"{n.certificate_serial:X}",
                               "new_certificate_serial": (f"{n.new_certificate_serial:X}"
                                                          if n.new_certificate_serial else None)} for n in items]}


class AckIn(BaseModel):
    ids: list[Id] = Field(max_length=5000)


@router.post("/api/jpki/notifications/ack")
def acknowledge(body: AckIn, ctx: Context = Depends(context), who: Principal = Depends(principal)) -> dict[str, int]:
    return {"acknowledged": verifiers.acknowledge_notifications(ctx, who, body.ids, ctx.now())}


# --- certificates, the window, the operator ----------------------------------------------------------------------

def _view(view: service.CertificateView) -> dict[str, Any]:
    return {**view.__dict__, "kind": view.kind.value, "serial": view.serial_hex, "status": view.status.value,
            "revocation_reason": view.revocation_reason.value if view.revocation_reason else None}


@router.get("/api/jpki/certificates/{serial}")
def get_certificate(serial: TextPath, ctx: Context = Depends(context),
                    who: Principal = Depends(principal)) -> dict[str, Any]:
    """A certificate: for a platform operator one it follows; for clerks and the operator any in scope."""
    number = parse_serial(serial)
    if who.role is Role.VERIFIER:
        record = verifiers.subscribed_certificate(ctx, who, number, ctx.now())
        return {"serial": record.view.serial_hex, "kind": record.view.kind.value, "pem": record.pem,
                "status": record.view.status.value}
    record = service.certificate_by_serial(ctx, who, number)
    return {**_view(record.view), "pem": record.pem,
            "history": service.certificate_events(ctx, who, number)}


@router.get("/api/jpki/certificates/{serial}/lineage")
def get_lineage(serial: TextPath, ctx: Context = Depends(context),
                who: Principal = Depends(principal)) -> dict[str, Any]:
    return {"lineage": [_view(v) for v in service.lineage(ctx, who, parse_serial(serial))]}


class RevokeIn(BaseModel):
    reason: Word
    detail: ShortText | None = None


@router.post("/api/jpki/certificates/{serial}/revoke")
def revoke(serial: TextPath, body: RevokeIn, ctx: Context = Depends(context),
           who: Principal = Depends(principal)) -> dict[str, Any]:
    return _view(responder.revoke(ctx, who, parse_serial(serial), body.reason, ctx.now(), body.detail))


@router.get("/api/jpki/cards/{card_id}/certificates")
def card_certificates(card_id: IdPath, ctx: Context = Depends(context),
                      who: Principal = Depends(principal)) -> dict[str, Any]:
    return {"certificates": [_view(v) for v in service.certificates_of_card(ctx, who, card_id)]}


@router.post("/api/jpki/cards/{card_id}/hold")
def hold(card_id: IdPath, ctx: Context = Depends(context), who: Principal = Depends(principal)) -> dict[str, Any]:
    """Loss or suspension reported: both certificates on hold (一時保留)."""
    return {"revoked": [_view(v) for v in service.hold_card_certificates(ctx, who, card_id, ctx.now())]}


@router.post("/api/jpki/cards/{card_id}/abolish")
def abolish(card_id: IdPath, ctx: Context = Depends(context), who: Principal = Depends(principal)) -> dict[str, Any]:
    return {"revoked": [_view(v) for v in service.abolish_card_certificates(ctx, who, card_id, ctx.now())]}


class HolderRequestIn(BaseModel):
    kinds: list[Word] = Field(default=["sign", "auth"], max_length=2)
    key_compromise: bool = False


@router.post("/api/jpki/cards/{card_id}/holder-request")
def holder_request(card_id: IdPath, body: HolderRequestIn, ctx: Context = Depends(context),
                   who: Principal = Depends(principal)) -> dict[str, Any]:
    """The holder's request for revocation (失効申請)."""
    try:
        kinds = [CaKind(k) for k in body.kinds]
    except ValueError:
        raise InvalidInput("kinds are 'sign' and/or 'auth'") from None
    done = service.revoke_at_holder_request(ctx, who, card_id, ctx.now(), kinds, body.key_compromise)
    return {"revoked": [_view(v) for v in done]}


class ReissueIn(BaseModel):
    kind: Word
    public_key_b64: str = Field(min_length=1, max_length=4_096)


@router.post("/api/jpki/cards/{card_id}/reissue")
def reissue(card_id: IdPath, body: ReissueIn, ctx: Context = Depends(context),
            who: Principal = Depends(principal)) -> dict[str, Any]:
    """A new certificate at the window from a key the chip generated (e.g. after an address change)."""
    try:
        kind = CaKind(body.kind)
    except ValueError:
        raise InvalidInput("kind is 'sign' or 'auth'") from None
    record = service.reissue_certificate(ctx, who, card_id, kind, _b64(body.public_key_b64, "public_key_b64"),
                                         ctx.now())
    return {**_view(record.view), "der_b64": base64.b64encode(record.der).decode()}


class VerifierIn(BaseModel):
    name: Name
    kind: Word
    purposes: list[Word] = Field(min_length=1, max_length=2)
    username: str = Field(min_length=1, max_length=64)
    client_cert_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")


@router.post("/api/jpki/verifiers")
def register_verifier(body: VerifierIn, ctx: Context = Depends(context),
                      who: Principal = Depends(principal)) -> dict[str, Any]:
    """Register a verifier; the response carries its API key, shown only this once."""
    verifier, key = verifiers.register_verifier(ctx, who, body.name, body.kind, body.purposes, body.username,
                                                ctx.now(), body.client_cert_sha256)
    return {"verifier": _verifier(verifier), "api_key": key}


def _verifier(v: verifiers.Verifier) -> dict[str, Any]:
    return {"id": v.id, "name": v.name, "kind": v.kind.value, "purposes": sorted(p.value for p in v.purposes),
            "username": v.username, "registered_at": v.registered_at, "suspended_at": v.suspended_at}


@router.get("/api/jpki/verifiers")
def list_verifiers(ctx: Context = Depends(context), who: Principal = Depends(principal)) -> dict[str, Any]:
    return {"verifiers": [_verifier(v) for v in verifiers.list_verifiers(ctx, who)],
            "kinds": [k.value for k in VerifierKind]}


class SuspendIn(BaseModel):
    suspended: bool


@router.post("/api/jpki/verifiers/{verifier_id}/suspension")
def suspend(verifier_id: IdPath, body: SuspendIn, ctx: Context = Depends(context),
            who: Principal = Depends(principal)) -> dict[str, Any]:
    return _verifier(verifiers.set_suspended(ctx, who, verifier_id, body.suspended, ctx.now()))


@router.get("/api/jpki/queries")
def query_log(verifier_id: IdQuery | None = None, refused: bool = False, limit: Limit = 200,
              ctx: Context = Depends(context), who: Principal = Depends(principal)) -> dict[str, Any]:
    """The per-verifier log of validity queries (the operator: all, refusals included; a verifier: its own)."""
    return {"queries": verifiers.queries(ctx, who, verifier_id, refused, limit)}


class PublishIn(BaseModel):
    force: bool = False


@router.post("/api/jpki/crl/publish")
def publish(body: PublishIn, ctx: Context = Depends(context), who: Principal = Depends(principal)) -> dict[str, Any]:
    who.require(Role.OPERATOR, Role.SYSTEM)
    if not service.authorities_exist(ctx):  # publishing never creates the CAs (mynacard jpki init does)
        raise service.AuthoritiesMissing()
    published = service.publish_crls(ctx, who, ctx.now(), force=body.force)
    return {"published": [{"kind": c.kind.value, "generation": c.generation, "number": c.number,
                           "delta": c.is_delta, "entries": c.entry_count} for c in published]}


class RolloverIn(BaseModel):
    kind: Word


@router.post("/api/jpki/rollover")
def rollover(body: RolloverIn, ctx: Context = Depends(context), who: Principal = Depends(principal)) -> dict[str, Any]:
    try:
        kind = CaKind(body.kind)
    except ValueError:
        raise InvalidInput("kind is 'sign' or 'auth'") from None
    authority = service.rollover(ctx, who, kind, ctx.now())
    return {"kind": kind.value, "generation": authority.generation, "fingerprint": authority.fingerprint_sha256}
