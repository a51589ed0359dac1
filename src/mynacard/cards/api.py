"""HTTP routes of the card pipeline: the national dashboard (the first page), intake for the
contractor, card look-ups and box receipt for municipalities. Thin: parse, call the service, render."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from mynacard.cards import service
from mynacard.cards.model import CardState, Channel
from mynacard.cards.photo import MAX_BYTES
from mynacard.clock import JST
from mynacard.context import Context
from mynacard.errors import InvalidInput
from mynacard.principal import Principal
from mynacard.registry import service as registry
from mynacard.webkit.deps import context, principal, render
from mynacard.webkit.i18n import register
from mynacard.webkit.params import Day, IdPath, LongText, Name, ShortText

router = APIRouter()

register({
    "cards.dashboard": ("マイナンバーカード 交付状況", "My Number Card — issuance status"),
    "cards.by_state": ("市区町村別・状態別のカード枚数", "Cards by municipality and state"),
    "cards.total": ("合計", "Total"),
    "cards.municipality": ("市区町村", "Municipality"),
    "cards.none": ("まだ申請はありません。", "No applications yet."),
    "cards.ledger_ok": ("台帳と履歴は一致しています", "State and history agree"),
    "cards.ledger_broken": ("台帳と履歴が一致しません", "State and history DISAGREE"),
    "cards.ledger_checked": ("{at} の照合 ({cards} 枚, {events} 件の履歴)",
                             "checked at {at} ({cards} cards, {events} events)"),
    "cards.ledger_never": ("台帳と履歴の照合はまだ実行されていません (mynacard status)",
                           "State and history have not been checked yet (mynacard status)"),
    **{f"state.{s.value}": (ja, s.value.replace("_", " ")) for s, ja in {
        CardState.APPLIED: "申請受付", CardState.IN_REVIEW: "確認待ち", CardState.ACCEPTED: "審査済",
        CardState.REJECTED: "返戻", CardState.PRINT_ORDERED: "印刷依頼済", CardState.MANUFACTURED: "製造済",
        CardState.SHIPPED: "発送済", CardState.RECEIVED: "到着", CardState.DEFECTIVE: "不良",
        CardState.PRE_ISSUANCE_SET: "交付前設定済", CardState.NOTICE_SENT: "通知済",
        CardState.ISSUED: "交付済", CardState.SUSPENDED: "一時停止", CardState.ABOLISHED: "廃止",
        CardState.VOIDED: "無効"}.items()},
})

_PUBLIC = Principal.system("public-dashboard")


def _stats(ctx: Context) -> tuple[list[dict[str, Any]], dict[str, int]]:
    counts = service.counts_by_municipality_and_state(ctx, _PUBLIC)
    names = {m.code: m.full_name for m in registry.list_municipalities(ctx)}
    rows, totals = [], {s.value: 0 for s in CardState}
    for code, by_state in sorted(counts.items()):
        rows.append({"code": code, "name": names.get(code, code), "states": by_state,
                     "total": sum(by_state.values())})
        for s, n in by_state.items():
            totals[s] += n
    return rows, totals


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def dashboard(request: Request, ctx: Context = Depends(context)) -> HTMLResponse:
    """The first page: cards by state per municipality (aggregates only; public, as the ministry publishes)."""
    rows, totals = _stats(ctx)
    # The ledger check reads every card event: a job (`mynacard status`) runs it; the page shows its last result.
    check = service.last_ledger_check(ctx)
    checked_at = check.checked_at.astimezone(JST).strftime("%Y-%m-%d %H:%M JST") if check else None
    states = [s.value for s in CardState]
    colours = {s: f"hsl({i * 360 // len(states)},55%,52%)" for i, s in enumerate(states)}
    return render(request, "cards_dashboard.html", rows=rows, totals=totals, states=states, colours=colours,
                  ledger=check, ledger_checked_at=checked_at)


@router.get("/api/cards/stats")
def stats(ctx: Context = Depends(context)) -> dict[str, Any]:
    """Cards by state per municipality, as JSON."""
    rows, totals = _stats(ctx)
    return {"municipalities": rows, "totals": totals}


class ApplicationIn(BaseModel):
    application_id: str = Field(min_length=23, max_length=23)
    channel: Channel
    family_name: Name
    given_name: Name
    birth_date: Day
    sex: str = Field(min_length=1, max_length=16)
    address: LongText
    photo_base64: str = Field(min_length=1, max_length=(MAX_BYTES * 4) // 3 + 4)
    maiden_name: ShortText | None = None
    wants_sign_cert: bool = True
    wants_auth_cert: bool = True


class IntakeOut(BaseModel):
    created: list[int]
    already_received: list[str]
    duplicates_rejected: list[str]


@router.post("/api/cards/applications", response_model=IntakeOut)
def submit(items: Annotated[list[ApplicationIn], Body(max_length=1000)], ctx: Context = Depends(context),
           who: Principal = Depends(principal)) -> IntakeOut:
    """Receive a batch of applications (申請受付): all stored, or none with every problem listed."""
    inputs = []
    for i, item in enumerate(items):
        try:
            photo = base64.b64decode(item.photo_base64, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidInput(f"#{i + 1}: photo_base64 is not base64") from None
        inputs.append(service.ApplicationInput(
            application_id=item.application_id, channel=item.channel.value, family_name=item.family_name,
            given_name=item.given_name, birth_date=item.birth_date, sex=item.sex, address=item.address,
            photo=photo, maiden_name=item.maiden_name, wants_sign_cert=item.wants_sign_cert,
            wants_auth_cert=item.wants_auth_cert))
    result = service.submit_applications(ctx, who, inputs, ctx.now())
    return IntakeOut(**result.__dict__)


@router.get("/api/cards/{card_id}")
def get_card(card_id: IdPath, ctx: Context = Depends(context), who: Principal = Depends(principal)) -> dict[str, Any]:
    view = service.get_card(ctx, who, card_id)
    return {**view.__dict__, "state": view.state.value,
            "history": service.card_history(ctx, who, card_id)}


@router.get("/api/boxes")
def boxes(ctx: Context = Depends(context), who: Principal = Depends(principal)) -> dict[str, list[int]]:
    """Boxes not yet checked in, for the caller's municipality."""
    return {"unreceived": service.unreceived_boxes(ctx, who)}


@router.get("/api/boxes/{box_id}")
def box(box_id: IdPath, ctx: Context = Depends(context), who: Principal = Depends(principal)) -> dict[str, Any]:
    return service.box_manifest(ctx, who, box_id)


class ReceiptIn(BaseModel):
    scanned: list[Annotated[str, Field(max_length=13)]] = Field(max_length=10_000)
    """The manufacture numbers (製造番号) scanned from the box."""
    damaged: dict[Annotated[str, Field(max_length=13)], ShortText] = Field(default={}, max_length=10_000)
    """Manufacture number → what is wrong with the card."""


@router.post("/api/boxes/{box_id}/receipt")
def receive(box_id: IdPath, body: ReceiptIn, ctx: Context = Depends(context),
            who: Principal = Depends(principal)) -> dict[str, Any]:
    """Check a box in against its manifest (カード到着確認); a repeat returns the first result."""
    return service.receive_box(ctx, who, box_id, body.scanned, body.damaged, ctx.now()).__dict__
