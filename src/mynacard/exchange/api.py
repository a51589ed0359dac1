"""HTTP routes of the information provision network: the public directory and permitted table, the agency
interface (enrol, register copies, query, notify, inbox, corrections) for agency API keys, reviews for
supervisors and the operator, and the log with its verifier. Thin: parse, call the service, render."""

from __future__ import annotations

import base64
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from mynacard.clock import JST
from mynacard.context import Context
from mynacard.errors import Forbidden, InvalidInput
from mynacard.exchange import service
from mynacard.exchange.model import PERMITTED_EXCHANGES, Agency, InfoItem, LogEntry, Procedure, SubmittedFacts
from mynacard.principal import Principal, Role
from mynacard.webkit.deps import context, principal, render
from mynacard.webkit.i18n import register
from mynacard.webkit.params import (
    After,
    AgencyId,
    AgencyIdPath,
    AgencyIdQuery,
    Day,
    IdPath,
    Key,
    Limit,
    LongText,
    Municipality,
    MunicipalityQuery,
    Ref,
    RefPath,
    ShortText,
    TextQuery,
)

router = APIRouter()

register({
    "exchange.title": ("情報提供ネットワークシステム", "Information provision network"),
    "exchange.lead": ("行政機関はそれぞれの情報を自ら保有し、機関ごとに異なる符号で本人を特定して、法律が定める"
                      "やりとりだけを暗号化された通信で行います。やりとりはすべて記録され、本人はマイナポータルで"
                      "確認できます。",
                      "Each agency keeps its own records and identifies people by a code of its own; only the "
                      "exchanges the law lists flow, signed and encrypted, and every one is recorded for the "
                      "person to read in Mynaportal."),
    "exchange.agencies": ("接続機関", "Agencies"),
    "exchange.permissions": ("情報連携が認められたやりとり (別表第二)", "Permitted exchanges (Table 2)"),
    "exchange.row": ("項番", "Row"),
    "exchange.requester": ("情報照会者", "Requester"),
    "exchange.procedure": ("事務", "Procedure"),
    "exchange.provider": ("情報提供者", "Provider"),
    "exchange.item": ("特定個人情報", "Information item"),
    "exchange.kind": ("種別", "Kind"),
    "exchange.municipality": ("市区町村", "Municipality"),
    "exchange.status": ("状態", "Status"),
    "exchange.log": ("情報提供等記録 (ハッシュチェーン)", "Exchange log (hash chain)"),
    "exchange.log_ok": ("記録は改ざんされていません", "The log is whole"),
    "exchange.log_broken": ("記録の連鎖が壊れています: {seq} — {kind}",
                            "The chain is broken at {seq} ({kind}): {detail}"),
    "exchange.break.altered": ("記録の内容が書き換えられています", "altered"),
    "exchange.break.missing": ("記録が削除されています", "missing"),
    "exchange.break.relinked": ("前の記録とつながりません (書き換えと再計算、または挿入)", "relinked"),
    "exchange.break.checkpoint": ("署名済みチェックポイントと一致しません (区間の書き換え)", "checkpoint"),
    "exchange.break.head": ("署名済みの最新記録と一致しません", "head"),
    "exchange.entries": ("記録数", "Entries"),
    "exchange.checkpoints": ("署名済みチェックポイント", "Signed checkpoints"),
    "exchange.reviews": ("確認待ちの符号取得", "Enrolments waiting for review"),
    "exchange.reviews_none": ("確認待ちはありません。", "Nothing is waiting."),
    "exchange.reasons": ("不一致", "Differences"),
    "exchange.submitted": ("申請内容", "Submitted"),
    "exchange.number": ("個人番号", "Individual number"),
    "exchange.reject": ("却下", "Reject"),
    "exchange.retry": ("再照合", "Match again"),
    "exchange.decision_reason": ("理由", "Reason"),
    "exchange.when": ("日時", "When"),
})


Word = Annotated[str, Field(min_length=1, max_length=40)]
"""A status, a kind, an item or a procedure: the service names the values it knows (a 422 with the list)."""
AgencyName = Annotated[str, Field(min_length=1, max_length=120)]
Batch = Body(max_length=1000)
"""At most this many enrolments or records in one request."""


def _agency_json(a: Agency) -> dict[str, Any]:
    return {"id": a.id, "name": a.name, "name_en": a.name_en, "kind": a.kind.value,
            "municipality_code": a.municipality_code, "status": a.status.value, "key_version": a.key_version,
            "sign_public_key": base64.b64encode(a.sign_public_key).decode(),
            "enc_public_key": base64.b64encode(a.enc_public_key).decode()}


def _entry_json(e: LogEntry) -> dict[str, Any]:
    return {"seq": e.seq, "chain": e.chain, "chain_seq": e.chain_seq, "kind": e.kind.value,
            "message_id": e.message_id, "requester": e.requester,
            "provider": e.provider, "procedure": e.procedure, "item": e.item, "status": e.status.value,
            "basis": e.reason, "at": e.completed_at.isoformat()}


# --- public: the directory and the permitted table ----------------------------------------------------------

@router.get("/exchange", response_class=HTMLResponse, include_in_schema=False)
def overview(request: Request, ctx: Context = Depends(context)) -> HTMLResponse:
    """The network at a glance: agencies and the permitted-exchange table (public, as the law is)."""
    return render(request, "exchange_overview.html", agencies=service.list_agencies(ctx),
                  permissions=PERMITTED_EXCHANGES)


@router.get("/api/exchange/permissions")
def permissions() -> list[dict[str, str]]:
    """The permitted-exchange table."""
    return [{"row": p.row, "requester": p.requester.value, "procedure": p.procedure.value,
             "provider": p.provider.value, "item": p.item.value} for p in PERMITTED_EXCHANGES]


@router.get("/api/exchange/agencies")
def agencies(ctx: Context = Depends(context), kind: TextQuery | None = None,
             municipality_code: MunicipalityQuery | None = None) -> list[dict[str, Any]]:
    """The directory: every agency with its public keys."""
    return [_agency_json(a) for a in service.list_agencies(ctx, kind, municipality_code)]


class AgencyIn(BaseModel):
    id: AgencyId
    name: AgencyName
    name_en: AgencyName
    kind: Annotated[str, Field(min_length=1, max_length=32)]
    municipality_code: Municipality | None = None


@router.post("/api/exchange/agencies", status_code=201)
def register_agency(body: AgencyIn, ctx: Context = Depends(context),
                    who: Principal = Depends(principal)) -> dict[str, Any]:
    """Register an agency (the operator); a retry with the same facts returns it."""
    return _agency_json(service.register_agency(ctx, who, service.AgencyRegistration(**body.model_dump()), ctx.now()))


class StatusIn(BaseModel):
    status: Word
    reason: ShortText


@router.post("/api/exchange/agencies/{agency_id}/status")
def agency_status(agency_id: AgencyIdPath, body: StatusIn, ctx: Context = Depends(context),
                  who: Principal = Depends(principal)) -> dict[str, Any]:
    """Suspend or reinstate an agency (the operator)."""
    return _agency_json(service.set_agency_status(ctx, who, agency_id, body.status, body.reason, ctx.now()))


# --- the agency interface -----------------------------------------------------------------------------------

class EnrolmentIn(BaseModel):
    local_ref: Ref
    individual_number: str = Field(repr=False, max_length=32)
    """個人番号: 12 digits with its check digit (checked by the service, which never echoes it)."""
    family_name: ShortText
    given_name: ShortText
    birth_date: Day
    sex: Annotated[str, Field(max_length=16)]
    address: LongText
    family_kana: ShortText | None = None
    given_kana: ShortText | None = None


def _enrolment(item: EnrolmentIn) -> service.EnrolmentRequest:
    return service.EnrolmentRequest(**item.model_dump())


@router.post("/api/exchange/agencies/{agency_id}/enrolments")
def enrol(agency_id: AgencyIdPath, items: Annotated[list[EnrolmentIn], Batch], ctx: Context = Depends(context),
          who: Principal = Depends(principal)) -> list[dict[str, Any]]:
    """符号取得: a full match links, anything less goes to review (never linked)."""
    return [r.__dict__ for r in service.enrol(ctx, who, agency_id, [_enrolment(i) for i in items], ctx.now())]


class RecordIn(BaseModel):
    local_ref: Ref
    item: Word
    data: dict[str, Any] = Field(max_length=200)


@router.post("/api/exchange/agencies/{agency_id}/records")
def records(agency_id: AgencyIdPath, items: Annotated[list[RecordIn], Batch], ctx: Context = Depends(context),
            who: Principal = Depends(principal)) -> dict[str, int]:
    """副本登録: register or replace the copies the agency may provide (all or nothing)."""
    return {"stored": service.register_records(ctx, who, agency_id,
                                               [service.RecordInput(**i.model_dump()) for i in items], ctx.now())}


class QueryIn(BaseModel):
    provider: AgencyId
    procedure: Word
    item: Word
    local_ref: Ref
    message_id: Key | None = None


@router.post("/api/exchange/agencies/{agency_id}/queries")
def query(agency_id: AgencyIdPath, body: QueryIn, ctx: Context = Depends(context),
          who: Principal = Depends(principal)) -> dict[str, Any]:
    """情報照会: the answer, or 403 when the exchange is not permitted (it is logged either way)."""
    outcome = service.query(ctx, who, agency_id, service.QueryRequest(**body.model_dump()), ctx.now())
    return {"message_id": outcome.message_id, "log_seq": outcome.seq, "status": outcome.status.value,
            "basis": outcome.reason, "data": outcome.data, "updated_at": outcome.updated_at,
            "replayed": outcome.replayed}


class NoticeIn(BaseModel):
    title: Annotated[str, Field(min_length=1, max_length=200)]
    body: LongText
    local_ref: Ref | None = None
    reply_handle: Annotated[str, Field(max_length=32)] | None = None
    message_id: Key | None = None


@router.post("/api/exchange/agencies/{agency_id}/notices")
def notice(agency_id: AgencyIdPath, body: NoticeIn, ctx: Context = Depends(context),
           who: Principal = Depends(principal)) -> dict[str, Any]:
    """お知らせ: delivered to the person's Mynaportal through the hub."""
    d = service.send_notice(ctx, who, agency_id, service.NoticeInput(**body.model_dump()), ctx.now())
    return {"message_id": d.message_id, "log_seq": d.seq}


@router.get("/api/exchange/agencies/{agency_id}/inbox")
def inbox(agency_id: AgencyIdPath, ctx: Context = Depends(context), who: Principal = Depends(principal),
          status: TextQuery | None = None) -> list[dict[str, Any]]:
    """Applications received from Mynaportal, newest first."""
    return [{**i.__dict__, "received_at": i.received_at.isoformat(), "updated_at": i.updated_at.isoformat()}
            for i in service.inbox(ctx, who, agency_id, status)]


class InboxStatusIn(BaseModel):
    status: Word
    note: LongText = ""


@router.post("/api/exchange/agencies/{agency_id}/inbox/{inbox_id}/status")
def inbox_status(agency_id: AgencyIdPath, inbox_id: IdPath, body: InboxStatusIn, ctx: Context = Depends(context),
                 who: Principal = Depends(principal)) -> dict[str, Any]:
    """Move an application on; the applicant is told in Mynaportal."""
    item = service.update_inbox_status(ctx, who, agency_id, inbox_id, body.status, body.note, ctx.now())
    return {"id": item.id, "status": item.status}


class ReasonIn(BaseModel):
    reason: ShortText


@router.post("/api/exchange/agencies/{agency_id}/links/{local_ref}/unlink")
def unlink(agency_id: AgencyIdPath, local_ref: RefPath, body: ReasonIn, ctx: Context = Depends(context),
           who: Principal = Depends(principal)) -> dict[str, Any]:
    """Withdraw the agency's code for one of its records."""
    h = service.unlink(ctx, who, agency_id, local_ref, body.reason, ctx.now())
    return {"code_status": h.status, "events": len(h.events)}


class CorrectionIn(EnrolmentIn):
    reason: ShortText


@router.post("/api/exchange/agencies/{agency_id}/links/{local_ref}/correction")
def correct(agency_id: AgencyIdPath, local_ref: RefPath, body: CorrectionIn, ctx: Context = Depends(context),
            who: Principal = Depends(principal)) -> dict[str, Any]:
    """Withdraw a wrong link and enrol the record again with the corrected number and facts."""
    values = body.model_dump()
    reason = values.pop("reason")
    values["local_ref"] = local_ref
    return service.correct_link(ctx, who, agency_id, service.EnrolmentRequest(**values), reason, ctx.now()).__dict__


@router.get("/api/exchange/agencies/{agency_id}/links/{local_ref}/history")
def history(agency_id: AgencyIdPath, local_ref: RefPath, ctx: Context = Depends(context),
            who: Principal = Depends(principal)) -> list[dict[str, Any]]:
    """Every code the record has held, with every change."""
    return [{"code": h.code, "status": h.status, "linked_at": h.linked_at.isoformat(),
             "events": [{**e, "at": e["at"].isoformat()} for e in h.events]}
            for h in service.link_history(ctx, who, agency_id, local_ref)]


@router.post("/api/exchange/agencies/{agency_id}/reconcile")
def reconcile(agency_id: AgencyIdPath, ctx: Context = Depends(context),
              who: Principal = Depends(principal)) -> dict[str, Any]:
    """Check the agency's links against the registry; stale ones are suspended for review."""
    report = service.reconcile(ctx, who, agency_id, ctx.now())
    return {"checked": report.checked, "suspended": report.suspended}


# --- reviews ------------------------------------------------------------------------------------------------

def _review_json(r: service.ReviewView) -> dict[str, Any]:
    return {**r.__dict__, "created_at": r.created_at.isoformat(),
            "decided_at": r.decided_at.isoformat() if r.decided_at else None}


@router.get("/api/exchange/reviews")
def reviews(ctx: Context = Depends(context), who: Principal = Depends(principal),
            agency: AgencyIdQuery | None = None, status: TextQuery | None = "pending") -> list[dict[str, Any]]:
    """The review queue the caller may see."""
    return [_review_json(r) for r in service.list_reviews(ctx, who, agency, status or None)]


class DecisionIn(BaseModel):
    decision: Word
    reason: ShortText
    family_name: ShortText | None = None
    given_name: ShortText | None = None
    birth_date: Day | None = None
    sex: Annotated[str, Field(max_length=16)] | None = None
    address: LongText | None = None
    family_kana: ShortText | None = None
    given_kana: ShortText | None = None


@router.post("/api/exchange/reviews/{review_id}/decision")
def decide(review_id: IdPath, body: DecisionIn, ctx: Context = Depends(context),
           who: Principal = Depends(principal)) -> dict[str, Any]:
    """Reject, or match again with facts corrected at the agency (links only on a full match)."""
    corrected = None
    if body.family_name is not None:
        if body.birth_date is None:
            raise InvalidInput("corrected facts need a date of birth")
        try:
            corrected = SubmittedFacts.parse(body.family_name, body.given_name or "", body.birth_date,
                                             body.sex or "", body.address or "", body.family_kana, body.given_kana)
        except ValueError as exc:
            raise InvalidInput(str(exc)) from None
    return _review_json(service.decide_review(ctx, who, review_id, body.decision, body.reason, ctx.now(), corrected))


@router.get("/exchange/reviews", response_class=HTMLResponse, include_in_schema=False)
def reviews_page(request: Request, ctx: Context = Depends(context),
                 who: Principal = Depends(principal)) -> HTMLResponse:
    """The review queue for a supervisor (their municipality's agencies) or the operator."""
    if who.role not in (Role.SUPERVISOR, Role.OPERATOR):
        raise Forbidden("reviews are decided by supervisors and the operator")
    return render(request, "exchange_reviews.html", reviews=service.list_reviews(ctx, who))


@router.post("/exchange/reviews/{review_id}", include_in_schema=False)
def decide_page(review_id: IdPath, decision: Annotated[str, Form(max_length=40)],
                reason: Annotated[str, Form(max_length=200)],
                ctx: Context = Depends(context), who: Principal = Depends(principal)) -> Response:
    service.decide_review(ctx, who, review_id, decision, reason, ctx.now())
    return RedirectResponse("/exchange/reviews", status_code=303)


# --- the log ------------------------------------------------------------------------------------------------

@router.get("/api/exchange/log")
def log(ctx: Context = Depends(context), who: Principal = Depends(principal), agency: AgencyIdQuery | None = None,
        after: After = 0, limit: Limit = 100) -> list[dict[str, Any]]:
    """Log entries in order (the operator: all; an agency: those it took part in)."""
    return [_entry_json(e) for e in service.exchange_log_entries(ctx, who, agency, after, limit)]


@router.get("/api/exchange/log/verify")
def verify(ctx: Context = Depends(context), who: Principal = Depends(principal)) -> dict[str, Any]:
    """Recompute the chain and check the hub's signatures."""
    report = service.verify_log(ctx, who)
    return {"ok": report.ok, "entries": report.entries, "first_seq": report.first_seq,
            "last_seq": report.last_seq, "chains": report.chains, "checkpoints": report.checkpoints,
            "breaks": [b.__dict__ for b in report.breaks]}


@router.get("/exchange/log", response_class=HTMLResponse, include_in_schema=False)
def log_page(request: Request, ctx: Context = Depends(context),
             who: Principal = Depends(principal)) -> HTMLResponse:
    """The operator's view of the log: whether the chain is whole, and the latest entries."""
    report = service.verify_log(ctx, who)
    last = report.last_seq or 0
    entries = service.exchange_log_entries(ctx, who, None, max(0, last - 50), 50)
    names = {a.id: a.name for a in service.list_agencies(ctx)}
    labels = {"item": {i.value: i.label_ja for i in InfoItem}, "procedure": {p.value: p.label_ja for p in Procedure}}
    return render(request, "exchange_log.html", report=report, entries=list(reversed(entries)), names=names,
                  labels=labels, jst=JST)
