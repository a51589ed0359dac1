"""Benchmark: window issuance (窓口交付) over HTTP with 200 concurrent window terminals.

    python bench/window.py --cards 600 --terminals 200 --workers 2 [--think 20]

A town's cards are made with real chips on a fresh PostgreSQL database and driven to ``notice_sent``; the
web app runs in its own processes (uvicorn, ``--workers``); ``--terminals`` terminals (asyncio tasks, one
HTTP connection each) take cards from a common queue and each sends one complete issuance per card —
``POST /api/window/issuances``: identity check, the four PINs set on the chip through the issuer's APDUs,
the certificates checked, the saga record at every step, and the final transaction that issues the card.
The resident's typing is not part of it (the request carries the PINs); with ``--think S`` each terminal
waits an exponentially distributed time of mean S seconds before each request (the resident at the PIN pad),
so that the server sees the arrival rate of a real window floor instead of 200 back-to-back loops.

It prints issuances per second, the latency percentiles and the server's CPU per request, and beside them the
peers measured in the same run at the same concurrency: the same server's trivial authenticated route
(``GET /api/window/ping``: HTTP, API-key check, JSON), and one issuance in process without HTTP or
concurrency (the saga's own cost).

Cards are made with holders who declined both certificates (``--with-certs`` adds cards with both): key
generation in the chip happens at manufacture, not at the window, and takes ~0.1–0.5 s per key here, so it
would dominate the setup without changing what the window does (the window only reads the certificates).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import httpx

from measure import cpu_seconds, free_port, machine, percentile, scratch_database, start_server, stop_server
from mynacard.accounts import service as accounts
from mynacard.bootstrap import build_context
from mynacard.cards import service as cards
from mynacard.cards.model import CardState
from mynacard.chip.issuance import InitialPins
from mynacard.context import Context
from mynacard.migrate import upgrade
from mynacard.principal import Principal, Role
from mynacard.registry import service as registry
from mynacard.sim.photos import face_photo
from mynacard.sim.population import generate_residents
from mynacard.sim.production import produce_pending, receive_all
from mynacard.window import service as window
from mynacard.window.model import Document, IdentityCheck
from mynacard.window.production import manufacture_with_chips

NOW = datetime(2026, 4, 6, 1, 0, tzinfo=UTC)  # 10:00 JST on a Monday
SYSTEM = Principal.system("bench")
CONTRACTOR = Principal(Role.CONTRACTOR, "bench-contractor")
CLERK = Principal(Role.CLERK, "bench-clerk", "131016")
PINS = {"auth": "1234", "sign": "ABC12345", "card_info": "2345", "residence": "3456"}


def _summary(latencies: list[float], wall: float) -> dict[str, float]:
    return {"requests": len(latencies), "per_s": round(len(latencies) / wall, 1),
            "p50_ms": round(statistics.median(latencies) * 1000, 1),
            "p99_ms": round(percentile(latencies, 99) * 1000, 1),
            "max_ms": round(max(latencies) * 1000, 1)}


def make_cards(ctx: Context, n: int, with_certs: bool) -> list[int]:
    """``n`` cards of Chiyoda made with chips and noticed; returns their ids."""
    applied = NOW - timedelta(days=30)
    town = registry.get_municipality(ctx, "131016")
    people = [p for p in generate_residents(town, n * 2, applied.date(), 7)][:n]
    rids = registry.register_residents(ctx, SYSTEM, people, applied - timedelta(days=1))
    forms = cards.issue_application_forms(ctx, SYSTEM, rids, applied)
    residents = registry.residents_by_id(ctx, SYSTEM, rids)
    items = [cards.ApplicationInput(forms[r], "online", residents[r].facts.family_name,
                                    residents[r].facts.given_name, residents[r].facts.birth_date,
                                    residents[r].facts.sex.value, residents[r].facts.address, face_photo(r % 16),
                                    wants_sign_cert=with_certs, wants_auth_cert=with_certs) for r in rids]
    cards.submit_applications(ctx, CONTRACTOR, items, applied)
    made = NOW - timedelta(days=20)
    produce_pending(ctx, made, manufacture=partial(manufacture_with_chips, limit=100))
    receive_all(ctx, made + timedelta(days=1))
    ids = cards.card_ids_in_states(ctx, SYSTEM, "131016", [CardState.RECEIVED], limit=100_000)
    for card_id in ids:
        cards.transition(ctx, SYSTEM, card_id, CardState.PRE_ISSUANCE_SET, None, NOW - timedelta(days=5))
        cards.transition(ctx, SYSTEM, card_id, CardState.NOTICE_SENT, None, NOW - timedelta(days=5))
    return ids


async def _drive(base: str, key: str, terminals: int, jobs: list[dict[str, object]], path: str,
                 method: str, think: float = 0.0, seed: int = 1) -> tuple[list[float], list[str], float]:
    queue: asyncio.Queue[dict[str, object]] = asyncio.Queue()
    for job in jobs:
        queue.put_nowait(job)
    latencies: list[float] = []
    failures: list[str] = []
    limits = httpx.Limits(max_connections=terminals, max_keepalive_connections=terminals)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=120,
                                 headers={"Authorization": f"Bearer {key}"}) as client:
        rng = random.Random(seed)

        async def terminal() -> None:
            while True:
                try:
                    job = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                if think:  # the resident types the PINs: not part of the latency
                    await asyncio.sleep(rng.expovariate(1 / think))
                t0 = time.perf_counter()
                try:
                    r = await (client.post(path, json=job) if method == "POST" else client.get(path))
                    if r.status_code != 200:
                        failures.append(f"{r.status_code} {r.text[:200]}")
                        continue
                    latencies.append(time.perf_counter() - t0)
                except httpx.HTTPError as exc:
                    failures.append(f"{type(exc).__name__}: {exc}")

        start = time.perf_counter()
        await asyncio.gather(*(terminal() for _ in range(terminals)))
        wall = time.perf_counter() - start
    return latencies, failures, wall


def _in_process(ctx: Context, card_ids: list[int]) -> float:
    """Median ms of one issuance in process: no HTTP, no concurrency."""
    times = []
    for card_id in card_ids:
        t0 = time.perf_counter()
        window.issue_card(ctx, CLERK, identity=IdentityCheck([Document.DRIVING_LICENCE]),
                          pins=InitialPins(PINS["auth"], PINS["card_info"], PINS["residence"], PINS["sign"]),
                          notification_card="collected", now=NOW, card_id=card_id)
        times.append(time.perf_counter() - t0)
    return round(statistics.median(times) * 1000, 1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cards", type=int, default=600)
    parser.add_argument("--with-certs", type=int, default=0, help="Extra cards with both certificates.")
    parser.add_argument("--terminals", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--think", type=float, default=0.0,
                        help="Mean seconds a terminal waits before each request (the resident's typing, excluded "
                             "from the latency); 0 = back to back.")
    args = parser.parse_args(argv)
    print("machine:", json.dumps(machine()))
    home = Path(tempfile.mkdtemp(prefix="window-bench-"))
    url, drop_database = scratch_database("window_bench")
    proc = None
    try:
        ctx = build_context(home=home, database_url=url)
        upgrade(ctx.db)
        t = time.perf_counter()
        ids = make_cards(ctx, args.cards + 20, with_certs=False)
        if args.with_certs:
            ids += make_cards(ctx, args.with_certs, with_certs=True)[-args.with_certs:]
        setup_s = time.perf_counter() - t
        local, remote = ids[:20], ids[20:]
        accounts.create_account(ctx, "bench-clerk", Role.CLERK, None, NOW, "131016")
        key = accounts.issue_api_key(ctx, "bench-clerk")
        in_process_ms = _in_process(ctx, local)

        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = {**os.environ, "MYNACARD_HOME": str(home), "MYNACARD_DATABASE_URL": url}
        proc = start_server("mynacard.kiosk.cli:asgi_app", port, args.workers, env)

        pings: list[dict[str, object]] = [{} for _ in remote]
        cpu0 = cpu_seconds(proc.pid)
        peer, peer_failures, peer_wall = asyncio.run(_drive(base, key, args.terminals, pings, "/api/window/ping",
                                                            "GET", args.think))
        cpu1 = cpu_seconds(proc.pid)
        jobs = [{"card_id": c, "identity": {"person_documents": ["driving_licence"]}, "pins": PINS,
                 "notification_card": "collected"} for c in remote]
        lat, failures, wall = asyncio.run(_drive(base, key, args.terminals, jobs, "/api/window/issuances", "POST",
                                                 args.think))
        cpu2 = cpu_seconds(proc.pid)
        issued = len(cards.card_ids_in_states(ctx, SYSTEM, "131016", [CardState.ISSUED], limit=100_000))
        bad = sum(1 for c in remote[:50] if window.check_consistency(ctx, c))
        result = {
            "terminals": args.terminals, "think_s": args.think, "server_workers": args.workers,
            "cards": len(remote),
            "setup_seconds": round(setup_s, 1),
            "issuance": _summary(lat, wall) if lat else None, "issuance_failures": len(failures),
            "peer_ping": _summary(peer, peer_wall) if peer else None, "peer_failures": len(peer_failures),
            "peer_in_process_issuance_p50_ms": in_process_ms,
            "server_cpu_ms_per_issuance": round((cpu2 - cpu1) * 1000 / max(1, len(lat)), 1),
            "server_cpu_ms_per_ping": round((cpu1 - cpu0) * 1000 / max(1, len(peer)), 1),
            "cards_issued_in_db": issued, "inconsistent_among_first_50": bad,
            "load_average_after": os.getloadavg(),
        }
        print(json.dumps(result, indent=2, ensure_ascii=False))
        if failures:
            print("first failures:", failures[:5])
        ctx.db.dispose()
    finally:
        stop_server(proc)
        drop_database()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
