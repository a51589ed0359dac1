"""Mynaportal's pages and JSON: login with the card, the person's exchange records, their own information
with JSON/CSV download, notices, and the one-stop child-rearing application.

Residents have their own session, separate from staff logins: an opaque token in an HttpOnly, SameSite=Strict
cookie, stored server-side by its keyed hash, closed after 15 idle minutes or an hour (reference §6 #9: shared
terminals left logged in); the card login and the session run on the wall clock (``utc_now``), the pages' facts
on the installation's clock (``now``), as every security timing does. Every page shows whose session it is;
every form carries the app's CSRF token (:mod:`mynacard.webkit.csrf`). Card login goes through
``app.state.card_authenticator`` (a :class:`~mynacard.portal.card_login.PortalCardLogin` over JPKI's
card authentication, or a test's stand-in of the same shape); without one, card login is shown as unavailable.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from mynacard.clock import JST, utc_now
from mynacard.errors import DomainError
from mynacard.exchange.model import InfoItem, Procedure
from mynacard.installation import demo_cards
from mynacard.portal import service
from mynacard.portal.model import FORMS, ChildProcedure, validate_form
from mynacard.principal import Principal
from mynacard.webkit.csrf import login_csrf
from mynacard.webkit.deps import LoginRequired, context, language, now, render
from mynacard.webkit.i18n import register, translator
from mynacard.webkit.params import IdPath, IdQuery, Key, Page

if TYPE_CHECKING:
    from mynacard.portal.card_login import PortalCardLogin

router = APIRouter()
COOKIE = "mynaportal_session"

register({
    "portal.name": ("マイナポータル", "Mynaportal"),
    "portal.lead": ("マイナンバーカードでログインすると、行政機関のあいだで行われたあなたの情報のやりとりの記録、"
                    "行政機関が保有するあなたの情報、お知らせを確認でき、子育ての手続をまとめて申請できます。",
                    "Log in with your My Number Card to see the record of every exchange of your information "
                    "between agencies, the information agencies hold about you, your notices, and to apply for "
                    "child-rearing procedures in one go."),
    "portal.login": ("マイナンバーカードでログイン", "Log in with your My Number Card"),
    "portal.login_how": ("カードリーダー (またはスマートフォン) にカードをかざし、利用者証明用電子証明書の暗証番号"
                         "(数字4桁) を入力してください。個人番号は使いません。",
                         "Hold your card to the reader (or phone) and enter the 4-digit PIN of the user "
                         "authentication certificate. Your individual number is never used."),
    "portal.login_unavailable": ("このサーバーではカードによるログインが設定されていません。",
                                 "Card login is not configured on this server."),
    "portal.login_failed": ("ログインできませんでした: {reason}", "Login failed: {reason}"),
    "portal.challenge": ("チャレンジ", "Challenge"),
    "portal.reader": ("デモ用カードリーダー (このサーバー上のカードファイル)",
                      "Demonstration card reader (a card file on this server)"),
    "portal.reader_what": ("デモ用です: 本来は利用者の端末のカードリーダー (マイナポータルアプリ) がカードに署名させ、"
                           "下の証明書と署名だけを送ります。ここではこのサーバーが保管するカードファイル (模擬 IC "
                           "チップ) を、サーバー側の仮想リーダーに差し込んだものとして扱います。暗証番号はカードの"
                           "チップが照合し、3回間違えるとロックされます。",
                           "For demonstration: normally the card reader on your own device (the Mynaportal app) "
                           "has the card sign and sends only the certificate and signature below. Here a card file "
                           "(an emulated chip) kept on this server is put into a virtual reader on the server side. "
                           "The chip itself checks the PIN and locks after 3 wrong tries."),
    "portal.card_serial": ("カードの製造番号", "Card manufacture number"),
    "portal.demo_cards": ("デモ用カード (デモ環境だけに表示)", "Demo cards (shown in a demo installation only)"),
    "portal.demo_holder": ("名義人", "Holder"),
    "portal.pin": ("利用者証明用電子証明書の暗証番号 (数字4桁)", "Authentication PIN (4 digits)"),
    "portal.manual": ("証明書と署名を貼り付けてログイン (カードリーダーのソフトウェアが作成したもの)",
                      "Log in with a certificate and signature made by your card reader software"),
    "portal.wrong_pin": ("暗証番号が違います。あと {left} 回間違えるとロックされます。",
                         "Wrong PIN: {left} tries left before it locks."),
    "portal.pin_blocked": ("暗証番号がロックされています。市区町村の窓口で初期化してください。",
                           "The PIN is locked: have it reset at your municipality's window."),
    "portal.certificate": ("利用者証明用電子証明書 (Base64)", "Authentication certificate (Base64)"),
    "portal.signature": ("署名 (Base64)", "Signature (Base64)"),
    "portal.logout": ("ログアウト", "Log out"),
    "portal.logged_in_as": ("{name} さんでログイン中", "Logged in as {name}"),
    "portal.home": ("トップ", "Home"),
    "portal.records": ("やりとり履歴", "Exchange records"),
    "portal.records_lead": ("行政機関のあいだで、あなたの情報がいつ、どの機関からどの機関へ、どの事務のために"
                            "やりとりされたかの記録です (過去7年分)。",
                            "When your information passed between which agencies, and for what (last 7 years)."),
    "portal.records_none": ("やりとりの記録はありません。", "No exchanges recorded."),
    "portal.me": ("あなたの情報", "Your information"),
    "portal.me_lead": ("行政機関が保有するあなたの情報です。「最新の情報を取得」で各機関に照会します"
                       "(照会もやりとり履歴に記録されます)。",
                       "What agencies hold about you. 'Fetch the latest' asks each agency (the requests are "
                       "recorded in your exchange records too)."),
    "portal.me_none": ("まだ取得していません。", "Nothing fetched yet."),
    "portal.me_refresh": ("最新の情報を取得", "Fetch the latest"),
    "portal.download_json": ("JSONでダウンロード", "Download JSON"),
    "portal.download_csv": ("CSVでダウンロード", "Download CSV"),
    "portal.notices": ("お知らせ", "Notices"),
    "portal.notices_none": ("お知らせはありません。", "No notices."),
    "portal.unread": ("未読", "Unread"),
    "portal.child": ("子育てワンストップ", "Child-rearing one-stop"),
    "portal.child_lead": ("児童手当・保育・ひとり親支援・母子保健の手続を、まとめて電子申請できます。申請はお住まいの"
                          "市区町村の担当機関へ暗号化して届けられます。",
                          "Apply for child allowance, childcare, single-parent support and maternal and child "
                          "health in one go; each reaches the responsible agency of your municipality, encrypted."),
    "portal.child_unavailable": ("お住まいの市区町村では受け付けていません", "Not available in your municipality"),
    "portal.confirm": ("入力内容の確認", "Check your application"),
    "portal.confirm_lead": ("以下の内容で申請します。申請者: {name}", "You are applying as {name}:"),
    "portal.next": ("確認へ進む", "Continue"),
    "portal.submit": ("申請する", "Submit"),
    "portal.back": ("戻る", "Back"),
    "portal.applications": ("申請状況", "My applications"),
    "portal.applications_none": ("申請はありません。", "No applications."),
    "portal.applied": ("申請を受け付けました (申請番号 {id})。", "Application {id} was sent."),
    "portal.applicant": ("申請者", "Applicant"),
    "portal.destination": ("提出先", "Sent to"),
    "portal.when": ("日時", "When"),
    "portal.requester": ("照会した機関", "Asked by"),
    "portal.provider": ("提供した機関", "Provided by"),
    "portal.procedure": ("事務", "Procedure"),
    "portal.item": ("情報", "Information"),
    "portal.status": ("結果", "Result"),
    "portal.agency": ("機関", "Agency"),
    "portal.field": ("項目", "Field"),
    "portal.value": ("内容", "Value"),
    "portal.updated": ("更新日", "Updated"),
    "portal.prev": ("前へ", "Previous"),
    "portal.next_page": ("次へ", "Next"),
    **{f"portal.kind.{k}": v for k, v in {
        "query": ("情報照会・提供", "Query"), "self_information": ("自己情報の提供", "Own information"),
        "notice": ("お知らせ", "Notice"), "application": ("電子申請", "Application")}.items()},
    **{f"portal.st.{k}": v for k, v in {
        "provided": ("提供", "provided"), "no_record": ("該当なし", "no record"),
        "not_enrolled": ("該当者なし", "not held"), "refused": ("拒否 (法令に定めのないやりとり)", "refused"),
        "delivered": ("配信", "delivered"), "received": ("受付", "received"), "in_progress": ("審査中", "in review"),
        "accepted": ("受理", "accepted"), "rejected": ("不受理", "not accepted"),
        "completed": ("完了", "completed")}.items()},
})


def resident_session(request: Request) -> tuple[Principal, str] | None:
    """The logged-in resident and their session token, or None (Mynaportal's pages in other parts use it too)."""
    token = request.cookies.get(COOKIE)
    if not token:
        return None
    who = service.resume_session(context(request), token, utc_now())
    return None if who is None else (who, token)


def resident_api(request: Request) -> Principal:
    """The resident behind the session cookie, for JSON routes (401 without an active session)."""
    found = resident_session(request)
    if found is None:
        raise LoginRequired("log in to Mynaportal with your card")
    return found[0]


def resident_page(request: Request, template: str, who: Principal, token: str, status_code: int = 200,
                  **values: Any) -> HTMLResponse:
    """A Mynaportal page in the portal's layout, with the resident (the CSRF token comes with every page,
    :mod:`mynacard.webkit.csrf`); never cached."""
    ctx = context(request)
    me = service.resident_of(ctx, who)
    response = render(request, template, status_code=status_code, me=me, jst=JST,
                      **values)
    response.headers["cache-control"] = "no-store"
    return response


def _to_login() -> RedirectResponse:
    return RedirectResponse("/portal/login", status_code=303)


def _labels() -> dict[str, dict[str, str]]:
    return {"item": {i.value: i.label_ja for i in InfoItem}, "procedure": {p.value: p.label_ja for p in Procedure}}


# --- login and logout ---------------------------------------------------------------------------------------

def card_authenticator(request: Request) -> PortalCardLogin | None:
    """The relying-party seam the server was started with (None: card login not configured)."""
    found: PortalCardLogin | None = getattr(request.app.state, "card_authenticator", None)
    return found


@router.get("/portal", response_class=HTMLResponse, include_in_schema=False)
def top(request: Request) -> Response:
    found = resident_session(request)
    if found is None:
        return render(request, "portal_welcome.html")
    who, token = found
    ctx = context(request)
    unread = sum(1 for n in service.my_notices(ctx, who, ctx.now()) if n.read_at is None)
    return resident_page(request, "portal_top.html", who, token, unread=unread)


def _login_page(request: Request, auth: PortalCardLogin | None, status_code: int = 200,
                failed: str | None = None) -> HTMLResponse:
    """The login page with a fresh challenge (none when card login is not configured)."""
    challenge = auth.issue_challenge(utc_now()) if auth is not None else None
    reader = challenge is not None and demo_reader_enabled(request)
    cards: list[dict[str, Any]] = []
    if reader:
        with context(request).db.connect() as conn:
            cards = demo_cards(conn)
    response = render(request, "portal_login.html", status_code=status_code, challenge=challenge,
                      nonce=base64.b64encode(challenge.nonce).decode() if challenge else None, failed=failed,
                      reader=reader, demo_cards=cards)
    response.headers["cache-control"] = "no-store"
    return response


def _logged_in(request: Request, token: str) -> Response:
    response = RedirectResponse("/portal", status_code=303)
    response.set_cookie(COOKIE, token, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https", path="/")
    return response


@router.get("/portal/login", response_class=HTMLResponse, include_in_schema=False)
def login_page(request: Request) -> HTMLResponse:
    return _login_page(request, card_authenticator(request))


@router.post("/portal/login", include_in_schema=False, dependencies=[Depends(login_csrf)])
def login(request: Request, challenge_id: Annotated[str, Form(max_length=64)],
          certificate: Annotated[str, Form(max_length=16_000)], signature: Annotated[str, Form(max_length=2_000)],
          ) -> Response:
    """Card login: the relying party verifies the card's signature over our challenge; we open a session."""
    auth = card_authenticator(request)
    if auth is None:
        return _login_page(request, None, status_code=503)
    ctx = context(request)
    try:
        cert, sig = base64.b64decode(certificate, validate=True), base64.b64decode(signature, validate=True)
        ticket = service.open_session(ctx, auth.verify(challenge_id, cert, sig, utc_now()), utc_now())
    except (binascii.Error, ValueError, DomainError) as exc:
        return _login_page(request, auth, status_code=403, failed=str(exc))
    return _logged_in(request, ticket.token)


def demo_reader_enabled(request: Request) -> bool:
    """Whether this server offers the demonstration reader (``app.state.portal_demo_reader``; off unless
    the server was started for a demonstration)."""
    return bool(getattr(request.app.state, "portal_demo_reader", False))


@router.post("/portal/login/reader", include_in_schema=False, dependencies=[Depends(login_csrf)])
def login_with_reader(request: Request, challenge_id: Annotated[str, Form(max_length=64)],
                      nonce: Annotated[str, Form(max_length=200)], card: Annotated[str, Form(max_length=40)],
                      pin: Annotated[str, Form(max_length=16)]) -> Response:
    """DEMONSTRATION: the server-side "reader" has a card file on this server sign the page's challenge (the
    chip checks the PIN and counts the tries), then the same relying-party check as :func:`login`."""
    from mynacard.chip.client import PinBlocked, WrongPin
    from mynacard.portal.card_login import demo_reader_sign

    auth = card_authenticator(request)
    if auth is None:
        return _login_page(request, None, status_code=503)
    if not demo_reader_enabled(request):
        return _login_page(request, auth, status_code=404, failed="no demonstration reader on this server")
    ctx = context(request)
    t = translator(language(request))
    try:
        cert, sig = demo_reader_sign(ctx, card, pin, base64.b64decode(nonce, validate=True))
        ticket = service.open_session(ctx, auth.verify(challenge_id, cert, sig, utc_now()), utc_now())
    except WrongPin as exc:
        return _login_page(request, auth, status_code=403, failed=t("portal.wrong_pin", left=exc.tries_left))
    except PinBlocked:
        return _login_page(request, auth, status_code=403, failed=t("portal.pin_blocked"))
    except (binascii.Error, ValueError, DomainError) as exc:
        return _login_page(request, auth, status_code=403, failed=str(exc))
    return _logged_in(request, ticket.token)


@router.post("/portal/logout", include_in_schema=False)
def logout(request: Request) -> Response:
    found = resident_session(request)
    if found is not None:
        service.close_session(context(request), found[1], utc_now())
    response = RedirectResponse("/portal", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


# --- records, own information, notices ---------------------------------------------------------------------------

@router.get("/portal/records", response_class=HTMLResponse, include_in_schema=False)
def records_page(request: Request, page: Page = 1) -> Response:
    found = resident_session(request)
    if found is None:
        return _to_login()
    who, token = found
    rows, total = service.my_records(context(request), who, now(request), page=page, per_page=50)
    return resident_page(request, "portal_records.html", who, token, rows=rows, total=total, page=max(1, page),
                         pages=max(1, (total + 49) // 50), labels=_labels())


@router.get("/portal/me", response_class=HTMLResponse, include_in_schema=False)
def me_page(request: Request) -> Response:
    found = resident_session(request)
    if found is None:
        return _to_login()
    who, token = found
    return resident_page(request, "portal_me.html", who, token, items=service.own_information(context(request), who))


@router.post("/portal/me/refresh", include_in_schema=False)
def me_refresh(request: Request) -> Response:
    found = resident_session(request)
    if found is None:
        return _to_login()
    service.refresh_own_information(context(request), found[0], now(request))
    return RedirectResponse("/portal/me", status_code=303)


def _download(request: Request, who: Principal, fmt: str) -> Response:
    content, media = service.export_own_information(context(request), who, fmt, now(request))
    name = f"mynaportal-own-information-{now(request):%Y%m%d}.{fmt}"
    return Response(content, media_type=media, headers={
        "content-disposition": f'attachment; filename="{name}"', "cache-control": "no-store"})


@router.get("/portal/me.json", include_in_schema=False)
def me_json(request: Request) -> Response:
    found = resident_session(request)
    return _to_login() if found is None else _download(request, found[0], "json")


@router.get("/portal/me.csv", include_in_schema=False)
def me_csv(request: Request) -> Response:
    found = resident_session(request)
    return _to_login() if found is None else _download(request, found[0], "csv")


@router.get("/portal/notices", response_class=HTMLResponse, include_in_schema=False)
def notices_page(request: Request) -> Response:
    found = resident_session(request)
    if found is None:
        return _to_login()
    who, token = found
    return resident_page(request, "portal_notices.html", who, token,
                         notices=service.my_notices(context(request), who, now(request)), opened=None)


@router.get("/portal/notices/{notice_id}", response_class=HTMLResponse, include_in_schema=False)
def notice_page(request: Request, notice_id: IdPath) -> Response:
    found = resident_session(request)
    if found is None:
        return _to_login()
    who, token = found
    opened = service.read_notice(context(request), who, notice_id, now(request))
    return resident_page(request, "portal_notices.html", who, token,
                         notices=service.my_notices(context(request), who, now(request)), opened=opened)


# --- the one-stop child-rearing application ----------------------------------------------------------------------

@router.get("/portal/child", response_class=HTMLResponse, include_in_schema=False)
def child_page(request: Request) -> Response:
    found = resident_session(request)
    if found is None:
        return _to_login()
    who, token = found
    return resident_page(request, "portal_child.html", who, token, forms=FORMS,
                         available=service.available_procedures(context(request), who), values={}, chosen=[],
                         problems=[])


def _form_fields(form: Any) -> tuple[list[str], dict[str, str]]:
    chosen = [str(v) for v in form.getlist("procedure")]
    fields = {k: str(v) for k, v in form.items() if "." in k}
    return chosen, fields


@router.post("/portal/child/confirm", response_class=HTMLResponse, include_in_schema=False)
async def child_confirm(request: Request) -> Response:
    found = resident_session(request)
    if found is None:
        return _to_login()
    who, token = found
    ctx = context(request)
    form = await request.form()
    chosen, fields = _form_fields(form)
    available = service.available_procedures(ctx, who)
    problems: list[str] = []
    if not chosen:
        problems.append("申請する手続を選んでください (choose at least one procedure)")
    checked: dict[str, dict[str, Any]] = {}
    for name in chosen:
        try:
            procedure = ChildProcedure(name)
            checked[name] = validate_form(procedure, service.procedures_from_form(fields, [name])[name],
                                          ctx.now().date())
            if available[procedure] is None:
                problems.append(f"{procedure.label_ja}: お住まいの市区町村では受け付けていません")
        except ValueError as exc:
            problems.extend(f"{name}: {line}" for line in str(exc).splitlines())
    if problems:
        return resident_page(request, "portal_child.html", who, token, status_code=422, forms=FORMS,
                             available=available, values=fields, chosen=chosen, problems=problems)
    return resident_page(request, "portal_child_confirm.html", who, token, forms=FORMS, available=available,
                         checked={ChildProcedure(n): v for n, v in checked.items()}, fields=fields, chosen=chosen,
                         key=secrets.token_urlsafe(16))


@router.post("/portal/child/submit", include_in_schema=False)
async def child_submit(request: Request) -> Response:
    found = resident_session(request)
    if found is None:
        return _to_login()
    who, _ = found
    ctx = context(request)
    form = await request.form()
    chosen, fields = _form_fields(form)
    view = service.submit_child_rearing(ctx, who, service.procedures_from_form(fields, chosen),
                                        str(form.get("key", "")), ctx.now())
    return RedirectResponse(f"/portal/applications?done={view.id}", status_code=303)


@router.get("/portal/applications", response_class=HTMLResponse, include_in_schema=False)
def applications_page(request: Request, done: IdQuery | None = None) -> Response:
    found = resident_session(request)
    if found is None:
        return _to_login()
    who, token = found
    return resident_page(request, "portal_applications.html", who, token,
                         applications=service.my_applications(context(request), who, now(request)), done=done)


# --- JSON -------------------------------------------------------------------------------------------------------

@router.get("/api/portal/records")
def records_json(request: Request, page: Page = 1, who: Principal = Depends(resident_api)) -> dict[str, Any]:
    """The caller's exchange records (情報提供等記録), newest first."""
    rows, total = service.my_records(context(request), who, now(request), page=page)
    return {"total": total, "page": page, "records": [
        {"seq": r.seq, "kind": r.kind.value, "at": r.at.isoformat(), "requester": r.requester,
         "requester_name": r.requester_name, "provider": r.provider, "provider_name": r.provider_name,
         "procedure": r.procedure, "item": r.item, "status": r.status.value, "basis": r.basis} for r in rows]}


@router.get("/api/portal/own-information")
def own_information_json(request: Request, who: Principal = Depends(resident_api)) -> list[dict[str, Any]]:
    """The caller's folder of own information."""
    return [{"agency_id": i.agency_id, "agency": i.agency, "item": i.item, "data": i.data,
             "updated_at": i.updated_at.isoformat() if i.updated_at else None,
             "fetched_at": i.fetched_at.isoformat()} for i in service.own_information(context(request), who)]


@router.post("/api/portal/own-information/refresh")
def own_information_refresh(request: Request, who: Principal = Depends(resident_api)) -> dict[str, int]:
    return {"items": service.refresh_own_information(context(request), who, now(request))}


@router.get("/api/portal/notices")
def notices_json(request: Request, who: Principal = Depends(resident_api)) -> list[dict[str, Any]]:
    return [{"id": n.id, "sender": n.sender, "sender_name": n.sender_name, "title": n.title, "body": n.body,
             "received_at": n.received_at.isoformat(), "read": n.read_at is not None}
            for n in service.my_notices(context(request), who, now(request))]


FormField = Annotated[str, Field(max_length=2000)]


class ChildRearingIn(BaseModel):
    forms: dict[Annotated[str, Field(max_length=64)],
                Annotated[dict[Annotated[str, Field(max_length=64)], FormField], Field(max_length=100)]] = Field(
        max_length=20)
    """Procedure → its form's fields (the service checks the procedures and fields it knows)."""
    key: Key


@router.post("/api/portal/child-rearing", status_code=201)
def child_rearing_json(request: Request, body: ChildRearingIn,
                       who: Principal = Depends(resident_api)) -> dict[str, Any]:
    """Apply for child-rearing procedures (the same ``key`` twice is one application)."""
    view = service.submit_child_rearing(context(request), who, body.forms, body.key, now(request))
    return {"id": view.id, "deliveries": view.deliveries}


@router.get("/api/portal/applications")
def applications_json(request: Request, who: Principal = Depends(resident_api)) -> list[dict[str, Any]]:
    return [{"id": a.id, "submitted_at": a.submitted_at.isoformat(), "deliveries": a.deliveries}
            for a in service.my_applications(context(request), who, now(request))]
