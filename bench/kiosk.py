"""Benchmark: convenience-store issuance end to end over HTTP with concurrent kiosks.

    python bench/kiosk.py --kiosks 30 --per-kiosk 30 --workers 2 --threads 4
    python bench/kiosk.py --kiosks 100 --per-kiosk 6 --rate 45      # open loop: 45 customers a second

A town is seeded on a fresh PostgreSQL database, the web app runs in its own processes (``mynacard.web.serve``,
``--workers``), and ``--kiosks`` kiosk threads each run complete sessions (open → PIN and card signature →
authentication with OCSP → resident record copy → PDF rendered, signed, release-checked → print check →
printed) through the same HTTP API a real kiosk uses, with RSA-2048 software cards. Each kiosk first runs
``--warm-up`` sessions off the clock (connections opened, every server process past its first certificate);
then each runs ``--per-kiosk`` sessions back to back (closed loop: by Little's law the mean latency is then the
number of kiosks over the rate, so p95 under 1 s at 50 documents/s needs fewer than 50 kiosks), or, with
``--rate``, customers arrive at that rate and take the first free kiosk (open loop: latency counts from
arrival). It prints documents per second and the latency percentiles of a whole session, the CPU each side
spent per document, and the split of one document's cost measured in process: card authentication (signature
+ OCSP), rendering, PAdES signing. Beside them, the peers measured in the same run: ``openssl speed rsa2048``
(the RSA operations alone) and bare ``GET /healthz`` requests per second at the same concurrency (the HTTP
stack's floor on this machine).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import queue
import random
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from measure import (
    cpu_seconds,
    free_port,
    machine,
    percentile,
    postgres_cpu_seconds,
    scratch_database,
    start_server,
    stop_server,
)
from mynacard.accounts import service as accounts
from mynacard.bootstrap import build_context
from mynacard.kiosk import demo, municipal, municipal_keys, pdf, seal, signing
from mynacard.kiosk.model import DocumentId, DocumentKind, DocumentOptions, RequestId
from mynacard.kiosk.terminal import HttpCentreClient, KioskTerminal, MemoryPrinter, VirtualReader
from mynacard.kiosk.testing import TestJpki
from mynacard.migrate import upgrade
from mynacard.principal import Principal, Role
from mynacard.registry import service as registry
from mynacard.sim.population import generate_residents
from mynacard.web.serve import DEFAULT_THREADS, default_workers

NOW = datetime(2026, 4, 6, 1, 0, tzinfo=UTC)  # 10:00 JST on a Monday
SYSTEM = Principal.system("bench")


def _openssl_speed() -> dict[str, float]:
    if shutil.which("openssl") is None:
        return {}
    out = subprocess.run(["openssl", "speed", "-seconds", "2", "rsa2048"], capture_output=True, text=True,
                         timeout=120).stdout
    for line in out.splitlines():
        parts = line.split()
        if parts[:2] == ["rsa", "2048"] or (parts and parts[0] == "rsa" and "2048" in line and "bits" in line):
            nums = [float(p) for p in parts[2:] if p.replace(".", "", 1).isdigit()]
            if len(nums) >= 2:
                return {"rsa2048_sign_per_s": nums[-2], "rsa2048_verify_per_s": nums[-1]}
    return {}


def _split(ctx: object, jpki: TestJpki, rounds: int = 40) -> dict[str, float]:
    """One document's cost, in process and single-threaded: authentication, rendering, signing (ms)."""
    from mynacard.kiosk.documents import Issuer, resident_record

    card = jpki.issue_card(1, NOW)
    auth = jpki.authenticator()
    challenge = os.urandom(32)
    sig = card.sign_challenge("1234", challenge)
    t = time.perf_counter()
    for _ in range(rounds):
        auth.authenticate(card.certificate, challenge, sig, NOW)
    authenticate_ms = (time.perf_counter() - t) * 1000 / rounds
    t = time.perf_counter()
    for _ in range(rounds):
        card.sign_challenge("1234", challenge)
    card_ms = (time.perf_counter() - t) * 1000 / rounds
    c = ctx  # a built context
    people = registry.residents_by_id(c, SYSTEM, registry_ids(c)[:1])  # type: ignore[arg-type]
    person = next(iter(people.values()))
    content = resident_record(Issuer("131016", "東京都千代田区"), NOW.date(), DocumentOptions(
        DocumentKind.RESIDENT_RECORD), [person], person, {}, {}, 1)
    seal_jpeg = seal.on_paper_jpeg(seal.municipal_seal_png("千代田区"))
    slot = signing.SignatureSlot("bench", "bench", NOW)
    with c.db.connect() as conn:  # type: ignore[attr-defined]
        signer = municipal_keys.signer(c, conn, "131016", NOW)  # type: ignore[arg-type]
    pdf.render(content, document_id=DocumentId.new(), request_id=RequestId.new(), holder_ref="0" * 32,
               verify_url="http://x/kiosk/verify/X", seal_jpeg=seal_jpeg, signature=slot)
    t = time.perf_counter()
    for _ in range(rounds):
        unsigned = pdf.render(content, document_id=DocumentId.new(), request_id=RequestId.new(),
                              holder_ref="0" * 32, verify_url="http://x/kiosk/verify/X", seal_jpeg=seal_jpeg,
                              signature=slot)
    render_ms = (time.perf_counter() - t) * 1000 / rounds
    t = time.perf_counter()
    for _ in range(rounds):
        signer.sign(unsigned)
    sign_ms = (time.perf_counter() - t) * 1000 / rounds
    return {"card_signature_ms": round(card_ms, 2), "authentication_ms": round(authenticate_ms, 2),
            "render_ms": round(render_ms, 2), "pades_sign_ms": round(sign_ms, 2),
            "pdf_bytes": len(unsigned)}


def registry_ids(ctx: object) -> list[int]:
    with ctx.db.connect() as conn:  # type: ignore[attr-defined]
        return registry.resident_ids_in(conn, "131016")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kiosks", type=int, default=30)
    parser.add_argument("--per-kiosk", type=int, default=30)
    parser.add_argument("--workers", type=int, default=default_workers(), help="server processes (one per core)")
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS,
                        help="requests each server process runs at once")
    parser.add_argument("--residents", type=int, default=400)
    parser.add_argument("--rate", type=float, default=None,
                        help="open loop: customers arrive at this many a second (Poisson), each served by a free "
                             "kiosk; a session's latency counts from its arrival, so waiting for a kiosk counts "
                             "too. Without it each kiosk runs its sessions back to back (closed loop)")
    parser.add_argument("--warm-up", type=int, default=1,
                        help="sessions each kiosk runs before the clock starts (each server process's first "
                             "documents load fonts and build the parts every certificate shares)")
    parser.add_argument("--shared-socket", action="store_true",
                        help="uvicorn --workers (one listening socket for all processes) instead of one per process")
    args = parser.parse_args()
    print("machine:", json.dumps(machine()))
    home = Path(tempfile.mkdtemp(prefix="kiosk-bench-"))
    url, drop_database = scratch_database("kiosk_bench")
    proc = None
    try:
        ctx = build_context(home=home, database_url=url)
        upgrade(ctx.db)
        town = registry.get_municipality(ctx, "131016")
        ids = registry.register_residents(ctx, SYSTEM, list(generate_residents(town, args.residents, NOW.date(), 3)),
                                          NOW)
        municipal.configure(ctx, SYSTEM, "131016", NOW)
        demo.seed_records(ctx, SYSTEM, "131016", NOW)
        people = registry.residents_by_id(ctx, SYSTEM, ids)
        adults = [r for r in people.values() if r.age_on(NOW.date()) >= 18][: args.kiosks]
        jpki = TestJpki(NOW)
        jpki.clock = lambda: NOW
        cards = [jpki.issue_card(r.id, NOW) for r in adults]  # RSA-2048, as JPKI
        jpki.save(home / "test-jpki")
        keys = []
        for i in range(args.kiosks):
            accounts.create_account(ctx, f"bench-{i:03d}", Role.KIOSK, None, NOW)
            keys.append(accounts.issue_api_key(ctx, f"bench-{i:03d}"))
        split = _split(ctx, jpki)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = {**os.environ, "MYNACARD_HOME": str(home), "MYNACARD_DATABASE_URL": url,
               "MYNACARD_KIOSK_TEST_JPKI": str(home / "test-jpki"), "MYNACARD_KIOSK_CLOCK": NOW.isoformat(),
               "MYNACARD_KIOSK_PUBLIC_URL": base}
        if args.shared_socket:
            env["MYNACARD_WEB_THREADS"] = str(args.threads)
            proc = start_server("mynacard.kiosk.testing:stand_in_asgi_app", port, args.workers, env)
        else:
            proc = start_server("mynacard.kiosk.testing:stand_in_asgi_app", port, args.workers, env,
                                threads=args.threads)

        # peer: bare requests at the same concurrency, on the same kind of line as the kiosks' (http.client, one
        # kept-alive connection each)
        def hammer(n: int, out: list[float]) -> None:
            line = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            for _ in range(n):
                t0 = time.perf_counter()
                line.request("GET", "/healthz")
                line.getresponse().read()
                out.append(time.perf_counter() - t0)
            line.close()

        peer_lat: list[float] = []
        t = time.perf_counter()
        threads = [threading.Thread(target=hammer, args=(50, peer_lat)) for i in range(args.kiosks)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        peer_rps = len(peer_lat) / (time.perf_counter() - t)

        latencies: list[float] = []
        failures: list[str] = []

        lines = [HttpCentreClient(base, keys[i], timeout=60) for i in range(args.kiosks)]
        terminals = [KioskTerminal(f"bench-{i:03d}", lines[i], VirtualReader(cards[i]), MemoryPrinter())
                     for i in range(args.kiosks)]

        def session(terminal: KioskTerminal, since: float, timed: bool) -> None:
            try:
                opened = terminal.start()
                terminal.enter_pin(opened, "1234")
                terminal.order_and_print(opened, DocumentOptions(DocumentKind.RESIDENT_RECORD), 200)
                if timed:
                    latencies.append(time.perf_counter() - since)
            except Exception as exc:  # reported, not hidden
                failures.append(f"{type(exc).__name__}: {exc}")

        def kiosk(i: int, sessions: int, timed: bool) -> None:
            for _ in range(sessions):
                session(terminals[i], time.perf_counter(), timed)

        def run_kiosks(sessions: int, timed: bool) -> None:
            threads = [threading.Thread(target=kiosk, args=(i, sessions, timed)) for i in range(args.kiosks)]
            for th in threads:
                th.start()
            for th in threads:
                th.join()

        def run_arrivals(rate: float, total: int) -> None:
            """Customers arrive at ``rate`` a second (exponential gaps, seeded); each takes the first free kiosk."""
            arrivals: queue.Queue[float | None] = queue.Queue()

            def free_kiosk(i: int) -> None:
                while (since := arrivals.get()) is not None:
                    session(terminals[i], since, True)

            threads = [threading.Thread(target=free_kiosk, args=(i,)) for i in range(args.kiosks)]
            for th in threads:
                th.start()
            gaps = random.Random(7)
            due = time.perf_counter()
            for _ in range(total):
                due += gaps.expovariate(rate)
                time.sleep(max(0.0, due - time.perf_counter()))
                arrivals.put(time.perf_counter())
            for _ in threads:
                arrivals.put(None)
            for th in threads:
                th.join()

        run_kiosks(args.warm_up, timed=False)

        cpu_before = cpu_seconds(proc.pid)
        client_cpu_before = time.process_time()
        db_cpu_before = postgres_cpu_seconds()
        start = time.perf_counter()
        if args.rate is None:
            run_kiosks(args.per_kiosk, timed=True)
        else:
            run_arrivals(args.rate, args.kiosks * args.per_kiosk)
        wall = time.perf_counter() - start
        server_cpu = cpu_seconds(proc.pid) - cpu_before
        client_cpu = time.process_time() - client_cpu_before
        db_cpu = postgres_cpu_seconds() - db_cpu_before
        for line in lines:
            line.close()
        result = {
            "kiosks": args.kiosks, "warm_up_sessions": args.kiosks * args.warm_up,
            "loop": "closed" if args.rate is None else f"open, {args.rate:g} arrivals/s",
            "sessions": args.kiosks * args.per_kiosk, "documents": len(latencies),
            "failures": len(failures), "server_workers": args.workers, "threads_per_worker": args.threads,
            "listening_sockets": 1 if args.shared_socket else args.workers,
            "seconds": round(wall, 2),
            "documents_per_s": round(len(latencies) / wall, 1),
            "session_p50_ms": round(statistics.median(latencies) * 1000, 1) if latencies else None,
            "session_p95_ms": round(percentile(latencies, 95) * 1000, 1) if latencies else None,
            "server_cpu_ms_per_document": round(server_cpu * 1000 / max(1, len(latencies)), 1),
            "client_cpu_ms_per_document": round(client_cpu * 1000 / max(1, len(latencies)), 1),
            "postgres_cpu_ms_per_document": round(db_cpu * 1000 / max(1, len(latencies)), 1),
            "split_in_process": split,
            # the same work again right after the run: this VM's speed moves by up to 1.5x from minute to minute,
            # and this in-process Python peer shows the minutes the run had (openssl's tight RSA loop does not)
            "split_in_process_after": _split(ctx, jpki),
            "peer_healthz_per_s": round(peer_rps, 1),
            "peer_healthz_p95_ms": round(percentile(peer_lat, 95) * 1000, 1),
            "peer_openssl": _openssl_speed(),
            "load_average_after": os.getloadavg(),
        }
        print(json.dumps(result, indent=2, ensure_ascii=False))
        if failures:
            print("first failures:", failures[:5])
    finally:
        stop_server(proc)
        drop_database()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
