"""The J-LIS operator's revocation pages (/jpki/admin): a staff login finds a certificate by its serial or by the
card's manufacture number, revokes it with a reason, sees it revoked — and the OCSP responder and the next CRL say
so at once, as after ``mynacard jpki revoke``. Other roles are refused, a double submit revokes once, bad input is
refused with its reason in Japanese and English and changes nothing."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp as x509_ocsp
from fastapi.testclient import TestClient

from mynacard.accounts import service as accounts
from mynacard.cards.personalisation import CardHolder
from mynacard.context import Context
from mynacard.jpki import service, verifiers
from mynacard.jpki.model import CaKind, CertificateStatus, RevocationReason
from mynacard.principal import Role
from mynacard.registry import service as registry
from mynacard.web.app import create_app
from tests.conftest import NOW
from tests.helpers import csrf
from tests.jpki.support import CHIYODA, OPERATOR, SYSTEM, Card, Town, chip_key, spki

PASSWORD = "night-duty-password-42"


@pytest.fixture
def card(ctx: Context) -> Card:
    town = Town(ctx)
    return town.card(town.resident())


def _client(ctx: Context, username: str | None = None, role: Role = Role.OPERATOR,
            municipality: str | None = None) -> TestClient:
    client = TestClient(create_app(ctx))
    if username is not None:
        accounts.create_account(ctx, username, role, PASSWORD, NOW, municipality)
        done = client.post("/login", data={"csrf": csrf(client), "username": username, "password": PASSWORD,
                                           "next": "/"}, follow_redirects=False)
        assert done.status_code == 303, done.text
    return client


@pytest.fixture
def operator(ctx: Context) -> Iterator[TestClient]:
    with _client(ctx, "jlis-duty") as client:
        yield client


def _serial(der: bytes | None) -> int:
    return x509.load_der_x509_certificate(der or b"").serial_number


def _events(ctx: Context, serial: int) -> list[tuple[str | None, str]]:
    return [(e["from_status"], e["to_status"]) for e in service.certificate_events(ctx, OPERATOR, serial)]


def _revoke(client: TestClient, serial: str, **fields: str | None) -> httpx.Response:
    form = {"reason": "keyCompromise", "detail": "", "confirm": "yes", **fields}
    return client.post(f"/jpki/admin/certificates/{serial}/revoke", follow_redirects=False,
                       data={"csrf": csrf(client, "/jpki/admin"), **{k: v for k, v in form.items() if v is not None}})


def _ocsp(client: TestClient, card: Card, key: str) -> x509_ocsp.OCSPResponse:
    cert = x509.load_der_x509_certificate(card.issued.auth_certificate or b"")
    issuer = x509.load_der_x509_certificate(card.issued.auth_ca_certificate)
    request = x509_ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1()).build()
    reply = client.post("/jpki/ocsp", content=request.public_bytes(serialization.Encoding.DER),
                        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/ocsp-request"})
    assert reply.status_code == 200
    return x509_ocsp.load_der_ocsp_response(reply.content)


def test_the_operator_finds_a_certificate_revokes_it_and_ocsp_and_the_crl_say_so(
        ctx: Context, card: Card, operator: TestClient) -> None:
    auth, sign = _serial(card.issued.auth_certificate), _serial(card.issued.sign_certificate)
    _, key = verifiers.register_verifier(ctx, OPERATOR, "ログイン事業者", "certified_private", ["authentication"],
                                         "av", NOW)
    assert _ocsp(operator, card, key).certificate_status is x509_ocsp.OCSPCertStatus.GOOD  # now cached as good

    # Where the operator starts: links to the page; the page has both searches and the CAs' state.
    assert 'href="/jpki/admin"' in operator.get("/admin/accounts").text
    assert 'href="/jpki/admin"' in operator.get("/jpki").text
    start = operator.get("/jpki/admin")
    assert start.status_code == 200 and "電子証明書の検索・失効" in start.text
    assert 'name="serial"' in start.text and 'name="card"' in start.text
    assert re.search(r'<tr data-kind="auth" data-generation="1">', start.text)
    assert "Find and revoke certificates" in operator.get("/jpki/admin?lang=en").text
    assert "電子証明書の検索・失効" in operator.get("/jpki/admin?lang=ja").text  # the language is remembered

    # By the card's manufacture number (製造番号): both certificates of the card, linked.
    by_card = operator.get("/jpki/admin", params={"card": card.serial.lower()})
    assert by_card.status_code == 200, by_card.text
    for serial in (auth, sign):
        assert f'href="/jpki/admin/certificates/{serial:X}"' in by_card.text
    assert card.serial in by_card.text

    # By the certificate's serial, as openssl prints it: straight to the certificate's page.
    found = operator.get("/jpki/admin", params={"serial": f"serial={auth:x}"}, follow_redirects=False)
    assert found.status_code == 303 and found.headers["location"] == f"/jpki/admin/certificates/{auth:X}"
    page = operator.get(found.headers["location"])
    assert page.status_code == 200 and "利用者証明用電子証明書" in page.text and 'data-status="good"' in page.text
    view = service.certificate_by_serial(ctx, OPERATOR, auth).view
    assert view.subject_cn in page.text and card.serial in page.text
    resident = registry.get_resident(ctx, SYSTEM, card.resident_id)
    for personal in (resident.resident_code, resident.facts.family_name, resident.facts.address):
        assert personal not in page.text  # no individual facts, no resident code on the page
    for reason in ("keyCompromise", "affiliationChanged", "superseded", "cessationOfOperation", "certificateHold",
                   "unspecified"):
        assert f'<option value="{reason}"' in page.text
    assert 'value="cACompromise"' not in page.text
    assert "秘密鍵の危殆化" in page.text
    assert "Key compromise" in operator.get(f"{found.headers['location']}?lang=en").text
    operator.get("/jpki/admin?lang=ja")

    done = _revoke(operator, f"{auth:X}", detail="  電話で届出 (reported by phone)  ")
    assert done.status_code == 303 and done.headers["location"] == f"/jpki/admin/certificates/{auth:X}"
    after = operator.get(f"/jpki/admin/certificates/{auth:X}")
    assert after.status_code == 200 and 'data-status="revoked"' in after.text
    assert "失効" in after.text and 'data-reason="keyCompromise"' in after.text
    assert 'id="revoke-button"' not in after.text  # no second form
    view = service.certificate_by_serial(ctx, OPERATOR, auth).view
    assert view.status is CertificateStatus.REVOKED and view.revocation_reason is RevocationReason.KEY_COMPROMISE
    assert view.revoked_at is not None and view.revoked_at.isoformat() in after.text
    history = service.certificate_events(ctx, OPERATOR, auth)
    assert history[-1]["actor"] == "jlis-duty" and history[-1]["detail"] == "電話で届出 (reported by phone)"
    assert "電話で届出 (reported by phone)" in after.text
    assert service.certificate_by_serial(ctx, OPERATOR, sign).view.status is CertificateStatus.GOOD  # only that one

    # The OCSP responder of this process says revoked at once (its cached "good" answer is gone) …
    answer = _ocsp(operator, card, key)
    assert answer.certificate_status is x509_ocsp.OCSPCertStatus.REVOKED
    assert answer.revocation_reason is x509.ReasonFlags.key_compromise
    # … and so does the next CRL.
    service.publish_crls(ctx, OPERATOR, view.revoked_at, force=True, kinds=[CaKind.AUTH])
    crl = operator.get("/jpki/crl/auth.crl", headers={"Authorization": f"Bearer {key}"})
    entry = x509.load_der_x509_crl(crl.content).get_revoked_certificate_by_serial_number(auth)
    assert entry is not None
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason is x509.ReasonFlags.key_compromise
    # The search by card now shows it revoked.
    row = re.search(rf'<tr data-serial="{auth:X}" data-status="(\w+)"',
                    operator.get("/jpki/admin", params={"card": card.serial}).text)
    assert row and row.group(1) == "revoked"


def test_only_the_operator_may_use_the_pages(ctx: Context, card: Card) -> None:
    auth = f"{_serial(card.issued.auth_certificate):X}"
    with _client(ctx, "chiyoda-clerk", Role.CLERK, CHIYODA) as clerk:
        for path in ("/jpki/admin", f"/jpki/admin?card={card.serial}", f"/jpki/admin/certificates/{auth}"):
            assert clerk.get(path, follow_redirects=False).status_code == 403, path
        assert 'href="/jpki/admin"' not in clerk.get("/jpki").text
        assert _revoke(clerk, auth).status_code == 403
    anonymous = TestClient(create_app(ctx))
    away = anonymous.get("/jpki/admin", follow_redirects=False)
    assert away.status_code == 303 and away.headers["location"] == "/login?next=/jpki/admin"
    posted = anonymous.post(f"/jpki/admin/certificates/{auth}/revoke", data={"reason": "keyCompromise",
                                                                           "confirm": "yes"}, follow_redirects=False)
    assert posted.status_code == 303 and posted.headers["location"].startswith("/login")
    assert _events(ctx, int(auth, 16)) == [(None, "good")]


def test_a_double_submit_revokes_once_and_says_it_is_already_revoked(ctx: Context, card: Card,
                                                                     operator: TestClient) -> None:
    auth = _serial(card.issued.auth_certificate)
    first = _revoke(operator, f"{auth:X}", reason="certificateHold")
    again = _revoke(operator, f"{auth:X}", reason="certificateHold")
    other = _revoke(operator, f"{auth:x}", reason="superseded", detail="retry")
    assert first.status_code == 303
    for reply in (again, other):
        assert reply.status_code == 409
        text = reply.text
        assert "既に失効しています" in text and "already revoked" in text and 'data-status="revoked"' in text
    assert _events(ctx, auth) == [(None, "good"), ("good", "revoked")]
    view = service.certificate_by_serial(ctx, OPERATOR, auth).view
    assert view.revocation_reason is RevocationReason.CERTIFICATE_HOLD


@pytest.mark.parametrize(("target", "fields", "status", "ja", "en"), [
    ("unknown", {}, 404, "その証明書は見つかりません", "No such certificate"),
    ("ZZ-not-hex", {}, 422, "16進数", "hexadecimal"),
    ("0", {}, 404, "その証明書は見つかりません", "No such certificate"),
    ("auth", {"reason": "tired"}, 422, "失効理由を一覧から選んでください", "Choose a revocation reason"),
    ("auth", {"reason": "cACompromise"}, 422, "失効理由を一覧から選んでください", "Choose a revocation reason"),
    ("auth", {"reason": None}, 422, "失効理由を一覧から選んでください", "Choose a revocation reason"),
    ("auth", {"confirm": None}, 422, "確認欄にチェック", "Tick the confirmation box"),
    ("auth", {"confirm": "no"}, 422, "確認欄にチェック", "Tick the confirmation box"),
    ("auth", {"detail": "長" * 201}, 422, "200文字以内", "at most 200 characters"),
])
def test_bad_input_is_refused_with_its_reason_and_changes_nothing(
        ctx: Context, card: Card, operator: TestClient, target: str, fields: dict[str, str | None], status: int,
        ja: str, en: str) -> None:
    auth = _serial(card.issued.auth_certificate)
    serial = {"auth": f"{auth:X}", "unknown": f"{auth + 1:X}"}.get(target, target)
    replies = [_revoke(operator, serial, **fields)]
    if not fields:
        replies.append(operator.get(f"/jpki/admin/certificates/{serial}"))
        replies.append(operator.get("/jpki/admin", params={"serial": serial}))
    for reply in replies:
        assert reply.status_code == status, reply.text
        assert ja in reply.text and en in reply.text
        assert 'id="problem"' in reply.text
    assert _events(ctx, auth) == [(None, "good")]
    assert {v.status for v in service.certificates_of_card(ctx, OPERATOR, card.id)} == {CertificateStatus.GOOD}


def test_a_card_made_outside_the_pipeline_is_found_by_its_number(ctx: Context, card: Card,
                                                                 operator: TestClient) -> None:
    """The kiosk's test cards (``mynacard kiosk make-card``, the demo's K… cards) have certificates but no card
    row; their number may carry the id of a pipeline card of another maker."""
    town = Town(ctx)
    rid = town.resident(family="佐藤", given="花子", kana=("サトウ", "ハナコ"), birth=date(1990, 5, 5))
    resident = registry.get_resident(ctx, SYSTEM, rid)
    number = f"K{card.id:010d}01"
    until = service.certificate_by_serial(ctx, OPERATOR, _serial(card.issued.auth_certificate)).view.not_after
    holder = CardHolder(number, CHIYODA, resident.facts, until.date(), until.date(), True, True, resident_id=rid)
    issued = service.JpkiIssuer(ctx, OPERATOR).issue(holder, spki(chip_key()), spki(chip_key()), NOW)
    kiosk_card = {_serial(issued.auth_certificate), _serial(issued.sign_certificate)}
    pipeline_card = {_serial(card.issued.auth_certificate), _serial(card.issued.sign_certificate)}
    for text, expected in ((number, kiosk_card), (card.serial, pipeline_card)):
        page = operator.get("/jpki/admin", params={"card": text})
        assert page.status_code == 200, page.text
        assert set(re.findall(r'<tr data-serial="([0-9A-F]+)"', page.text)) == {f"{s:X}" for s in expected}
    done = _revoke(operator, f"{_serial(issued.auth_certificate):X}", reason="certificateHold")
    assert done.status_code == 303
    assert service.certificate_by_serial(ctx, OPERATOR, _serial(issued.auth_certificate)).view.status.value == "revoked"


def test_a_bad_or_unknown_manufacture_number_is_refused(ctx: Context, card: Card, operator: TestClient) -> None:
    for text, status, ja, en in (("123", 422, "英数字13桁", "13 letters and digits"),
                                 ("E9999999999-1", 422, "英数字13桁", "13 letters and digits"),
                                 ("E99999999990X", 404, "見つかりません", "No card has this"),
                                 ("E999999999901", 404, "見つかりません", "No card has this"),
                                 (card.serial[:-2] + "07", 404, "見つかりません", "No card has this")):
        reply = operator.get("/jpki/admin", params={"card": text})
        assert reply.status_code == status and ja in reply.text and en in reply.text, text


def test_a_form_without_its_security_token_is_refused(ctx: Context, card: Card, operator: TestClient) -> None:
    auth = _serial(card.issued.auth_certificate)
    reply = operator.post(f"/jpki/admin/certificates/{auth:X}/revoke", data={"reason": "keyCompromise",
                                                                            "confirm": "yes"})
    assert reply.status_code == 403
    assert _events(ctx, auth) == [(None, "good")]
