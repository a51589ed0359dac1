"""The hash-chained exchange log: tampering is found and located, the verifier command says where, old
entries leave after seven years without breaking the chain, and concurrent appenders keep it in order."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select, text, update

from mynacard.context import Context
from mynacard.exchange import demo
from mynacard.exchange import service as ex
from mynacard.exchange.model import ExchangeKind, ExchangeStatus, LogEntry, chain_hash
from mynacard.exchange.tables import exchange_log, exchange_log_head
from mynacard.principal import Principal, Role
from tests.conftest import NOW
from tests.helpers import SYSTEM


def _cli_verify(ctx: Context) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MYNACARD_DATABASE_URL": ctx.settings.database_url, "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "mynacard.cli", "exchange", "verify-log", "--home",
                           str(ctx.settings.home)], env=env, capture_output=True, text=True, timeout=120)


def test_a_whole_log_verifies_and_an_altered_entry_is_located(ctx: Context, small_world: demo.World) -> None:
    outcomes = demo.run_exchanges(ctx, small_world, 12, NOW)
    report = ex.verify_log(ctx, SYSTEM)
    assert report.ok and report.entries == 12 and (report.first_seq, report.last_seq) == (1, 12)
    # Someone with database access rewrites who provided entry 5.
    with ctx.db.begin() as conn:
        conn.execute(update(exchange_log).where(exchange_log.c.seq == 5).values(provider="nenkin"))
    report = ex.verify_log(ctx, SYSTEM)
    assert report.first is not None and (report.first.seq, report.first.kind) == (5, "altered")
    assert len(report.breaks) == 1
    broken = _cli_verify(ctx)
    assert broken.returncode == 1 and "BROKEN at entry 5" in broken.stdout and "altered" in broken.stdout
    assert outcomes[4].seq == 5


def test_deleted_entries_are_located(ctx: Context, small_world: demo.World) -> None:
    demo.run_exchanges(ctx, small_world, 10, NOW)
    with ctx.db.begin() as conn:
        conn.execute(exchange_log.delete().where(exchange_log.c.seq.in_([4, 5])))
    report = ex.verify_log(ctx, SYSTEM)
    assert report.first is not None and (report.first.seq, report.first.kind) == (4, "missing")
    assert "4–5" in report.first.detail
    with ctx.db.begin() as conn:  # and the newest entry: the signed head still names it
        conn.execute(exchange_log.delete().where(exchange_log.c.seq == 10))
    assert any(b.kind == "missing" and b.seq == 10 for b in ex.verify_log(ctx, SYSTEM).breaks)


def test_a_rewritten_and_rehashed_stretch_is_caught_by_the_hubs_signatures(ctx: Context,
                                                                        small_world: demo.World) -> None:
    demo.run_exchanges(ctx, small_world, 6, NOW)
    assert ex.checkpoint_log(ctx, Principal(Role.OPERATOR, "jlis"), NOW) == 6
    demo.run_exchanges(ctx, small_world, 4, NOW, seed=9)
    # An attacker alters entry 3 and recomputes every hash after it, head included — without the hub's key.
    with ctx.db.begin() as conn:
        rows = conn.execute(select(exchange_log).order_by(exchange_log.c.seq)).all()
        prev = rows[1].row_hash
        for r in rows[2:]:
            e = LogEntry(r.seq, ExchangeKind(r.kind), r.message_id, r.requester, r.provider, r.procedure,
                         "disability" if r.seq == 3 else r.item, r.subject_code, ExchangeStatus(r.status),
                         r.reason, r.requested_at, r.completed_at)
            h = chain_hash(prev, e)
            conn.execute(update(exchange_log).where(exchange_log.c.seq == r.seq).values(
                item=e.item, prev_hash=prev, row_hash=h))
            prev = h
        conn.execute(update(exchange_log_head).values(row_hash=prev))
    report = ex.verify_log(ctx, SYSTEM)
    kinds = {(b.seq, b.kind) for b in report.breaks}
    assert (6, "checkpoint") in kinds and (10, "head") in kinds
    assert report.first is not None and "1–6" in report.first.detail


def test_entries_leave_after_seven_years_and_the_rest_still_verifies(ctx: Context, small_world: demo.World) -> None:
    old = NOW - timedelta(days=365 * 7 + 30)
    old_outcomes = demo.run_exchanges(ctx, small_world, 5, old)
    recent = demo.run_exchanges(ctx, small_world, 5, NOW, seed=2)
    operator = Principal(Role.OPERATOR, "jlis")
    assert ex.purge_expired_log(ctx, operator, NOW) == 5
    assert ex.purge_expired_log(ctx, operator, NOW) == 0
    report = ex.verify_log(ctx, SYSTEM)
    assert report.ok and report.entries == 5 and report.first_seq == 6
    # Nothing older than seven years is shown to the person either.
    shown: set[int] = set()
    for rid in small_world.refs["131016-child"]:
        records, _ = ex.records_about(ctx, Principal(Role.RESIDENT, str(rid)), NOW)
        shown |= {r.seq for r in records}
    assert shown <= {o.seq for o in recent} and not shown & {o.seq for o in old_outcomes}
    # Altering the anchor's neighbourhood is still caught.
    with ctx.db.begin() as conn:
        conn.execute(update(exchange_log).where(exchange_log.c.seq == 6).values(prev_hash="0" * 64))
    assert ex.verify_log(ctx, SYSTEM).first is not None


def test_concurrent_exchanges_keep_one_unbroken_chain(ctx: Context, small_world: demo.World) -> None:
    errors: list[BaseException] = []

    def worker(seed: int) -> None:
        try:
            demo.run_exchanges(ctx, small_world, 8, NOW, seed=seed)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with ctx.db.connect() as conn:
        seqs = list(conn.execute(select(exchange_log.c.seq).order_by(exchange_log.c.seq)).scalars())
        assert conn.execute(select(func.count(func.distinct(exchange_log.c.prev_hash)))).scalar() == 32
    assert seqs == list(range(1, 33))
    assert ex.verify_log(ctx, SYSTEM).ok


def test_verifying_an_empty_log(ctx: Context, tmp_path: Path) -> None:
    report = ex.verify_log(ctx, SYSTEM)
    assert report.ok and report.entries == 0
    ok = _cli_verify(ctx)
    assert ok.returncode == 0 and "log whole: 0 no entries" in ok.stdout
    with ctx.db.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM exchange_log")).scalar() == 0
