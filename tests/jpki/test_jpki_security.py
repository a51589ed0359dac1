"""Findings of the security review about JPKI's web side, each proved: the client-certificate header is believed
only from the configured TLS proxies, anonymous refusals add a bounded number of rows, a verifier is registered
in one transaction (a duplicate certificate is a 409 that leaves nothing behind), and no out-of-range input
answers 500."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from mynacard.accounts.tables import accounts, api_keys
from mynacard.context import Context
from mynacard.errors import Conflict
from mynacard.jpki import config, service, verifiers
from mynacard.jpki.model import Purpose
from mynacard.jpki.ocsp_server import OcspServer
from mynacard.jpki.tables import jpki_verifier_queries, jpki_verifiers
from mynacard.principal import Role
from mynacard.web.app import create_app
from tests.conftest import NOW
from tests.jpki.support import OPERATOR

HEADER = "x-client-cert-sha256"
FINGERPRINT = hashlib.sha256(b"the verifier's client certificate").hexdigest()


@pytest.fixture
def cas(ctx: Context) -> Context:
    service.ensure_authorities(ctx, OPERATOR, NOW)  # mynacard jpki init
    return ctx


def _client(ctx: Context, address: str = "198.51.100.7") -> TestClient:
    return TestClient(create_app(ctx), client=(address, 50000), raise_server_exceptions=False)


def _count(ctx: Context, table: object) -> int:
    with ctx.db.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


# --- the client-certificate header ----------------------------------------------------------------------------

def test_the_client_certificate_header_is_believed_only_from_the_configured_proxies(
        cas: Context, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """A fingerprint is no secret: with ``MYNACARD_JPKI_MTLS_HEADER`` set, anyone sending the header got a
    verifier's CRL. Now the header counts only on connections from ``MYNACARD_JPKI_MTLS_PROXIES``; without that
    setting it is ignored, with one warning."""
    ctx = cas
    verifiers.register_verifier(ctx, OPERATOR, "署名検証者", "government", ["signature"], "sv", NOW, FINGERPRINT)
    monkeypatch.setenv("MYNACARD_JPKI_MTLS_HEADER", HEADER)
    ctx.reload_settings()  # each change of configuration as a restarted process would read it
    forged = {HEADER: FINGERPRINT}
    config._WARNED.clear()
    with caplog.at_level(logging.WARNING, logger="mynacard.jpki.config"):
        for _ in range(3):
            assert _client(ctx).get("/jpki/crl/sign.crl", headers=forged).status_code == 401
    warnings = [r for r in caplog.records if "MYNACARD_JPKI_MTLS_PROXIES" in r.getMessage()]
    assert len(warnings) == 1
    monkeypatch.setenv("MYNACARD_JPKI_MTLS_PROXIES", "10.0.0.5, 2001:db8:1::/48")
    ctx.reload_settings()
    assert _client(ctx, "198.51.100.7").get("/jpki/crl/sign.crl", headers=forged).status_code == 401
    assert _client(ctx, "10.0.0.6").get("/jpki/crl/sign.crl", headers=forged).status_code == 401
    proxied = _client(ctx, "10.0.0.5").get("/jpki/crl/sign.crl", headers=forged)
    assert proxied.status_code == 200 and proxied.headers["content-type"] == "application/pkix-crl"
    assert _client(ctx, "2001:db8:1:2::9").get("/jpki/crl/sign.crl", headers=forged).status_code == 200
    # the dedicated OCSP responder server applies the same rule
    server = OcspServer(ctx, threads=1)
    try:
        assert server._caller({HEADER.encode(): FINGERPRINT.encode()}, "198.51.100.7").client_cert_sha256 is None
        assert server._caller({HEADER.encode(): FINGERPRINT.encode()}, "10.0.0.5").client_cert_sha256 == FINGERPRINT
    finally:
        server.executor.shutdown()
    monkeypatch.setenv("MYNACARD_JPKI_MTLS_PROXIES", "not-an-address")
    with pytest.raises(Exception, match="MYNACARD_JPKI_MTLS_PROXIES"):
        config.jpki_settings()


# --- refusals of anonymous callers ----------------------------------------------------------------------------

def _refusal_rows(ctx: Context) -> list[dict[str, object]]:
    verifiers.flush_query_log(ctx)
    with ctx.db.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(jpki_verifier_queries).where(
            jpki_verifier_queries.c.outcome == "refused"))]


def test_anonymous_refusals_are_counted_one_row_per_address_and_minute(cas: Context) -> None:
    """Each anonymous OCSP or CRL refusal was a row of its own, written at once: anyone could add rows without
    end. Now refusals of one caller, action and reason in one minute are one row with a count."""
    ctx = cas
    client = _client(ctx)
    for _ in range(40):
        assert client.get("/jpki/crl/sign.crl").status_code == 401
        assert client.post("/jpki/ocsp", content=b"0\x03\x02\x01\x00",
                           headers={"content-type": "application/ocsp-request"}).status_code == 200
    rows = _refusal_rows(ctx)
    by_action: dict[object, list[dict[str, object]]] = {}
    for row in rows:
        by_action.setdefault(row["action"], []).append(row)
    assert set(by_action) == {"crl", "ocsp"}
    for found in by_action.values():
        assert 1 <= len(found) <= 2  # one per minute (two if the loop crossed a minute)
        assert sum(int(r["count"]) for r in found) == 40  # type: ignore[call-overload]
        assert {r["caller"] for r in found} == {"anonymous@198.51.100.7"}


def test_an_ipv6_client_is_one_caller_and_a_crowd_of_addresses_shares_a_row(
        cas: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = cas
    monkeypatch.setattr(verifiers, "_ANONYMOUS_PER_MINUTE", 3)
    for host in range(1, 30):  # one client's /64
        with pytest.raises(Exception, match="not a registered verifier"):
            verifiers.require_verifier(ctx, None, Purpose.SIGNATURE, "crl", NOW, remote=f"2001:db8:5:6::{host:x}")
    for n in range(50):  # fifty IPv4 addresses in one minute
        with pytest.raises(Exception, match="not a registered verifier"):
            verifiers.require_verifier(ctx, None, Purpose.SIGNATURE, "crl", NOW + timedelta(seconds=n % 50),
                                       remote=f"192.0.2.{n + 1}")
    rows = _refusal_rows(ctx)
    callers = {r["caller"]: int(r["count"]) for r in rows}  # type: ignore[call-overload]
    assert callers["anonymous@2001:db8:5:6::/64"] == 29
    assert len(rows) == 4 and callers["anonymous@(other addresses)"] == 48
    # the next minute starts afresh (still bounded): rows are added per minute, not per request
    with pytest.raises(Exception, match="not a registered verifier"):
        verifiers.require_verifier(ctx, None, Purpose.SIGNATURE, "crl", NOW + timedelta(minutes=1),
                                   remote="192.0.2.200")
    assert len(_refusal_rows(ctx)) == 5


# --- verifier registration ------------------------------------------------------------------------------------

def test_a_duplicate_client_certificate_is_a_409_that_leaves_nothing_behind(cas: Context) -> None:
    """Registration took three transactions: a duplicate fingerprint answered 500 after the account and its
    API key were made, and a retry then got 409 (the orphan account's name was taken)."""
    ctx = cas
    verifiers.register_verifier(ctx, OPERATOR, "一社", "certified_private", ["authentication"], "first", NOW,
                                FINGERPRINT)
    before = (_count(ctx, accounts), _count(ctx, api_keys), _count(ctx, jpki_verifiers))
    with pytest.raises(Conflict, match="client certificate"):
        verifiers.register_verifier(ctx, OPERATOR, "二社", "certified_private", ["authentication"], "second", NOW,
                                    FINGERPRINT)
    assert (_count(ctx, accounts), _count(ctx, api_keys), _count(ctx, jpki_verifiers)) == before
    from mynacard.accounts import service as accounts_service

    accounts_service.create_account(ctx, "ops", Role.OPERATOR, None, NOW)
    ops = {"Authorization": f"Bearer {accounts_service.issue_api_key(ctx, 'ops')}"}
    before = (_count(ctx, accounts), _count(ctx, api_keys), _count(ctx, jpki_verifiers))
    body = {"name": "二社", "kind": "certified_private", "purposes": ["authentication"], "username": "second",
            "client_cert_sha256": FINGERPRINT}
    client = _client(ctx)
    duplicate = client.post("/api/jpki/verifiers", json=body, headers=ops)
    assert duplicate.status_code == 409, duplicate.text
    assert (_count(ctx, accounts), _count(ctx, api_keys), _count(ctx, jpki_verifiers)) == before
    # the same name was not taken by the failed attempt: the corrected retry registers it
    retry = client.post("/api/jpki/verifiers", json={**body, "client_cert_sha256": "0" * 64}, headers=ops)
    assert retry.status_code == 200, retry.text
    assert verifiers.authenticate(ctx, retry.json()["api_key"]) is not None
    # an account name taken by someone else is a 409 too, and nothing is written
    before = (_count(ctx, accounts), _count(ctx, api_keys), _count(ctx, jpki_verifiers))
    taken = client.post("/api/jpki/verifiers", json={**body, "username": "ops", "client_cert_sha256": None},
                        headers=ops)
    assert taken.status_code == 409 and (_count(ctx, accounts), _count(ctx, api_keys),
                                         _count(ctx, jpki_verifiers)) == before


# --- bounded inputs -------------------------------------------------------------------------------------------

BIG = 2**63


@pytest.fixture
def operator_client(cas: Context) -> Iterator[tuple[TestClient, dict[str, str]]]:
    from mynacard.accounts import service as accounts_service

    accounts_service.create_account(cas, "ops", Role.OPERATOR, None, NOW)
    yield _client(cas), {"Authorization": f"Bearer {accounts_service.issue_api_key(cas, 'ops')}"}


@pytest.mark.parametrize("method, path, body", [
    ("GET", f"/api/jpki/cards/{BIG}/certificates", None),
    ("POST", f"/api/jpki/cards/{BIG * 4}/hold", None),
    ("POST", "/api/jpki/cards/0/abolish", None),
    ("POST", f"/api/jpki/cards/{BIG}/holder-request", {"kinds": ["sign"]}),
    ("POST", "/api/jpki/cards/1/holder-request", {"kinds": ["sign", "auth", "sign", "auth"]}),
    ("POST", f"/api/jpki/cards/{BIG}/reissue", {"kind": "auth", "public_key_b64": "AA=="}),
    ("POST", f"/api/jpki/verifiers/{BIG}/suspension", {"suspended": True}),
    ("GET", f"/api/jpki/queries?verifier_id={BIG}", None),
    ("GET", "/api/jpki/queries?limit=1000000000", None),
    ("GET", "/api/jpki/queries?limit=-5", None),
    ("POST", "/api/jpki/notifications/ack", {"ids": [BIG]}),
    ("GET", f"/jpki/ca/sign.pem?generation={BIG}", None),
    ("GET", f"/jpki/crl/sign.crl?generation={BIG}", None),
    ("GET", "/api/jpki/certificates/" + "A" * 5000, None),
    ("POST", "/api/jpki/verifiers", {"name": "x" * 5000, "kind": "government", "purposes": ["signature"],
                                     "username": "u"}),
    ("POST", "/api/jpki/verify/signature", {"certificate_b64": "A" * 100_000, "data_b64": "", "signature_b64": "A"}),
    ("POST", "/api/jpki/certificates/1/revoke", {"reason": "keyCompromise", "detail": "x" * 5000}),
])
def test_out_of_range_inputs_answer_422_not_500(operator_client: tuple[TestClient, dict[str, str]], method: str,
                                                path: str, body: object) -> None:
    client, ops = operator_client
    reply = client.request(method, path, json=body, headers=ops)
    assert reply.status_code == 422, (reply.status_code, reply.text)
