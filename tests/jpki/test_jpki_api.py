"""The HTTP interface: public CA certificates and page, verifier-only CRLs, and every JSON route walked
with every role."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from fastapi.testclient import TestClient

from mynacard.accounts import service as accounts
from mynacard.context import Context
from mynacard.errors import Forbidden
from mynacard.jpki import service, verifiers
from mynacard.jpki.model import CaKind
from mynacard.principal import Principal, Role
from mynacard.web.app import create_app
from tests.conftest import NOW
from tests.jpki.support import CHIYODA, OPERATOR, SAPPORO, Card, Town, chip_key, spki


@pytest.fixture
def client(ctx: Context) -> Iterator[TestClient]:
    with TestClient(create_app(ctx)) as c:
        yield c


def test_a_request_never_creates_the_cas_the_web_answers_503_until_the_operator_has(
        ctx: Context, client: TestClient) -> None:
    """Security review: an anonymous GET of /jpki/ca/sign.pem on a fresh database created both CAs with the web
    process's key store. Creating a CA is the operator's act (``mynacard jpki init``); until then every JPKI
    route that needs one answers 503 with the reason, and nothing is written."""
    _, sign_key = verifiers.register_verifier(ctx, OPERATOR, "署名検証者", "government", ["signature"], "sv", NOW)
    accounts.create_account(ctx, "ops", Role.OPERATOR, None, NOW)
    ops = {"Authorization": f"Bearer {accounts.issue_api_key(ctx, 'ops')}"}
    as_sign = {"Authorization": f"Bearer {sign_key}"}
    for path, headers in (("/jpki/ca/sign.pem", {}), ("/jpki/ca/auth.cer", {}), ("/jpki/ca/sign-all.pem", {}),
                          ("/jpki/crl/sign.crl", as_sign), ("/jpki/crl/auth-delta.crl", ops)):
        reply = client.get(path, headers=headers)
        assert reply.status_code == 503 and "mynacard jpki init" in reply.text, (path, reply.text)
    body = {"certificate_b64": "AA==", "data_b64": "AA==", "signature_b64": "AA=="}
    for method, path, json_body in (("POST", "/api/jpki/crl/publish", {"force": True}),
                                    ("POST", "/api/jpki/rollover", {"kind": "sign"}),
                                    ("POST", "/api/jpki/verify/signature", body)):
        reply = client.request(method, path, json=json_body, headers=ops)
        assert reply.status_code == 503 and reply.json()["error"] == "AuthoritiesMissing", (path, reply.text)
    assert client.get("/jpki/crl/sign.crl").status_code == 401  # anonymous: refused before anything else
    assert service.authorities(ctx) == [] and not service.authorities_exist(ctx)
    with pytest.raises(Forbidden):
        service.ensure_authorities(ctx, Principal(Role.CLERK, "c", CHIYODA), NOW)
    service.ensure_authorities(ctx, OPERATOR, NOW)  # mynacard jpki init
    assert client.get("/jpki/ca/sign.pem").status_code == 200


def test_ca_certificates_and_the_repository_page_are_public(ctx: Context, client: TestClient) -> None:
    service.ensure_authorities(ctx, OPERATOR, NOW)  # mynacard jpki init
    sign = client.get("/jpki/ca/sign.pem")
    auth = client.get("/jpki/ca/auth.pem")
    assert sign.status_code == auth.status_code == 200
    sign_cert = x509.load_pem_x509_certificate(sign.content)
    assert "JPKI for digital signature" in sign_cert.subject.rfc4514_string()
    assert "JPKI for user authentication" in x509.load_pem_x509_certificate(auth.content).subject.rfc4514_string()
    der = client.get("/jpki/ca/sign.cer?generation=1")
    assert x509.load_der_x509_certificate(der.content) == sign_cert
    assert client.get("/jpki/ca/sign-all.pem").content.count(b"BEGIN CERTIFICATE") == 1
    assert client.get("/jpki/ca/sign.cer?generation=9").status_code == 404
    assert client.get("/jpki/ca/other.pem").status_code == 404
    page = client.get("/jpki")
    assert page.status_code == 200 and "公的個人認証サービス 認証局" in page.text
    fingerprint = service.current_authority(ctx, CaKind.SIGN, NOW).fingerprint_sha256
    assert fingerprint in page.text
    assert "JPKI certificate authorities" in client.get("/jpki?lang=en").text


def test_crls_are_for_registered_verifiers_of_that_ca(ctx: Context, client: TestClient) -> None:
    service.ensure_authorities(ctx, OPERATOR, NOW)  # mynacard jpki init
    _, sign_key = verifiers.register_verifier(ctx, OPERATOR, "署名検証者", "government", ["signature"], "sv", NOW)
    _, auth_key = verifiers.register_verifier(ctx, OPERATOR, "利用者証明検証者", "certified_private",
                                              ["authentication"], "av", NOW)
    assert client.get("/jpki/crl/sign.crl").status_code == 401
    as_sign = {"Authorization": f"Bearer {sign_key}"}
    as_auth = {"Authorization": f"Bearer {auth_key}"}
    full = client.get("/jpki/crl/sign.crl", headers=as_sign)
    assert full.status_code == 200 and full.headers["content-type"] == "application/pkix-crl"
    assert x509.load_der_x509_crl(full.content).extensions.get_extension_for_class(x509.CRLNumber)
    delta = client.get("/jpki/crl/sign-delta.crl?generation=1", headers=as_sign)
    assert x509.load_der_x509_crl(delta.content).extensions.get_extension_for_class(x509.DeltaCRLIndicator)
    assert client.get("/jpki/crl/auth.crl", headers=as_sign).status_code == 403
    assert client.get("/jpki/crl/auth-delta.crl", headers=as_auth).status_code == 200
    assert client.get("/jpki/crl/sign.crl", headers=as_auth).status_code == 403
    assert client.get("/jpki/crl/nope.crl", headers=as_sign).status_code == 404
    refused = verifiers.queries(ctx, OPERATOR, refused_only=True)
    assert len(refused) == 3


ROLES = ("anonymous", "operator", "system", "clerk", "other_clerk", "resident", "other_resident", "sign_verifier",
         "auth_verifier", "platform", "kiosk", "agency", "contractor", "manufacturer")


def _keys(ctx: Context, card: Card) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {"anonymous": {}}
    plain = {"operator": (Role.OPERATOR, None), "system": (Role.SYSTEM, None), "clerk": (Role.CLERK, CHIYODA),
             "other_clerk": (Role.CLERK, SAPPORO), "kiosk": (Role.KIOSK, None), "agency": (Role.AGENCY, None),
             "contractor": (Role.CONTRACTOR, None), "manufacturer": (Role.MANUFACTURER, None)}
    for name, (role, town) in plain.items():
        accounts.create_account(ctx, f"u-{name}", role, None, NOW, town)
        out[name] = {"Authorization": f"Bearer {accounts.issue_api_key(ctx, f'u-{name}')}"}
    for name, rid in (("resident", card.resident_id), ("other_resident", card.resident_id + 1000)):
        accounts.create_account(ctx, str(rid), Role.RESIDENT, None, NOW)
        out[name] = {"Authorization": f"Bearer {accounts.issue_api_key(ctx, str(rid))}"}
    for name, kind, purposes in (("sign_verifier", "certified_private", ["signature"]),
                                 ("auth_verifier", "certified_private", ["authentication"]),
                                 ("platform", "platform_operator", ["signature", "authentication"])):
        _, key = verifiers.register_verifier(ctx, OPERATOR, name, kind, purposes, f"v-{name}", NOW)
        out[name] = {"Authorization": f"Bearer {key}"}
    return out


def test_every_route_with_every_role(ctx: Context, client: TestClient) -> None:
    town = Town(ctx)
    card = town.card(town.resident())
    keys = _keys(ctx, card)
    sign_serial = f"{x509.load_der_x509_certificate(card.issued.sign_certificate or b'').serial_number:X}"
    auth_serial = f"{x509.load_der_x509_certificate(card.issued.auth_certificate or b'').serial_number:X}"
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    doc = b"document"
    signature = card.sign_key.sign(doc, padding.PKCS1v15(), hashes.SHA256())
    window = {"operator", "system", "clerk"}
    ops = {"operator", "system"}
    verifier_roles = {"sign_verifier", "auth_verifier", "platform"}
    unseen = {"other_clerk", "other_resident", "kiosk", "agency", "contractor", "manufacturer"}
    # method, path, body, roles that succeed, {status: roles} for the others (not listed: 403)
    routes: list[tuple[str, str, Any, set[str], dict[int, set[str]]]] = [
        ("GET", f"/api/jpki/certificates/{auth_serial}", None, window | {"resident"},
         {404: unseen | {"platform"}}),  # a platform operator sees only what it follows
        ("GET", f"/api/jpki/certificates/{auth_serial}/lineage", None, window | {"resident"},
         {404: unseen | verifier_roles}),
        ("GET", f"/api/jpki/cards/{card.id}/certificates", None, window | {"resident"},
         {404: unseen | verifier_roles}),
        ("GET", "/api/jpki/verifiers", None, ops, {}),
        ("GET", "/api/jpki/queries", None, ops | verifier_roles, {}),
        ("POST", "/api/jpki/crl/publish", {"force": False}, ops, {}),
        ("POST", "/api/jpki/verifiers", {"name": "x", "kind": "government", "purposes": ["signature"],
                                         "username": "{role}-made"}, ops, {}),
        ("POST", "/api/jpki/challenges", None, ops | {"kiosk", "auth_verifier", "platform"}, {}),
        ("POST", "/api/jpki/verify/signature", {"certificate_b64": b64(card.issued.sign_certificate or b""),
                                                "data_b64": b64(doc), "signature_b64": b64(signature)},
         ops | {"kiosk", "sign_verifier", "platform"}, {}),
        ("POST", "/api/jpki/subscriptions", {"serial": sign_serial}, {"platform"}, {}),
        ("GET", "/api/jpki/notifications", None, {"platform"}, {}),
        ("POST", f"/api/jpki/cards/{card.id}/reissue", {"kind": "auth", "public_key_b64": b64(spki(chip_key()))},
         window, {404: {"other_clerk"}}),
        ("POST", f"/api/jpki/certificates/{auth_serial}/revoke", {"reason": "keyCompromise"}, window,
         {404: {"other_clerk"}}),
        ("POST", f"/api/jpki/cards/{card.id}/holder-request", {"kinds": ["sign"]}, window | {"resident"},
         {404: {"other_clerk", "other_resident"}}),
        ("POST", f"/api/jpki/cards/{card.id}/hold", None, window, {404: {"other_clerk"}}),
        ("POST", f"/api/jpki/cards/{card.id}/abolish", None, window, {404: {"other_clerk"}}),
    ]
    for method, path, body, allowed, others in routes:
        for role in ROLES:
            payload = body
            if isinstance(body, dict) and "username" in body:
                payload = {**body, "username": body["username"].format(role=role)}
            reply = client.request(method, path, json=payload, headers=keys[role])
            if role == "anonymous":
                expected = 401
            elif role in allowed:
                expected = 200
            else:
                expected = next((status for status, roles in others.items() if role in roles), 403)
            assert reply.status_code == expected, (method, path, role, reply.status_code, reply.text[:150])
    # the revocations above went through: the card's certificates are revoked now
    states = {v.kind: v.status.value for v in service.certificates_of_card(ctx, OPERATOR, card.id)}
    assert set(states.values()) == {"revoked"}


def test_ocsp_over_http_post_and_get(ctx: Context, client: TestClient) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.x509 import ocsp as x509_ocsp

    town = Town(ctx)
    card = town.card(town.resident())
    _, key = verifiers.register_verifier(ctx, OPERATOR, "v", "government", ["authentication"], "v", NOW)
    cert = x509.load_der_x509_certificate(card.issued.auth_certificate or b"")
    issuer = x509.load_der_x509_certificate(card.issued.auth_ca_certificate)
    request = x509_ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA256()).build()
    der = request.public_bytes(serialization.Encoding.DER)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/ocsp-request"}
    post = client.post("/jpki/ocsp", content=der, headers=headers)
    get = client.get("/jpki/ocsp/" + base64.urlsafe_b64encode(der).decode().rstrip("="), headers=headers)
    for reply in (post, get):
        assert reply.status_code == 200 and reply.headers["cache-control"] == "no-cache"
        parsed = x509_ocsp.load_der_ocsp_response(reply.content)
        # nowhere near "now" for this pinned test clock, but a signed, matching answer: SHA-256 CertID echoed
        assert parsed.certificate_status is x509_ocsp.OCSPCertStatus.GOOD
        assert parsed.hash_algorithm.name == "sha256" and parsed.serial_number == cert.serial_number
    assert client.post("/jpki/ocsp", content=b"\x00" * 20_000, headers=headers).status_code == 200
    answered = [q for q in verifiers.queries(ctx, OPERATOR) if q["action"] == "ocsp"]
    counts = {o: sum(q["count"] for q in answered if q["outcome"] == o) for o in ("answered", "malformed")}
    assert counts == {"answered": 2, "malformed": 1}


def test_the_web_apps_background_schedule_signs_revoked_answers(ctx: Context,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    from sqlalchemy import select

    from mynacard.jpki.tables import jpki_ocsp_responses
    from mynacard.registry import service as registry
    from tests.jpki.support import CLERK

    town = Town(ctx)
    card = town.card(town.resident())
    monkeypatch.setenv("MYNACARD_JPKI_SCHEDULER", "1")
    ctx.reload_settings()
    with TestClient(create_app(ctx)):
        registry.move_resident(ctx, CLERK, card.resident_id, "東京都千代田区丸の内1番1号", None, NOW)
        deadline = time.monotonic() + 20
        stored: list[Any] = []
        while not stored and time.monotonic() < deadline:
            time.sleep(0.2)
            with ctx.db.connect() as conn:
                stored = conn.execute(select(jpki_ocsp_responses.c.status)).all()
    assert [r.status for r in stored] == ["revoked"]


def test_the_basic_four_facts_are_refused_to_unregistered_clients_and_the_refusal_is_logged(
        ctx: Context, client: TestClient) -> None:
    town = Town(ctx)
    card = town.card(town.resident())
    doc = b"contract"
    body = {"certificate_b64": base64.b64encode(card.issued.sign_certificate or b"").decode(),
            "data_b64": base64.b64encode(doc).decode(),
            "signature_b64": base64.b64encode(card.sign_key.sign(doc, padding.PKCS1v15(), hashes.SHA256())).decode()}
    _, sign_key = verifiers.register_verifier(ctx, OPERATOR, "署名検証者", "government", ["signature"], "sv", NOW)
    login_only, auth_key = verifiers.register_verifier(ctx, OPERATOR, "ログイン事業者", "certified_private",
                                                       ["authentication"], "av", NOW)
    suspended, suspended_key = verifiers.register_verifier(ctx, OPERATOR, "停止中", "certified_private",
                                                           ["signature"], "gone", NOW)
    verifiers.set_suspended(ctx, OPERATOR, suspended.id, True, NOW)
    accounts.create_account(ctx, "some-agency", Role.AGENCY, None, NOW)
    agency_key = accounts.issue_api_key(ctx, "some-agency")

    allowed = client.post("/api/jpki/verify/signature", json=body, headers={"Authorization": f"Bearer {sign_key}"})
    assert allowed.status_code == 200 and allowed.json()["signer"]["facts"]["address"] == "東京都千代田区千代田1番1号"
    for key, status in ((None, 401), (auth_key, 403), (suspended_key, 403), (agency_key, 403), ("bogus", 401)):
        headers = {} if key is None else {"Authorization": f"Bearer {key}"}
        reply = client.post("/api/jpki/verify/signature", json=body, headers=headers)
        assert reply.status_code == status, (key, reply.text)
        assert "千代田" not in reply.text and "山田" not in reply.text
    refused = [q for q in verifiers.queries(ctx, OPERATOR, refused_only=True) if q["action"] == "verify"]
    by_caller = {q["caller"]: q for q in refused}
    assert set(by_caller) == {"verifier:av@testclient", "verifier:gone@testclient", "agency:some-agency@testclient",
                              "anonymous@testclient"}, by_caller
    # no key, and a key nobody holds
    assert sum(q["count"] for q in refused if q["caller"] == "anonymous@testclient") == 2
    assert by_caller["verifier:av@testclient"]["verifier_id"] == login_only.id
    assert all(q["outcome"] == "refused" for q in refused)
