"""Benchmark: query-and-provide round trips through the hub, with signatures and encryption, on SQLite and on
PostgreSQL — beside the raw signing/encryption cost of one round trip, measured in the same run.

    python bench/exchange.py --db sqlite --queries 2000
    python bench/exchange.py --db postgresql --queries 2000 --workers 2

Setup (reported, not timed as part of the exchange): residents of 千代田区, the town's five divisions and
the four national bodies, everyone enrolled everywhere with a full match, a copy of every item for everyone.
Then ``--queries`` permitted queries (random requester, provider, row of the table and person) run through
``exchange.service.query`` — the same call the agency API makes: the requester's interface system seals a
query to the hub, the hub opens it, checks the permitted table, translates the code, seals it to the
provider, the provider answers from its copy end-to-end encrypted to the requester, the hub relays, appends
the hash-chained log entry and signs the new head, both agencies record their side; one transaction.

Peers, measured in the same run, interleaved with the round trips:
- ``envelopes``: the five seals and five opens one round trip makes, with the same code, no database;
- ``primitives``: the bare ``cryptography`` calls under them (6 Ed25519 signatures, 5 verifications, 5 X25519
  key generations, 10 X25519 agreements, 10 HKDF, 5 AES-256-GCM encryptions, 5 decryptions);
- ``openssl speed ed25519 ecdhx25519``: the same primitives in C, as a floor for the crypto of one round trip.
The log verifier's speed (entries/s) is printed beside plain SHA-256 over the same bytes.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from mynacard.bootstrap import build_context
from mynacard.context import Context
from mynacard.exchange import demo
from mynacard.exchange import service as ex
from mynacard.exchange.envelope import PartyKeys, open_envelope, seal
from mynacard.migrate import upgrade
from mynacard.principal import Principal
from mynacard.registry import service as registry
from mynacard.sim.population import generate_residents

SYSTEM = Principal.system("bench")
T0 = datetime(2026, 4, 6, 0, 30, tzinfo=UTC)
PG_ADMIN = os.environ.get("MYNACARD_BENCH_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def _ctx(home: str, url: str) -> Context:
    return build_context(home=Path(home), database_url=url)


def _setup(ctx: Context, residents: int) -> demo.World:
    town = registry.get_municipality(ctx, "131016")
    ids = registry.register_residents(ctx, SYSTEM, list(generate_residents(town, residents, T0.date(), 7)), T0)
    found = registry.residents_by_id(ctx, SYSTEM, ids)
    return demo.build_world(ctx, ["131016"], [found[i] for i in ids], T0, national_share=1.0, record_share=1.0)


def _plan(world: demo.World, n: int, seed: int) -> list[tuple[str, ex.QueryRequest]]:
    rng = random.Random(seed)
    pairs = demo.permitted_pairs(world.agencies)
    out = []
    for _ in range(n):
        a, b, row = rng.choice(pairs)
        rid = rng.choice(sorted(set(world.refs[a.id]) & set(world.refs[b.id])))
        out.append((a.id, ex.QueryRequest(b.id, row.procedure.value, row.item.value, world.refs[a.id][rid])))
    return out


# --- peers ----------------------------------------------------------------------------------------------------

_A, _H, _P = PartyKeys.generate(), PartyKeys.generate(), PartyKeys.generate()
_DIRECTORY = {"a": _A.sign_public, "hub": _H.sign_public, "p": _P.sign_public}
_QUERY = {"type": "query", "message_id": "q-0123456789abcdef01234567", "sent_at": T0.isoformat(),
          "provider": "131016-tax", "procedure": "child_allowance", "item": "local_tax", "code": "A" * 26}
_DATA = {"課税年度": 2025, "総所得金額": 3_200_000, "住民税所得割額": 320_000, "扶養人数": 2}


def envelopes_round_trip() -> None:
    """The envelope work of one round trip: five seals and five opens of realistic bodies."""
    lookup = _DIRECTORY.get
    q = seal("a", _A, "hub", _H.enc_public, _QUERY)
    body = open_envelope(q, "hub", _H, lookup).body
    fwd = seal("hub", _H, "p", _P.enc_public, {**body, "type": "provide", "requester": "a"})
    open_envelope(fwd, "p", _P, lookup)
    inner = seal("p", _P, "a", _A.enc_public, {"type": "provision", "message_id": body["message_id"],
                                                 "item": "local_tax", "status": "provided", "data": _DATA})
    reply = seal("p", _P, "hub", _H.enc_public, {"type": "provide_reply", "inner": inner.decode()})
    relayed = open_envelope(reply, "hub", _H, lookup).body
    back = seal("hub", _H, "a", _A.enc_public, {"type": "query_reply", "seq": 1, "inner": relayed["inner"]})
    open_envelope(inner, "a", _A, lookup)
    open_envelope(back, "a", _A, lookup)
    _H.sign.sign(b"head")


def primitives_round_trip() -> None:
    """The bare primitives under one round trip, no JSON, no framing."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    msg = json.dumps(_QUERY).encode()
    for _ in range(5):
        sig = _A.sign.sign(msg)
        eph = X25519PrivateKey.generate()
        shared = eph.exchange(_H.enc.public_key())
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"s" * 64, info=b"i").derive(shared)
        nonce = os.urandom(12)
        ct = AESGCM(key).encrypt(nonce, msg + sig, b"aad")
        shared2 = _H.enc.exchange(eph.public_key())
        key2 = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"s" * 64, info=b"i").derive(shared2)
        AESGCM(key2).decrypt(nonce, ct, b"aad")
        _A.sign.public_key().verify(sig, msg)
    _H.sign.sign(msg)


def _per_second(fn: Any, seconds: float = 1.0) -> float:
    n, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        fn()
        n += 1
    return n / elapsed


def openssl_floor() -> dict[str, float] | None:
    """Ed25519 sign/verify and X25519 agreements per second from ``openssl speed``; None without openssl."""
    if shutil.which("openssl") is None:
        return None
    out = subprocess.run(["openssl", "speed", "-seconds", "1", "ed25519", "ecdhx25519"], capture_output=True,
                         text=True, timeout=120).stdout
    sign = re.search(r"Ed25519\)\s+[\d.]+s\s+[\d.]+s\s+([\d.]+)\s+([\d.]+)", out)
    ecdh = re.search(r"\(X25519\)\s+[\d.]+s\s+([\d.]+)", out)
    if not sign or not ecdh:
        return None
    s, v, x = float(sign.group(1)), float(sign.group(2)), float(ecdh.group(1))
    # One round trip: 6 signatures, 5 verifications, 15 X25519 operations (5 key generations, 10 agreements).
    per_rt = 6 / s + 5 / v + 15 / x
    return {"ed25519_sign_per_s": s, "ed25519_verify_per_s": v, "x25519_per_s": x, "round_trips_per_s": 1 / per_rt}


# --- the measured runs --------------------------------------------------------------------------------------------

def _worker(home: str, url: str, plan: list[tuple[str, dict[str, str]]], out: Any, go: Any,
            one_chain: bool = False) -> None:
    if one_chain:  # A/B only: every entry into chain 1, as if the log were a single chain
        from mynacard.exchange import hub

        hub.chain_of = lambda subject_code: 1  # type: ignore[assignment]
    ctx = _ctx(home, url)
    ex.prepare(ctx, T0)
    out.put("ready")
    go.wait()
    latencies = []
    peer_env: list[float] = []
    for i, (agency, q) in enumerate(plan):
        start = time.perf_counter()
        ex.query(ctx, SYSTEM, agency, ex.QueryRequest(**q), T0)
        latencies.append(time.perf_counter() - start)
        if i % 20 == 0:  # interleave the peer with the measured work
            start = time.perf_counter()
            envelopes_round_trip()
            peer_env.append(time.perf_counter() - start)
    ctx.db.dispose()
    out.put((latencies, peer_env))


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def run(db: str, queries: int, workers: int, residents: int, one_chain: bool = False) -> dict[str, Any]:
    home = tempfile.mkdtemp(prefix="mynacard-bench-exchange-")
    pg_name = None
    if db == "sqlite":
        url = f"sqlite:///{home}/bench.db"
    else:
        pg_name = f"mynacard_bench_{uuid.uuid4().hex[:10]}"
        admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{pg_name}"'))
        url = PG_ADMIN.rsplit("/", 1)[0] + "/" + pg_name
    try:
        ctx = _ctx(home, url)
        upgrade(ctx.db)
        start = time.perf_counter()
        world = _setup(ctx, residents)
        setup_s = time.perf_counter() - start
        for agency, q in _plan(world, 50, 99):  # warm-up: caches, prepared statements
            ex.query(ctx, SYSTEM, agency, q, T0)
        plans = [[(a, q.__dict__) for a, q in _plan(world, queries // workers, seed)] for seed in range(workers)]
        ctx.db.dispose()
        spawn = mp.get_context("spawn")
        out: Any = spawn.Queue()
        go = spawn.Event()
        procs = [spawn.Process(target=_worker, args=(home, url, p, out, go, one_chain)) for p in plans]
        for p in procs:
            p.start()
        assert [out.get() for _ in procs] == ["ready"] * workers
        start = time.perf_counter()
        go.set()
        results = [out.get() for _ in procs]
        # The interleaved peer runs inside the workers' time: take it out of the wall clock.
        wall = time.perf_counter() - start - sum(sum(r[1]) for r in results) / workers
        for p in procs:
            p.join()
        latencies = [x for r in results for x in r[0]]
        peer_env = [x for r in results for x in r[1]]
        ctx = _ctx(home, url)
        start = time.perf_counter()
        report = ex.verify_log(ctx, SYSTEM)
        verify_s = time.perf_counter() - start
        assert report.ok and report.entries == len(latencies) + 50, report
        with ctx.db.connect() as conn:
            raw = [f"{r.prev_hash}\n{r.seq}{r.chain}{r.chain_seq}{r.kind}{r.message_id}{r.requester}{r.provider}"
                   f"{r.procedure}{r.item}"
                   f"{r.subject_code}{r.status}{r.reason}".encode() for r in conn.execute(text(
                       "SELECT * FROM exchange_log ORDER BY seq"))]
        import hashlib

        start = time.perf_counter()
        for b in raw:
            hashlib.sha256(b).hexdigest()
        sha_s = time.perf_counter() - start
        ctx.db.dispose()
        return {
            "db": db, "workers": workers, "queries": len(latencies), "residents": residents,
            "setup_s": round(setup_s, 1), "round_trips_per_s": round(len(latencies) / wall, 1),
            "latency_ms": {"p50": round(statistics.median(latencies) * 1000, 2),
                           "p99": round(_pct(latencies, 99) * 1000, 2), "max": round(max(latencies) * 1000, 2)},
            "peer_envelopes_interleaved_ms": round(statistics.median(peer_env) * 1000, 3),
            "log_verify_entries_per_s": round(report.entries / verify_s),
            "peer_sha256_entries_per_s": round(len(raw) / sha_s),
        }
    finally:
        shutil.rmtree(home, ignore_errors=True)
        if pg_name:
            with create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT").connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)'))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--residents", type=int, default=200)
    parser.add_argument("--one-chain", action="store_true",
                        help="A/B: put every log entry into one chain (what the log was before it had 16)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON only")
    args = parser.parse_args()
    result = run(args.db, args.queries, args.workers, args.residents, args.one_chain)
    envelopes = _per_second(envelopes_round_trip)
    primitives = _per_second(primitives_round_trip)
    floor = openssl_floor()
    result["peers"] = {"envelopes_round_trips_per_s": round(envelopes, 1),
                       "primitives_round_trips_per_s": round(primitives, 1),
                       "openssl": {k: round(v, 1) for k, v in floor.items()} if floor else None}
    load = os.getloadavg()
    result["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(),
                         "load_avg_1m": round(load[0], 2), "platform": platform.platform()}
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
        return
    rt = result["round_trips_per_s"]
    chains = "one chain" if args.one_chain else "16 chains"
    print(f"exchange round trips through the hub ({args.db}, {args.workers} worker(s), {chains}, "
          f"{result['queries']:,} queries, setup {result['setup_s']} s)")
    print(f"  round trips/s            {rt:>10,.1f}   p50 {result['latency_ms']['p50']} ms, "
          f"p99 {result['latency_ms']['p99']} ms, max {result['latency_ms']['max']} ms")
    print(f"  peer: envelopes only     {envelopes:>10,.1f}   (5 seals + 5 opens + head signature, same code, no DB;"
          f" interleaved median {result['peer_envelopes_interleaved_ms']} ms)")
    print(f"  peer: bare primitives    {primitives:>10,.1f}   (cryptography calls only)")
    if floor:
        print(f"  peer: openssl speed      {floor['round_trips_per_s']:>10,.1f}   (Ed25519 sign "
              f"{floor['ed25519_sign_per_s']:,.0f}/s, verify {floor['ed25519_verify_per_s']:,.0f}/s, X25519 "
              f"{floor['x25519_per_s']:,.0f}/s)")
    print(f"  crypto share of a round trip: {rt / envelopes:.0%} (envelopes), {rt / primitives:.0%} (primitives)")
    print(f"  log verifier             {result['log_verify_entries_per_s']:>10,} entries/s   "
          f"(peer: SHA-256 of the same rows {result['peer_sha256_entries_per_s']:,}/s)")
    print(f"  X-Road average for scale: ~250 requests/s (21 M/day); machine: {os.cpu_count()} CPUs, load "
          f"{load[0]:.2f}, Python {platform.python_version()}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
