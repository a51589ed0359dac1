"""The office over HTTP (TestClient): the booking JSON API with Idempotency-Key, clerk pages in their own town,
the public congestion page, and the notice postcard PDF (Japanese, QR with the booking link, no number)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient

from mynacard.accounts import service as accounts
from mynacard.context import Context
from mynacard.office import service
from mynacard.office.model import format_notice_number
from mynacard.principal import Role
from mynacard.registry import service as registry
from mynacard.web.app import create_app
from tests.conftest import NOW, require
from tests.helpers import CHIYODA, SAPPORO, SYSTEM
from tests.office.support import EVENING, town_with_notices


@pytest.fixture
def client(ctx: Context) -> TestClient:
    app = create_app(ctx)
    app.state.ctx.clock = lambda: EVENING
    return TestClient(app)


def _key(ctx: Context, name: str, role: Role, code: str | None) -> dict[str, str]:
    accounts.create_account(ctx, name, role, None, NOW, code)
    return {"authorization": "Bearer " + accounts.issue_api_key(ctx, name)}


def test_booking_api_honours_idempotency_keys_and_refuses_clearly(ctx: Context, client: TestClient) -> None:
    town = town_with_notices(ctx, 3, issuance=1, staff=1)
    slots = client.get(f"/api/office/{CHIYODA}/slots").json()
    assert slots and slots[0]["capacity"] == 2 and slots[0]["free"] == 2
    slot = slots[0]["id"]

    def body(i: int) -> dict[str, object]:
        n = town.notices[i]
        return {"notice_number": format_notice_number(n), "birth_date": town.birth_date(ctx, n).isoformat(),
                "slot_id": slot}

    first = client.post("/api/book", json=body(0), headers={"Idempotency-Key": "retry-0000-0001"})
    assert first.status_code == 201, first.text
    again = client.post("/api/book", json=body(0), headers={"Idempotency-Key": "retry-0000-0001"})
    assert again.status_code == 201 and again.json()["booking_id"] == first.json()["booking_id"]
    assert client.post("/api/book", json=body(1)).status_code == 201
    full = client.post("/api/book", json=body(2))
    assert full.status_code == 409 and "full" in full.json()["detail"]
    wrong = dict(body(2), birth_date="1900-01-01")
    assert client.post("/api/book", json=wrong).status_code == 404
    mistyped = dict(body(2), notice_number=town.notices[2][:16] + ("0" if town.notices[2][16] != "0" else "1"))
    assert client.post("/api/book", json=mistyped).status_code == 422
    assert client.get(f"/api/office/{CHIYODA}/slots").json()[0]["id"] != slot  # the full slot is no longer offered
    cancelled = client.post("/api/book/cancel", json={k: v for k, v in body(0).items() if k != "slot_id"})
    assert cancelled.json() == {"cancelled": True}


def test_clerk_pages_are_scoped_to_their_town(ctx: Context, client: TestClient) -> None:
    town = town_with_notices(ctx, 2)
    number = town.notices[0]
    slot = service.open_slots(ctx, CHIYODA, EVENING)[0]
    service.book(ctx, number, town.birth_date(ctx, number), slot.id, EVENING)
    mine = _key(ctx, "chiyoda-clerk", Role.CLERK, CHIYODA)
    other = _key(ctx, "sapporo-clerk", Role.CLERK, SAPPORO)
    day = slot.starts_at.date().isoformat()
    page = client.get(f"/office/m/{CHIYODA}?day={day}", headers=mine)
    assert page.status_code == 200 and format_notice_number(number) in page.text and "本日の予約" in page.text
    english = client.get(f"/office/m/{CHIYODA}?day={day}&lang=en", headers=mine)
    assert "Bookings of the day" in english.text
    for path in (f"/office/m/{CHIYODA}", f"/office/m/{CHIYODA}/backlog", f"/office/m/{CHIYODA}/receipt",
                 f"/api/office/{CHIYODA}/bookings?day={day}", f"/api/office/notices/{number}",
                 f"/office/notices/{number}.pdf"):
        assert client.get(path, headers=other).status_code == 404, path
    assert client.get(f"/api/office/notices/{number}", headers=mine).json()["card_id"] in town.card_ids
    backlog = client.get(f"/api/office/{CHIYODA}/backlog", headers=mine).json()
    assert backlog["outstanding_notices"] == 2 and backlog["booked_ahead"] == 1
    public = client.get(f"/office/m/{CHIYODA}/congestion?lang=ja")
    assert public.status_code == 200 and "混雑予想" in public.text
    hours = client.get(f"/api/office/{CHIYODA}/congestion").json()
    assert sum(h["booked"] for h in hours) == 1 and all(h["expected_wait_minutes"] >= 0 for h in hours)


def test_notice_pdf_is_a_japanese_postcard_with_the_booking_qr(ctx: Context, client: TestClient,
                                                                tmp_path: Path) -> None:
    town = town_with_notices(ctx, 1)
    number = town.notices[0]
    mine = _key(ctx, "chiyoda-clerk", Role.CLERK, CHIYODA)
    response = client.get(f"/office/notices/{number}.pdf", headers=mine)
    assert response.status_code == 200 and response.headers["content-type"] == "application/pdf"
    pdf = response.content
    assert pdf.startswith(b"%PDF") and b"IPAex" in pdf
    path = tmp_path / "notice.pdf"
    path.write_bytes(pdf)
    require(shutil.which("pdftotext") is not None and shutil.which("pdftoppm") is not None,
            "poppler-utils (pdftotext, pdftoppm) not installed")
    text = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True,
                          check=True).stdout
    card = service.card_for_notice(ctx, SYSTEM, number)
    resident = registry.residents_by_id(ctx, SYSTEM, [card.resident_id])[card.resident_id]
    assert "交付通知書" in text and format_notice_number(number) in text and resident.facts.family_name in text
    individual = registry.individual_number_of(ctx, SYSTEM, card.resident_id, "test: the number is not printed",
                                               NOW)
    assert individual not in text.replace(" ", "")
    size = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True, check=True).stdout
    assert "297.638 x 419.528 pts" in size  # A6: 105 × 148 mm
    subprocess.run(["pdftoppm", "-r", "200", "-png", "-singlefile", str(path), str(tmp_path / "page")],
                   check=True)
    import zxingcpp
    from PIL import Image

    codes = zxingcpp.read_barcodes(Image.open(tmp_path / "page.png"))
    assert len(codes) == 1
    link = urlsplit(codes[0].text)  # the check character may be one of * $ = (URL-quoted)
    assert (link.netloc, link.path, parse_qs(link.query)) == ("testserver", "/book", {"n": [number]})
    # a re-notice gives a new postcard and the old number stops working
    again = client.post(f"/office/notices/{number}/renotice", headers=mine, follow_redirects=False)
    assert again.status_code == 303 and number not in again.headers["location"]
    assert client.get(f"/api/office/notices/{number}", headers=mine).status_code == 409


def test_a_supervisor_sets_up_sites_shifts_and_slots(ctx: Context, client: TestClient) -> None:
    sup = _key(ctx, "chiyoda-sup", Role.SUPERVISOR, CHIYODA)
    clerk = _key(ctx, "chiyoda-clerk", Role.CLERK, CHIYODA)
    other = _key(ctx, "sapporo-sup", Role.SUPERVISOR, SAPPORO)
    body = {"name": "臨時交付窓口(市民ホール)", "kind": "temporary", "issuance_counters": 2,
            "document_check_counters": 1}
    assert client.post(f"/api/office/{CHIYODA}/sites", json=body, headers=clerk).status_code == 403
    assert client.post(f"/api/office/{CHIYODA}/sites", json=body, headers=other).status_code == 404
    made = client.post(f"/api/office/{CHIYODA}/sites", json=body, headers=sup)
    assert made.status_code == 201
    site = made.json()["site_id"]
    assert client.post(f"/api/office/{CHIYODA}/sites", json=body, headers=sup).json()["site_id"] == site
    saturday = "2026-04-11"
    shift = {"day": saturday, "starts": "09:00", "ends": "12:00", "staff": 3, "note": "土曜開庁"}
    assert client.post(f"/api/office/sites/{site}/shifts", json=shift, headers=other).status_code == 404
    assert client.post(f"/api/office/sites/{site}/shifts", json=shift, headers=sup).status_code == 201
    bad = dict(shift, ends="08:00")
    assert client.post(f"/api/office/sites/{site}/shifts", json=bad, headers=sup).status_code == 422
    made_slots = client.post(f"/api/office/sites/{site}/slots", json={"first": saturday, "last": saturday},
                             headers=sup)
    assert made_slots.json() == {"added": 12}  # 6 half-hours × (issuance + document check)
    again = client.post(f"/api/office/sites/{site}/slots", json={"first": saturday, "last": saturday}, headers=sup)
    assert again.json() == {"added": 0}
    listed = client.get(f"/api/office/{CHIYODA}/sites", headers=clerk).json()
    assert listed[0]["terminals"] == 2 and listed[0]["counters"] == {"issuance": 2, "document_check": 1}
    public = client.get(f"/api/office/{CHIYODA}/slots").json()
    assert len(public) == 6 and {s["capacity"] for s in public} == {4}  # 2 staffed counters × 2 an half-hour
