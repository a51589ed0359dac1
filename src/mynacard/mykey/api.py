"""MyKey pages and JSON: the shelter clients' sync endpoint, the municipality's disaster page, and the point
programme's accounts page (staff, scoped to their municipality)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse

from mynacard.context import Context
from mynacard.errors import InvalidInput
from mynacard.mykey import points, shelter
from mynacard.mykey.model import AccountKind
from mynacard.principal import Principal
from mynacard.web.deps import context, principal, render
from mynacard.web.i18n import register

router = APIRouter()

register({
    "mykey.disaster.title": ("避難所の状況", "Shelters"),
    "mykey.disaster.lead": ("避難所でマイナンバーカードをかざした方の最新の状況です (10秒ごとに更新)。",
                            "Who has touched their My Number Card at a shelter, as of now (refreshed every 10 s)."),
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


def _now() -> datetime:
    return datetime.now(UTC)


@router.post("/api/mykey/shelters/{code}/touches")
async def receive_touches(code: str, request: Request, ctx: Context = Depends(context),
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
    receipt = shelter.receive_touches(ctx, who, code, touches, _now())
    return JSONResponse(receipt.to_json())


@router.get("/api/mykey/disaster/{municipality_code}")
def disaster_json(municipality_code: str, ctx: Context = Depends(context),
                  who: Principal = Depends(principal)) -> JSONResponse:
    view = shelter.disaster_view(ctx, who, municipality_code)
    return JSONResponse({
        "municipality_code": view.municipality_code, "total_present": view.total_present,
        "shelters": [{"code": s.code, "name": s.name, "capacity": s.capacity, "present": s.present}
                     for s in view.shelters],
        "missing": [{"checked_in": found.resident_id, "missing": [m.resident_id for m in absent]}
                    for found, absent in view.missing]})


@router.get("/mykey/disaster/{municipality_code}", response_class=HTMLResponse, include_in_schema=False)
def disaster_page(request: Request, municipality_code: str, ctx: Context = Depends(context),
                  who: Principal = Depends(principal)) -> HTMLResponse:
    return render(request, "mykey_disaster.html", view=shelter.disaster_view(ctx, who, municipality_code))


@router.get("/mykey/points/{municipality_code}", response_class=HTMLResponse, include_in_schema=False)
def points_page(request: Request, municipality_code: str, ctx: Context = Depends(context),
                who: Principal = Depends(principal)) -> HTMLResponse:
    accounts = points.accounts_of_municipality(ctx, who, municipality_code)
    check = points.verify_ledger(ctx)
    return render(request, "mykey_points.html", municipality_code=municipality_code, accounts=accounts,
                  kinds=list(AccountKind), ledger_ok=check.ok)
