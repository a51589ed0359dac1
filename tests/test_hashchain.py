"""The one hash-chain mechanism of every audit log (:mod:`mynacard.hashchain`): how an entry is linked to the one
before it, the stored formats that rule gives, and the walk that finds an altered entry, a broken link, a gap, a
reordering and a truncated end — on its own, and through :class:`HashChain` on both databases (on PostgreSQL the
hashes are computed in SQL, and must be the ones :func:`link` gives)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from mynacard.accounts.tables import account_audit, account_audit_heads
from mynacard.context import Context
from mynacard.exchange.model import ExchangeKind, ExchangeStatus, LogEntry, chain_hash
from mynacard.hashchain import GENESIS, ChainWalk, Entry, Fault, HashChain, _entry_body, entry_hash, link

T0 = datetime(2026, 4, 6, 0, 30, tzinfo=UTC)

Row = tuple[int, str, bytes, str]
"""(position, prev_hash, body, hash) as a log stores it."""


def chain(n: int, start: int = 0, start_hash: str = GENESIS) -> list[Row]:
    rows = []
    prev = start_hash
    for pos in range(start + 1, start + n + 1):
        body = json.dumps([pos, f"entry {pos}", "町"], ensure_ascii=False).encode()
        h = link(prev, body)
        rows.append((pos, prev, body, h))
        prev = h
    return rows


def walk(rows: list[Row], head: tuple[int, str] | None = None, anchor: tuple[int, str] = (0, GENESIS)
         ) -> tuple[list[tuple[int, Fault]], Fault | None]:
    """Every fault the walk names (position, fault), and what it says about the end against ``head``
    (by default: the last row given)."""
    w = ChainWalk(*anchor)
    faults = [(pos, f) for pos, prev, body, h in rows for f in w.step(pos, prev, body, h)]
    if head is None:
        head = (rows[-1][0], rows[-1][3]) if rows else anchor
    assert w.entries == len(rows)
    return faults, w.end(*head)


# --- the rule ------------------------------------------------------------------------------------------------


def test_a_link_is_sha256_over_the_previous_hash_and_the_body() -> None:
    assert link(GENESIS, b"") == hashlib.sha256(b"0" * 64).hexdigest()
    assert link("ab" * 32, "町".encode()) == hashlib.sha256(("ab" * 32 + "町").encode()).hexdigest()
    assert GENESIS == "0" * 64


def test_the_stored_formats_of_every_log() -> None:
    """Fixed vectors: a change to any log's stored hash format fails here (and needs a migration of its data)."""
    body = _entry_body("kiosk:0001", 1, T0, "r" * 32, "kiosk-0001", "opened", '{"町":"千代田区"}')
    assert body == json.dumps(["kiosk:0001", 1, "2026-04-06T00:30:00.000000+00:00", "r" * 32, "kiosk-0001",
                               "opened", '{"町":"千代田区"}'], ensure_ascii=False, separators=(",", ":")).encode()
    kiosk = entry_hash(GENESIS, "kiosk:0001", 1, T0, "r" * 32, "kiosk-0001", "opened", '{"町":"千代田区"}')
    assert kiosk == link(GENESIS, body) == "1b6b93580cd1acd52d7f26f67307bed7281a3441c2af33ac26774310fa514da8"
    entry = LogEntry(1, 3, 1, ExchangeKind.QUERY, "m1", "131016-child", "131016-tax", "child_allowance",
                     "local_tax", "A" * 26, ExchangeStatus.PROVIDED, None, T0, T0)
    exchange = chain_hash(GENESIS, entry)
    assert exchange == link(GENESIS, entry.canonical()) == (
        "7e7739ea6f3c6fdc1b2864f2c77c1688b866b5b600cf3a529d020ac06ff42232")


# --- the walk ------------------------------------------------------------------------------------------------


def test_a_whole_chain_walks_clean() -> None:
    assert walk(chain(20)) == ([], None)
    assert walk([]) == ([], None)


def test_a_tampered_body_is_found_where_it_is() -> None:
    rows = chain(10)
    pos, prev, body, h = rows[4]
    rows[4] = (pos, prev, body.replace(b"entry", b"entrY"), h)
    assert walk(rows) == ([(5, Fault.ALTERED)], None)


def test_a_tampered_and_rehashed_body_breaks_the_link_to_the_next() -> None:
    rows = chain(10)
    pos, prev, body, _ = rows[4]
    forged = body.replace(b"entry", b"entrY")
    rows[4] = (pos, prev, forged, link(prev, forged))
    assert walk(rows, head=(10, rows[-1][3])) == ([(6, Fault.RELINKED)], None)


def test_a_removed_last_entry_is_found_against_the_head() -> None:
    rows = chain(10)
    assert walk(rows[:-1], head=(10, rows[-1][3])) == ([], Fault.TRUNCATED)
    # and a rewritten end reaches the head's position with another hash
    forged = chain(10, start_hash="f" * 64)
    assert walk(forged, head=(10, rows[-1][3])) == ([(1, Fault.RELINKED)], Fault.HEAD)


def test_a_gap_is_found_where_it_starts() -> None:
    rows = chain(10)
    del rows[3:5]
    faults, end = walk(rows, head=(10, rows[-1][3]))
    assert faults == [(6, Fault.GAP)] and end is None


def test_a_swapped_pair_is_found() -> None:
    rows = chain(10)
    # walked in the stored order with their positions: the later one comes first
    swapped = [*rows[:3], rows[4], rows[3], *rows[5:]]
    faults, end = walk(swapped, head=(10, rows[-1][3]))
    assert faults == [(5, Fault.GAP), (4, Fault.OUT_OF_ORDER), (6, Fault.RELINKED)] and end is None
    # their contents exchanged, the positions kept
    (p4, prev4, body4, h4), (p5, prev5, body5, h5) = rows[3], rows[4]
    exchanged = [*rows[:3], (p4, prev5, body5, h5), (p5, prev4, body4, h4), *rows[5:]]
    faults, _ = walk(exchanged, head=(10, rows[-1][3]))
    assert faults == [(4, Fault.RELINKED), (5, Fault.RELINKED), (6, Fault.RELINKED)]


def test_a_walk_from_a_retention_anchor() -> None:
    rows = chain(10)
    anchor = (4, rows[3][3])
    assert walk(rows[4:], anchor=anchor) == ([], None)
    assert walk(rows[4:])[0] == [(5, Fault.GAP)]  # walked from genesis: positions 1–4 are gone
    assert walk(rows[4:], anchor=(4, "f" * 64))[0] == [(5, Fault.RELINKED)]


# --- through HashChain, on both databases ----------------------------------------------------------------------

LOG = HashChain(account_audit, account_audit_heads)


def _fill(ctx: Context, stream: str = "test") -> None:
    with ctx.transaction() as tx:
        LOG.append(tx.conn, stream, "first", "alice", T0, request_id="a" * 32, details={"町": "千代田区"})
    with ctx.transaction() as tx:
        LOG.append_many(tx.conn, stream, T0 + timedelta(seconds=1), [
            Entry("second", "bob"), Entry("third", "carol", None, {"n": 3}), Entry("fourth", "dave")])
    with ctx.transaction() as tx:
        LOG.append(tx.conn, stream, "fifth", "erin", T0 + timedelta(seconds=2))


def test_stored_hashes_are_the_links_on_both_databases(ctx: Context) -> None:
    _fill(ctx)
    _fill(ctx, "other")
    with ctx.db.connect() as conn:
        rows = conn.execute(select(account_audit).where(account_audit.c.stream == "test")
                            .order_by(account_audit.c.seq)).all()
        head = conn.execute(select(account_audit_heads).where(account_audit_heads.c.stream == "test")).one()
    prev = GENESIS
    for r in rows:
        assert r.prev_hash == prev
        assert r.hash == link(prev, _entry_body(r.stream, r.seq, r.at, r.request_id, r.actor, r.action, r.details))
        prev = r.hash
    assert [r.seq for r in rows] == [1, 2, 3, 4, 5] and (head.seq, head.hash) == (5, prev)
    report = LOG.verify(ctx.db)
    assert report.ok and (report.streams, report.entries) == (2, 10)


def test_tampering_with_a_stored_chain_is_found(ctx: Context) -> None:
    _fill(ctx)
    _fill(ctx, "other")
    where = account_audit.c.stream == "test"
    with ctx.db.begin() as conn:  # a tampered body
        conn.execute(update(account_audit).where(where, account_audit.c.seq == 2).values(actor="mallory"))
    assert LOG.verify(ctx.db, "test").problems == ["test #2: content changed after it was written"]
    with ctx.db.begin() as conn:  # a pair swapped: entries 2 and 3 exchange their contents
        two, three = (conn.execute(select(account_audit).where(where, account_audit.c.seq == s)).one()
                      for s in (2, 3))
        for row, other in ((two, three), (three, two)):
            conn.execute(update(account_audit).where(account_audit.c.id == row.id).values(
                at=other.at, request_id=other.request_id, actor=other.actor, action=other.action,
                details=other.details, prev_hash=other.prev_hash, hash=other.hash))
    problems = LOG.verify(ctx.db, "test").problems
    assert "test #2: does not follow the entry before it" in problems
    assert "test #3: does not follow the entry before it" in problems
    with ctx.db.begin() as conn:  # a gap
        conn.execute(account_audit.delete().where(where, account_audit.c.seq == 4))
    assert "test: entry 4 is missing (found 5)" in LOG.verify(ctx.db, "test").problems
    with ctx.db.begin() as conn:  # the last entry removed
        conn.execute(account_audit.delete().where(where, account_audit.c.seq == 5))
    assert ("test: the chain does not end at its recorded head (entries removed?)"
            in LOG.verify(ctx.db, "test").problems)
    assert LOG.verify(ctx.db, "other").ok  # the other stream is untouched
