"""The dedicated OCSP responder server: HTTP/1.1 details, limits, and the same answers as the web app."""

from __future__ import annotations

import base64
import secrets
import socket
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp as x509_ocsp

from mynacard.context import Context
from mynacard.jpki import verifiers
from mynacard.jpki.model import Purpose, VerifierKind
from mynacard.principal import Principal, Role
from mynacard.registry import service as registry
from tests.jpki.support import OPERATOR, Town, ocsp_server


def _setup(ctx: Context) -> tuple[bytes, str, x509.Certificate, int]:
    town = Town(ctx)
    now = datetime.now(UTC)
    card = town.card(town.resident(at=now - timedelta(days=40)), now=now)
    _, key = verifiers.register_verifier(ctx, OPERATOR, "検証者", VerifierKind.GOVERNMENT,
                                         [Purpose.SIGNATURE], "sv", now)
    cert = x509.load_der_x509_certificate(card.issued.sign_certificate or b"")
    issuer = x509.load_der_x509_certificate(card.issued.sign_ca_certificate)
    req = x509_ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1()).build()
    return req.public_bytes(serialization.Encoding.DER), key, cert, card.resident_id


def _status(body: bytes) -> str:
    parsed = x509_ocsp.load_der_ocsp_response(body)
    if parsed.response_status is not x509_ocsp.OCSPResponseStatus.SUCCESSFUL:
        return parsed.response_status.name
    return parsed.certificate_status.name


def test_answers_keep_alive_get_and_revocation(ctx: Context) -> None:
    request, key, cert, resident_id = _setup(ctx)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/ocsp-request"}
    with ocsp_server(ctx) as base, httpx.Client(base_url=base) as client:
        assert client.get("/healthz").text == "ok\n"
        first = client.post("/jpki/ocsp", content=request, headers=headers)
        again = client.post("/jpki/ocsp", content=request, headers=headers)  # the same connection
        assert first.headers["content-type"] == "application/ocsp-response"
        assert first.headers["cache-control"] == "no-cache" and first.headers["connection"] == "keep-alive"
        assert _status(first.content) == _status(again.content) == "GOOD"
        encoded = base64.urlsafe_b64encode(request).decode()
        assert _status(client.get(f"/jpki/ocsp/{encoded}", headers=headers).content) == "GOOD"
        assert _status(client.post("/jpki/ocsp", content=request).content) == "UNAUTHORIZED"
        resident = registry.get_resident(ctx, OPERATOR, resident_id)
        registry.record_death(ctx, Principal(Role.CLERK, "c", resident.municipality_code), resident_id,
                              datetime.now(UTC))
        time.sleep(1.0)
        revoked = x509_ocsp.load_der_ocsp_response(client.post("/jpki/ocsp", content=request, headers=headers).content)
        assert revoked.certificate_status is x509_ocsp.OCSPCertStatus.REVOKED
        assert revoked.revocation_reason is x509.ReasonFlags.affiliation_changed
        assert revoked.serial_number == cert.serial_number
    answered = [q for q in verifiers.queries(ctx, OPERATOR) if q["action"] == "ocsp"]
    assert sum(q["count"] for q in answered if q["outcome"] == "answered") == 4
    assert sum(q["count"] for q in answered if q["outcome"] == "refused") == 1


def test_http_limits_and_errors(ctx: Context) -> None:
    request, key, _, _ = _setup(ctx)
    auth = f"Authorization: Bearer {key}\r\n".encode()
    with ocsp_server(ctx, idle_seconds=1.0) as base, httpx.Client(base_url=base) as client:
        headers = {"Authorization": f"Bearer {key}"}
        assert client.get("/elsewhere").status_code == 404
        assert client.get("/jpki/ocsp").status_code == 405
        assert client.put("/jpki/ocsp/abc", content=b"x").status_code == 405
        assert _status(client.post("/jpki/ocsp", content=b"\x30" * 20_000, headers=headers).content) == \
            "MALFORMED_REQUEST"
        assert _status(client.get("/jpki/ocsp/!!!", headers=headers).content) == "MALFORMED_REQUEST"
        port = int(base.rsplit(":", 1)[1])
        # three pipelined requests on one connection are answered in order
        one = b"POST /jpki/ocsp HTTP/1.1\r\nHost: x\r\n" + auth + b"Content-Length: %d\r\n\r\n" % len(request) + request
        bad = b"POST /jpki/ocsp HTTP/1.1\r\nHost: x\r\n" + auth + b"Content-Length: 3\r\n\r\nabc"
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(one + bad + one)
            data = _read(s, 3)
        assert data.count(b"HTTP/1.1 200 OK") == 3
        bodies = [part.split(b"\r\n\r\n", 1)[1] for part in data.split(b"HTTP/1.1 ")[1:]]
        assert [_status(b[: len(b)]) for b in _split_bodies(data)] == ["GOOD", "MALFORMED_REQUEST", "GOOD"], bodies
        # broken HTTP: 400, and the connection is closed
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(b"NOT HTTP AT ALL\r\n\r\n")
            reply = s.recv(1000)
            assert reply.startswith(b"HTTP/1.1 400") and s.recv(1000) == b""
        # an idle connection is closed after the idle time
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.settimeout(5)
            started = time.monotonic()
            assert s.recv(10) == b"" and time.monotonic() - started < 4
        # a silent connection does not wedge the server (it did wedge `openssl ocsp`)
        with socket.create_connection(("127.0.0.1", port)):
            pass
        assert _status(client.post("/jpki/ocsp", content=request, headers=headers).content) == "GOOD"


def _read(s: socket.socket, responses: int) -> bytes:
    s.settimeout(10)
    data = b""
    while data.count(b"HTTP/1.1 ") < responses or not _complete(data, responses):
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def _split_bodies(data: bytes) -> list[bytes]:
    out = []
    rest = data
    while rest:
        head, _, rest = rest.partition(b"\r\n\r\n")
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(
            b"content-length")))
        out.append(rest[:length])
        rest = rest[length:]
    return out


def _complete(data: bytes, responses: int) -> bool:
    try:
        return len(_split_bodies(data)) == responses
    except (StopIteration, ValueError):
        return False


def test_a_ca_generation_made_after_the_responder_started_is_answered_at_the_next_poll(ctx: Context) -> None:
    """A responder that last looked before a CA existed (first start, or a rollover since) learns of it from
    its regular revocation poll — not only after its unknown-issuer reload back-off (this raced in tests)."""
    import time as clock

    from mynacard.jpki.responder import OcspResponder

    responder = OcspResponder(ctx)  # no CA yet
    request, _key, cert, _ = _setup(ctx)
    responder._last_reload = clock.monotonic()  # as if it had looked (and seen none) a moment ago
    responder.poll(force=True)
    answer = responder.answer(request, datetime.now(UTC), lambda kind: True)
    assert _status(answer.der) == "GOOD", answer.detail
    assert x509_ocsp.load_der_ocsp_response(answer.der).serial_number == cert.serial_number


def _children(pid: int) -> list[int]:
    path = f"/proc/{pid}/task/{pid}/children"
    try:
        with open(path) as f:
            return [int(x) for x in f.read().split()]
    except FileNotFoundError:
        return []


def test_several_worker_processes_share_the_port_and_stop_together(ctx: Context) -> None:
    """``ocsp-serve --workers 2``: two processes answer on one port (SO_REUSEPORT), each a new connection's
    request the same; a revocation reaches both; SIGTERM to the first stops the other."""
    import os
    import signal
    import subprocess
    import sys

    from mynacard.jpki import service
    from mynacard.jpki.model import RevocationReason

    request, key, cert, _ = _setup(ctx)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "MYNACARD_DATABASE_URL": ctx.db.url.render_as_string(hide_password=False)}
    proc = subprocess.Popen([sys.executable, "-m", "mynacard.cli", "jpki", "ocsp-serve", "--home",
                             str(ctx.settings.home), "--port", str(port), "--workers", "2"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/jpki/ocsp"
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/ocsp-request", "Connection": "close"}
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                assert _status(httpx.post(url, content=request, headers=headers, timeout=10).content) == "GOOD"
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the responder did not start"
                time.sleep(0.2)
        (worker,) = _children(proc.pid)
        # forty new connections, spread over both processes by the kernel: every answer is right
        statuses = {_status(httpx.post(url, content=request, headers=headers, timeout=10).content)
                    for _ in range(40)}
        assert statuses == {"GOOD"}
        service.revoke_certificate(ctx, OPERATOR, cert.serial_number, RevocationReason.KEY_COMPROMISE,
                                   datetime.now(UTC))
        deadline = time.monotonic() + 10
        while True:  # both processes re-sign at their next poll: forty answers in a row say revoked
            answers = [_status(httpx.post(url, content=request, headers=headers, timeout=10).content)
                       for _ in range(40)]
            if set(answers) == {"REVOKED"}:
                break
            assert time.monotonic() < deadline, answers
            time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        deadline = time.monotonic() + 10
        while os.path.exists(f"/proc/{worker}") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not os.path.exists(f"/proc/{worker}"), "the worker outlived the first process"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_repeated_request_is_answered_from_its_remembered_reply_until_something_changes(
        ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    """The very same request bytes again (new connections, as RFC 5019 clients send them) get the remembered
    reply — counted in the query log like any answer — and stop getting it at once when the verifier is
    suspended in this process, and within a second of a revocation. A request with a nonce is never
    remembered: each is signed for its nonce."""
    from mynacard.jpki import ocsp_http, service
    from mynacard.jpki.model import RevocationReason

    request, key, cert, _ = _setup(ctx)
    repeated: list[bool] = []
    real_repeat = ocsp_http.repeat

    def counting(ctx: Context, memo: ocsp_http.Repeatable) -> bool | None:
        due = real_repeat(ctx, memo)
        repeated.append(due is not None)
        return due

    monkeypatch.setattr(ocsp_http, "repeat", counting)
    raw = (b"POST /jpki/ocsp HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + key.encode() + b"\r\n"
           b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(request) + request)

    def ask(port: int, data: bytes = raw) -> str:
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(data)
            reply = _read(s, 1)
        assert reply.startswith(b"HTTP/1.1 200 OK") and b"Connection: close" in reply
        return _status(_split_bodies(reply)[0])

    with ocsp_server(ctx) as base:
        port = int(base.rsplit(":", 1)[1])
        assert [ask(port) for _ in range(30)] == ["GOOD"] * 30
        assert sum(repeated) >= 20, repeated  # all but the first and the few after a stale poll
        # a nonce request, the same bytes twice: signed each time, never a remembered reply
        nonce = secrets.token_bytes(16)
        with_nonce = x509_ocsp.OCSPRequestBuilder().add_certificate(
            cert, x509.load_der_x509_certificate(_issuer_der(ctx, cert)), hashes.SHA1()).add_extension(
            x509.OCSPNonce(nonce), critical=False).build().public_bytes(serialization.Encoding.DER)
        nonce_raw = raw.replace(b"Content-Length: %d" % len(request), b"Content-Length: %d" % len(with_nonce))
        nonce_raw = nonce_raw[: -len(request)] + with_nonce
        before = len(repeated)
        for _ in range(3):
            with socket.create_connection(("127.0.0.1", port)) as s:
                s.sendall(nonce_raw)
                answer = x509_ocsp.load_der_ocsp_response(_split_bodies(_read(s, 1))[0])
            assert answer.certificate_status is x509_ocsp.OCSPCertStatus.GOOD
            assert answer.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == nonce
        assert len(repeated) == before
        # a suspension in this process: refused at the very next request
        verifier = next(v for v in verifiers.list_verifiers(ctx, OPERATOR) if v.username == "sv")
        verifiers.set_suspended(ctx, OPERATOR, verifier.id, True, datetime.now(UTC))
        assert ask(port) == "UNAUTHORIZED"
        verifiers.set_suspended(ctx, OPERATOR, verifier.id, False, datetime.now(UTC))
        assert [ask(port) for _ in range(5)] == ["GOOD"] * 5
        # a revocation: every answer says so within a second (the responder polls; see the other tests)
        service.revoke_certificate(ctx, OPERATOR, cert.serial_number, RevocationReason.KEY_COMPROMISE,
                                   datetime.now(UTC))
        time.sleep(1.0)
        assert [ask(port) for _ in range(10)] == ["REVOKED"] * 10
    answered = [q for q in verifiers.queries(ctx, OPERATOR) if q["action"] == "ocsp" and q["outcome"] == "answered"]
    assert sum(q["count"] for q in answered) == 30 + 3 + 5 + 10


def _issuer_der(ctx: Context, cert: x509.Certificate) -> bytes:
    from mynacard.jpki import service
    from mynacard.jpki.model import CaKind

    authority = service.current_authority(ctx, CaKind.SIGN, datetime.now(UTC))
    assert authority.certificate.subject == cert.issuer
    return authority.certificate.public_bytes(serialization.Encoding.DER)
