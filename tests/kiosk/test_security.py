"""Findings of the security review about the kiosk centre's web side: the QR codes' URL comes from configuration
and never from a request, the centre needs the JPKI CAs to exist (it never creates them), the demonstration's
clock does not start on a real installation, and no input to the kiosk routes answers 500."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from mynacard.accounts import service as accounts
from mynacard.context import Context
from mynacard.jpki import service as jpki
from mynacard.kiosk.demo_guard import DemoOnly
from mynacard.principal import Role
from mynacard.web.app import create_app
from tests.conftest import NOW
from tests.kiosk.conftest import Town


def _key(ctx: Context, name: str, role: Role, municipality: str | None = None) -> dict[str, str]:
    accounts.create_account(ctx, name, role, None, NOW, municipality)
    return {"Authorization": f"Bearer {accounts.issue_api_key(ctx, name)}"}


def test_the_qr_codes_url_is_configuration_never_a_requests_host_header(
        ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    """Security review: the centre took its verification URL from the first request's Host header — before the
    role check, so any caller with an API key could make every certificate's QR code point to its own site."""
    monkeypatch.delenv("MYNACARD_KIOSK_PUBLIC_URL", raising=False)
    monkeypatch.setenv("MYNACARD_JPKI_BASE_URL", "https://jpki.myna.example")
    ctx.reload_settings()  # as a restarted process would read it
    clerk = _key(ctx, "clerk-131016", Role.CLERK, "131016")
    kiosk = _key(ctx, "kiosk-0001", Role.KIOSK)
    app = create_app(ctx)
    app.state.ctx.clock = lambda: NOW
    client = TestClient(app)
    evil = {"host": "evil.example"}
    refused = client.post("/api/kiosk/centre/sessions", json={"request_id": "a" * 32}, headers={**clerk, **evil})
    assert refused.status_code == 403
    assert getattr(app.state, "kiosk_centre", None) is None  # the role first: nothing built for a stranger
    opened = client.post("/api/kiosk/centre/sessions", json={"request_id": "b" * 32}, headers={**kiosk, **evil})
    assert opened.status_code == 200, opened.text
    assert app.state.kiosk_centre.verify_base_url == "https://jpki.myna.example"  # the JPKI base URL by default

    monkeypatch.setenv("MYNACARD_KIOSK_PUBLIC_URL", "https://kiosk.myna.example/")
    app = create_app(ctx)
    app.state.ctx.clock = lambda: NOW
    client = TestClient(app)
    assert client.post("/api/kiosk/centre/sessions", json={"request_id": "c" * 32},
                       headers={**kiosk, **evil}).status_code == 200
    assert app.state.kiosk_centre.verify_base_url == "https://kiosk.myna.example"


def test_the_centre_never_creates_the_jpki_cas_it_answers_503_until_they_exist(ctx: Context, town: Town) -> None:
    """A card's answer on a fresh installation used to create both CAs (the relying party made them at first
    use); now the answer is 503 with the reason, the kiosk's request stays open, and no CA exists."""
    kiosk = _key(ctx, "kiosk-0001", Role.KIOSK)
    app = create_app(ctx)
    app.state.ctx.clock = lambda: NOW
    client = TestClient(app)
    opened = client.post("/api/kiosk/centre/sessions", json={"request_id": "d" * 32}, headers=kiosk)
    assert opened.status_code == 200, opened.text
    answer = client.post(f"/api/kiosk/centre/sessions/{'d' * 32}/authenticate", headers=kiosk,
                         json={"certificate": "AAAA", "signature": "AAAA"})
    assert answer.status_code == 503 and "mynacard jpki init" in answer.json()["detail"], answer.text
    assert jpki.authorities(ctx) == []
    assert client.get(f"/api/kiosk/centre/sessions/{'d' * 32}", headers=kiosk).json()["state"] == "challenged"


def test_the_demo_clock_stops_a_real_installations_server_from_starting(
        ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MYNACARD_KIOSK_CLOCK", NOW.isoformat())
    with pytest.raises(DemoOnly, match="MYNACARD_KIOSK_CLOCK"), TestClient(create_app(ctx)):
        pass
    # and an app whose start-up was skipped still never shifts its clock: the page says why (503)
    reply = TestClient(create_app(ctx)).get(f"/kiosk/verify/{'0' * 26}", headers={"accept": "application/json"})
    assert reply.status_code == 503 and "MYNACARD_KIOSK_CLOCK" in reply.text


@pytest.mark.parametrize("method, path, body", [
    ("POST", "/api/kiosk/centre/sessions/{rid}/order",
     {"options": {"kind": "juminhyo", "member_ids": [2**64]}, "paid_yen": 300}),
    ("POST", "/api/kiosk/centre/sessions/{rid}/order",
     {"options": {"kind": "juminhyo", "copies": 10**30}, "paid_yen": 300}),
    ("POST", "/api/kiosk/centre/sessions/{rid}/order", {"options": {"surprise": {"x": 1}}, "paid_yen": 300}),
    ("POST", "/api/kiosk/centre/sessions/{rid}/order",
     {"options": {"kind": "juminhyo"}, "paid_yen": 300, "timeout_ms": 10**20}),
    ("POST", "/api/kiosk/centre/sessions/{rid}/authenticate", {"certificate": "A" * 100_000, "signature": "AA"}),
    ("POST", "/api/kiosk/centre/sessions/{rid}/printed", {"document_id": "x" * 10_000, "pdf_sha256": "zz"}),
    ("GET", "/api/kiosk/centre/sessions/" + "r" * 5000, None),
    ("POST", "/api/kiosk/municipal/menu", {"holder_id": 2**63}),
    ("POST", "/api/kiosk/municipal/menu", {"holder_id": -1}),
    ("POST", "/api/kiosk/municipal/family-register-use",
     {"resident_id": 10**40, "municipality_code": "131016", "request_id": "a" * 32}),
    ("POST", "/api/kiosk/municipal/documents",
     {"request_id": "a" * 32, "holder_resident_id": 2**70, "issuing_municipality": "131016",
      "options": {"kind": "juminhyo"}, "verify_base_url": "javascript:alert(1)"}),
])
def test_out_of_range_inputs_answer_422_not_500(ctx: Context, town: Town, method: str, path: str,
                                                body: object) -> None:
    kiosk = _key(ctx, "kiosk-0001", Role.KIOSK)
    operator = _key(ctx, "centre", Role.OPERATOR)
    app = create_app(ctx)
    app.state.ctx.clock = lambda: NOW
    client = TestClient(app, raise_server_exceptions=False)
    rid = "e" * 32
    assert client.post("/api/kiosk/centre/sessions", json={"request_id": rid}, headers=kiosk).status_code == 200
    headers = operator if "/municipal/" in path else kiosk
    reply = client.request(method, path.format(rid=rid), json=body, headers=headers)
    assert reply.status_code == 422, reply.text
