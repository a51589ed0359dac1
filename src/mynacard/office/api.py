"""HTTP routes of the municipal issuance office: clerk and supervisor pages under ``/office/m/{code}`` (scoped
to the caller's municipality), the resident's booking pages under ``/book``, the public congestion page, the
notice postcard PDF, and the JSON API (``POST /api/book`` honours ``Idempotency-Key``). Thin: parse, call the
service, render."""

from __future__ import annotations

from datetime import date, time, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Header, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from mynacard.cards import service as cards
from mynacard.clock import JST, local_date
from mynacard.context import Context
from mynacard.errors import Conflict, InvalidInput, NotFound
from mynacard.office import pdf, service
from mynacard.office.model import BookingState, CounterKind, SiteKind, format_notice_number
from mynacard.principal import Principal
from mynacard.registry import service as registry
from mynacard.webkit.deps import context, now, principal, render
from mynacard.webkit.i18n import register
from mynacard.webkit.params import (
    DAY_MAX,
    DAY_MIN,
    Day,
    DayQuery,
    Id,
    IdPath,
    LongText,
    MunicipalityPath,
    TextQuery,
)

router = APIRouter()

register({
    "office.title": ("交付窓口", "Issuance office"),
    "office.day": ("本日の予約", "Bookings of the day"),
    "office.backlog": ("滞留状況", "Backlog"),
    "office.receipt": ("カード到着・確認", "Card receipt and checks"),
    "office.congestion": ("交付窓口の混雑予想", "Expected waiting at the issuance counters"),
    "office.time": ("時刻", "Time"),
    "office.site": ("場所", "Site"),
    "office.notice": ("交付通知書番号", "Notice number"),
    "office.name": ("氏名", "Name"),
    "office.status": ("状態", "Status"),
    "office.serve": ("窓口", "Window"),
    "office.serve_link": ("交付手続きへ", "Issue at the window"),
    "office.no_bookings": ("この日の予約はありません。", "No bookings on this day."),
    "office.booking.active": ("予約中", "booked"),
    "office.booking.visited": ("来庁済", "visited"),
    "office.booking.cancelled": ("取消", "cancelled"),
    "office.renotice": ("再通知", "Re-notice"),
    "office.destroy": ("受取期限切れのカードを廃棄", "Destroy uncollected cards"),
    "office.notice.sent": ("送付済", "sent"),
    "office.notice.collected": ("交付済", "collected"),
    "office.notice.withdrawn": ("再通知で差替", "replaced by a re-notice"),
    "office.notice.expired": ("廃棄", "destroyed"),
    "office.notice.void": ("無効", "void"),
    "office.outstanding": ("未受取の通知", "Outstanding notices"),
    "office.booked_ahead": ("予約済(4週間)", "Booked (4 weeks)"),
    "office.capacity_ahead": ("予約枠(4週間)", "Places (4 weeks)"),
    "office.defective": ("不良で返送", "Returned as defective"),
    "office.setup_runs": ("交付前設定の実行回数", "Setup runs"),
    "office.cards_by_state": ("状態別のカード枚数", "Cards by state"),
    "office.boxes": ("未着確認の箱", "Boxes not yet checked in"),
    "office.receive": ("全数を受領", "Receive all"),
    "office.run_checks": ("券面・ICチップ確認を実行", "Run face and chip checks"),
    "office.run_setup": ("交付前設定を実行(時間外)", "Run pre-issuance setup (off peak)"),
    "office.send_notices": ("交付通知書を送付(段階送付)", "Send notices (staged)"),
    "office.done": ("{n} 件を処理しました。", "{n} done."),
    "office.day_hour": ("日・時間帯", "Day and hour"),
    "office.wait": ("予想待ち時間(分)", "Expected wait (minutes)"),
    "office.places": ("予約枠", "Places"),
    "office.booked": ("予約数", "Booked"),
    "office.no_openings": ("予約枠はまだありません。", "No openings yet."),
    "book.title": ("マイナンバーカード受取の予約", "Book your My Number Card pickup"),
    "book.intro": ("交付通知書に記載の番号と生年月日を入力してください。",
                   "Enter the number on your issuance notice and your date of birth."),
    "book.number": ("交付通知書番号", "Notice number"),
    "book.birth": ("生年月日", "Date of birth"),
    "book.next": ("次へ", "Next"),
    "book.choose": ("受取日時を選んでください", "Choose a time to collect your card"),
    "book.deadline": ("受取期限", "Pickup deadline"),
    "book.free": ("空き {n}", "{n} free"),
    "book.book": ("この日時で予約", "Book this time"),
    "book.current": ("現在の予約", "Your booking"),
    "book.cancel": ("予約を取り消す", "Cancel the booking"),
    "book.change": ("別の日時に変更", "Change to this time"),
    "book.done": ("予約しました。", "Your booking is confirmed."),
    "book.cancelled": ("予約を取り消しました。", "Your booking was cancelled."),
    "book.bring": ("当日は交付通知書と本人確認書類をお持ちください。",
                   "Bring the notice and your identity documents."),
    "book.none_free": ("空いている予約枠がありません。", "No free places."),
})

SESSION_KEY = "office_booking"

NoticePath = Annotated[str, Path(min_length=1, max_length=40, description="a notice number (交付通知書番号)")]
IdempotencyKey = Annotated[str | None, Header(max_length=80, description="a retry of the same booking")]


def _own_code(who: Principal, code: str) -> str:
    if not who.can_see_municipality(code):
        raise NotFound("no such municipality office")
    return code


# --- clerk and supervisor pages ------------------------------------------------------------------------------

@router.get("/office", include_in_schema=False)
def office_home(who: Principal = Depends(principal)) -> Response:
    """A clerk goes straight to their own town's day page."""
    if who.municipality_code is None:
        raise NotFound("choose a municipality: /office/m/{code}")
    return RedirectResponse(f"/office/m/{who.municipality_code}", status_code=303)


@router.get("/office/m/{code}", response_class=HTMLResponse, include_in_schema=False)
def day_page(request: Request, code: MunicipalityPath, day: DayQuery | None = None, ctx: Context = Depends(context),
             who: Principal = Depends(principal)) -> HTMLResponse:
    """The day's bookings (本日の予約一覧) of the clerk's municipality."""
    _own_code(who, code)
    shown = day or local_date(now(request))
    rows = service.bookings_on(ctx, who, code, shown)
    return render(request, "office_day.html", code=code, town=registry.get_municipality(ctx, code), day=shown,
                  rows=rows, fmt=format_notice_number, jst=JST, prev=shown - timedelta(days=1),
                  next=shown + timedelta(days=1))


@router.get("/office/m/{code}/backlog", response_class=HTMLResponse, include_in_schema=False)
def backlog_page(request: Request, code: MunicipalityPath, ctx: Context = Depends(context),
                 who: Principal = Depends(principal)) -> HTMLResponse:
    _own_code(who, code)
    data = service.backlog(ctx, who, code, now(request))
    notices = service.notices_of(ctx, who, code, limit=50)
    return render(request, "office_backlog.html", code=code, town=registry.get_municipality(ctx, code),
                  backlog=data, notices=notices, fmt=format_notice_number)


@router.get("/office/m/{code}/receipt", response_class=HTMLResponse, include_in_schema=False)
def receipt_page(request: Request, code: MunicipalityPath, message: TextQuery | None = None,
                 ctx: Context = Depends(context),
                 who: Principal = Depends(principal)) -> HTMLResponse:
    _own_code(who, code)
    boxes = [cards.box_manifest(ctx, who, b) for b in cards.unreceived_boxes(ctx, who, code)]
    return render(request, "office_receipt.html", code=code, town=registry.get_municipality(ctx, code),
                  boxes=boxes, message=message)


def _done(code: str, page: str, n: int) -> RedirectResponse:
    return RedirectResponse(f"/office/m/{code}/{page}?message={n}", status_code=303)


@router.post("/office/m/{code}/receipt/{box_id}", include_in_schema=False)
def receive_box_form(request: Request, code: MunicipalityPath, box_id: IdPath, ctx: Context = Depends(context),
                     who: Principal = Depends(principal)) -> Response:
    """Receive a box whole (every card on the manifest scanned)."""
    _own_code(who, code)
    manifest = cards.box_manifest(ctx, who, box_id)
    if manifest["municipality_code"] != code:
        raise NotFound("no such box")
    result = cards.receive_box(ctx, who, box_id, manifest["serials"], {}, now(request))
    return _done(code, "receipt", result.received)


@router.post("/office/m/{code}/checks", include_in_schema=False)
def run_checks_form(request: Request, code: MunicipalityPath, ctx: Context = Depends(context),
                    who: Principal = Depends(principal)) -> Response:
    from mynacard.office.chipcheck import chip_file_inspector

    result = service.check_received_cards(ctx, who, code, now(request), chip=chip_file_inspector(ctx))
    return _done(code, "receipt", len(result.passed))


@router.post("/office/m/{code}/setup", include_in_schema=False)
def setup_form(request: Request, code: MunicipalityPath, ctx: Context = Depends(context),
               who: Principal = Depends(principal)) -> Response:
    return _done(code, "receipt", service.run_pre_issuance_setup(ctx, who, code, now(request)))


@router.post("/office/m/{code}/notices", include_in_schema=False)
def notices_form(request: Request, code: MunicipalityPath, ctx: Context = Depends(context),
                 who: Principal = Depends(principal)) -> Response:
    return _done(code, "backlog", len(service.send_notices(ctx, who, code, now(request))))


@router.post("/office/m/{code}/destroy", include_in_schema=False)
def destroy_form(request: Request, code: MunicipalityPath, ctx: Context = Depends(context),
                 who: Principal = Depends(principal)) -> Response:
    """廃棄 of uncollected cards past deadline and retention (supervisor)."""
    return _done(code, "backlog", len(service.destroy_uncollected(ctx, who, code, now(request))))


@router.get("/office/notices/{number}.pdf", include_in_schema=False)
def notice_pdf(request: Request, number: NoticePath, ctx: Context = Depends(context),
               who: Principal = Depends(principal)) -> Response:
    """The issuance notice postcard (交付通知書), A6, to print and mail."""
    notice = service.notice_for_print(ctx, who, number)
    base = str(request.base_url).rstrip("/")
    return Response(pdf.notice_pdf(notice, base), media_type="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="notice-{notice.notice_number}.pdf"'})


@router.post("/office/notices/{number}/renotice", include_in_schema=False)
def renotice_form(request: Request, number: NoticePath, ctx: Context = Depends(context),
                  who: Principal = Depends(principal)) -> Response:
    fresh = service.renotice(ctx, who, number, now(request))
    return RedirectResponse(f"/office/notices/{fresh}.pdf", status_code=303)


# --- public congestion ---------------------------------------------------------------------------------------

@router.get("/office/m/{code}/congestion", response_class=HTMLResponse, include_in_schema=False)
def congestion_page(request: Request, code: MunicipalityPath, ctx: Context = Depends(context)) -> HTMLResponse:
    """Public: expected wait by day and hour (aggregates only)."""
    hours = service.congestion(ctx, code, now(request))
    return render(request, "office_congestion.html", code=code, town=registry.get_municipality(ctx, code),
                  hours=hours)


@router.get("/api/office/{code}/congestion")
def congestion_json(request: Request, code: MunicipalityPath, ctx: Context = Depends(context)) -> list[dict[str, Any]]:
    return [{"day": h.day.isoformat(), "hour": h.hour, "capacity": h.capacity, "booked": h.booked,
             "expected_wait_minutes": h.expected_wait_minutes} for h in service.congestion(ctx, code, now(request))]


def _slot_json(s: service.SlotView) -> dict[str, Any]:
    return {"id": s.id, "site": s.site_name, "kind": s.kind.value, "starts_at": s.starts_at.isoformat(),
            "ends_at": s.ends_at.isoformat(), "capacity": s.capacity, "booked": s.booked, "free": s.free}


@router.get("/api/office/{code}/slots")
def slots_json(request: Request, code: MunicipalityPath, ctx: Context = Depends(context)) -> list[dict[str, Any]]:
    """Public: free issuance slots of a municipality within the booking horizon (times and places only)."""
    registry.get_municipality(ctx, code)
    return [_slot_json(s) for s in service.open_slots(ctx, code, now(request))]


# --- clerk JSON ------------------------------------------------------------------------------------------------

@router.get("/api/office/{code}/bookings")
def bookings_json(request: Request, code: MunicipalityPath, day: DayQuery | None = None,
                  ctx: Context = Depends(context),
                  who: Principal = Depends(principal)) -> list[dict[str, Any]]:
    rows = service.bookings_on(ctx, who, code, day or local_date(now(request)))
    return [{"booking_id": r.booking_id, "starts_at": r.starts_at.isoformat(), "site": r.site_name,
             "notice_number": r.notice_number, "card_id": r.card_id, "name": r.name, "state": r.state.value}
            for r in rows]


@router.get("/api/office/{code}/backlog")
def backlog_json(request: Request, code: MunicipalityPath, ctx: Context = Depends(context),
                 who: Principal = Depends(principal)) -> dict[str, Any]:
    return dict(service.backlog(ctx, who, code, now(request)).__dict__)


@router.get("/api/office/notices/{number}")
def notice_json(number: NoticePath, ctx: Context = Depends(context),
                who: Principal = Depends(principal)) -> dict[str, Any]:
    """What the window sees when it scans a notice."""
    n = service.card_for_notice(ctx, who, number)
    return {"notice_number": n.notice_number, "card_id": n.card_id, "resident_id": n.resident_id,
            "municipality_code": n.municipality_code, "pickup_deadline": n.pickup_deadline.isoformat(),
            "booking_id": n.booking_id}


class SiteIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    kind: SiteKind = SiteKind.MAIN
    issuance_counters: int = Field(ge=0, le=100)
    document_check_counters: int = Field(ge=0, le=100)
    address: LongText | None = None


class ShiftIn(BaseModel):
    day: Day
    starts: time
    ends: time
    staff: int = Field(ge=1, le=200)
    note: str | None = Field(default=None, max_length=100)


class SlotsIn(BaseModel):
    first: Day
    last: Day


@router.get("/api/office/{code}/sites")
def sites_json(code: MunicipalityPath, ctx: Context = Depends(context),
               who: Principal = Depends(principal)) -> list[dict[str, Any]]:
    return [{"id": s.id, "name": s.name, "kind": s.kind.value, "terminals": s.terminals,
             "counters": {k.value: n for k, n in s.counters.items()}} for s in service.sites(ctx, who, code)]


@router.post("/api/office/{code}/sites", status_code=201)
def add_site_json(request: Request, code: MunicipalityPath, body: SiteIn, ctx: Context = Depends(context),
                  who: Principal = Depends(principal)) -> dict[str, int]:
    """A site (本庁, 支所, 臨時交付窓口) with its counters (supervisor); adding it again changes nothing."""
    site_id = service.add_site(ctx, who, code, body.name, body.kind,
                               {CounterKind.ISSUANCE: body.issuance_counters,
                                CounterKind.DOCUMENT_CHECK: body.document_check_counters}, now(request), body.address)
    return {"site_id": site_id}


@router.post("/api/office/sites/{site_id}/shifts", status_code=201)
def add_shift_json(site_id: IdPath, body: ShiftIn, ctx: Context = Depends(context),
                   who: Principal = Depends(principal)) -> dict[str, int]:
    """A staffed opening: weekday hours, a Saturday (土曜開庁) or an evening (夜間延長)."""
    return {"shift_id": service.add_shift(ctx, who, site_id, body.day, body.starts, body.ends, body.staff,
                                          body.note)}


@router.post("/api/office/sites/{site_id}/slots")
def generate_slots_json(site_id: IdPath, body: SlotsIn, ctx: Context = Depends(context),
                        who: Principal = Depends(principal)) -> dict[str, int]:
    """Slots from the site's counters and shifts for the days ``first``..``last``."""
    return {"added": service.generate_slots(ctx, who, site_id, body.first, body.last)}


# --- resident booking (by notice number + date of birth) -----------------------------------------------------

class BookIn(BaseModel):
    notice_number: str = Field(min_length=17, max_length=30)
    birth_date: Day
    slot_id: Id


class NoticeIn(BaseModel):
    notice_number: str = Field(min_length=17, max_length=30)
    birth_date: Day


def _booking_json(b: service.Booking) -> dict[str, Any]:
    return {"booking_id": b.id, "notice_number": b.notice_number, "state": b.state.value,
            "slot": _slot_json(b.slot)}


@router.post("/api/book", status_code=201)
def book_json(request: Request, body: BookIn, ctx: Context = Depends(context),
              idempotency_key: IdempotencyKey = None) -> dict[str, Any]:
    """Book an issuance slot. 409 when the slot is full or the notice already has a booking; a repeated
    ``Idempotency-Key`` returns the first booking."""
    return _booking_json(service.book(ctx, body.notice_number, body.birth_date, body.slot_id, now(request),
                                      idempotency_key))


@router.post("/api/book/rebook")
def rebook_json(request: Request, body: BookIn, ctx: Context = Depends(context),
                idempotency_key: IdempotencyKey = None) -> dict[str, Any]:
    return _booking_json(service.rebook(ctx, body.notice_number, body.birth_date, body.slot_id, now(request),
                                        idempotency_key))


@router.post("/api/book/cancel")
def cancel_json(request: Request, body: NoticeIn, ctx: Context = Depends(context)) -> dict[str, bool]:
    return {"cancelled": service.cancel_booking(ctx, body.notice_number, body.birth_date, now(request))}


@router.get("/book", response_class=HTMLResponse, include_in_schema=False)
def book_start(request: Request, n: TextQuery = "") -> HTMLResponse:
    """The QR code on the notice leads here with the number filled in."""
    return render(request, "office_book_start.html", number=n, error=None)


@router.post("/book", include_in_schema=False)
def book_login(request: Request, notice_number: Annotated[str, Form(max_length=40)],
               birth_date: Annotated[date, Form(ge=DAY_MIN, le=DAY_MAX)],
               ctx: Context = Depends(context)) -> Response:
    try:
        notice, _booking = service.find_notice(ctx, notice_number, birth_date)
    except (InvalidInput, NotFound, Conflict) as exc:
        return render(request, "office_book_start.html", status_code=422 if isinstance(exc, InvalidInput) else 404
                      if isinstance(exc, NotFound) else 409, number=notice_number, error=str(exc))
    request.session[SESSION_KEY] = {"n": notice.notice_number, "b": birth_date.isoformat()}
    return RedirectResponse("/book/slots", status_code=303)


def _resident(request: Request) -> tuple[str, date]:
    held = request.session.get(SESSION_KEY)
    if not isinstance(held, dict):
        raise NotFound("enter your notice number first")
    return str(held["n"]), date.fromisoformat(str(held["b"]))


@router.get("/book/slots", response_class=HTMLResponse, include_in_schema=False)
def book_slots(request: Request, done: TextQuery | None = None, ctx: Context = Depends(context)) -> Response:
    try:
        number, born = _resident(request)
    except NotFound:
        return RedirectResponse("/book", status_code=303)
    notice, booking = service.find_notice(ctx, number, born)
    slots = service.open_slots(ctx, notice.municipality_code, now(request))
    return render(request, "office_book_slots.html", notice=notice, booking=booking, slots=slots, done=done,
                  fmt=format_notice_number, jst=JST, town=registry.get_municipality(ctx, notice.municipality_code))


@router.post("/book/slots/{slot_id}", include_in_schema=False)
def book_slot(request: Request, slot_id: IdPath, ctx: Context = Depends(context)) -> Response:
    number, born = _resident(request)
    _notice, current = service.find_notice(ctx, number, born)
    if current is not None and current.state is BookingState.ACTIVE:
        service.rebook(ctx, number, born, slot_id, now(request))
    else:
        service.book(ctx, number, born, slot_id, now(request))
    return RedirectResponse("/book/slots?done=booked", status_code=303)


@router.post("/book/cancel", include_in_schema=False)
def book_cancel(request: Request, ctx: Context = Depends(context)) -> Response:
    number, born = _resident(request)
    service.cancel_booking(ctx, number, born, now(request))
    return RedirectResponse("/book/slots?done=cancelled", status_code=303)
