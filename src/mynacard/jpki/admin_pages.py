"""The J-LIS operator's pages for one certificate (電子証明書の検索・失効): find it by its serial or by the card's
manufacture number, see its state, lineage and history, and revoke it — ``GET /jpki/admin``,
``GET /jpki/admin/certificates/{serial}``, ``POST /jpki/admin/certificates/{serial}/revoke``. Operators only."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from mynacard.clock import JST
from mynacard.errors import InvalidInput, NotFound
from mynacard.jpki import service
from mynacard.jpki.model import CertificateStatus, RevocationReason, parse_serial
from mynacard.jpki.responder import revoke
from mynacard.principal import Principal, Role
from mynacard.webkit.deps import context, now, principal, render
from mynacard.webkit.i18n import register, translator
from mynacard.webkit.params import TextPath, TextQuery

router = APIRouter()


# --- the J-LIS operator's pages: find a certificate, revoke it ------------------------------------------------

PAGE_REASONS = (RevocationReason.KEY_COMPROMISE, RevocationReason.AFFILIATION_CHANGED, RevocationReason.SUPERSEDED,
                RevocationReason.CESSATION_OF_OPERATION, RevocationReason.CERTIFICATE_HOLD,
                RevocationReason.UNSPECIFIED)
"""The reasons the operator may give for one certificate (the CLI's; a CA compromise is not one card's matter)."""
DETAIL_MAX = 200
"""The longest detail text kept in the certificate's history from the page."""
_CONFIRMED = ("yes", "on", "1", "true")
_REASON_EN = {
    RevocationReason.KEY_COMPROMISE: "Key compromise (the private key may be known to others)",
    RevocationReason.AFFILIATION_CHANGED: "Details changed (the basic four facts changed)",
    RevocationReason.SUPERSEDED: "Superseded (replaced by a new certificate)",
    RevocationReason.CESSATION_OF_OPERATION: "No longer needed (the holder's request, the card abolished)",
    RevocationReason.CERTIFICATE_HOLD: "On hold (the card lost or suspended; never released)",
    RevocationReason.UNSPECIFIED: "Unspecified (e.g. destroyed before hand-over)",
    RevocationReason.CA_COMPROMISE: "CA key compromise",
}

register({
    **{f"jpki.reason.{r.value}": (r.label_ja, _REASON_EN[r]) for r in RevocationReason},
    "jpki.cert.sign": ("署名用電子証明書", "Signing certificate"),
    "jpki.cert.auth": ("利用者証明用電子証明書", "User-authentication certificate"),
    "jpki.admin.title": ("電子証明書の検索・失効", "Find and revoke certificates"),
    "jpki.admin.link": ("電子証明書の検索・失効(J-LIS)", "Find and revoke certificates (J-LIS)"),
    "jpki.admin.lead": ("証明書のシリアル番号またはカードの製造番号で検索します。",
                        "Search by a certificate's serial number or by the card's manufacture number."),
    "jpki.admin.by_serial": ("証明書のシリアル番号(16進数)", "Certificate serial number (hexadecimal)"),
    "jpki.admin.by_card": ("カードの製造番号", "Card manufacture number"),
    "jpki.admin.search": ("検索", "Search"),
    "jpki.admin.card_certificates": ("製造番号 {card} のカードの電子証明書", "Certificates of card {card}"),
    "jpki.admin.no_certificates": ("このカードには電子証明書が発行されていません。",
                                   "No certificates were issued for this card."),
    "jpki.admin.status": ("認証局の状態", "The CAs' state"),
    "jpki.admin.ca": ("認証局", "CA"),
    "jpki.admin.key": ("鍵の保管", "Key store"),
    "jpki.admin.last_crl": ("最新CRL番号", "Last CRL number"),
    "jpki.admin.revocations": ("失効件数", "Revocations"),
    "jpki.admin.back": ("検索に戻る", "Back to the search"),
    "jpki.admin.kind": ("種類", "Kind"),
    "jpki.admin.serial": ("シリアル番号", "Serial number"),
    "jpki.admin.subject": ("主体者名 (CN)", "Subject (CN)"),
    "jpki.admin.card": ("カード製造番号", "Card manufacture number"),
    "jpki.admin.municipality": ("発行団体コード", "Issuing municipality code"),
    "jpki.admin.issued_at": ("発行日時", "Issued"),
    "jpki.admin.status_label": ("状態", "Status"),
    "jpki.admin.expired": ("有効期間満了", "expired"),
    "jpki.admin.revoked_at": ("失効日時", "Revoked at"),
    "jpki.admin.reason": ("失効理由", "Revocation reason"),
    "jpki.admin.lineage": ("更新の系列", "Lineage"),
    "jpki.admin.this": ("この証明書", "this certificate"),
    "jpki.admin.history": ("履歴", "History"),
    "jpki.admin.when": ("日時", "When"),
    "jpki.admin.change": ("変更", "Change"),
    "jpki.admin.by": ("実施者", "By"),
    "jpki.admin.detail": ("詳細", "Detail"),
    "jpki.admin.revoke_title": ("この証明書を失効させる", "Revoke this certificate"),
    "jpki.admin.revoke_note": ("失効は取り消せません。OCSP には直ちに、CRL には次の発行で反映されます。",
                               "A revocation cannot be undone. OCSP answers show it at once, the next CRL lists it."),
    "jpki.admin.choose": ("選択してください", "Choose"),
    "jpki.admin.detail_input": ("詳細(任意、{n}文字以内)", "Detail (optional, at most {n} characters)"),
    "jpki.admin.confirm": ("この証明書を失効させることを確認しました",
                           "I confirm that this certificate is to be revoked"),
    "jpki.admin.revoke": ("失効させる", "Revoke"),
    "jpki.admin.is_revoked": ("この証明書は {at} に失効しています(理由: {reason})。",
                              "This certificate was revoked at {at} (reason: {reason})."),
    "jpki.admin.bad_serial": ("証明書のシリアル番号は16進数で入力してください。",
                              "A certificate's serial number is hexadecimal."),
    "jpki.admin.no_certificate": ("その証明書は見つかりません。", "No such certificate."),
    "jpki.admin.bad_card": ("製造番号は英数字13桁です(例: E000000000101)。",
                            "A manufacture number is 13 letters and digits (e.g. E000000000101)."),
    "jpki.admin.no_card": ("その製造番号のカードは見つかりません。", "No card has this manufacture number."),
    "jpki.admin.bad_reason": ("失効理由を一覧から選んでください。", "Choose a revocation reason from the list."),
    "jpki.admin.unconfirmed": ("失効させる前に確認欄にチェックを入れてください。",
                               "Tick the confirmation box before revoking."),
    "jpki.admin.detail_long": ("詳細は{n}文字以内で入力してください。", "The detail is at most {n} characters."),
    "jpki.admin.already": ("この証明書は既に失効しています。今回の操作では何も変更していません。",
                           "This certificate was already revoked: nothing was changed."),
})


class _Refused(Exception):
    """Bad input on an operator's page: the status and the message key (shown in Japanese and English)."""

    def __init__(self, status: int, key: str, **values: object) -> None:
        super().__init__(key)
        self.status, self.key, self.values = status, key, values


def _problem(key: str, **values: object) -> dict[str, str]:
    return {"ja": translator("ja")(key, **values), "en": translator("en")(key, **values)}


def _operator(request: Request) -> Principal:
    """The J-LIS operator on duty (a staff session or an API key); anyone else 403, nobody → the login page."""
    who = principal(request)
    who.require(Role.OPERATOR)
    return who


def _page_serial(text: str) -> int:
    try:
        return parse_serial(text)
    except InvalidInput:
        raise _Refused(422, "jpki.admin.bad_serial") from None
    except NotFound:
        raise _Refused(404, "jpki.admin.no_certificate") from None


def _search_page(request: Request, status_code: int = 200, refused: _Refused | None = None, serial: str = "",
                 card: str = "", found: list[service.CertificateView] | None = None) -> HTMLResponse:
    response = render(request, "jpki_admin.html", status_code=status_code, serial=serial[:64], card=card[:32],
                      found=found, authorities=service.authorities(context(request)), jst=JST, now=now(request),
                      problem=_problem(refused.key, **refused.values) if refused else None)
    response.headers["cache-control"] = "no-store"
    return response


def _certificate_page(request: Request, who: Principal, number: int, status_code: int = 200,
                      refused: _Refused | None = None, form: dict[str, Any] | None = None) -> HTMLResponse:
    ctx = context(request)
    record = service.certificate_by_serial(ctx, who, number)
    response = render(request, "jpki_admin_certificate.html", status_code=status_code, c=record.view,
                      lineage=service.lineage(ctx, who, number), events=service.certificate_events(ctx, who, number),
                      reasons=[r.value for r in PAGE_REASONS], detail_max=DETAIL_MAX, form=form or {}, jst=JST,
                      now=ctx.now(), problem=_problem(refused.key, **refused.values) if refused else None)
    response.headers["cache-control"] = "no-store"
    return response


@router.get("/jpki/admin", response_class=HTMLResponse, include_in_schema=False)
def admin_search(request: Request, serial: TextQuery = "", card: TextQuery = "") -> Response:
    """The operator's start: find a certificate by its serial (→ its page) or a card's certificates by the card's
    manufacture number; the CAs' state below."""
    who = _operator(request)
    try:
        if serial.strip():
            number = _page_serial(serial)
            try:
                view = service.certificate_by_serial(context(request), who, number).view
            except NotFound:
                raise _Refused(404, "jpki.admin.no_certificate") from None
            return RedirectResponse(f"/jpki/admin/certificates/{view.serial_hex}", status_code=303)
        if card.strip():
            try:
                found = service.certificates_of_card_serial(context(request), who, card)
            except InvalidInput:
                raise _Refused(422, "jpki.admin.bad_card") from None
            except NotFound:
                raise _Refused(404, "jpki.admin.no_card") from None
            return _search_page(request, card=card.strip().upper(), found=found)
    except _Refused as refused:
        return _search_page(request, refused.status, refused, serial=serial, card=card)
    return _search_page(request)


@router.get("/jpki/admin/certificates/{serial}", response_class=HTMLResponse, include_in_schema=False)
def admin_certificate(request: Request, serial: TextPath) -> Response:
    """A certificate as the operator sees it: state, lineage, history, and the revocation form while it is good."""
    who = _operator(request)
    try:
        number = _page_serial(serial)
        try:
            return _certificate_page(request, who, number)
        except NotFound:
            raise _Refused(404, "jpki.admin.no_certificate") from None
    except _Refused as refused:
        return _search_page(request, refused.status, refused, serial=serial)


@router.post("/jpki/admin/certificates/{serial}/revoke", include_in_schema=False)
def admin_revoke(request: Request, serial: TextPath, reason: str = Form(""), detail: str = Form(""),
                 confirm: str = Form("")) -> Response:
    """Revoke from the page (then back to the certificate, 303). Sent again once it is revoked: 409 with the
    certificate as it is, nothing changed. Bad input: 4xx with the reason, nothing changed."""
    who = _operator(request)
    ctx = context(request)
    try:
        number = _page_serial(serial)
        try:
            view = service.certificate_by_serial(ctx, who, number).view
        except NotFound:
            raise _Refused(404, "jpki.admin.no_certificate") from None
    except _Refused as refused:
        return _search_page(request, refused.status, refused, serial=serial)
    text = " ".join(detail.split())
    form = {"reason": reason, "detail": text[:DETAIL_MAX], "confirm": confirm in _CONFIRMED}
    if view.status is CertificateStatus.REVOKED:
        return _certificate_page(request, who, number, 409, _Refused(409, "jpki.admin.already"))
    chosen = next((r for r in PAGE_REASONS if r.value == reason), None)
    problem = (_Refused(422, "jpki.admin.bad_reason") if chosen is None
               else _Refused(422, "jpki.admin.detail_long", n=DETAIL_MAX) if len(text) > DETAIL_MAX
               else _Refused(422, "jpki.admin.unconfirmed") if not form["confirm"] else None)
    if problem is not None or chosen is None:
        return _certificate_page(request, who, number, 422, problem, form)
    done = revoke(ctx, who, number, chosen, ctx.now(), text or None)
    return RedirectResponse(f"/jpki/admin/certificates/{done.serial_hex}", status_code=303)
