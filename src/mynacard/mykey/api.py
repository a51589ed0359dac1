"""MyKey pages and JSON: the shelter clients' sync endpoint, the municipality's disaster page, and the point
programme's accounts page (staff, scoped to their municipality)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from mynacard.clock import local_date
from mynacard.context import Context
from mynacard.errors import InvalidInput
from mynacard.mykey import child_health, points, shelter
from mynacard.mykey.model import AccountKind
from mynacard.principal import Principal
from mynacard.registry import service as registry
from mynacard.webkit.deps import context, now, principal, render
from mynacard.webkit.i18n import register
from mynacard.webkit.params import Key, Limit, Municipality, MunicipalityPath, MunicipalityQuery

router = APIRouter()

register({
    "mykey.disaster.title": ("避難所の状況", "Shelters"),
    "mykey.disaster.lead": ("避難所でマイナンバーカードをかざした方の最新の状況です (10秒ごとに更新)。",
                            "Who has touched their My Number Card at a shelter, as of now (refreshed every 10 s)."),
    "mykey.disaster.auto": ("10秒ごとに自動更新する", "Refresh every 10 seconds"),
    "mykey.disaster.total": ("避難者 合計 {n} 人", "{n} people in shelters"),
    "mykey.disaster.shelter": ("避難所", "Shelter"),
    "mykey.disaster.present": ("避難者数", "Present"),
    "mykey.disaster.capacity": ("収容人数", "Capacity"),
    "mykey.disaster.who": ("避難者一覧", "Who is where"),
    "mykey.disaster.name": ("氏名", "Name"),
    "mykey.disaster.relationship": ("続柄", "Relationship"),
    "mykey.disaster.missing": ("所在未確認の世帯員", "Household members not yet checked in"),
    "mykey.disaster.found": ("避難済みの世帯員", "Checked-in member"),
    "mykey.disaster.not_found": ("未確認", "Not checked in"),
    "mykey.disaster.none": ("該当なし", "None"),
    "mykey.child.title": ("母子保健 (予防接種・健診)", "Mother and child health (vaccinations, check-ups)"),
    "mykey.child.lead": ("市区町村の保健センターが記録した、お子さんの予防接種と乳幼児健診の記録です。",
                         "Your children's vaccinations and check-ups as recorded by the municipal health centre."),
    "mykey.child.none": ("表示できるお子さんの記録はありません。", "There are no children's records to show."),
    "mykey.child.age": ("{m}か月", "{m} months"),
    "mykey.child.records": ("記録", "Records"),
    "mykey.child.no_records": ("記録はまだありません。", "Nothing recorded yet."),
    "mykey.child.reminders": ("お知らせ", "Reminders"),
    "mykey.child.missed": ("時期を過ぎています。保健センターにご相談ください",
                           "Missed: please contact the health centre"),
    "mykey.child.due": ("接種・受診の時期です", "Due now"),
    "mykey.child.date": ("実施日", "Date"),
    "mykey.child.item": ("項目", "Item"),
    "mykey.nav.child": ("母子保健", "Child health"),
    "mykey.nav.points": ("ポイント", "Points"),
    "mykey.mypoints.title": ("自治体ポイント", "Municipal points"),
    "mykey.mypoints.mykey": ("マイキーID: {id}", "MyKey ID: {id}"),
    "mykey.mypoints.no_mykey": ("マイキーIDが設定されていません。", "You have no MyKey ID yet."),
    "mykey.mypoints.none": ("ポイントはまだありません。", "No points yet."),
    "mykey.mypoints.programme": ("{code} のポイント", "Points of {code}"),
    "mykey.mypoints.balance": ("残高 {n} ポイント", "Balance: {n} points"),
    "mykey.mypoints.when": ("日時", "When"),
    "mykey.mypoints.what": ("内容", "What"),
    "mykey.mypoints.amount": ("増減", "Change"),
    "mykey.mypoints.after": ("残高", "Balance"),
    "mykey.kind.conversion": ("ポイント移行", "Conversion"),
    "mykey.kind.earning": ("行政ポイント付与", "Granted"),
    "mykey.kind.redemption": ("利用", "Spent"),
    "mykey.points.title": ("自治体ポイント 勘定一覧", "Municipal points: accounts"),
    "mykey.points.kind": ("種別", "Kind"),
    "mykey.points.owner": ("名義", "Owner"),
    "mykey.points.balance": ("残高", "Balance"),
    "mykey.points.ledger_ok": ("元帳は貸借が一致しています。", "The ledger balances."),
    "mykey.points.ledger_bad": ("元帳に不一致があります。", "The ledger does not balance."),
    "mykey.points.programme": ("自治体 (行政ポイント)", "Municipality (granted points)"),
    "mykey.points.partner": ("提携ポイント", "Partner programme"),
    "mykey.points.resident": ("利用者 (マイキーID)", "Resident (MyKey ID)"),
    "mykey.points.shop": ("加盟店", "Shop"),
})


_CODE = r"^[A-Za-z0-9_-]{1,32}$"
Code = Annotated[str, Field(pattern=_CODE, description="a partner's, a shop's or a shelter's code")]
CodePath = Annotated[str, Path(pattern=_CODE, description="a shelter's code")]
CodeQuery = Annotated[str, Query(pattern=_CODE, description="the account owner's code")]
MykeyId = Annotated[str, Field(min_length=8, max_length=8, description="a MyKey ID (8 characters)")]
Points = Annotated[int, Field(ge=1, le=100_000_000, description="points (whole, at least 1)")]

_TOUCHES_BODY = {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "required": ["touches"], "properties": {"touches": {
        "type": "array", "maxItems": shelter.MAX_BATCH, "items": {
            "type": "object", "required": ["touch_id", "certificate", "direction", "touched_at"],
            "properties": {
                "touch_id": {"type": "string", "format": "uuid"},
                "certificate": {"type": "string", "description": "the card's certificate, base64 DER"},
                "direction": {"type": "string", "maxLength": 16},
                "touched_at": {"type": "string", "format": "date-time"},
                "signature": {"type": ["string", "null"], "description": "base64, with a PIN check-in"}}}}}}}}}
"""The touches' body as the route reads it (by hand, so that every problem says which touch is wrong)."""


@router.post("/api/mykey/shelters/{code}/touches", openapi_extra={"requestBody": _TOUCHES_BODY})
async def receive_touches(code: CodePath, request: Request, ctx: Context = Depends(context),
                          who: Principal = Depends(principal)) -> JSONResponse:
    """A shelter client's batch of touches (JSON ``{"touches": [...]}``); answers a receipt."""
    try:
        body: Any = await request.json()
        items = body["touches"]
        if not isinstance(items, list):
            raise TypeError("touches must be a list")
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidInput(f"expected {{\"touches\": [...]}}: {exc}") from None
    touches = [shelter.Touch.from_json(item) for item in items]
    receipt = shelter.receive_touches(ctx, who, code, touches, ctx.now())
    return JSONResponse(receipt.to_json())


@router.get("/api/mykey/disaster/{municipality_code}")
def disaster_json(municipality_code: MunicipalityPath, ctx: Context = Depends(context),
                  who: Principal = Depends(principal)) -> JSONResponse:
    view = shelter.disaster_view(ctx, who, municipality_code)
    return JSONResponse({
        "municipality_code": view.municipality_code, "total_present": view.total_present,
        "shelters": [{"code": s.code, "name": s.name, "capacity": s.capacity, "present": s.present}
                     for s in view.shelters],
        "missing": [{"checked_in": found.resident_id, "missing": [m.resident_id for m in absent]}
                    for found, absent in view.missing]})


@router.get("/mykey/disaster/{municipality_code}", response_class=HTMLResponse, include_in_schema=False)
def disaster_page(request: Request, municipality_code: MunicipalityPath, ctx: Context = Depends(context),
                  who: Principal = Depends(principal)) -> HTMLResponse:
    return render(request, "mykey_disaster.html", view=shelter.disaster_view(ctx, who, municipality_code))


@router.get("/mykey/points/{municipality_code}", response_class=HTMLResponse, include_in_schema=False)
def points_page(request: Request, municipality_code: MunicipalityPath, ctx: Context = Depends(context),
                who: Principal = Depends(principal)) -> HTMLResponse:
    accounts = points.accounts_of_municipality(ctx, who, municipality_code)
    check = points.verify_ledger(ctx)
    return render(request, "mykey_points.html", municipality_code=municipality_code, accounts=accounts,
                  kinds=list(AccountKind), ledger_ok=check.ok)


@router.get("/portal/child-health", response_class=HTMLResponse, include_in_schema=False)
def child_health_page(request: Request) -> Response:
    """母子保健 in Mynaportal: the logged-in parent's children, their records and reminders."""
    from mynacard.portal import api as portal_api

    found = portal_api.resident_session(request)
    if found is None:
        return RedirectResponse("/portal/login", status_code=303)
    who, token = found
    children = child_health.for_parent(context(request), who, local_date(now(request)))
    return portal_api.resident_page(request, "mykey_child_health.html", who, token, children=children)


@router.get("/portal/points", response_class=HTMLResponse, include_in_schema=False)
def my_points_page(request: Request) -> Response:
    """自治体ポイント in Mynaportal: the resident's own balances and statements."""
    from mynacard.portal import api as portal_api

    found = portal_api.resident_session(request)
    if found is None:
        return RedirectResponse("/portal/login", status_code=303)
    who, token = found
    ctx = context(request)
    mykey_id, holdings = points.my_points(ctx, who)
    names = {h.municipality_code: registry.get_municipality(ctx, h.municipality_code).full_name for h in holdings}
    return portal_api.resident_page(request, "mykey_my_points.html", who, token, mykey_id=mykey_id,
                                    holdings=holdings, names=names)


# --- points: partners, shops and the municipality over JSON (API keys) ----------------------------------------------

class ConversionIn(BaseModel):
    partner: Code
    mykey_id: MykeyId
    municipality_code: Municipality
    partner_points: Points
    idempotency_key: Key


class RedemptionIn(BaseModel):
    shop: Code
    mykey_id: MykeyId
    municipality_code: Municipality
    points: Points
    idempotency_key: Key


def _posted(result: points.PostingResult) -> JSONResponse:
    return JSONResponse({"transaction_id": result.transaction_id, "replayed": result.replayed},
                        status_code=200 if result.replayed else 201)


@router.post("/api/mykey/points/conversions")
def convert_json(body: ConversionIn, ctx: Context = Depends(context),
                 who: Principal = Depends(principal)) -> JSONResponse:
    """A partner converts a holder's points (account ``partner-<code>``); a retried key answers 200."""
    return _posted(points.convert(ctx, who, body.partner, body.mykey_id, body.municipality_code,
                                  body.partner_points, body.idempotency_key, ctx.now()))


@router.post("/api/mykey/points/redemptions")
def redeem_json(body: RedemptionIn, ctx: Context = Depends(context),
                who: Principal = Depends(principal)) -> JSONResponse:
    """An (online) shop takes points (account ``shop-<code>``); not enough points is 409."""
    return _posted(points.redeem(ctx, who, body.shop, body.mykey_id, body.municipality_code, body.points,
                                 body.idempotency_key, ctx.now()))


@router.get("/api/mykey/points/statement")
def statement_json(kind: Annotated[AccountKind, Query()], owner: CodeQuery, municipality_code: MunicipalityQuery,
                   limit: Limit = 100,
                   ctx: Context = Depends(context), who: Principal = Depends(principal)) -> JSONResponse:
    """An account's statement for whoever may read it (the shop or partner itself, the municipality)."""
    balance, lines = points.statement(ctx, who, kind, owner, municipality_code, limit)
    return JSONResponse({"balance": balance, "lines": [
        {"transaction_id": line.transaction_id, "at": line.at.isoformat(), "kind": line.kind.value, "memo": line.memo,
         "amount": line.amount, "balance_after": line.balance_after} for line in lines]})
