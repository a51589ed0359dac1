"""Test doubles: a JPKI stand-in and software cards, for the tests and the benchmark only.

**Not for production.** :class:`TestJpki` is a runtime-generated authentication CA (``cryptography``) with a
real RFC 6960 OCSP responder (in process) and a serial → resident directory; :class:`SoftwareCard` is a card
whose key lives in software and which counts PIN tries like the chip (3 tries, then blocked). The centre sees
them only through :class:`~mynacard.jpki.card_auth.CardAuthenticator`, :class:`~mynacard.kiosk.auth.HolderDirectory`
and :class:`~mynacard.kiosk.auth.KioskCard`; production uses JPKI's relying-party SDK and the chip's
``CardClient`` (:mod:`mynacard.jpki.card_auth` through :mod:`mynacard.kiosk.jpki_auth`,
:mod:`mynacard.kiosk.chip_card`).

A :class:`TestJpki` can be saved to a folder so that a server in another process (the storm, the benchmark:
:func:`stand_in_asgi_app`) sees the same CA, serials and revocations: ``MYNACARD_KIOSK_TEST_JPKI=<folder>``.
The production app never reads that variable.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID

from mynacard.kiosk.auth import AUTH_POLICY, PinBlocked, WrongPin, X509CardAuthenticator

__all__ = ["TEST_JPKI_ENV", "SoftwareCard", "TestJpki", "stand_in_asgi_app"]

_PIN_TRIES = 3


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass
class SoftwareCard:
    """A card with a software key (RSA-2048 as JPKI, or P-256 where thousands are needed fast).

    Like the chip it verifies the 4-digit PIN itself and counts wrong tries; a blocked card refuses every PIN.
    With ``path`` set, every change of the counter is written to the file before the card answers.
    """

    certificate: bytes
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey = field(repr=False)
    pin_sha256: str = field(repr=False, default=hashlib.sha256(b"1234").hexdigest())
    """Only a hash of the PIN is kept, in memory and in the file."""
    tries_left: int = _PIN_TRIES
    path: Path | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def serial(self) -> int:
        return x509.load_der_x509_certificate(self.certificate).serial_number

    def read_auth_certificate(self) -> bytes:
        return self.certificate

    def sign_challenge(self, pin: str, challenge: bytes) -> bytes:
        with self._lock:
            if self.tries_left <= 0:
                raise PinBlocked()
            if not (len(pin) == 4 and pin.isascii() and pin.isdigit()):
                raise WrongPin(self.tries_left)  # refused before it reaches the chip: no try is used
            if not hmac.compare_digest(hashlib.sha256(pin.encode()).hexdigest(), self.pin_sha256):
                self.tries_left -= 1
                self._save()
                if self.tries_left == 0:
                    raise PinBlocked()
                raise WrongPin(self.tries_left)
            if self.tries_left != _PIN_TRIES:
                self.tries_left = _PIN_TRIES
                self._save()
        if isinstance(self.key, rsa.RSAPrivateKey):
            return self.key.sign(challenge, padding.PKCS1v15(), hashes.SHA256())
        return self.key.sign(challenge, ec.ECDSA(hashes.SHA256()))

    def _save(self) -> None:
        if self.path is not None:
            tmp = self.path.with_name(f".{self.path.name}.tmp")
            tmp.write_text(json.dumps(self.to_json()))
            os.replace(tmp, self.path)

    def to_json(self) -> dict[str, object]:
        key = self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption())
        return {"kind": "mynacard-software-card/1", "certificate": _b64(self.certificate), "key": key.decode(),
                "pin_sha256": self.pin_sha256, "tries_left": self.tries_left}

    @classmethod
    def load(cls, path: Path) -> SoftwareCard:
        data = json.loads(path.read_text())
        if data.get("kind") != "mynacard-software-card/1":
            raise ValueError("not a software card file")
        key = serialization.load_pem_private_key(data["key"].encode(), None)
        if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise ValueError("unsupported card key")
        return cls(base64.b64decode(data["certificate"]), key, data["pin_sha256"], int(data["tries_left"]), path)

    def save(self, path: Path) -> None:
        self.path = path
        self._save()


class TestJpki:
    """A runtime-generated stand-in for the JPKI authentication CA, its OCSP responder and J-LIS's
    serial → resident directory."""

    __test__ = False  # not a pytest test class

    def __init__(self, now: datetime, *, ca_cert: x509.Certificate | None = None,
                 ca_key: rsa.RSAPrivateKey | None = None) -> None:
        if ca_cert is None or ca_key is None:
            ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            name = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
                              x509.NameAttribute(NameOID.ORGANIZATION_NAME, "JPKI-TEST"),
                              x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "JPKI for user authentication")])
            ca_cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                       .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
                       .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=3650))
                       .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                       .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                                      critical=True)
                       .sign(ca_key, hashes.SHA256()))
        self.ca_cert = ca_cert
        self.ca_key = ca_key
        self.holders: dict[int, int] = {}
        """certificate serial → resident id."""
        self.revoked: dict[int, datetime] = {}
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)
        """The responder's clock (tests pin it to their ``now``)."""
        self._lock = threading.Lock()

    # --- issuing cards ------------------------------------------------------------------------------------

    def issue_card(self, resident_id: int, now: datetime, *, pin: str = "1234", key_type: str = "rsa",
                   valid_from: datetime | None = None, valid_until: datetime | None = None,
                   register: bool = True) -> SoftwareCard:
        """A card for ``resident_id`` with an authentication certificate from this CA."""
        key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
        if key_type == "rsa":
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        else:
            key = ec.generate_private_key(ec.SECP256R1())
        serial = x509.random_serial_number() >> 96
        not_before = valid_from or now - timedelta(days=30)
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
                                         x509.NameAttribute(NameOID.COMMON_NAME, f"{serial:020X}A")]))
                .issuer_name(self.ca_cert.subject).public_key(key.public_key()).serial_number(serial)
                .not_valid_before(not_before).not_valid_after(valid_until or now + timedelta(days=365 * 5))
                .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False),
                               critical=True)
                .add_extension(x509.CertificatePolicies([x509.PolicyInformation(AUTH_POLICY, None)]),
                               critical=False)
                .sign(self.ca_key, hashes.SHA256()))
        if register:
            with self._lock:
                self.holders[serial] = resident_id
        pin_hash = hashlib.sha256(pin.encode()).hexdigest()
        return SoftwareCard(cert.public_bytes(serialization.Encoding.DER), key, pin_hash)

    def revoke(self, serial: int, when: datetime) -> None:
        with self._lock:
            self.revoked[serial] = when

    # --- the centre's side -------------------------------------------------------------------------------

    def ocsp(self, request_der: bytes) -> bytes:
        """The OCSP responder: a signed response (by the CA itself) with the request's nonce."""
        request = ocsp.load_der_ocsp_request(request_der)
        now = self.clock().astimezone(UTC).replace(microsecond=0)
        serial = request.serial_number
        with self._lock:
            known = serial in self.holders
            revoked_at = self.revoked.get(serial)
        if not known:
            status, when = ocsp.OCSPCertStatus.UNKNOWN, None
        elif revoked_at is not None:
            status, when = ocsp.OCSPCertStatus.REVOKED, revoked_at
        else:
            status, when = ocsp.OCSPCertStatus.GOOD, None
        # The response names the certificate by its ID (hashes of issuer name and key, serial).
        builder = ocsp.OCSPResponseBuilder().add_response_by_hash(
            issuer_name_hash=request.issuer_name_hash, issuer_key_hash=request.issuer_key_hash,
            serial_number=serial, algorithm=request.hash_algorithm, cert_status=status,
            this_update=now - timedelta(minutes=1), next_update=now + timedelta(hours=1),
            revocation_time=when, revocation_reason=x509.ReasonFlags.key_compromise if when else None,
        ).responder_id(ocsp.OCSPResponderEncoding.HASH, self.ca_cert)
        for ext in request.extensions:
            if isinstance(ext.value, x509.OCSPNonce):
                builder = builder.add_extension(ext.value, critical=False)
        return builder.sign(self.ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)

    def authenticator(self) -> X509CardAuthenticator:
        return X509CardAuthenticator([self.ca_cert], self.ocsp)

    def resident_for(self, serial: int, now: datetime) -> int | None:
        with self._lock:
            return self.holders.get(serial)

    def directory(self) -> TestJpki:
        return self

    # --- across processes ------------------------------------------------------------------------------

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        key = self.ca_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()).decode()
        with self._lock:
            data = {"ca_certificate": self.ca_cert.public_bytes(serialization.Encoding.PEM).decode(), "ca_key": key,
                    "holders": {str(s): r for s, r in self.holders.items()},
                    "revoked": {str(s): t.isoformat() for s, t in self.revoked.items()}}
        tmp = folder / ".test-jpki.json.tmp"
        tmp.write_text(json.dumps(data))
        os.replace(tmp, folder / "test-jpki.json")

    @classmethod
    def load(cls, folder: Path) -> TestJpki:
        data = json.loads((folder / "test-jpki.json").read_text())
        key = serialization.load_pem_private_key(data["ca_key"].encode(), None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError("the test CA key must be RSA")
        jpki = cls(datetime.now(UTC), ca_cert=x509.load_pem_x509_certificate(data["ca_certificate"].encode()),
                   ca_key=key)
        jpki.holders = {int(s): int(r) for s, r in data["holders"].items()}
        jpki.revoked = {int(s): datetime.fromisoformat(t) for s, t in data["revoked"].items()}
        return jpki


# --- a server with the stand-in (tests and the benchmark only) -------------------------------------------------

TEST_JPKI_ENV = "MYNACARD_KIOSK_TEST_JPKI"
"""Folder of a saved :class:`TestJpki`, read only by :func:`stand_in_asgi_app` (never by the production app)."""


def stand_in_asgi_app() -> object:
    """TEST ONLY: the web app whose certificate issuance centre authenticates cards against the
    :class:`TestJpki` saved in ``$MYNACARD_KIOSK_TEST_JPKI`` instead of JPKI — for the collision storm and the
    benchmark, which need 1,000 cards (P-256 software keys made in a second) rather than chip cards.
    ``uvicorn --factory mynacard.kiosk.testing:stand_in_asgi_app``; the production factory
    (:func:`mynacard.kiosk.cli.asgi_app`) never reads the variable."""
    from mynacard.bootstrap import build_context
    from mynacard.kiosk.centre import Centre, LocalGateway
    from mynacard.kiosk.service import clock_from_env, public_url
    from mynacard.web.app import create_app

    folder = os.environ.get(TEST_JPKI_ENV)
    if not folder:
        raise RuntimeError(f"{TEST_JPKI_ENV} must name a saved test JPKI folder")
    ctx = build_context()
    app = create_app(ctx)
    clock = clock_from_env(ctx)
    jpki = TestJpki.load(Path(folder))
    jpki.clock = clock
    base = public_url(ctx)
    ctx.clock = clock
    app.state.kiosk_centre = Centre(ctx, jpki.authenticator(), jpki, LocalGateway(ctx), base)
    return app
