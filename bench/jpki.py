"""JPKI benchmarks, each figure beside a peer measured in the same run (docs/PERFORMANCE.md, JPKI section).

1. Certificate issuance per second (the manufacturing run: 250 cards per transaction, two certificates
   each, stored) against ``openssl speed rsa2048`` signing — goal: at least 0.7 of the raw signing rate.
2. OCSP responses per second and p99 latency over HTTP (``wrk`` pinned to one core, every responder to the
   other; the same request bytes, same certificates, same delegated responder key; every response checked)
   against the ``openssl ocsp`` responder — goal: at least 10× its throughput.
3. Full and delta CRL generation with 1,000,000 revoked entries against ``openssl ca -gencrl`` on the same
   entries and CA key.

Run: ``.venv/bin/python bench/jpki.py`` (``--quick`` for a smoke run). Needs ``openssl``, ``wrk`` and
``taskset``. Works in a temporary folder with its own SQLite database (or ``--database-url``), deleted
afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509 import ocsp as x509_ocsp
from sqlalchemy import insert, update

from measure import cpu_seconds, free_port
from mynacard.bootstrap import build_context
from mynacard.cards.model import validity
from mynacard.cards.personalisation import CardHolder
from mynacard.clock import local_date
from mynacard.context import Context
from mynacard.jpki import authorities, service, verifiers
from mynacard.jpki import crl as crl_codec
from mynacard.jpki.model import CaKind, Purpose, RevocationReason, VerifierKind
from mynacard.jpki.tables import jpki_authorities, jpki_certificates
from mynacard.migrate import upgrade
from mynacard.principal import Principal, Role
from mynacard.registry import service as registry
from mynacard.sim.population import generate_residents

OPERATOR = Principal(Role.OPERATOR, "bench")
MANUFACTURER = Principal(Role.MANUFACTURER, "bench")
TOWN = "131016"

# --- the machine ------------------------------------------------------------------------------------------

def machine() -> dict[str, Any]:
    cpu = "unknown"
    with suppress(OSError, StopIteration):
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    mem = ""
    try:
        kb = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                      if line.startswith("MemTotal")))
        mem = f"{kb / 1024 / 1024:.0f} GiB"
    except (OSError, StopIteration, ValueError):
        pass
    openssl_version = subprocess.run(["openssl", "version"], capture_output=True, text=True).stdout.strip()
    return {"cpu": cpu, "cores": os.cpu_count(), "memory": mem, "python": platform.python_version(),
            "openssl": openssl_version, "load_average": os.getloadavg()}


def context(workdir: Path, url: str | None, name: str) -> Context:
    home = workdir / name
    home.mkdir(parents=True, exist_ok=True)
    ctx = build_context(home=home, database_url=url or f"sqlite:///{home / 'bench.db'}")
    upgrade(ctx.db)
    return ctx


def residents(ctx: Context, n: int, now: datetime) -> list[int]:
    town = registry.get_municipality(ctx, TOWN)
    people = list(generate_residents(town, n, now.date(), 7))
    return registry.register_residents(ctx, Principal.system("bench"), people, now - timedelta(days=30))


def key_pool(n: int) -> list[bytes]:
    return [rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) for _ in range(n)]


def holders(ctx: Context, ids: list[int], now: datetime, sign: bool = True) -> list[service.IssueRequest]:
    people = registry.residents_by_id(ctx, Principal.system("bench"), ids)
    pool = key_pool(32)
    out = []
    for i, rid in enumerate(ids):
        r = people[rid]
        v = validity(r.facts.birth_date, local_date(now), local_date(now))
        holder = CardHolder(f"B{i:012d}", r.municipality_code, r.facts, v.card_until, v.certificates_until,
                            wants_sign_cert=sign, wants_auth_cert=True, resident_id=rid)
        out.append(service.IssueRequest(holder, pool[(2 * i) % 32], pool[(2 * i + 1) % 32] if sign else None))
    return out


# --- 1. issuance ------------------------------------------------------------------------------------------

def openssl_speed_sign(seconds: int, elapsed: bool) -> float:
    """``openssl speed rsa2048`` signs per second: by CPU time (its default) or by wall-clock time."""
    args = ["openssl", "speed", *(["-elapsed"] if elapsed else []), "-seconds", str(seconds), "rsa2048"]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    line = next(line for line in out.splitlines() if re.match(r"\s*rsa\s+2048 bits", line))
    return float(line.split()[-2])


def cryptography_sign_rate(seconds: float) -> tuple[float, float]:
    """Bare RSA-2048 PKCS#1 v1.5 signatures with ``cryptography`` (what issuance signs with), per wall-clock
    second and per CPU second."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    data = secrets.token_bytes(1500)
    n, start, cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - start < seconds:
        key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        n += 1
    return n / (time.perf_counter() - start), n / max(time.process_time() - cpu, 1e-9)


def bench_issuance(workdir: Path, url: str | None, cards: int, rounds: int, seconds: int) -> dict[str, Any]:
    ctx = context(workdir, url, "issuance")
    now = datetime.now(UTC).replace(microsecond=0)
    ids = residents(ctx, cards, now)
    requests = [r for r in holders(ctx, ids, now) if r.holder.wants_sign_cert]
    service.ensure_authorities(ctx, OPERATOR, now)
    ours, ours_cpu, peer, peer_wall, raw, raw_cpu = [], [], [], [], [], []
    for _ in range(rounds):
        peer.append(openssl_speed_sign(seconds, elapsed=False))
        peer_wall.append(openssl_speed_sign(seconds, elapsed=True))
        issued, start, cpu = 0, time.perf_counter(), time.process_time()
        for i in range(0, len(requests), 250):
            for made in service.issue_batch(ctx, MANUFACTURER, requests[i:i + 250], now):
                issued += (made.auth_certificate is not None) + (made.sign_certificate is not None)
        ours.append(issued / (time.perf_counter() - start))
        ours_cpu.append(issued / (time.process_time() - cpu))
        wall, cpu_rate = cryptography_sign_rate(seconds)
        raw.append(wall)
        raw_cpu.append(cpu_rate)
    ctx.db.dispose()
    return {"certificates_per_round": issued, "ours_per_s": ours, "ours_per_cpu_s": ours_cpu,
            "openssl_speed_sign_per_s": peer, "openssl_speed_elapsed_sign_per_s": peer_wall,
            "cryptography_sign_per_s": raw, "cryptography_sign_per_cpu_s": raw_cpu,
            "ratio_to_cryptography_cpu_median": statistics.median(
                o / p for o, p in zip(ours_cpu, raw_cpu, strict=True)),
            "ratio_cpu_median": statistics.median(o / p for o, p in zip(ours_cpu, peer, strict=True)),
            "ratio_wall_median": statistics.median(o / p for o, p in zip(ours, peer_wall, strict=True)),
            "goal": 0.7}


# --- 2. OCSP ----------------------------------------------------------------------------------------------

@contextmanager
def process(args: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> Iterator[int]:
    """A server process for the duration, in a process group of its own; yields its pid. The whole group is
    stopped at the end: ``openssl ocsp -multi`` leaves its workers running (and spinning) otherwise. A new
    group, not a new session: ``openssl ocsp -multi`` makes itself a group leader with ``setpgid``, which a
    session leader may not do (EPERM) — it then exits at once, which is why it "refused connections"."""
    import signal

    log = open(os.environ.get("JPKI_BENCH_LOG", os.devnull), "ab")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(args, env=env, cwd=cwd, stdout=log, stderr=log, process_group=0)
    try:
        yield proc.pid
    finally:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        time.sleep(0.5)
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # any worker that ignored SIGTERM
        log.close()


WRK_SCRIPT = r"""
-- one fixed request (the DER body and headers of the run); every response is checked for a successful
-- OCSPResponse (DER SEQUENCE, then ENUMERATED 0), so that errors are never counted as throughput
-- no probe connection: wrk's default resolve() connects and closes without a request, which wedges
-- `openssl ocsp` (OpenSSL 3.0 spins on such a connection)
function wrk.resolve(host, service) wrk.addrs = wrk.lookup(host, service) end
local f = assert(io.open(os.getenv("OCSP_BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/ocsp-request"
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) ok = 0; bad = 0 end
function response(status, headers, body)
  local a, b, c, d, e, g = body:byte(1, 7)
  local at = 3
  if b == 0x81 then at = 4 elseif b == 0x82 then at = 5 end
  if status == 200 and a == 0x30 and #body > 100 and body:byte(at) == 0x0a and body:byte(at + 1) == 1
     and body:byte(at + 2) == 0 then ok = ok + 1 else bad = bad + 1 end
end
function done(summary, latency, requests)
  local good, wrong = 0, 0
  for _, t in ipairs(threads) do good = good + t:get("ok"); wrong = wrong + t:get("bad") end
  local e = summary.errors
  io.write(string.format('WRK {"requests": %d, "duration_us": %d, "ok": %d, "bad": %d, "connect_errors": %d, '
    .. '"read_errors": %d, "write_errors": %d, "status_errors": %d, "timeouts": %d, "p50_us": %d, "p90_us": %d, '
    .. '"p99_us": %d, "max_us": %d}\n', summary.requests, summary.duration, good, wrong, e.connect, e.read,
    e.write, e.status, e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max))
end
"""

CLIENT_CPU = "1"
"""The core the load generator is pinned to (``taskset``); every responder, ours and the peer, gets the
other one (:data:`SERVER_CPU`), so neither side takes CPU from the other."""
SERVER_CPU = "0"


def pinned(args: list[str], cpu: str) -> list[str]:
    return ["taskset", "-c", cpu, *args] if shutil.which("taskset") and (os.cpu_count() or 1) > 1 else args


def wrk(url: str, seconds: int, connections: int, body: Path, headers: dict[str, str], folder: Path,
        close: bool = True, server_pid: int | None = None) -> dict[str, Any]:
    """wrk (one thread, pinned to :data:`CLIENT_CPU`), one fixed request: throughput, p50/p99 (ms), every
    response checked in its Lua script; with ``close`` each request says ``Connection: close`` (a new TCP
    connection per request, ours and the peer alike). With the server's pid, also the CPU time the server
    and the client (wrk) spent per request."""
    import resource

    script = folder / "ocsp.lua"
    if not script.exists():
        script.write_text(WRK_SCRIPT)
    server_before = cpu_seconds(server_pid) if server_pid else 0.0
    client = resource.getrusage(resource.RUSAGE_CHILDREN)
    client_before = client.ru_utime + client.ru_stime
    args = ["wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds}s", "--timeout", "5s", "-s", str(script)]
    for name, value in {**headers, **({"Connection": "close"} if close else {})}.items():
        args += ["-H", f"{name}: {value}"]
    done = subprocess.run(pinned([*args, url], CLIENT_CPU), capture_output=True, text=True,
                          timeout=seconds + 60, env={**os.environ, "OCSP_BODY": str(body)})
    found = re.search(r"^WRK (\{.*\})$", done.stdout, re.M)
    if found is None:
        raise RuntimeError(f"wrk failed against {url}: {done.stdout[-500:]} {done.stderr[-500:]}")
    w = json.loads(found.group(1))
    client = resource.getrusage(resource.RUSAGE_CHILDREN)
    answered = max(w["ok"], 1)
    out: dict[str, Any] = {
        "per_s": w["ok"] / (w["duration_us"] / 1e6), "requests": w["requests"], "ok": w["ok"],
        "failed": w["bad"] + w["connect_errors"] + w["read_errors"] + w["write_errors"] + w["timeouts"],
        "non2xx": w["status_errors"], "p50_ms": w["p50_us"] / 1000, "p90_ms": w["p90_us"] / 1000,
        "p99_ms": w["p99_us"] / 1000, "max_ms": w["max_us"] / 1000, "close": close,
        "client_cpu_ms_per_request": (client.ru_utime + client.ru_stime - client_before) * 1000 / answered}
    if server_pid:
        out["server_cpu_ms_per_request"] = (cpu_seconds(server_pid) - server_before) * 1000 / answered
    return out


def verify_sample(url: str, body: Path, headers: dict[str, str], serial: int, folder: Path) -> str:
    """One response to the very request of the run, checked by ``openssl ocsp -respin`` (signature chained to
    the CA, the certificate's status); returns the status openssl printed, raises when it does not verify."""
    reply = httpx.post(url, content=body.read_bytes(), headers={"Content-Type": "application/ocsp-request",
                                                                "Connection": "close", **headers}, timeout=10)
    answer = folder / f"resp-{secrets.token_hex(4)}.der"
    answer.write_bytes(reply.content)
    done = subprocess.run(["openssl", "ocsp", "-no_nonce", "-respin", str(answer), "-CAfile", "ca.pem",
                           "-issuer", "ca.pem",
                           "-serial", f"0x{serial:X}"], cwd=folder, capture_output=True, text=True)
    answer.unlink()
    if "Response verify OK" not in done.stderr + done.stdout or f"0x{serial:X}: good" not in done.stdout:
        raise RuntimeError(f"{url} answered something openssl does not verify: {done.stdout} {done.stderr}")
    return "good"


def check_answer(url: str, body: bytes, headers: dict[str, str], timeout: float = 30) -> str:
    """One real request, retried until the server is up (a bare connect would wedge ``openssl ocsp``,
    whose single-threaded server then waits on that silent connection)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            reply = httpx.post(url, content=body, headers={"Content-Type": "application/ocsp-request",
                                                           "Connection": "close", **headers}, timeout=10)
            return x509_ocsp.load_der_ocsp_response(reply.content).certificate_status.name
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def bench_ocsp(workdir: Path, url: str | None, certs: int, seconds: int, connections: int,
               workers: int = 2) -> dict[str, Any]:
    ctx = context(workdir, url, "ocsp")
    now = datetime.now(UTC).replace(microsecond=0)
    ids = residents(ctx, certs, now)
    issued = []
    for i in range(0, len(ids), 250):
        issued += service.issue_batch(ctx, MANUFACTURER, holders(ctx, ids[i:i + 250], now, sign=False), now)
    service.refresh_ocsp_responses(ctx, OPERATOR, now)
    _, key = verifiers.register_verifier(ctx, OPERATOR, "bench", VerifierKind.GOVERNMENT, [Purpose.AUTHENTICATION],
                                         "bench-verifier", now)
    ca = service.current_authority(ctx, CaKind.AUTH, now)
    responder = service.ocsp_signer(ctx, ca, now)
    folder = workdir / "ocsp-files"
    folder.mkdir()
    index = []
    for i, made in enumerate(issued):
        cert = x509.load_der_x509_certificate(made.auth_certificate or b"")
        builder = x509_ocsp.OCSPRequestBuilder().add_certificate(cert, ca.certificate, hashes.SHA1())
        (folder / f"req{i}.der").write_bytes(builder.build().public_bytes(serialization.Encoding.DER))
        with_nonce = builder.add_extension(x509.OCSPNonce(secrets.token_bytes(16)), critical=False)
        (folder / f"nonce{i}.der").write_bytes(with_nonce.build().public_bytes(serialization.Encoding.DER))
        index.append(f"V\t{cert.not_valid_after_utc:%y%m%d%H%M%SZ}\t\t{cert.serial_number:X}\tunknown\t"
                     f"/C=JP/CN={cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value!s}\n")
    (folder / "index.txt").write_text("".join(index))
    (folder / "ca.pem").write_bytes(ca.pem.encode())
    (folder / "responder.pem").write_bytes(x509.load_der_x509_certificate(responder.certificate_der).public_bytes(
        serialization.Encoding.PEM))
    responder_key = responder.signer._key  # the same key for the peer, bench only
    (folder / "responder.key").write_bytes(responder_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    os.chmod(folder / "responder.key", 0o600)
    db_url = ctx.db.url.render_as_string(hide_password=False)
    home = str(ctx.settings.home)
    ctx.db.dispose()
    auth = {"Authorization": f"Bearer {key}"}
    middle = len(issued) // 2
    serial = x509.load_der_x509_certificate(issued[middle].auth_certificate or b"").serial_number
    body, nonce_body = folder / f"req{middle}.der", folder / f"nonce{middle}.der"
    results: dict[str, Any] = {
        "certificates": len(issued), "connections": connections, "seconds": seconds,
        "client": f"wrk, 1 thread pinned to CPU {CLIENT_CPU}; every responder pinned to CPU {SERVER_CPU}; the same "
                  "HTTP request bytes (headers included) for ours and openssl; 'close' = Connection: close"}
    env = {**os.environ, "MYNACARD_DATABASE_URL": db_url}

    def measure(name: str, url: str, pid: int, request: Path = body, close: bool = True) -> None:
        # a sample checked by openssl before the run (not after: wrk's last connections, cut without a request,
        # wedge openssl's responder); during the run wrk's script checks that every response is successful
        verified = verify_sample(url, request, auth, serial, folder)
        results[name] = wrk(url, seconds, connections, request, auth, folder, close=close, server_pid=pid)
        results[name]["verified"] = verified

    def ours_serving(extra: list[str]) -> Any:
        port = free_port()
        args = [sys.executable, "-m", "mynacard.cli", "jpki", "ocsp-serve", "--home", home, "--port", str(port)]
        return port, process(pinned([*args, *extra], SERVER_CPU), env=env)

    def warm(url: str, rounds: int) -> None:
        assert check_answer(url, body.read_bytes(), auth, timeout=180) == "GOOD"
        for _ in range(rounds):  # every certificate asked once per process: the caches are warm
            for i in range(len(issued)):
                check_answer(url, (folder / f"req{i}.der").read_bytes(), auth)
        wrk(url, 2, connections, body, auth, folder)

    def openssl_serving(multi: int) -> Any:
        # openssl's responder serves one connection at a time and spins on a connection closed without a
        # request (OpenSSL 3.0), so each measurement gets a fresh process
        port = free_port()
        return port, process(pinned(["openssl", "ocsp", "-index", "index.txt", "-port", str(port), "-rsigner",
                                     "responder.pem", "-rkey", "responder.key", "-CA", "ca.pem", "-nmin", "60",
                                     "-ignore_err", *(["-multi", str(multi)] if multi > 1 else [])], SERVER_CPU),
                             cwd=folder)

    def peer(name: str, multi: int, request: Path = body, close: bool = True) -> None:
        port, server = openssl_serving(multi)
        with server as pid:
            url = f"http://127.0.0.1:{port}/"
            try:  # polls with a real OCSP request until it answers (a bare connect would wedge it)
                assert check_answer(url, body.read_bytes(), auth) == "GOOD"
            except httpx.TransportError as exc:
                results[name] = {"error": f"openssl ocsp did not answer: {exc}"}
                return
            measure(name, url, pid, request, close)

    # one responder process each: ours, then openssl on the same requests
    port, server = ours_serving([])
    with server as pid:
        url = f"http://127.0.0.1:{port}/jpki/ocsp"
        warm(url, 1)
        measure("ours_presigned", url, pid)
        measure("ours_presigned_keepalive", url, pid, close=False)
        measure("ours_nonce", url, pid, nonce_body)
    peer("openssl_ocsp", 1)
    peer("openssl_ocsp_keepalive_asked", 1, close=False)  # the same bytes; openssl closes anyway
    peer("openssl_ocsp_nonce", 1, nonce_body)
    # several responder processes (ours: SO_REUSEPORT), on the same one core, beside `openssl ocsp -multi`
    port, server = ours_serving(["--workers", str(workers)])
    with server as pid:
        url = f"http://127.0.0.1:{port}/jpki/ocsp"
        warm(url, workers)
        measure("ours_presigned_workers", url, pid)
    peer("openssl_ocsp_multi", workers)
    port = free_port()
    launch = ("import sys, uvicorn; from pathlib import Path; from mynacard.bootstrap import build_context; "
              "from mynacard.web.app import create_app; "
              "ctx = build_context(home=Path(sys.argv[1]), database_url=sys.argv[2]); "
              "uvicorn.run(create_app(ctx), host='127.0.0.1', port=int(sys.argv[3]), log_level='warning', "
              "access_log=False)")
    with process(pinned([sys.executable, "-c", launch, home, db_url, str(port)], SERVER_CPU), env=env) as pid:
        url = f"http://127.0.0.1:{port}/jpki/ocsp"
        warm(url, 0)  # the app starts slowly
        measure("web_app_presigned", url, pid)
    (folder / "responder.key").unlink()

    def ratio(ours: str, theirs: str) -> float | None:
        return (results[ours]["per_s"] / results[theirs]["per_s"]
                if "per_s" in results[ours] and "per_s" in results[theirs] else None)

    results["ratio_presigned"] = ratio("ours_presigned", "openssl_ocsp")
    results["ratio_keepalive"] = ratio("ours_presigned_keepalive", "openssl_ocsp_keepalive_asked")
    results["ratio_nonce"] = ratio("ours_nonce", "openssl_ocsp_nonce")
    results["ratio_web_app"] = ratio("web_app_presigned", "openssl_ocsp")
    results["ratio_presigned_workers"] = ratio("ours_presigned_workers", "openssl_ocsp_multi")
    results["workers"] = workers
    results["goal"] = 10
    return results


# --- 3. CRLs ----------------------------------------------------------------------------------------------

def bench_crl(workdir: Path, url: str | None, entries: int, delta_entries: int) -> dict[str, Any]:
    ctx = context(workdir, url, "crl")
    now = datetime.now(UTC).replace(microsecond=0)
    ca = service.ensure_authorities(ctx, OPERATOR, now)[CaKind.SIGN]
    serials: set[int] = set()
    while len(serials) < entries + delta_entries:
        serials.add(secrets.randbits(62) | (1 << 62))
    ordered = list(serials)
    reasons = [RevocationReason.AFFILIATION_CHANGED, RevocationReason.CERTIFICATE_HOLD,
               RevocationReason.CESSATION_OF_OPERATION, RevocationReason.SUPERSEDED]
    start = time.perf_counter()
    expiry = now + timedelta(days=1500)

    def load(batch: list[int], crl_after: int, first_no: int) -> None:
        moment = now - timedelta(days=1)
        with ctx.db.begin() as conn:
            rows = [{"authority_id": ca.id, "kind": "sign", "serial": s, "card_id": None, "card_serial": None,
                     "resident_id": 0, "municipality_code": TOWN, "subject_cn": "bench", "spki_sha256": "-",
                     "facts_digest": None, "der": b"\x30\x00", "not_before": moment, "not_after": expiry,
                     "issued_at": moment, "issued_by": "bench", "status": "revoked",
                     "revoked_at": moment, "revocation_reason": reasons[i % 4].value,
                     "revocation_no": first_no + i, "crl_after": crl_after, "replaces_id": None,
                     "crl_entry": crl_codec.encode_entry(s, moment, reasons[i % 4])} for i, s in enumerate(batch)]
            for i in range(0, len(rows), 20000):
                conn.execute(insert(jpki_certificates), rows[i:i + 20000])
            conn.execute(update(jpki_authorities).where(jpki_authorities.c.id == ca.id).values(
                revocation_counter=first_no + len(batch)))

    for i in range(0, entries, 100_000):
        load(ordered[i:min(i + 100_000, entries)], 0, i)
    setup = time.perf_counter() - start
    start = time.perf_counter()
    (full,) = service.publish_crls(ctx, OPERATOR, now, force=True, kinds=[CaKind.SIGN])
    full_seconds = time.perf_counter() - start
    load(ordered[entries:], full.number, entries)
    start = time.perf_counter()
    (delta,) = service.publish_crls(ctx, OPERATOR, now + timedelta(minutes=1), kinds=[CaKind.SIGN], delta_only=True)
    delta_seconds = time.perf_counter() - start
    check = x509.load_der_x509_crl(full.der)
    assert check.is_signature_valid(ca.certificate.public_key()) and len(check) == entries
    assert len(x509.load_der_x509_crl(delta.der)) == delta_entries

    # the peer: openssl ca -gencrl over an index of the same revocations, signed with the same CA key
    folder = workdir / "crl-files"
    folder.mkdir()
    signer = authorities.ca_signer(ctx, None, ca)
    (folder / "ca.key").write_bytes(signer._key.private_bytes(  # bench only
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    os.chmod(folder / "ca.key", 0o600)
    (folder / "ca.pem").write_bytes(ca.pem.encode())
    revoked_at = (now - timedelta(days=1)).strftime("%y%m%d%H%M%SZ")
    names = {RevocationReason.AFFILIATION_CHANGED: "affiliationChanged",
             RevocationReason.CERTIFICATE_HOLD: "certificateHold",
             RevocationReason.CESSATION_OF_OPERATION: "cessationOfOperation",
             RevocationReason.SUPERSEDED: "superseded"}
    with open(folder / "index.txt", "w") as f:
        for i, s in enumerate(ordered[:entries]):
            hexed = f"{s:X}"
            f.write(f"R\t{expiry:%y%m%d%H%M%SZ}\t{revoked_at},{names[reasons[i % 4]]}\t"
                    f"{'0' * (len(hexed) % 2)}{hexed}\tunknown\t/C=JP/CN=bench{i}\n")
    (folder / "crlnumber").write_text("01\n")
    (folder / "ca.cnf").write_text("[ca]\ndefault_ca = CA\n[CA]\ndatabase = index.txt\ncrlnumber = crlnumber\n"
                                   "default_md = sha256\ndefault_crl_hours = 24\nunique_subject = no\n")
    start = time.perf_counter()
    subprocess.run(["openssl", "ca", "-gencrl", "-config", "ca.cnf", "-keyfile", "ca.key", "-cert", "ca.pem",
                    "-out", "crl.pem", "-batch"], cwd=folder, check=True, capture_output=True)
    peer_seconds = time.perf_counter() - start
    (folder / "ca.key").unlink()
    peer_entries = len(x509.load_pem_x509_crl((folder / "crl.pem").read_bytes()))
    ctx.db.dispose()
    return {"entries": entries, "setup_seconds": setup, "full_seconds": full_seconds, "full_bytes": len(full.der),
            "delta_entries": delta_entries, "delta_seconds": delta_seconds, "delta_bytes": len(delta.der),
            "openssl_ca_gencrl_seconds": peer_seconds, "openssl_entries": peer_entries,
            "database": ctx.db.url.get_backend_name()}


# --- the report -------------------------------------------------------------------------------------------

def report(results: dict[str, Any]) -> str:
    lines = [f"machine: {results['machine']}"]
    if "issuance" in results:
        r = results["issuance"]
        lines.append(
            f"issuance: {statistics.median(r['ours_per_cpu_s']):,.0f} certificates per CPU second vs openssl speed "
            f"rsa2048 {statistics.median(r['openssl_speed_sign_per_s']):,.0f} signs per CPU second: ratio "
            f"{r['ratio_cpu_median']:.2f} (goal ≥ {r['goal']}); wall clock "
            f"{statistics.median(r['ours_per_s']):,.0f}/s vs openssl speed -elapsed "
            f"{statistics.median(r['openssl_speed_elapsed_sign_per_s']):,.0f}/s: ratio {r['ratio_wall_median']:.2f};"
            f" cryptography raw signing {statistics.median(r['cryptography_sign_per_s']):,.0f}/s (wall), "
            f"{statistics.median(r['cryptography_sign_per_cpu_s']):,.0f} per CPU second: issuance is "
            f"{r['ratio_to_cryptography_cpu_median']:.2f} of it")
    if "ocsp" in results:
        r = results["ocsp"]
        lines.append(f"ocsp client: {r['client']}; {r['connections']} connections, {r['seconds']} s each")
        for name in ("ours_presigned", "openssl_ocsp", "ours_presigned_keepalive", "openssl_ocsp_keepalive_asked",
                     "ours_presigned_workers", "openssl_ocsp_multi", "ours_nonce", "openssl_ocsp_nonce",
                     "web_app_presigned"):
            x = r[name]
            if "error" in x:
                lines.append(f"ocsp {name}: {x['error']}")
                continue
            cpu = (f", CPU per answer: server {x['server_cpu_ms_per_request']:.3f} ms, "
                   f"client {x['client_cpu_ms_per_request']:.3f} ms" if "server_cpu_ms_per_request" in x else "")
            lines.append(f"ocsp {name}: {x['per_s']:,.0f} valid responses/s, p50 {x['p50_ms']:.2f} ms, "
                         f"p99 {x['p99_ms']:.2f} ms, failed {x['failed']}, non-2xx {x['non2xx']}{cpu}")

        def times(key: str) -> str:
            return "—" if r[key] is None else f"{r[key]:.1f}×"

        lines.append(f"ocsp ratio pre-signed/openssl, new connection each {times('ratio_presigned')} (goal ≥ "
                     f"{r['goal']}×); keep-alive asked of both {times('ratio_keepalive')}; {r['workers']} "
                     f"processes each (--workers / -multi) {times('ratio_presigned_workers')}; with nonce "
                     f"{times('ratio_nonce')}; web app route {times('ratio_web_app')}")
    if "crl" in results:
        r = results["crl"]
        lines.append(f"crl: full {r['entries']:,} entries in {r['full_seconds']:.1f} s "
                     f"({r['full_bytes'] / 1e6:.1f} MB),"
                     f" delta {r['delta_entries']:,} entries in {r['delta_seconds']:.2f} s; openssl ca -gencrl "
                     f"{r['openssl_entries']:,} entries in {r['openssl_ca_gencrl_seconds']:.1f} s "
                     f"(setup {r['setup_seconds']:.0f} s, {r['database']})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, a smoke run")
    parser.add_argument("--only", choices=["issuance", "ocsp", "crl"], action="append")
    parser.add_argument("--database-url", help="run on this (empty) database instead of a temporary SQLite file")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--ocsp-seconds", type=int, help="seconds per OCSP figure (default 10, quick 2)")
    parser.add_argument("--ocsp-connections", type=int, default=8,
                        help="concurrent connections of the load generator (the same for every responder)")
    parser.add_argument("--ocsp-workers", type=int, default=2,
                        help="responder processes for the multi-process figures (ours --workers, openssl -multi)")
    args = parser.parse_args(argv)
    for tool in ("openssl", "wrk"):
        if shutil.which(tool) is None:
            print(f"{tool} is needed", file=sys.stderr)
            return 2
    wanted = set(args.only or ["issuance", "ocsp", "crl"])
    quick = args.quick
    results: dict[str, Any] = {"machine": machine(), "started": datetime.now(UTC).isoformat()}
    with tempfile.TemporaryDirectory(prefix="jpki-bench-") as tmp:
        workdir = Path(tmp)
        if "issuance" in wanted:
            results["issuance"] = bench_issuance(workdir, args.database_url, 100 if quick else 600,
                                                 1 if quick else 5, 1 if quick else 3)
            print(report({"machine": "", "issuance": results["issuance"]}).splitlines()[1], flush=True)
        if "ocsp" in wanted:
            results["ocsp"] = bench_ocsp(workdir, args.database_url, 50 if quick else 1000,
                                         args.ocsp_seconds or (2 if quick else 10), args.ocsp_connections,
                                         args.ocsp_workers)
            print("\n".join(report({"machine": "", "ocsp": results["ocsp"]}).splitlines()[1:]), flush=True)
        if "crl" in wanted:
            results["crl"] = bench_crl(workdir, args.database_url, 20_000 if quick else 1_000_000,
                                       100 if quick else 1000)
            print(report({"machine": "", "crl": results["crl"]}).splitlines()[1], flush=True)
    results["machine"]["load_average_end"] = os.getloadavg()
    print(report(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
