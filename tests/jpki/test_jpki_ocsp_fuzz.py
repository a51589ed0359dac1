"""Acceptance: 10,000 malformed OCSP requests (Hypothesis) get RFC 6960 error responses over HTTP, never a
500, and the responder keeps serving — through the dedicated responder server and the web app's route.

Malformed by construction — random bytes, broken DER, and well-formed DER that breaks RFC 6960 — and, for
mutants of a valid request, judged against an independent parser (``cryptography``): whatever it cannot read
must get ``malformedRequest``."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import httpx
import pytest
from asn1crypto import algos, core
from asn1crypto import ocsp as asn1_ocsp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp as x509_ocsp
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from mynacard.context import Context
from mynacard.jpki import ocsp, verifiers
from mynacard.jpki.model import Purpose, VerifierKind
from tests.jpki.support import OPERATOR, Town, ocsp_server, serve

ERRORS = {"malformed_request", "internal_error", "try_later", "sign_required", "unauthorized"}


def _status(body: bytes) -> str:
    return str(asn1_ocsp.OCSPResponse.load(body)["response_status"].native)


def _valid_request(cert: x509.Certificate, issuer: x509.Certificate) -> bytes:
    req = x509_ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1()).build()
    return req.public_bytes(serialization.Encoding.DER)


def _cert_id(serial: int = 5, algorithm: str = "sha1", name_len: int = 20, key_len: int = 20,
             params: object = None) -> dict[str, object]:
    hash_alg: object = {"algorithm": algorithm}
    if params is not None:  # parameters asn1crypto would not let us write: assembled from their DER
        oid = core.ObjectIdentifier(algos.DigestAlgorithmId.unmap(algorithm)).dump()
        hash_alg = algos.DigestAlgorithm.load(core.Sequence(contents=oid + params.dump()).dump())  # type: ignore[attr-defined]
    return {"hash_algorithm": hash_alg, "issuer_name_hash": b"\x01" * name_len,
            "issuer_key_hash": b"\x02" * key_len, "serial_number": serial}


def _request(items: list[dict[str, object]], version: int = 0, extensions: list[object] | None = None) -> bytes:
    tbs: dict[str, object] = {"version": version, "request_list": [{"req_cert": c} for c in items]}
    if extensions is not None:
        tbs["request_extensions"] = extensions
    return asn1_ocsp.OCSPRequest({"tbs_request": tbs}).dump()


# Well-formed DER that is not a usable OCSP request: each must get malformedRequest. Built once (asn1crypto is
# slow to build with); Hypothesis picks among them and varies the cheap parts.
_NONCE = [{"extn_id": "nonce", "critical": False, "extn_value": b"0123456789abcdef"}]
SEMANTIC: list[bytes] = [
    _request([]),                                                                     # asks about nothing
    *(_request([_cert_id()], version=v) for v in (1, 2, 5, 9)),                       # unknown version
    *(_request([_cert_id()] * n) for n in (21, 30, 40)),                              # too many certificates
    *(_request([_cert_id(algorithm=a)]) for a in ("md5", "sha224")),                  # hash we do not take
    *(_request([_cert_id(name_len=a, key_len=b)])                                     # hash length ≠ algorithm
      for a, b in ((0, 20), (20, 0), (19, 20), (20, 21), (32, 32), (64, 20))),
    *(_request([_cert_id(serial=s)]) for s in (-1, -(2**70), 2**160, 2**400)),        # negative or > 20 octets
    *(_request([_cert_id()], extensions=[{"extn_id": "nonce", "critical": False, "extn_value": b"\0" * n}])
      for n in (0, 33, 64, 200)),                                                     # nonce of 0 or > 32 octets
    _request([_cert_id()], extensions=[                                               # unknown critical extension
        {"extn_id": "1.2.3.4.5", "critical": True, "extn_value": core.ParsableOctetString(b"x")}]),
    _request([_cert_id(params=core.Integer(7))]),                                     # hash parameters not NULL
    _request([_cert_id()], extensions=_NONCE * 2),                                    # a nonce twice
    core.Null().dump(),
]
semantic = st.one_of(
    st.sampled_from(SEMANTIC),
    st.binary(min_size=1, max_size=40).map(lambda b: core.Sequence(contents=b).dump()),
    st.binary(max_size=40).map(lambda b: core.OctetString(b).dump()),
)
garbage = st.binary(min_size=1, max_size=300).filter(lambda b: b[:1] != b"\x30")  # not even a SEQUENCE
oversize = st.integers(16 * 1024 + 1, 40 * 1024).map(
    lambda n: b"\x30\x82" + (n - 4).to_bytes(2, "big") + b"\0" * (n - 4))


@pytest.mark.slow
def test_ten_thousand_malformed_requests_get_rfc_errors_and_the_responder_keeps_serving(
        sqlite_ctx: Context) -> None:
    ctx = sqlite_ctx
    town = Town(ctx)
    now = datetime.now(UTC)
    card = town.card(town.resident(at=now - timedelta(days=40)), now=now)
    _, key = verifiers.register_verifier(ctx, OPERATOR, "検証者", VerifierKind.GOVERNMENT,
                                         [Purpose.SIGNATURE, Purpose.AUTHENTICATION], "fuzz-verifier", now)
    cert = x509.load_der_x509_certificate(card.issued.auth_certificate or b"")
    issuer = x509.load_der_x509_certificate(card.issued.auth_ca_certificate)
    valid = _valid_request(cert, issuer)
    # both front ends of the one responder: the dedicated server takes four requests in five, the web app one
    with ocsp_server(ctx) as fast, serve(ctx) as web, httpx.Client(base_url=fast, timeout=30) as dedicated, \
            httpx.Client(base_url=web, timeout=30) as app:
        _fuzz([dedicated] * 4 + [app], key, valid, cert)


def _fuzz(clients: list[httpx.Client], key: str, valid: bytes, cert: x509.Certificate) -> None:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/ocsp-request"}
    turn = [0]

    def ask(body: bytes, via_get: bool = False, client: httpx.Client | None = None) -> tuple[int, bytes]:
        if client is None:
            turn[0] += 1
            client = clients[turn[0] % len(clients)]
        if via_get:
            path = quote(base64.b64encode(body).decode(), safe="")
            reply = client.get(f"/jpki/ocsp/{path}", headers=headers)
        else:
            reply = client.post("/jpki/ocsp", content=body, headers=headers)
        return reply.status_code, reply.content

    mutants = st.tuples(st.integers(0, len(valid) - 1), st.integers(1, 255), st.integers(0, 3),
                        st.binary(max_size=8)).map(lambda t: _mutate(valid, *t))
    counts = {"malformed": 0, "unreadable_mutant": 0, "readable_mutant": 0}

    case = st.tuples(st.one_of(semantic, garbage, oversize, mutants.map(lambda m: ("mutant", m))), st.booleans())

    # batches of 20 requests: Hypothesis draws a batch far faster than it runs 10,000 single examples; 560
    # batches leave room for the mutants that are still readable requests (not counted as malformed)
    @settings(max_examples=560, deadline=None, database=None, derandomize=True, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(st.lists(case, min_size=20, max_size=20))
    def run(batch: list[tuple[bytes | tuple[str, bytes], bool]]) -> None:
        for item, via_get in batch:
            one(item, via_get)

    def one(case: bytes | tuple[str, bytes], via_get: bool) -> None:
        if isinstance(case, tuple):
            body = case[1]
            code, answer = ask(body, via_get and bool(body))
            assert code == 200
            status = _status(answer)
            try:
                x509_ocsp.load_der_ocsp_request(body)
                readable = True
            except ValueError:
                readable = False
            if readable:
                assert status in ERRORS | {"successful"}
                counts["readable_mutant"] += 1
            else:
                assert status == "malformed_request", body.hex()
                counts["unreadable_mutant"] += 1
        else:
            code, answer = ask(case, via_get and len(case) < 2000)
            assert code == 200 and _status(answer) == "malformed_request", case[:64].hex()
            counts["malformed"] += 1

    run()
    # at least 10,000 requests that are malformed (by construction, or unreadable to an independent parser)
    assert counts["malformed"] + counts["unreadable_mutant"] >= 10_000 and counts["malformed"] > 4_000, counts
    # still serving: a real question gets a real, verifiable answer, from both
    for client in set(clients):
        code, answer = ask(valid, client=client)
        response = x509_ocsp.load_der_ocsp_response(answer)
        assert code == 200 and response.certificate_status is x509_ocsp.OCSPCertStatus.GOOD
    assert ocsp.parse_request(valid).refs[0].serial == cert.serial_number


def _mutate(valid: bytes, at: int, xor: int, mode: int, extra: bytes) -> bytes:
    data = bytearray(valid)
    if mode == 0:
        data[at] ^= xor
    elif mode == 1:
        del data[at:]
    elif mode == 2:
        data[at:at] = extra or b"\x00"
    else:
        data += extra or b"\x00"
    return bytes(data) if bytes(data) != valid else bytes(data) + b"\x00"
