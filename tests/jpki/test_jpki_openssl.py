"""Acceptance: OpenSSL agrees — ``openssl verify -crl_check``, ``openssl ocsp`` against the running server,
``openssl asn1parse`` on the signing certificate. These run the real ``openssl`` commands."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mynacard.context import Context
from mynacard.jpki import service, verifiers
from mynacard.jpki.model import CaKind, Purpose, VerifierKind
from mynacard.registry import service as registry
from tests.conftest import NOW
from tests.jpki.support import CLERK, OPERATOR, Town, ocsp_server, openssl, serve


def _pem(der: bytes) -> bytes:
    return x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)


def _write(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def _crl_pem(der: bytes) -> bytes:
    return x509.load_der_x509_crl(der).public_bytes(serialization.Encoding.PEM)


def test_openssl_verify_accepts_a_valid_certificate_and_rejects_a_revoked_one(town: Town, tmp_path: Path) -> None:
    good = town.card(town.resident())
    bad = town.card(town.resident(given="次郎", kana=("ヤマダ", "ジロウ")))
    full_before = service.current_crl(town.ctx, CaKind.SIGN, False, NOW)
    registry.move_resident(town.ctx, CLERK, bad.resident_id, "東京都千代田区丸の内1番1号", None, NOW)
    when = NOW + timedelta(minutes=30)
    full = service.publish_crls(town.ctx, OPERATOR, when, force=True, kinds=[CaKind.SIGN])[0]
    ca = _write(tmp_path / "sign-ca.pem", _pem(good.issued.sign_ca_certificate))
    crl = _write(tmp_path / "sign.crl.pem", _crl_pem(full.der))
    good_pem = _write(tmp_path / "good.pem", _pem(good.issued.sign_certificate or b""))
    bad_pem = _write(tmp_path / "bad.pem", _pem(bad.issued.sign_certificate or b""))
    at = str(int(when.timestamp()) + 60)

    rc, out = openssl("verify", "-attime", at, "-crl_check", "-CAfile", ca, "-CRLfile", crl, good_pem)
    assert rc == 0 and f"{good_pem}: OK" in out, out
    rc, out = openssl("verify", "-attime", at, "-crl_check", "-CAfile", ca, "-CRLfile", crl, bad_pem)
    assert rc != 0 and "certificate revoked" in out, out

    # the delta CRL on the pre-revocation full CRL carries the revocation too (openssl -use_deltas)
    delta = service.current_crl(town.ctx, CaKind.SIGN, True, when)
    assert delta.base_number == full.number
    old_full_and_delta = _write(tmp_path / "both.pem", _crl_pem(full_before.der))
    rc, out = openssl("verify", "-attime", str(int(NOW.timestamp()) + 60), "-crl_check", "-CAfile", ca,
                      "-CRLfile", old_full_and_delta, bad_pem)
    assert rc == 0, "the full CRL from before the move does not list the certificate"

    # without the CA's CRL openssl refuses to decide
    rc, out = openssl("verify", "-attime", at, "-crl_check", "-CAfile", ca, good_pem)
    assert rc != 0 and "unable to get certificate CRL" in out

    # the authentication certificate is untouched by the move and checks against its own CA and CRL
    auth_crl = service.current_crl(town.ctx, CaKind.AUTH, False, when)
    rc, out = openssl("verify", "-attime", at, "-crl_check",
                      "-CAfile", _write(tmp_path / "auth-ca.pem", _pem(bad.issued.auth_ca_certificate)),
                      "-CRLfile", _write(tmp_path / "auth.crl.pem", _crl_pem(auth_crl.der)),
                      _write(tmp_path / "bad-auth.pem", _pem(bad.issued.auth_certificate or b"")))
    assert rc == 0, out


def test_openssl_verify_uses_delta_crls(town: Town, tmp_path: Path) -> None:
    card = town.card(town.resident())
    full = service.current_crl(town.ctx, CaKind.AUTH, False, NOW)
    service.hold_card_certificates(town.ctx, CLERK, card.id, NOW + timedelta(minutes=1))
    delta = service.current_crl(town.ctx, CaKind.AUTH, True, NOW + timedelta(minutes=2))
    assert delta.base_number == full.number and delta.entry_count == 1
    both = _write(tmp_path / "crls.pem", _crl_pem(full.der) + _crl_pem(delta.der))
    ca = _write(tmp_path / "ca.pem", _pem(card.issued.auth_ca_certificate))
    cert = _write(tmp_path / "auth.pem", _pem(card.issued.auth_certificate or b""))
    at = str(int(NOW.timestamp()) + 600)
    rc, out = openssl("verify", "-attime", at, "-crl_check", "-use_deltas", "-CAfile", ca, "-CRLfile", both, cert)
    assert rc != 0 and "certificate revoked" in out, out
    rc, out = openssl("crl", "-inform", "DER", "-noout", "-text", "-in", _write(tmp_path / "d.crl", delta.der))
    assert "Delta CRL Indicator: critical" in out and "Certificate Hold" in out, out


def test_openssl_asn1parse_shows_the_subject_alt_name_other_names(town: Town, tmp_path: Path) -> None:
    card = town.card(town.resident(family="𠮷田", kana=("ヨシダ", "タロウ")))
    der = _write(tmp_path / "sign.der", card.issued.sign_certificate or b"")
    _, out = openssl("asn1parse", "-inform", "DER", "-in", der, check=True)
    lines = out.splitlines()
    at = next(i for i, line in enumerate(lines) if "X509v3 Subject Alternative Name" in line)
    offset = int(lines[at + 1].split(":", 1)[0])
    _rc, san = openssl("asn1parse", "-inform", "DER", "-in", der, "-strparse", str(offset), "-i", check=True)
    oids = re.findall(r"OBJECT\s+:(1\.2\.392\.200149\.8\.5\.5\.\d)", san)
    assert oids == [f"1.2.392.200149.8.5.5.{n}" for n in (1, 4, 3, 5, 2, 6)], san
    assert san.count("cont [ 0 ]") >= 12  # each otherName: [0] type-id value, and the value [0] EXPLICIT
    values = re.findall(r"UTF8STRING\s+:(.*)", san)
    assert values[:6] == ["〓田\u3000太郎", "319800101", "1", "東京都千代田区千代田1番1号", "10000",
                          "0" * len("東京都千代田区千代田1番1号")], values


def _cli(ctx: Context, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MYNACARD_DATABASE_URL": ctx.db.url.render_as_string(hide_password=False),
           "MYNACARD_HOME": str(ctx.settings.home)}
    return subprocess.run([sys.executable, "-m", "mynacard.cli", *args], capture_output=True, text=True, env=env,
                          timeout=120)


@pytest.fixture(params=["web", "ocsp_server"])
def responder(request: pytest.FixtureRequest, ctx: Context) -> Iterator[str]:
    """The base URL of a running OCSP responder: the web app's route, or the dedicated ``ocsp_server``."""
    if request.param == "web":
        with serve(ctx) as base:
            yield base
    else:
        with ocsp_server(ctx) as base:
            yield base


def test_openssl_ocsp_sees_good_then_revoked_within_a_second(ctx: Context, responder: str,
                                                            tmp_path: Path) -> None:
    live_server = responder
    town = Town(ctx)
    now = datetime.now(UTC)
    card = town.card(town.resident(at=now - timedelta(days=40)), now=now)
    _, key = verifiers.register_verifier(ctx, OPERATOR, "検証者株式会社", VerifierKind.CERTIFIED_PRIVATE,
                                         [Purpose.SIGNATURE, Purpose.AUTHENTICATION], "verifier-1", now)
    ca = _write(tmp_path / "sign-ca.pem", _pem(card.issued.sign_ca_certificate))
    cert = _write(tmp_path / "sign.pem", _pem(card.issued.sign_certificate or b""))
    ask = ("ocsp", "-issuer", ca, "-cert", cert, "-url", f"{live_server}/jpki/ocsp", "-CAfile", ca,
           "-header", f"Authorization=Bearer {key}", "-timeout", "20")

    rc, out = openssl(*ask)
    assert rc == 0 and f"{cert}: good" in out and "Response verify OK" in out, (
        out, [(q["outcome"], q["detail"]) for q in verifiers.queries(ctx, OPERATOR)],
        [(a.kind, a.generation) for a in service.authorities(ctx)])
    rc, out = openssl(*ask, "-no_nonce")  # the pre-signed answer (RFC 5019 style) verifies too
    assert rc == 0 and f"{cert}: good" in out and "Response verify OK" in out, out

    serial = f"{x509.load_der_x509_certificate(card.issued.sign_certificate or b'').serial_number:X}"
    done = _cli(ctx, "jpki", "revoke", serial, "--reason", "affiliationChanged")  # another process
    revoked_at = time.monotonic()
    assert done.returncode == 0, done.stdout + done.stderr
    time.sleep(max(0.0, revoked_at + 1.0 - time.monotonic()))
    for extra in ((), ("-no_nonce",)):
        rc, out = openssl(*ask, *extra)
        assert rc == 0 and f"{cert}: revoked" in out and "Reason: affiliationChanged" in out, out
        assert "Response verify OK" in out

    # GET with the base64 request in the path (RFC 6960 A.1) gives the same answer
    request = _write(tmp_path / "req.der", b"")
    openssl("ocsp", "-issuer", ca, "-cert", cert, "-no_nonce", "-reqout", request, check=True)
    import base64
    from urllib.parse import quote

    import httpx

    encoded = quote(base64.b64encode(Path(request).read_bytes()).decode(), safe="")
    reply = httpx.get(f"{live_server}/jpki/ocsp/{encoded}", headers={"Authorization": f"Bearer {key}"})
    assert reply.status_code == 200 and reply.headers["content-type"] == "application/ocsp-response"
    from cryptography.x509 import ocsp as x509_ocsp

    parsed = x509_ocsp.load_der_ocsp_response(reply.content)
    assert parsed.certificate_status is x509_ocsp.OCSPCertStatus.REVOKED
    assert parsed.revocation_reason is x509.ReasonFlags.affiliation_changed


def test_openssl_ocsp_refuses_unregistered_clients_and_the_refusal_is_logged(ctx: Context, live_server: str,
                                                                           tmp_path: Path) -> None:
    town = Town(ctx)
    now = datetime.now(UTC)
    card = town.card(town.resident(at=now - timedelta(days=40)), now=now)
    ca = _write(tmp_path / "sign-ca.pem", _pem(card.issued.sign_ca_certificate))
    cert = _write(tmp_path / "sign.pem", _pem(card.issued.sign_certificate or b""))
    _, out = openssl("ocsp", "-issuer", ca, "-cert", cert, "-url", f"{live_server}/jpki/ocsp", "-CAfile", ca)
    assert "Responder Error: unauthorized (6)" in out, out
    # a verifier registered for authentication only may not learn about signing certificates
    auth_only, key = verifiers.register_verifier(ctx, OPERATOR, "ログイン事業者", VerifierKind.CERTIFIED_PRIVATE,
                                                 [Purpose.AUTHENTICATION], "login-only", now)
    _rc, out = openssl("ocsp", "-issuer", ca, "-cert", cert, "-url", f"{live_server}/jpki/ocsp", "-CAfile", ca,
                      "-header", f"Authorization=Bearer {key}")
    assert "Responder Error: unauthorized (6)" in out, out
    import httpx

    for headers in ({}, {"Authorization": f"Bearer {key}"}):
        reply = httpx.get(f"{live_server}/jpki/crl/sign.crl", headers=headers)
        assert reply.status_code in (401, 403) and not reply.content.startswith(b"0\x82")
    refused = verifiers.queries(ctx, OPERATOR, refused_only=True)
    anonymous = [q for q in refused if q["verifier_id"] is None]
    assert {q["action"] for q in anonymous} == {"ocsp", "crl"}
    assert all(q["caller"].startswith("anonymous@127.0.0.1") for q in anonymous)
    mine = [q for q in refused if q["verifier_id"] == auth_only.id]
    assert {q["action"] for q in mine} == {"ocsp", "crl"}
