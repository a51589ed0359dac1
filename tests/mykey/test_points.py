"""The point ledger: double entry, one-way conversion, idempotency, scoping, no double spend under concurrency."""

from __future__ import annotations

import random
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import insert, update

from mynacard.context import Context
from mynacard.errors import Conflict, Forbidden, InvalidInput, NotFound
from mynacard.mykey import points
from mynacard.mykey.model import AccountKind, InsufficientPoints, Posting, Rate
from mynacard.mykey.tables import mykey_ids, point_accounts
from mynacard.principal import Principal, Role
from tests.conftest import NOW
from tests.jpki.support import CHIYODA, SAPPORO, Town

OPERATOR = Principal(Role.OPERATOR, "point-cloud")
CLERK = Principal(Role.CLERK, "points-desk", CHIYODA)
SAPPORO_CLERK = Principal(Role.CLERK, "points-desk", SAPPORO)
JAL = Principal(Role.AGENCY, "partner-jal")
BAKERY = Principal(Role.AGENCY, "shop-bakery")


def _holders(ctx: Context, count: int) -> list[str]:
    """Residents with MyKey IDs (set directly: how an ID is made is the platform test's business)."""
    town = Town(ctx)
    ids = []
    for i in range(count):
        rid = town.resident("山田", f"太郎{chr(0x30A2 + i)}")
        ids.append("AAAA" + "".join("ABCDEFGHJK"[int(c)] for c in f"{i:04d}"))
        with ctx.db.begin() as conn:
            conn.execute(insert(mykey_ids).values(mykey_id=ids[-1], resident_id=rid, created_at=NOW))
    return ids


def _programme(ctx: Context) -> None:
    points.register_partner(ctx, OPERATOR, "jal", "JALマイレージバンク", Rate(1, 1))
    points.register_partner(ctx, OPERATOR, "saison", "永久不滅ポイント", Rate(5, 1))
    points.register_shop(ctx, CLERK, "bakery", "神田ベーカリー", CHIYODA)
    points.register_shop(ctx, CLERK, "online", "千代田ふるさと市場", CHIYODA, online=True)


def test_rate_is_one_way_and_rounds_down() -> None:
    assert Rate().convert(500) == 500
    assert Rate(5, 1).convert(200) == 1000
    assert Rate(1, 3).convert(10) == 3
    with pytest.raises(InvalidInput):
        Rate(1, 3).convert(2)
    with pytest.raises(InvalidInput):
        Posting(Posting.earning(CHIYODA, "AAAAAAAA", 10, "x").kind, CHIYODA,
                Posting.earning(CHIYODA, "AAAAAAAA", 10, "x").legs[:1])


def test_convert_earn_redeem_and_statements(ctx: Context) -> None:
    (alice,) = _holders(ctx, 1)
    _programme(ctx)
    points.convert(ctx, JAL, "jal", alice, CHIYODA, 300, "jal-0001-convert", NOW)
    points.convert(ctx, OPERATOR, "saison", alice, CHIYODA, 20, "saison-0001-cv", NOW)
    points.earn(ctx, CLERK, CHIYODA, alice, 100, "健康診断受診", "chiyoda-checkup-1", NOW)
    points.redeem(ctx, BAKERY, "bakery", alice, CHIYODA, 250, "bakery-till-0001", NOW + timedelta(minutes=1))
    me = Principal(Role.RESIDENT, str(_resident_of(ctx, alice)))
    balance, lines = points.statement(ctx, me, AccountKind.RESIDENT, alice, CHIYODA)
    assert balance == 300 + 100 + 100 - 250
    assert [line.amount for line in lines] == [-250, 100, 100, 300]
    assert [line.balance_after for line in lines] == [250, 500, 400, 300]
    assert points.balance(ctx, BAKERY, "shop", "bakery", CHIYODA) == 250
    assert points.balance(ctx, JAL, "partner", "jal", CHIYODA) == -300
    assert points.balance(ctx, CLERK, "programme", CHIYODA, CHIYODA) == -100
    assert points.verify_ledger(ctx).ok
    # scoping: nobody else's statement
    stranger = Principal(Role.RESIDENT, "999999")
    for who, kind, owner in ((BAKERY, "resident", alice), (JAL, "shop", "bakery"),
                             (SAPPORO_CLERK, "resident", alice), (stranger, "resident", alice)):
        with pytest.raises(NotFound):
            points.statement(ctx, who, kind, owner, CHIYODA)
    with pytest.raises(Forbidden):
        points.redeem(ctx, JAL, "bakery", alice, CHIYODA, 1, "not-the-shop-1", NOW)
    with pytest.raises(Forbidden):
        points.earn(ctx, SAPPORO_CLERK, CHIYODA, alice, 1, "x", "sapporo-grant-1", NOW)
    with pytest.raises(InvalidInput, match="does not take"):
        points.redeem(ctx, BAKERY, "bakery", alice, SAPPORO, 1, "wrong-town-0001", NOW)


def _resident_of(ctx: Context, mykey: str) -> int:
    from sqlalchemy import select

    with ctx.db.connect() as conn:
        return int(conn.execute(select(mykey_ids.c.resident_id).where(mykey_ids.c.mykey_id == mykey)).scalar_one())


def test_idempotency_keys(ctx: Context) -> None:
    (alice,) = _holders(ctx, 1)
    _programme(ctx)
    first = points.earn(ctx, CLERK, CHIYODA, alice, 100, "ボランティア", "volunteer-2026-04-06", NOW)
    again = points.earn(ctx, CLERK, CHIYODA, alice, 100, "ボランティア", "volunteer-2026-04-06", NOW)
    assert (again.transaction_id, again.replayed, first.replayed) == (first.transaction_id, True, False)
    with pytest.raises(Conflict, match="different"):
        points.earn(ctx, CLERK, CHIYODA, alice, 999, "ボランティア", "volunteer-2026-04-06", NOW)
    assert points.balance(ctx, OPERATOR, "resident", alice, CHIYODA) == 100
    # a refused redemption leaves nothing behind, and its key stays free for a valid retry
    with pytest.raises(InsufficientPoints):
        points.redeem(ctx, BAKERY, "bakery", alice, CHIYODA, 101, "till-0002-redeem", NOW)
    points.redeem(ctx, BAKERY, "bakery", alice, CHIYODA, 100, "till-0003-redeem", NOW)
    check = points.verify_ledger(ctx)
    assert check.ok and check.transactions == 2 and check.entries == 4


def test_verify_ledger_finds_a_tampered_balance(ctx: Context) -> None:
    (alice,) = _holders(ctx, 1)
    _programme(ctx)
    points.earn(ctx, CLERK, CHIYODA, alice, 100, "x", "tamper-test-0001", NOW)
    with ctx.db.begin() as conn:
        conn.execute(update(point_accounts).where(point_accounts.c.kind == "resident").values(balance=1000))
    check = points.verify_ledger(ctx)
    assert not check.ok and len(check.accounts_out_of_step) == 1 and check.total == 900


def test_a_double_spend_is_refused(ctx: Context) -> None:
    """Eight tills try to spend the same 100 points at once; exactly one succeeds."""
    (alice,) = _holders(ctx, 1)
    _programme(ctx)
    points.earn(ctx, CLERK, CHIYODA, alice, 100, "x", "double-spend-seed", NOW)
    barrier = threading.Barrier(8)

    def spend(i: int) -> str:
        barrier.wait()
        try:
            points.redeem(ctx, OPERATOR, "bakery" if i % 2 else "online", alice, CHIYODA, 100, f"till-{i:04d}", NOW)
            return "ok"
        except InsufficientPoints:
            return "refused"

    with ThreadPoolExecutor(8) as pool:
        outcomes = Counter(pool.map(spend, range(8)))
    assert outcomes == {"ok": 1, "refused": 7}
    assert points.balance(ctx, OPERATOR, "resident", alice, CHIYODA) == 0
    assert points.verify_ledger(ctx).ok


@pytest.mark.postgres
def test_ledger_balances_after_10000_concurrent_postings(pg_ctx: Context) -> None:
    """Acceptance: 10,000 random conversions, earnings and redemptions from 8 threads on PostgreSQL (with
    retried keys among them); the ledger balances and every balance is what the accepted postings make it."""
    ctx = pg_ctx
    holders = _holders(ctx, 12)
    _programme(ctx)
    rng = random.Random(20260406)
    ops = []
    for i in range(10_000):
        who = rng.choice(holders)
        roll = rng.random()
        if roll < 0.25:
            ops.append(("convert", rng.choice(["jal", "saison"]), who, rng.randint(1, 50), f"op-{i:06d}"))
        elif roll < 0.5:
            ops.append(("earn", CHIYODA, who, rng.randint(1, 100), f"op-{i:06d}"))
        else:
            ops.append(("redeem", rng.choice(["bakery", "online"]), who, rng.randint(1, 150), f"op-{i:06d}"))
    for i in rng.sample(range(10_000), 300):  # a till that retries: the same key again, later
        ops.append(ops[i])
    rates = {"jal": 1, "saison": 5}
    lock = threading.Lock()
    expected: Counter[tuple[str, str]] = Counter()
    posted: dict[str, int] = {}
    outcome: Counter[str] = Counter()

    def run(op: tuple[str, str, str, int, str]) -> None:
        kind, other, who, amount, key = op
        try:
            if kind == "convert":
                result = points.convert(ctx, OPERATOR, other, who, CHIYODA, amount, key, NOW)
                legs = [(("resident", who), amount * rates[other]), (("partner", other), -amount * rates[other])]
            elif kind == "earn":
                result = points.earn(ctx, CLERK, CHIYODA, who, amount, "event", key, NOW)
                legs = [(("resident", who), amount), (("programme", CHIYODA), -amount)]
            else:
                result = points.redeem(ctx, OPERATOR, other, who, CHIYODA, amount, key, NOW)
                legs = [(("resident", who), -amount), (("shop", other), amount)]
        except InsufficientPoints:
            with lock:
                outcome["refused"] += 1
            return
        with lock:
            if result.replayed:
                assert posted[key] == result.transaction_id
                outcome["replayed"] += 1
                return
            assert key not in posted
            posted[key] = result.transaction_id
            outcome[kind] += 1
            for account, amount in legs:
                expected[account] += amount

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(run, ops))
    check = points.verify_ledger(ctx)
    assert check.ok, check
    assert check.transactions == len(posted) and check.entries == 2 * len(posted)
    assert outcome["replayed"] + outcome["refused"] + len(posted) == len(ops)
    assert outcome["replayed"] >= 150 and outcome["refused"] > 100 and outcome["redeem"] > 1000
    for (kind, owner), amount in expected.items():
        assert points.balance(ctx, OPERATOR, kind, owner, CHIYODA) == amount, (kind, owner)


def test_cli_verify_ledger(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from mynacard.cli import app

    (alice,) = _holders(ctx, 1)
    _programme(ctx)
    points.earn(ctx, CLERK, CHIYODA, alice, 100, "x", "cli-ledger-0001", NOW)
    monkeypatch.setenv("MYNACARD_DATABASE_URL", str(ctx.db.engine.url.render_as_string(hide_password=False)))
    runner = CliRunner()
    good = runner.invoke(app, ["mykey", "verify-ledger"])
    assert good.exit_code == 0 and "the ledger balances" in good.output
    with ctx.db.begin() as conn:
        conn.execute(insert(point_accounts).values(kind="shop", owner="bakery", municipality_code=CHIYODA,
                                                   balance=5, may_go_negative=False))
    bad = runner.invoke(app, ["mykey", "verify-ledger"])
    assert bad.exit_code == 1 and "out of step" in bad.output


def test_partner_and_shop_api_with_api_keys(ctx: Context, live_server: str) -> None:
    import httpx

    from mynacard.accounts import service as accounts

    (alice,) = _holders(ctx, 1)
    _programme(ctx)
    keys = {}
    for name in ("partner-jal", "shop-bakery"):
        accounts.create_account(ctx, name, Role.AGENCY, None, NOW)
        keys[name] = {"Authorization": f"Bearer {accounts.issue_api_key(ctx, name)}"}
    api = f"{live_server}/api/mykey/points"
    conversion = {"partner": "jal", "mykey_id": alice, "municipality_code": CHIYODA, "partner_points": 300,
                  "idempotency_key": "jal-api-000001"}
    first = httpx.post(f"{api}/conversions", json=conversion, headers=keys["partner-jal"])
    again = httpx.post(f"{api}/conversions", json=conversion, headers=keys["partner-jal"])
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == {"transaction_id": first.json()["transaction_id"], "replayed": True}
    assert httpx.post(f"{api}/conversions", json=conversion, headers=keys["shop-bakery"]).status_code == 403
    spend = {"shop": "bakery", "mykey_id": alice, "municipality_code": CHIYODA, "points": 200,
             "idempotency_key": "web-order-0001"}
    assert httpx.post(f"{api}/redemptions", json=spend, headers=keys["shop-bakery"]).status_code == 201
    too_much = httpx.post(f"{api}/redemptions", json={**spend, "idempotency_key": "web-order-0002"},
                          headers=keys["shop-bakery"])
    assert too_much.status_code == 409
    mine = httpx.get(f"{api}/statement", params={"kind": "shop", "owner": "bakery", "municipality_code": CHIYODA},
                     headers=keys["shop-bakery"]).json()
    assert mine["balance"] == 200 and [line["amount"] for line in mine["lines"]] == [200]
    theirs = httpx.get(f"{api}/statement", params={"kind": "resident", "owner": alice, "municipality_code": CHIYODA},
                       headers=keys["shop-bakery"])
    assert theirs.status_code == 404
    assert httpx.post(f"{api}/redemptions", json=spend).status_code == 401
    assert points.verify_ledger(ctx).ok
