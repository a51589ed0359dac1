"""Fixtures of the Mynaportal tests: the exchange tests' cloned networks (``town``), resident sessions opened
through the test-only helper, and a stand-in for the JPKI relying party so that the real card-login route can
be exercised."""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from mynacard.context import Context
from mynacard.errors import Forbidden
from mynacard.portal import service as portal
from mynacard.portal.model import CardLogin, LoginChallenge
from mynacard.principal import Principal, Role
from tests.conftest import NOW
from tests.exchange.conftest import ctx, network_templates, town  # noqa: F401  (shared fixtures)


def open_test_session(ctx: Context, resident_id: int, now: datetime = NOW) -> str:  # noqa: F811
    """TEST ONLY: a resident session as if the card login had been verified (the JPKI relying party is not on
    this branch); returns the cookie token."""
    return portal.open_session(ctx, CardLogin(f"TEST{resident_id:08X}", resident_id, now), now).token


def resident(rid: int) -> Principal:
    return Principal(Role.RESIDENT, str(rid))


@dataclass
class FakeCardAuthenticator:
    """TEST ONLY stand-in for the JPKI relying-party SDK behind the portal's login seam: a CA made at test time
    issues RSA-2048 authentication certificates to simulated cards; ``verify`` checks the certificate was
    issued by that CA and is in its validity period, that the card's PKCS#1 v1.5 SHA-256 signature over the
    challenge verifies, and that the challenge is known, unexpired and unused."""

    ca_key: rsa.RSAPrivateKey = field(default_factory=lambda: rsa.generate_private_key(65537, 2048))
    cards: dict[int, int] = field(default_factory=dict)
    """certificate serial → resident id (what the CA's issuance records would say)."""
    challenges: dict[str, LoginChallenge] = field(default_factory=dict)

    def issue_card(self, resident_id: int, now: datetime) -> tuple[rsa.RSAPrivateKey, bytes]:
        key = rsa.generate_private_key(65537, 2048)
        serial = x509.random_serial_number()
        name = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Test JPKI (not real)")])
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                .serial_number(serial).not_valid_before(now - timedelta(days=1))
                .not_valid_after(now + timedelta(days=365)).sign(self.ca_key, hashes.SHA256()))
        self.cards[serial] = resident_id
        return key, cert.public_bytes(serialization.Encoding.DER)

    def issue_challenge(self, now: datetime) -> LoginChallenge:
        challenge = LoginChallenge(secrets.token_hex(16), os.urandom(32), now + timedelta(minutes=5))
        self.challenges[challenge.id] = challenge
        return challenge

    def verify(self, challenge_id: str, certificate: bytes, signature: bytes, now: datetime) -> CardLogin:
        challenge = self.challenges.pop(challenge_id, None)
        if challenge is None or now > challenge.expires_at:
            raise Forbidden("unknown, used or expired challenge")
        try:
            cert = x509.load_der_x509_certificate(certificate)
            self.ca_key.public_key().verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(),
                                            cert.signature_hash_algorithm or hashes.SHA256())
            cert.public_key().verify(signature, challenge.nonce, padding.PKCS1v15(), hashes.SHA256())  # type: ignore[union-attr,call-arg]
        except (ValueError, InvalidSignature):
            raise Forbidden("the card's response does not verify") from None
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc or cert.serial_number not in self.cards:
            raise Forbidden("certificate not valid")
        return CardLogin(format(cert.serial_number, "X"), self.cards[cert.serial_number], now)


def sign(key: rsa.RSAPrivateKey, nonce: bytes) -> bytes:
    """What the card does with its authentication key (PIN entered)."""
    return key.sign(nonce, padding.PKCS1v15(), hashes.SHA256())


@pytest.fixture
def portal_server(ctx: Context) -> Iterator[tuple[str, FakeCardAuthenticator]]:  # noqa: F811
    """The web app with the stand-in authenticator, served by uvicorn on a free port (for Chromium)."""
    import uvicorn

    from mynacard.web.app import create_app

    auth = FakeCardAuthenticator()
    app = create_app(ctx)
    app.state.card_authenticator = auth
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}", auth
    server.should_exit = True
    thread.join(timeout=10)
