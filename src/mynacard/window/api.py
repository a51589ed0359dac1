"""HTTP routes of the issuance window: the clerk's pages (``/window/...``, Japanese first) and the JSON API
(``/api/window/...``) for window terminals and the call centre. Thin: parse, call the service, render.
Every route requires a window role (:func:`window_staff`, on the whole router) and is scoped by the caller's
role and municipality through the service."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from mynacard.cards import service as cards
from mynacard.chip.issuance import InitialPins
from mynacard.context import Context
from mynacard.errors import Conflict, InvalidInput
from mynacard.principal import Principal
from mynacard.registry import service as registry
from mynacard.webkit.deps import context, now, principal, render
from mynacard.webkit.i18n import register
from mynacard.webkit.params import Id, IdPath, TextQuery, parse_id
from mynacard.window import service
from mynacard.window.model import (
    Attendance,
    Document,
    IdentityCheck,
    NotificationCard,
    ProxyReason,
    proxy_reason_label,
)


def window_staff(who: Principal = Depends(principal)) -> Principal:
    """The caller, if they work the window (:data:`service.WINDOW_ROLES`, the rule ``/window`` has always
    applied); anyone else — a manufacturer, a contractor, a verifier, a kiosk — is refused (403) before any
    card is looked up. A dependency of the whole router, so that every window page and API route has it."""
    who.require(*service.WINDOW_ROLES)
    return who


router = APIRouter(dependencies=[Depends(window_staff)])

register({
    "window.title": ("交付窓口", "Issuance window"),
    "window.scan": ("交付通知書を読み取る", "Scan the issuance notice"),
    "window.notice_number": ("交付通知書番号", "Notice number"),
    "window.card_id": ("カード番号 (管理番号)", "Card number"),
    "window.find": ("検索", "Find"),
    "window.today": ("本日の交付処理", "Today's issuances"),
    "window.none_today": ("本日の交付処理はまだありません。", "No issuances yet today."),
    "window.card": ("カード", "Card"),
    "window.holder": ("交付対象者", "Holder"),
    "window.state": ("状態", "State"),
    "window.serial": ("製造番号", "Manufacture number"),
    "window.record": ("交付処理記録", "Issuance record"),
    "window.identity": ("本人確認", "Identity check"),
    "window.attendance": ("来庁者", "Who came"),
    "window.att.in_person": ("本人", "The person"),
    "window.att.legal_representative": ("法定代理人 (本人同行)", "Legal representative (with the person)"),
    "window.att.proxy": ("任意代理人", "Proxy"),
    "window.person_docs": ("本人の確認書類", "The person's documents"),
    "window.agent_docs": ("代理人の確認書類", "The agent's documents"),
    "window.authority": ("代理権を確認した", "Authority confirmed"),
    "window.proxy_reason": ("来庁困難な理由", "Why the person cannot come"),
    "window.evidence": ("来庁困難を証する書類を確認した", "Evidence seen"),
    "window.photo_b": ("B書類のうち1点に本人の写真がある", "One B document has the person's photo"),
    "window.notification_card": ("通知カード", "Notification card"),
    "window.nc.collected": ("回収した", "Collected"),
    "window.nc.none": ("持っていない", "Never had one"),
    "window.nc.lost": ("紛失", "Lost"),
    "window.pins": ("暗証番号の設定 (本人が入力)", "PINs (entered by the holder)"),
    "window.pin.auth": ("利用者証明用 (数字4桁)", "Authentication (4 digits)"),
    "window.pin.sign": ("署名用パスワード (英大文字と数字6〜16文字)", "Signing password (6–16 A–Z, 0–9)"),
    "window.pin.card_info": ("券面事項入力補助用 (数字4桁)", "Card-info (4 digits)"),
    "window.pin.residence": ("住民基本台帳用 (数字4桁)", "Residence (4 digits)"),
    "window.issue": ("交付する", "Issue the card"),
    "window.cancel": ("交付処理を取り消す", "Roll the issuance back"),
    "window.issued": ("交付しました", "The card was issued"),
    "window.replayed": ("既に交付済みです (同じ処理の再送)", "Already issued (a repeated request)"),
    "window.rolled_back": ("交付処理を取り消しました。カードは交付前の状態に戻りました。",
                           "The issuance was rolled back; the card is as before."),
    "window.tries": ("暗証番号の残り回数", "PIN tries left"),
    "window.reset": ("暗証番号の再設定", "Reset a PIN"),
    "window.reset_done": ("暗証番号を再設定しました", "The PIN was reset"),
    "window.pin_kind": ("暗証番号の種類", "PIN"),
    "window.new_value": ("新しい暗証番号", "New PIN"),
    "window.lift": ("一時利用停止の解除", "Lift the suspension"),
    "window.lifted": ("一時利用停止を解除し、電子証明書を新たに発行しました",
                      "Suspension lifted; new certificates issued"),
    "window.address": ("住所変更 (追記と署名用電子証明書の再発行)",
                       "Address change (endorsement and a new signing certificate)"),
    "window.endorsed": ("追記しました", "Endorsed"),
    "window.lost": ("紛失による再交付 (カード廃止と新しい申請書)", "Reissue after loss (abolish, new form)"),
    "window.new_form": ("新しい申請書ID", "New application ID"),
    "window.error": ("処理できません", "Cannot proceed"),
    "window.consistent": ("カード・チップ・電子証明書は一致しています", "Card, chip and certificates agree"),
    "window.inconsistent": ("不一致があります", "They disagree"),
})


_PIN_FIELDS = ("auth", "sign", "card_info", "residence")


def _docs(values: list[str]) -> list[Document]:
    try:
        return [Document(v) for v in values if v]
    except ValueError as exc:
        raise InvalidInput(f"unknown document: {exc}") from None


def _identity(person: list[str], attendance: str = "in_person", agent: list[str] | None = None,
              authority: bool = False, proxy_reason: str | None = None, evidence: bool = False,
              photo_among_b: bool = False) -> IdentityCheck:
    try:
        att = Attendance(attendance)
        reason = ProxyReason(proxy_reason) if proxy_reason else None
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    return IdentityCheck(_docs(person), att, _docs(agent or []), authority, reason, evidence, photo_among_b)


def _pins(values: dict[str, str]) -> InitialPins:
    sign = values.get("sign", "").strip().upper() or None
    return InitialPins(auth=values.get("auth", "").strip(), card_info=values.get("card_info", "").strip(),
                       residence=values.get("residence", "").strip(), sign=sign)


# --- JSON API ----------------------------------------------------------------------------------------------

Word = Annotated[str, Field(max_length=40)]
"""A document, an attendance, a reason or a PIN's name: the window's model names the values it knows."""


class IdentityIn(BaseModel):
    person_documents: list[Word] = Field(min_length=1, max_length=6)
    attendance: Word = "in_person"
    agent_documents: list[Word] = Field(default=[], max_length=6)
    authority_confirmed: bool = False
    proxy_reason: Word | None = None
    evidence_of_inability: bool = False
    photo_among_b: bool = False


class IssuanceIn(BaseModel):
    notice_number: str | None = Field(default=None, max_length=64)
    card_id: Id | None = None
    identity: IdentityIn
    pins: dict[Word, Annotated[str, Field(max_length=32)]] = Field(max_length=8)
    """``auth``, ``sign``, ``card_info``, ``residence`` → the PIN the holder typed."""
    notification_card: Word = "collected"


def _issuance_json(result: service.IssuanceResult) -> dict[str, Any]:
    return {"card_id": result.card_id, "card_serial": result.card_serial, "key": result.idempotency_key,
            "status": result.status.value, "replayed": result.replayed,
            "auth_certificate_serial": result.auth_certificate_serial,
            "sign_certificate_serial": result.sign_certificate_serial}


@router.post("/api/window/issuances")
def api_issue(request: Request, body: IssuanceIn, ctx: Context = Depends(context),
              who: Principal = Depends(window_staff)) -> dict[str, Any]:
    """窓口交付: one atomic, idempotent issuance (retry with the same notice number safely)."""
    i = body.identity
    identity = _identity(i.person_documents, i.attendance, i.agent_documents, i.authority_confirmed,
                         i.proxy_reason, i.evidence_of_inability, i.photo_among_b)
    result = service.issue_card(ctx, who, identity=identity, pins=_pins(body.pins),
                                notification_card=body.notification_card, now=now(request),
                                notice_number=body.notice_number, card_id=body.card_id)
    return _issuance_json(result)


@router.post("/api/window/issuances/{card_id}/cancel")
def api_cancel(request: Request, card_id: IdPath, ctx: Context = Depends(context),
               who: Principal = Depends(window_staff)) -> dict[str, Any]:
    status = service.cancel_issuance(ctx, who, card_id, now(request))
    return {"card_id": card_id, "status": status.value if status else None}


class SuspensionIn(BaseModel):
    card_id: Id
    request_key: str = Field(min_length=1, max_length=64)
    lost: bool = True


@router.post("/api/window/suspensions")
def api_suspend(request: Request, body: SuspensionIn, ctx: Context = Depends(context),
                who: Principal = Depends(window_staff)) -> dict[str, Any]:
    """一時利用停止 by phone at any hour (the call centre; role operator)."""
    result = service.suspend_by_phone(ctx, who, body.card_id, body.request_key, now(request), lost=body.lost)
    return {"card_id": result.card_id, "state": result.state.value, "replayed": result.replayed,
            "held_certificates": list(result.certificates)}


@router.get("/api/window/cards/{card_id}/consistency")
def api_consistency(card_id: IdPath, ctx: Context = Depends(context),
                    who: Principal = Depends(window_staff)) -> dict[str, Any]:
    cards.get_card(ctx, who, card_id)  # scope
    problems = service.check_consistency(ctx, card_id)
    return {"card_id": card_id, "consistent": not problems, "problems": problems}


@router.get("/api/window/ping")
def api_ping(who: Principal = Depends(window_staff)) -> dict[str, str]:
    """A trivial authenticated route (the benchmark's peer)."""
    return {"who": who.subject}


# --- pages -------------------------------------------------------------------------------------------------

def _start_of_day(now: datetime) -> datetime:
    return now - timedelta(hours=24)


@router.get("/window", response_class=HTMLResponse, include_in_schema=False)
def window_home(request: Request, ctx: Context = Depends(context),
                who: Principal = Depends(window_staff)) -> HTMLResponse:
    rows = service.todays_issuances(ctx, who, _start_of_day(now(request)))
    return render(request, "window_home.html", rows=rows)


@router.get("/window/find", include_in_schema=False)
def window_find(request: Request, notice: TextQuery = "", card_id: TextQuery = "", ctx: Context = Depends(context),
                who: Principal = Depends(window_staff)) -> Response:
    try:
        number = parse_id(card_id, "card_id")
    except InvalidInput:
        raise InvalidInput("カード番号は数字です (a card number is digits)") from None
    _, card = service.find_card(ctx, who, notice_number=notice.strip() or None, card_id=number)
    suffix = f"?notice={notice.strip()}" if notice.strip() else ""
    return RedirectResponse(f"/window/cards/{card.id}{suffix}", status_code=303)


def _demo_chip(request: Request, ctx: Context, card: cards.CardView) -> None:
    """In a demo installation only (the app wires the hook then): a simulated card gets its chip here."""
    supply = getattr(request.app.state, "demo_chip_supply", None)
    if supply is not None:
        supply(ctx, card, now(request))


def _card_page(request: Request, ctx: Context, who: Principal, card_id: int, **extra: Any) -> HTMLResponse:
    card = cards.get_card(ctx, who, card_id)
    _demo_chip(request, ctx, card)
    holder = registry.get_resident(ctx, who, card.resident_id)
    record = service.issuance_of(ctx, who, card_id)
    tries: dict[str, int] = {}
    problems = service.check_consistency(ctx, card_id)
    if card.state.value in ("issued", "suspended") and service.chip_present(ctx, card):
        tries = service.tries_left(ctx, who, card_id)
    return render(request, "window_card.html", card=card, holder=holder, record=record, tries=tries,
                  documents=list(Document), reasons=list(ProxyReason), attendances=list(Attendance),
                  notification_cards=list(NotificationCard), problems=problems, reason_label=proxy_reason_label,
                  notice=request.query_params.get("notice", ""), **extra)


@router.get("/window/cards/{card_id}", response_class=HTMLResponse, include_in_schema=False)
def window_card(card_id: IdPath, request: Request, ctx: Context = Depends(context),
                who: Principal = Depends(window_staff)) -> HTMLResponse:
    return _card_page(request, ctx, who, card_id)


async def _form(request: Request) -> tuple[dict[str, str], dict[str, list[str]]]:
    form = await request.form()
    single = {k: str(v) for k, v in form.items()}
    multi = {k: [str(v) for v in form.getlist(k)] for k in form}
    return single, multi


def _form_identity(single: dict[str, str], multi: dict[str, list[str]]) -> IdentityCheck:
    return _identity(multi.get("person_doc", []), single.get("attendance", "in_person"),
                     multi.get("agent_doc", []), single.get("authority") == "on",
                     single.get("proxy_reason") or None, single.get("evidence") == "on",
                     single.get("photo_among_b") == "on")


def _failed(request: Request, ctx: Context, who: Principal, card_id: int, exc: InvalidInput | Conflict) -> HTMLResponse:
    problems = exc.problems if isinstance(exc, InvalidInput) else [str(exc)]
    status = 422 if isinstance(exc, InvalidInput) else 409
    page = _card_page(request, ctx, who, card_id, error=str(exc), error_problems=problems)
    page.status_code = status
    return page


@router.post("/window/cards/{card_id}/issue", response_class=HTMLResponse, include_in_schema=False)
async def window_issue(card_id: IdPath, request: Request, ctx: Context = Depends(context),
                       who: Principal = Depends(window_staff)) -> HTMLResponse:
    single, multi = await _form(request)
    try:
        result = service.issue_card(ctx, who, identity=_form_identity(single, multi),
                                    pins=_pins({k: single.get(f"pin_{k}", "") for k in _PIN_FIELDS}),
                                    notification_card=single.get("notification_card", ""), now=now(request),
                                    notice_number=single.get("notice") or None,
                                    card_id=None if single.get("notice") else card_id)
    except (InvalidInput, Conflict) as exc:
        return _failed(request, ctx, who, card_id, exc)
    return _card_page(request, ctx, who, card_id, done="window.replayed" if result.replayed else "window.issued")


@router.post("/window/cards/{card_id}/cancel", response_class=HTMLResponse, include_in_schema=False)
def window_cancel(card_id: IdPath, request: Request, ctx: Context = Depends(context),
                  who: Principal = Depends(window_staff)) -> HTMLResponse:
    service.cancel_issuance(ctx, who, card_id, now(request))
    return _card_page(request, ctx, who, card_id, done="window.rolled_back")


@router.post("/window/cards/{card_id}/pin-reset", response_class=HTMLResponse, include_in_schema=False)
async def window_pin_reset(card_id: IdPath, request: Request, ctx: Context = Depends(context),
                           who: Principal = Depends(window_staff)) -> HTMLResponse:
    single, multi = await _form(request)
    value = single.get("new_value", "").strip()
    if single.get("pin_kind") == "sign":
        value = value.upper()
    try:
        service.reset_pin(ctx, who, card_id, single.get("pin_kind", ""), value, _form_identity(single, multi),
                          now(request))
    except (InvalidInput, Conflict) as exc:
        return _failed(request, ctx, who, card_id, exc)
    return _card_page(request, ctx, who, card_id, done="window.reset_done")


@router.post("/window/cards/{card_id}/lift", response_class=HTMLResponse, include_in_schema=False)
async def window_lift(card_id: IdPath, request: Request, ctx: Context = Depends(context),
                      who: Principal = Depends(window_staff)) -> HTMLResponse:
    single, multi = await _form(request)
    try:
        service.lift_suspension(ctx, who, card_id, _form_identity(single, multi), now(request))
    except (InvalidInput, Conflict) as exc:
        return _failed(request, ctx, who, card_id, exc)
    return _card_page(request, ctx, who, card_id, done="window.lifted")


@router.post("/window/cards/{card_id}/address", response_class=HTMLResponse, include_in_schema=False)
async def window_address(card_id: IdPath, request: Request, ctx: Context = Depends(context),
                         who: Principal = Depends(window_staff)) -> HTMLResponse:
    single, _ = await _form(request)
    password = single.get("new_sign_password", "").strip().upper() or None
    try:
        service.change_address(ctx, who, card_id, now(request), new_sign_password=password)
    except (InvalidInput, Conflict) as exc:
        return _failed(request, ctx, who, card_id, exc)
    return _card_page(request, ctx, who, card_id, done="window.endorsed")


@router.post("/window/cards/{card_id}/lost", response_class=HTMLResponse, include_in_schema=False)
async def window_lost(card_id: IdPath, request: Request, ctx: Context = Depends(context),
                      who: Principal = Depends(window_staff)) -> HTMLResponse:
    single, multi = await _form(request)
    try:
        form_id = service.reissue_after_loss(ctx, who, card_id, _form_identity(single, multi), now(request))
    except (InvalidInput, Conflict) as exc:
        return _failed(request, ctx, who, card_id, exc)
    return _card_page(request, ctx, who, card_id, done="window.new_form", new_form=form_id)
