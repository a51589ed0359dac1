"""Benchmark: card touches recognised per second at a facility, and point redemptions per second under
concurrency — each beside a peer measured in the same run.

    python bench/mykey.py --db postgresql --touches 300 --redemptions 4000 --threads 8
    python bench/mykey.py --db sqlite

Setup (not timed): a fresh database, the JPKI CAs, ``--cards`` residents of 千代田区 with emulated chips that
made their own keys and hold JPKI certificates, a MyKey ID each, linked to a library (PIN) and a community bus
(no PIN); a point programme with two shops and every resident holding enough points.

Touches (one thread, in process):
- ``library, PIN``: the platform's challenge, the chip signs it after the PIN (``CardClient`` over the in-process
  transport), ``platform.recognise`` (JPKI chain, validity, revocation from the CA database, the signature,
  the MyKey ID, the member number);
- ``library, server side``: ``recognise`` alone on proofs signed beforehand;
- ``bus, no PIN``: certificate read and ``recognise`` (no signature);
- peers: a bare indexed ``SELECT`` of the member number (same tables, same number of calls) and a bare RSA-2048
  PKCS#1 v1.5 verification with ``cryptography``.
Redemptions (``--threads`` threads): ``points.redeem`` of 1–5 points by random residents at random shops —
balanced double entry, conditional update, idempotency key — and the peer: a bare conditional ``UPDATE`` of
one account's balance per transaction, same threads, same accounts. Then the same with every thread spending
from one resident (a hot row), and the ledger check.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform as host
import random
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select, text, update

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.jpki.support import CHIYODA, Town  # noqa: E402
from tests.mykey.support import PINS, chip_card  # noqa: E402

from measure import scratch_database  # noqa: E402
from mynacard.bootstrap import build_context  # noqa: E402
from mynacard.context import Context  # noqa: E402
from mynacard.migrate import upgrade  # noqa: E402
from mynacard.mykey import platform, points  # noqa: E402
from mynacard.mykey.model import FacilityKind, InsufficientPoints, Rate  # noqa: E402
from mynacard.mykey.tables import mykey_links, point_accounts  # noqa: E402
from mynacard.mykey.terminal import prove  # noqa: E402
from mynacard.principal import Principal, Role  # noqa: E402

CLERK = Principal(Role.CLERK, "bench", CHIYODA)
OPERATOR = Principal(Role.OPERATOR, "bench")


def _rate(n: int, seconds: float) -> str:
    return f"{n / seconds:,.0f}/s ({seconds * 1000 / n:.2f} ms each)"


def _timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _setup(ctx: Context, cards: int, now: datetime) -> tuple[list[Any], list[str]]:
    town = Town(ctx)
    made = [chip_card(town, "山田", f"太郎{chr(0x30A2 + i)}") for i in range(cards)]
    platform.register_facility(ctx, CLERK, "lib", "千代田区立図書館", FacilityKind.LIBRARY, CHIYODA, now)
    platform.register_facility(ctx, CLERK, "bus", "風ぐるま", FacilityKind.BUS, CHIYODA, now, pin_required=False)
    ids = []
    for i, card in enumerate(made):
        mykey_id = platform.create_mykey_id(ctx, prove(card.client, platform.issue_challenge(ctx, now), PINS.auth),
                                            now)
        for code in ("lib", "bus"):
            platform.link_member(ctx, CLERK, code, f"M{i:05d}",
                                 prove(card.client, platform.issue_challenge(ctx, now), PINS.auth), now)
        ids.append(mykey_id)
    points.register_partner(ctx, OPERATOR, "jal", "JAL", Rate())
    for shop in ("s1", "s2"):
        points.register_shop(ctx, CLERK, shop, f"shop {shop}", CHIYODA)
    for mykey_id in ids:
        points.convert(ctx, OPERATOR, "jal", mykey_id, CHIYODA, 10_000_000, f"seed-{mykey_id}", now)
    return made, ids


def _touches(ctx: Context, made: list[Any], n: int, now: datetime) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    rng = random.Random(1)
    order = [rng.choice(made) for _ in range(n)]
    full = _timed(lambda: [platform.recognise(ctx, "lib", prove(c.client, platform.issue_challenge(ctx, now),
                                                                 PINS.auth), now) for c in order])
    proofs = [prove(c.client, platform.issue_challenge(ctx, now), PINS.auth) for c in order]
    server = _timed(lambda: [platform.recognise(ctx, "lib", p, now) for p in proofs])
    bus = _timed(lambda: [platform.recognise(ctx, "bus", prove(c.client), now) for c in order])
    with ctx.db.connect() as conn:
        fid = conn.execute(text("SELECT id FROM mykey_facilities WHERE code = 'lib'")).scalar_one()
    ids = [platform.recognise(ctx, "bus", prove(c.client), now).mykey_id for c in made]
    pick = [rng.choice(ids) for _ in range(n)]

    def bare_select() -> None:
        for mykey_id in pick:
            with ctx.db.connect() as conn:
                conn.execute(select(mykey_links.c.member_number).where(
                    mykey_links.c.facility_id == fid, mykey_links.c.mykey_id == mykey_id)).scalar_one()

    peer = _timed(bare_select)
    cert = x509.load_der_x509_certificate(proofs[0].certificate)
    key: Any = cert.public_key()
    nonce_sig = proofs[0].signature
    assert nonce_sig is not None
    def bare_verify() -> None:
        for _ in range(n):
            _try_verify(key, nonce_sig, padding, hashes)

    rsa = _timed(bare_verify)
    print(f"touches ({n}, one thread):")
    print(f"  library, PIN, card + server        {_rate(n, full)}")
    print(f"  library, server side only          {_rate(n, server)}")
    print(f"  bus, no PIN                        {_rate(n, bus)}")
    print(f"  peer: bare indexed SELECT          {_rate(n, peer)}")
    print(f"  peer: bare RSA-2048 verify         {_rate(n, rsa)}")


def _try_verify(key: Any, signature: bytes, padding: Any, hashes: Any) -> None:
    with contextlib.suppress(Exception):  # the same work whether or not it verifies
        key.verify(signature, b"x", padding.PKCS1v15(), hashes.SHA256())


def _redemptions(ctx: Context, ids: list[str], n: int, threads: int, now: datetime) -> None:
    rng = random.Random(2)
    plan = [(rng.choice(ids), rng.choice(("s1", "s2")), rng.randint(1, 5), uuid.uuid4().hex) for _ in range(n)]
    refused = [0]
    lock = threading.Lock()

    def redeem(item: tuple[str, str, int, str]) -> None:
        who, shop, amount, key = item
        try:
            points.redeem(ctx, OPERATOR, shop, who, CHIYODA, amount, key, now)
        except InsufficientPoints:
            with lock:
                refused[0] += 1

    with ctx.db.connect() as conn:
        account_ids = list(conn.execute(select(point_accounts.c.id).where(point_accounts.c.kind == "resident"))
                           .scalars())
    bare_plan = [rng.choice(account_ids) for _ in range(n)]

    def bare(account_id: int) -> None:
        with ctx.db.begin() as conn:
            conn.execute(update(point_accounts).where(point_accounts.c.id == account_id,
                                                      point_accounts.c.balance >= 1)
                         .values(balance=point_accounts.c.balance - 1))
            conn.execute(update(point_accounts).where(point_accounts.c.id == account_id)
                         .values(balance=point_accounts.c.balance + 1))

    with ThreadPoolExecutor(threads) as pool:
        spread = _timed(lambda: list(pool.map(redeem, plan)))
        peer = _timed(lambda: list(pool.map(bare, bare_plan)))
        hot_plan = [(ids[0], "s1", 1, uuid.uuid4().hex) for _ in range(n // 4)]
        hot = _timed(lambda: list(pool.map(redeem, hot_plan)))
        hot_bare = _timed(lambda: list(pool.map(bare, [account_ids[0]] * (n // 4))))
    check = points.verify_ledger(ctx)
    print(f"redemptions ({threads} threads):")
    print(f"  {n} spread over {len(ids)} residents     {_rate(n, spread)}  (refused {refused[0]})")
    print(f"  peer: bare conditional UPDATE      {_rate(n, peer)}")
    print(f"  {n // 4} from one resident (hot row)  {_rate(n // 4, hot)}")
    print(f"  peer: bare UPDATE of that row      {_rate(n // 4, hot_bare)}")
    print(f"ledger: {check.transactions} transactions, {check.entries} entries, balances: {check.ok}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="postgresql")
    parser.add_argument("--cards", type=int, default=8)
    parser.add_argument("--touches", type=int, default=300)
    parser.add_argument("--redemptions", type=int, default=4000)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    home = tempfile.mkdtemp(prefix="mykey-bench-")
    os.environ["MYNACARD_HOME"] = home
    if args.db == "postgresql":
        url, drop_database = scratch_database("mykey_bench")
    else:
        url, drop_database = f"sqlite:///{home}/bench.db", None
    ctx = build_context(home=Path(home), database_url=url)
    try:
        upgrade(ctx.db)
        print(f"mykey bench: {args.db}, {os.cpu_count()} cores, {host.python_version()}, "
              f"load {os.getloadavg()[0]:.1f}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
        now = datetime.now(UTC)
        start = time.perf_counter()
        made, ids = _setup(ctx, args.cards, now)
        print(f"setup: {args.cards} cards with MyKey IDs and links in {time.perf_counter() - start:.1f} s")
        _touches(ctx, made, args.touches, now)
        _redemptions(ctx, ids, args.redemptions, args.threads, now)
        print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    finally:
        ctx.db.dispose()
        if drop_database is not None:
            drop_database()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
