"""The hash-chained exchange log: tampering is found and located, the verifier command says where, old
entries leave after seven years without breaking the chain, and concurrent appenders keep it in order."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select, text, update

from mynacard.context import Context
from mynacard.exchange import demo
from mynacard.exchange import service as ex
from mynacard.exchange.model import ExchangeKind, ExchangeStatus, LogEntry, chain_hash
from mynacard.exchange.tables import exchange_log, exchange_log_checkpoints, exchange_log_head
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


def _busiest_chain(ctx: Context) -> tuple[int, list[int]]:
    """The chain with the most entries, and its entry numbers in chain order."""
    with ctx.db.connect() as conn:
        rows = conn.execute(select(exchange_log.c.chain, exchange_log.c.seq).order_by(
            exchange_log.c.chain, exchange_log.c.chain_seq)).all()
    by_chain: dict[int, list[int]] = {}
    for chain, seq in rows:
        by_chain.setdefault(chain, []).append(seq)
    chain = max(by_chain, key=lambda c: len(by_chain[c]))
    return chain, by_chain[chain]


def test_deleted_entries_are_located(ctx: Context, small_world: demo.World) -> None:
    demo.run_exchanges(ctx, small_world, 30, NOW)
    chain, seqs = _busiest_chain(ctx)
    assert len(seqs) >= 4
    with ctx.db.begin() as conn:
        conn.execute(exchange_log.delete().where(exchange_log.c.seq.in_(seqs[1:3])))
    report = ex.verify_log(ctx, SYSTEM)
    first = report.first
    assert first is not None and (first.chain, first.chain_seq, first.kind) == (chain, 2, "missing")
    assert f"positions 2–3 after entry {seqs[0]} and before entry {seqs[3]}" in first.detail
    with ctx.db.begin() as conn:  # and the newest entry of the chain: its signed head still names it
        conn.execute(exchange_log.delete().where(exchange_log.c.seq == seqs[-1]))
    assert any(b.kind == "missing" and b.chain == chain and b.chain_seq == len(seqs)
               for b in ex.verify_log(ctx, SYSTEM).breaks)


def test_a_rewritten_and_rehashed_stretch_is_caught_by_the_hubs_signatures(ctx: Context,
                                                                        small_world: demo.World) -> None:
    demo.run_exchanges(ctx, small_world, 20, NOW)
    assert ex.checkpoint_log(ctx, Principal(Role.OPERATOR, "jlis"), NOW) >= 1
    demo.run_exchanges(ctx, small_world, 20, NOW, seed=9)
    chain, seqs = _busiest_chain(ctx)
    with ctx.db.connect() as conn:
        signed = conn.execute(select(exchange_log_checkpoints.c.chain_seq).where(
            exchange_log_checkpoints.c.chain == chain)).scalar_one()
    assert 2 <= signed < len(seqs)
    # An attacker alters position 2 of the chain and recomputes every hash after it, the chain's head
    # included — without the hub's key.
    with ctx.db.begin() as conn:
        rows = conn.execute(select(exchange_log).where(exchange_log.c.chain == chain)
                            .order_by(exchange_log.c.chain_seq)).all()
        prev = rows[0].row_hash
        for r in rows[1:]:
            e = LogEntry(r.seq, r.chain, r.chain_seq, ExchangeKind(r.kind), r.message_id, r.requester, r.provider,
                         r.procedure, "disability" if r.chain_seq == 2 else r.item, r.subject_code,
                         ExchangeStatus(r.status), r.reason, r.requested_at, r.completed_at)
            h = chain_hash(prev, e)
            conn.execute(update(exchange_log).where(exchange_log.c.seq == r.seq).values(
                item=e.item, prev_hash=prev, row_hash=h))
            prev = h
        conn.execute(update(exchange_log_head).where(exchange_log_head.c.chain == chain).values(row_hash=prev))
    report = ex.verify_log(ctx, SYSTEM)
    kinds = {(b.chain, b.chain_seq, b.kind) for b in report.breaks}
    assert (chain, signed, "checkpoint") in kinds and (chain, len(seqs), "head") in kinds
    assert all(b.chain == chain for b in report.breaks)  # the other chains are untouched
    assert report.first is not None and f"positions 1–{signed} of chain {chain}" in report.first.detail


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


def test_concurrent_exchanges_keep_every_chain_unbroken(ctx: Context, small_world: demo.World) -> None:
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
        rows = conn.execute(select(exchange_log.c.seq, exchange_log.c.chain, exchange_log.c.chain_seq)).all()
    assert sorted(r.seq for r in rows) == list(range(1, 33))
    for chain in {r.chain for r in rows}:
        positions = sorted(r.chain_seq for r in rows if r.chain == chain)
        assert positions == list(range(1, len(positions) + 1))
        # Within a chain, entry numbers rise with positions (they are taken under the chain's lock).
        in_order = [r.seq for r in sorted((r for r in rows if r.chain == chain), key=lambda r: r.chain_seq)]
        assert in_order == sorted(in_order)
    report = ex.verify_log(ctx, SYSTEM)
    assert report.ok and report.chains > 1


def test_verifying_an_empty_log(ctx: Context, tmp_path: Path) -> None:
    report = ex.verify_log(ctx, SYSTEM)
    assert report.ok and report.entries == 0
    ok = _cli_verify(ctx)
    assert ok.returncode == 0 and "log whole: 0 no entries" in ok.stdout
    with ctx.db.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM exchange_log")).scalar() == 0
