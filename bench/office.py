"""Benchmark of the issuance office: resident bookings (here) and window issuance (``--part window``, which runs
bench/window.py with the remaining arguments) over HTTP against the real server, with many concurrent clients.

    python bench/office.py --clients 200 --notices 2000 --seconds 20 --workers 2 [--rate 100]
    python bench/office.py --part window --terminals 200 --cards 600 --workers 2 --think 20

A town is seeded on a fresh PostgreSQL database through the real pipeline (applications → cards received,
checked, set up, noticed) with a main office and a branch open for four weeks; the web app runs in its own
processes (uvicorn, ``--workers``), and ``--clients`` concurrent clients (asyncio, one connection each) book
through ``POST /api/book`` with an ``Idempotency-Key``, each taking the next notice and a random free slot —
so the hot slots fill and some answers are 409 refusals, as on a real first morning. It prints bookings per
second and the latency percentiles of every request (booked or refused), checks afterwards that no slot is
overbooked and that every notice holds at most one booking, and measures the peer in the same run: bare
``GET /healthz`` requests at the same concurrency (the HTTP stack's floor on this machine).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import tempfile
import time
from datetime import UTC, datetime, timedelta
from datetime import time as dtime
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

from measure import (
    connected_clients,
    cpu_seconds,
    free_port,
    machine,
    percentile,
    scratch_database,
    start_server,
    stop_server,
)
from mynacard.bootstrap import build_context
from mynacard.cards import service as cards
from mynacard.clock import JST
from mynacard.migrate import upgrade
from mynacard.office import service
from mynacard.office.model import CounterKind, SiteKind
from mynacard.principal import Principal, Role
from mynacard.registry import service as registry
from mynacard.sim.photos import face_photo
from mynacard.sim.population import generate_residents
from mynacard.sim.production import produce_pending, receive_all

SYSTEM = Principal.system("bench")
CONTRACTOR = Principal(Role.CONTRACTOR, "bench-contractor")
TOWN = "131016"


def seed(url: str, home: Path, notices: int) -> tuple[list[tuple[str, str]], int]:
    """The town, its windows and ``notices`` noticed cards; returns (notice number, birth date) pairs and the
    number of free places."""
    ctx = build_context(home=home, database_url=url)
    upgrade(ctx.db)
    now = datetime.now(UTC)
    yesterday = (now.astimezone(JST) - timedelta(days=1)).date()
    evening = datetime.combine(yesterday, dtime(20, 0), JST)
    town = registry.get_municipality(ctx, TOWN)
    people = list(generate_residents(town, notices, yesterday - timedelta(days=60), 7))
    ids = registry.register_residents(ctx, SYSTEM, people, evening - timedelta(days=60))
    forms = cards.issue_application_forms(ctx, SYSTEM, ids, evening - timedelta(days=50))
    facts = registry.residents_by_id(ctx, SYSTEM, ids)
    items = [cards.ApplicationInput(
        application_id=forms[rid], channel="online", family_name=facts[rid].facts.family_name,
        given_name=facts[rid].facts.given_name, birth_date=facts[rid].facts.birth_date,
        sex=facts[rid].facts.sex.value, address=facts[rid].facts.address, photo=face_photo(rid % 16))
        for rid in ids]
    step = evening - timedelta(days=40)
    cards.submit_applications(ctx, CONTRACTOR, items, step)
    produce_pending(ctx, step)
    receive_all(ctx, step)
    for name, kind, counters in (("本庁", SiteKind.MAIN, 6), ("駅前支所", SiteKind.BRANCH, 3)):
        site = service.add_site(ctx, SYSTEM, TOWN, name, kind,
                                {CounterKind.ISSUANCE: counters, CounterKind.DOCUMENT_CHECK: 2}, step)
        for i in range(1, 28):
            day = yesterday + timedelta(days=i)
            service.add_shift(ctx, SYSTEM, site, day, dtime(8, 30), dtime(17, 0), counters + 2)
            if day.weekday() == 3:  # Thursday evenings (夜間延長)
                service.add_shift(ctx, SYSTEM, site, day, dtime(17, 0), dtime(19, 0), counters, note="夜間延長")
        service.generate_slots(ctx, SYSTEM, site, yesterday + timedelta(days=1), yesterday + timedelta(days=28))
    service.check_received_cards(ctx, SYSTEM, TOWN, evening, limit=notices)
    while service.run_pre_issuance_setup(ctx, SYSTEM, TOWN, evening):
        pass
    numbers = service.send_notices(ctx, SYSTEM, TOWN, evening)
    by_card = {n: service.card_for_notice(ctx, SYSTEM, n).resident_id for n in numbers}
    births = registry.residents_by_id(ctx, SYSTEM, list(by_card.values()))
    pairs = [(n, births[rid].facts.birth_date.isoformat()) for n, rid in by_card.items()]
    free = sum(s.free for s in service.open_slots(ctx, TOWN, now))
    ctx.db.dispose()
    return pairs, free


async def _book_all(base: str, clients: int, pairs: list[tuple[str, str]], slot_ids: list[int],
                    seconds: float, rate: float | None = None) -> tuple[list[float], dict[int, int], float]:
    async with connected_clients(base, clients, timeout=30) as line:
        return await _book_on(line, pairs, slot_ids, seconds, rate)


async def _book_on(line: list[httpx.AsyncClient], pairs: list[tuple[str, str]], slot_ids: list[int],
                   seconds: float, rate: float | None) -> tuple[list[float], dict[int, int], float]:
    clients = len(line)
    queue = list(pairs)
    random.Random(1).shuffle(queue)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    hot = slot_ids[:20]  # most residents want the first days: the hot slots fill and refusals follow
    rng = random.Random(2)
    deadline = time.perf_counter() + seconds

    async def client(c: httpx.AsyncClient) -> None:
        if rate is not None:  # open loop: spread the clients' first requests over one period
            await asyncio.sleep(rng.random() * clients / rate)
        while queue and time.perf_counter() < deadline:
            started = time.perf_counter()
            number, born = queue.pop()
            slot = rng.choice(hot) if rng.random() < 0.7 else rng.choice(slot_ids)
            t0 = time.perf_counter()
            r = await c.post("/api/book", json={"notice_number": number, "birth_date": born, "slot_id": slot},
                             headers={"Idempotency-Key": f"bench-{number}"})
            latencies.append(time.perf_counter() - t0)
            statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
            if rate is not None:  # each client books every clients/rate seconds (a resident's think time)
                await asyncio.sleep(max(0.0, clients / rate - (time.perf_counter() - started)))

    t = time.perf_counter()
    await asyncio.gather(*(client(c) for c in line))
    return latencies, statuses, time.perf_counter() - t


async def _healthz(base: str, clients: int, per_client: int) -> tuple[list[float], float]:
    latencies: list[float] = []

    async def client(c: httpx.AsyncClient) -> None:
        for _ in range(per_client):
            t0 = time.perf_counter()
            await c.get("/healthz")
            latencies.append(time.perf_counter() - t0)

    async with connected_clients(base, clients, timeout=30) as line:
        t = time.perf_counter()
        await asyncio.gather(*(client(c) for c in line))
        return latencies, time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--notices", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rate", type=float, default=None,
                        help="open loop: the clients together offer this many bookings per second (default: closed "
                             "loop, every client books again as soon as it has an answer)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--part", choices=["booking", "window"], default="booking",
                        help="window: the window issuance benchmark (bench/window.py; its own arguments follow)")
    args, rest = parser.parse_known_args()
    if args.part == "window":
        import window

        window.main(["--workers", str(args.workers), *rest])
        return
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    url, drop_database = scratch_database("mynacard_bench_office")
    proc = None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            home = Path(tmp)
            t = time.perf_counter()
            pairs, free = seed(url, home, args.notices)
            seeded = time.perf_counter() - t
            port = free_port()
            base = f"http://127.0.0.1:{port}"
            env = {**os.environ, "MYNACARD_HOME": str(home), "MYNACARD_DATABASE_URL": url}
            proc = start_server("mynacard.kiosk.cli:asgi_app", port, args.workers, env, "--backlog", "4096")
            slot_ids = [s["id"] for s in httpx.get(f"{base}/api/office/{TOWN}/slots", timeout=30).json()]
            cpu0 = cpu_seconds(proc.pid)
            peer_lat, peer_wall = asyncio.run(_healthz(base, args.clients, 20))
            cpu1 = cpu_seconds(proc.pid)
            lat, statuses, wall = asyncio.run(_book_all(base, args.clients, pairs, slot_ids, args.seconds, args.rate))
            cpu2 = cpu_seconds(proc.pid)
            # the invariants after the storm, read straight from the database
            engine = create_engine(url)
            with engine.connect() as conn:
                over = conn.execute(text("SELECT count(*) FROM office_slots WHERE booked > capacity")).scalar()
                drift = conn.execute(text(
                    "SELECT count(*) FROM office_slots s WHERE booked <> (SELECT count(*) FROM office_bookings b "
                    "WHERE b.slot_id = s.id AND b.state = 'active')")).scalar()
                double = conn.execute(text(
                    "SELECT count(*) FROM (SELECT notice_number FROM office_bookings WHERE state = 'active' "
                    "GROUP BY notice_number HAVING count(*) > 1) d")).scalar()
                booked = conn.execute(text("SELECT count(*) FROM office_bookings")).scalar()
            engine.dispose()
    finally:
        stop_server(proc)
        drop_database()
    result = {
        "machine": machine(), "clients": args.clients, "rate": args.rate, "workers": args.workers,
        "notices": len(pairs),
        "free_places": free, "seed_seconds": round(seeded, 1),
        "booking": {"requests": len(lat), "seconds": round(wall, 2), "requests_per_second": round(len(lat) / wall, 1),
                    "bookings_per_second": round(statuses.get(201, 0) / wall, 1), "statuses": statuses,
                    "p50_ms": round(percentile(lat, 50) * 1000, 1), "p99_ms": round(percentile(lat, 99) * 1000, 1),
                    "server_cpu_ms_per_request": round((cpu2 - cpu1) * 1000 / max(1, len(lat)), 2)},
        "peer_healthz": {"requests": len(peer_lat), "requests_per_second": round(len(peer_lat) / peer_wall, 1),
                         "p50_ms": round(percentile(peer_lat, 50) * 1000, 1),
                         "p99_ms": round(percentile(peer_lat, 99) * 1000, 1),
                         "server_cpu_ms_per_request": round((cpu1 - cpu0) * 1000 / max(1, len(peer_lat)), 2)},
        "invariants": {"overbooked_slots": over, "slots_whose_count_differs": drift,
                       "notices_with_two_active_bookings": double, "bookings_rows": booked},
    }
    if args.json:
        print(json.dumps(result, indent=1))
        return
    b, p = result["booking"], result["peer_healthz"]
    print(f"machine: {result['machine']}")
    print(f"seeded {len(pairs)} notices, {free} free places in {seeded:.0f} s")
    print(f"booking: {b['requests']} requests in {b['seconds']} s = {b['requests_per_second']}/s "
          f"({b['bookings_per_second']} bookings/s), statuses {b['statuses']}, p50 {b['p50_ms']} ms, "
          f"p99 {b['p99_ms']} ms with {args.clients} clients, server CPU {b['server_cpu_ms_per_request']} ms/request")
    print(f"peer GET /healthz: {p['requests_per_second']}/s, p50 {p['p50_ms']} ms, p99 {p['p99_ms']} ms, "
          f"server CPU {p['server_cpu_ms_per_request']} ms/request")
    print(f"invariants: {result['invariants']}")


if __name__ == "__main__":
    main()
