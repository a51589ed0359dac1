"""Benchmark: N applications through every stage of the card pipeline, on SQLite and on PostgreSQL.

    python bench/pipeline.py --n 100000 --db sqlite
    python bench/pipeline.py --n 1000000 --db postgresql --workers 3

Residents (spread over all 1,741 municipalities) and their application forms are registered first (setup,
reported but not part of the pipeline time). Then each stage runs to completion with ``--workers`` processes
through the same service functions the API and the simulation use: intake → screening (full match) → print
order (batch files with SHA-256 manifests) → acknowledgement and manufacture → shipping in boxes → municipal
receipt. It prints cards/s per stage, end-to-end cards/s and each process's peak memory, and beside them the
peer: the same state changes done by bare SQL on the same database in the same run (one UPDATE and one
INSERT … SELECT of events per stage over all rows) — the floor our services are measured against.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from measure import scratch_database
from mynacard.bootstrap import build_context
from mynacard.cards import service as cards
from mynacard.context import Context
from mynacard.migrate import upgrade
from mynacard.principal import Principal, Role
from mynacard.registry import service as registry
from mynacard.sim.photos import face_photo
from mynacard.sim.population import generate_residents

SYSTEM = Principal.system("bench")
CONTRACTOR = Principal(Role.CONTRACTOR, "bench-contractor")
MANUFACTURER = Principal(Role.MANUFACTURER, "bench-manufacturer")
T0 = datetime(2026, 1, 5, 0, 30, tzinfo=UTC)
CLERKS_PER_WORKER = 8
"""Municipal clerks checking boxes in at once, per worker process (the receive stage)."""


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


_CONTEXTS: dict[tuple[str, str], Context] = {}


def _ctx(home: str, url: str) -> Context:
    """The worker process's context, built once and kept across stages (a running service's, not a new one's
    per batch)."""
    if (home, url) not in _CONTEXTS:
        _CONTEXTS[home, url] = build_context(home=Path(home), database_url=url)
    return _CONTEXTS[home, url]


def _warm(home: str, url: str) -> int:
    """Start-up of a worker process (imports, context, a first connection) before any clock runs."""
    with _ctx(home, url).db.connect():
        return os.getpid()


# --- work done inside worker processes ---------------------------------------------------------------------

def _setup_worker(home: str, url: str, codes: list[str], per_town: int) -> tuple[str, int, float]:
    ctx = _ctx(home, url)
    made = 0
    pending: list[registry.NewResident] = []
    for i, code in enumerate(codes):
        pending.extend(generate_residents(registry.get_municipality(ctx, code), per_town, T0.date(), seed=7))
        if len(pending) >= 10_000 or i == len(codes) - 1:
            ids = registry.register_residents(ctx, SYSTEM, pending, T0)
            cards.issue_application_forms(ctx, SYSTEM, ids, T0)
            made += len(ids)
            pending = []
    return "setup", made, _peak_mb()


def _intake_worker(home: str, url: str, codes: list[str], batch: int) -> tuple[str, int, float]:
    ctx = _ctx(home, url)
    made = 0
    last: str | None = None
    while forms := cards.unused_application_forms(ctx, SYSTEM, batch, municipality_codes=codes, after=last):
        last = forms[-1][0]
        people = registry.residents_by_id(ctx, SYSTEM, [rid for _, rid in forms])
        items = [cards.ApplicationInput(
            application_id=app, channel="online", family_name=people[rid].facts.family_name,
            given_name=people[rid].facts.given_name, birth_date=people[rid].facts.birth_date,
            sex=people[rid].facts.sex.value, address=people[rid].facts.address,
            photo=face_photo(rid % 64)) for app, rid in forms]
        made += len(cards.submit_applications(ctx, CONTRACTOR, items, T0).created)
    return "intake", made, _peak_mb()


def _stage_worker(home: str, url: str, stage: str, index: int, workers: int) -> tuple[str, int, float]:
    ctx = _ctx(home, url)
    now = T0 + timedelta(days=1)
    done = 0
    if stage == "screen":
        while n := sum(cards.screen_applications(ctx, CONTRACTOR, now, limit=20000)):
            done += n
    elif stage == "print":
        while batches := cards.order_printing(ctx, SYSTEM, now, limit=20000):
            done += len(batches)
    elif stage == "manufacture":
        for b in cards.pending_print_batches(ctx, MANUFACTURER):
            if b % workers != index:
                continue
            cards.acknowledge_print_batch(ctx, MANUFACTURER, b, cards.read_print_file(ctx, b), now)
            while n := cards.manufacture_batch(ctx, MANUFACTURER, b, now + timedelta(days=1)):
                done += n
    elif stage == "ship":
        while boxes := cards.ship_cards(ctx, MANUFACTURER, now + timedelta(days=2), limit=20000):
            done += len(boxes)
    elif stage == "receive":
        def check_in(box: int) -> int:
            manifest = cards.box_manifest(ctx, SYSTEM, box)
            clerk = Principal(Role.CLERK, "bench-clerk", manifest["municipality_code"])
            return cards.receive_box(ctx, clerk, box, manifest["serials"], {}, now + timedelta(days=4)).received

        # Clerks of many towns scan their boxes at the same time, one transaction per box each: threads here,
        # so that their commits and round trips overlap as they do across town halls (SQLite has one writer).
        mine = [box for box in cards.unreceived_boxes(ctx, SYSTEM) if box % workers == index]
        with ThreadPoolExecutor(1 if ctx.db.is_sqlite else CLERKS_PER_WORKER) as clerks:
            done = sum(clerks.map(check_in, mine))
    return stage, done, _peak_mb()


def _run(pool: ProcessPoolExecutor, workers: int, target: Callable[..., tuple[str, int, float]],
         args_for: Callable[[int], tuple[Any, ...]]) -> tuple[float, list[tuple[str, int, float]]]:
    """Run a stage as ``workers`` tasks on the pool's processes (started before the clock, kept across stages)
    and time it to the last one's end."""
    start = time.perf_counter()
    results = [f.result() for f in [pool.submit(target, *args_for(i)) for i in range(workers)]]
    return time.perf_counter() - start, results


# --- the peer: bare SQL doing the same state changes ----------------------------------------------------------

PEER_STAGES = [("screen", "applied", "accepted"), ("print", "accepted", "print_ordered"),
               ("manufacture", "print_ordered", "manufactured"), ("ship", "manufactured", "shipped"),
               ("receive", "shipped", "received")]


def _peer(url: str, n: int) -> dict[str, float]:
    """Copy the applied cards into a scratch table and move them through the states with bare SQL."""
    engine = create_engine(url)
    out: dict[str, float] = {}
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS peer_cards"))
        conn.execute(text("DROP TABLE IF EXISTS peer_events"))
        conn.execute(text("CREATE TABLE peer_cards AS SELECT id, state FROM cards"))
        conn.execute(text("CREATE INDEX peer_cards_state ON peer_cards (state, id)"))
        conn.execute(text("CREATE TABLE peer_events (card_id BIGINT, from_state TEXT, to_state TEXT, at TEXT)"))
        conn.execute(text("UPDATE peer_cards SET state = 'applied'"))
    for name, frm, to in PEER_STAGES:
        start = time.perf_counter()
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO peer_events SELECT id, state, :to, 'now' FROM peer_cards "
                              "WHERE state = :frm"), {"to": to, "frm": frm})
            conn.execute(text("UPDATE peer_cards SET state = :to WHERE state = :frm"), {"to": to, "frm": frm})
        out[name] = n / (time.perf_counter() - start)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE peer_cards"))
        conn.execute(text("DROP TABLE peer_events"))
    engine.dispose()
    return out


# --- driver ---------------------------------------------------------------------------------------------------

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000, help="applications")
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--workers", type=int, default=0, help="processes per stage (default: 1 SQLite, 3 PG)")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args()
    workers = args.workers or (1 if args.db == "sqlite" else 3)
    if args.db == "sqlite" and workers != 1:
        raise SystemExit("SQLite has one writer: use --workers 1")

    home = tempfile.mkdtemp(prefix="mynacard-bench-")
    if args.db == "sqlite":
        url, drop_database = f"sqlite:///{home}/bench.db", None
    else:
        url, drop_database = scratch_database("mynacard_bench")
    try:
        ctx = _ctx(home, url)
        upgrade(ctx.db)
        ctx.db.dispose()
        towns = [m.code for m in registry.list_municipalities(_ctx(home, url))]
        per_town = max(1, args.n // len(towns))
        towns = towns[: max(1, args.n // per_town)]
        n = per_town * len(towns)
        shards = [towns[i::workers] for i in range(workers)]
        print(f"# pipeline bench: {n:,} applications over {len(towns):,} municipalities, {args.db}, "
              f"{workers} worker process(es) per stage", flush=True)

        pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"))
        started = set(pool.map(_warm, [home] * workers, [url] * workers))
        print(f"{len(started)} worker process(es) started", flush=True)
        setup_s, res = _run(pool, workers, _setup_worker, lambda i: (home, url, shards[i], per_town))
        print(f"setup: {n:,} residents + forms in {setup_s:.1f} s ({n / setup_s:,.0f}/s)", flush=True)

        figures: dict[str, Any] = {"n": n, "db": args.db, "workers": workers, "setup_s": setup_s, "stages": {}}
        peaks = [r[2] for r in res]
        total = 0.0
        def stage_args(stage: str) -> Callable[[int], tuple[Any, ...]]:
            return lambda i: (home, url, stage, i, workers)

        stages: list[tuple[str, Callable[..., tuple[str, int, float]], Callable[[int], tuple[Any, ...]]]] = [
            ("intake", _intake_worker, lambda i: (home, url, shards[i], 5000)),
            *[(s, _stage_worker, stage_args(s)) for s in ("screen", "print", "manufacture", "ship", "receive")],
        ]
        for name, target, args_for in stages:
            seconds, res = _run(pool, workers, target, args_for)
            total += seconds
            peaks += [r[2] for r in res]
            figures["stages"][name] = {"seconds": seconds, "cards_per_s": n / seconds}
            print(f"{name:12s} {seconds:8.1f} s {n / seconds:12,.0f} cards/s", flush=True)
        pool.shutdown()
        ctx = _ctx(home, url)
        report = cards.verify_ledger(ctx)
        ctx.db.dispose()
        if not report.ok or report.state_counts != {"received": n}:
            raise SystemExit(f"ledger not whole after the run: {report}")
        figures.update(total_s=total, end_to_end_cards_per_s=n / total, peak_rss_mb=max(peaks),
                       events=report.events)
        print(f"{'end to end':12s} {total:8.1f} s {n / total:12,.0f} cards/s; peak RSS per process "
              f"{max(peaks):,.0f} MB; ledger whole ({report.events:,} events)", flush=True)
        if args.db == "postgresql":
            print(f"2016 national load (10.7 M applications) at this rate: {10_700_000 / (n / total) / 60:,.1f} min")

        peer = _peer(url, n)
        figures["peer_bare_sql_cards_per_s"] = peer
        print("peer (bare SQL UPDATE + INSERT…SELECT of events, same database, same run):")
        for name, rate in peer.items():
            ours = figures["stages"][name]["cards_per_s"]
            print(f"  {name:12s} bare SQL {rate:12,.0f} cards/s   services {ours:10,.0f} cards/s "
                  f"({ours / rate:.2f} of bare SQL)")
        figures["machine"] = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python " \
                             f"{sys.version.split()[0]}"
        if args.json:
            args.json.write_text(json.dumps(figures, indent=1))
    finally:
        if drop_database is not None:
            drop_database()
        shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
